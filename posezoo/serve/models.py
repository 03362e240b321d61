"""The served models: every one loaded at start (fetched, verified, converted: never at request time),
in ``workers`` copies, and lent out one request at a time.

A model object reuses its input buffers from call to call, so one copy runs one image at a time. Each
served model has ``workers`` copies, and :class:`Slots` lends them: a REST request takes any free copy,
a WebSocket stream is pinned to one copy for its life (its tracker keeps state on that copy's sessions)
and takes that copy for each frame. The onnxruntime threads of each copy are cores / workers, as the
process pool of ``posezoo run --jobs`` sets them.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
import os
import sys
from dataclasses import dataclass, field
from typing import Any

from posezoo.errors import UnknownModelError
from posezoo.inference.runtime import THREADS_ENV
from posezoo.io.draw import sides
from posezoo.serve.config import ServeConfig


class Slots:
    """``count`` copies lent one at a time, first come first served: ``await acquire()`` any free
    copy, ``await acquire(i)`` copy ``i``; ``release(i)`` gives it back. Used from the event loop only."""

    def __init__(self, count: int):
        self.count = count
        self.free = set(range(count))
        self.waiters: deque[tuple[int | None, asyncio.Future]] = deque()

    def _grant(self) -> None:
        for waiter in list(self.waiters):
            want, fut = waiter
            if fut.done():
                self.waiters.remove(waiter)
                continue
            pick = want if want in self.free else (min(self.free) if want is None and self.free else None)
            if pick is not None:
                self.free.remove(pick)
                self.waiters.remove(waiter)
                fut.set_result(pick)

    async def acquire(self, index: int | None = None) -> int:
        fut = asyncio.get_running_loop().create_future()
        self.waiters.append((index, fut))
        self._grant()
        try:
            return await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():  # granted just as the caller gave up
                self.release(fut.result())
            raise

    def release(self, index: int) -> None:
        self.free.add(index)
        self._grant()


@dataclass
class Served:
    """One served model: ``key`` (``name:variant``), its copies, and what the API lists about it."""

    name: str
    variant: str
    copies: list[Any]
    slots: Slots
    info: dict
    _pin: Any = field(default_factory=lambda: itertools.count())

    @property
    def key(self) -> str:
        return f"{self.name}:{self.variant}"

    @property
    def model(self) -> Any:
        return self.copies[0]

    def pin(self) -> int:
        """The copy a new stream is pinned to (round robin)."""
        return next(self._pin) % len(self.copies)


def _info(name: str, variant: str, model, description: str, variants: list[str]) -> dict:
    caps = model.capabilities
    described = model.describe()
    side_names = [["centre", "left", "right"][int(s)] for s in sides(caps.keypoint_names, len(caps.keypoint_names))]
    return {
        "id": f"{name}:{variant}",
        "name": name,
        "variant": variant,
        "variants": variants,
        "description": description,
        "family": described.get("family"),
        "keypoint_names": list(caps.keypoint_names),
        "skeleton": [list(e) for e in caps.skeleton],
        "keypoint_sides": side_names,  # the side each keypoint is drawn in (posezoo.io.draw's colours)
        "parts": caps.describe()["parts"],  # part name -> [start, stop) rows, as a pose's parts
        "summary": list(described.get("summary") or []),
        "features": sorted(caps.features),
        "max_poses": caps.max_poses,
        "options": caps.describe()["options"],
        "provider": model.provider,
    }


class ModelSet:
    """The served models by key; ``get("name")`` is the first served variant of that name."""

    def __init__(self, served: list[Served], workers: int):
        self.served = {s.key: s for s in served}
        self.workers = workers
        self.default = served[0].key if served else None

    def get(self, key: str) -> Served:
        if key in self.served:
            return self.served[key]
        for s in self.served.values():
            if s.name == key:
                return s
        raise UnknownModelError(
            f"model {key!r} is not served here", f"served: {', '.join(self.served) or 'none'} (GET /v1/models)"
        )

    def list(self) -> list[dict]:
        return [s.info for s in self.served.values()]

    @classmethod
    def load(cls, config: ServeConfig, *, progress: bool = True, cache_only: bool = False) -> "ModelSet":
        """Load every model of ``config`` ``workers`` times: the first copy through the verified fetch
        (downloads, digests, conversion; a progress line each), the others from the cache. With
        ``cache_only`` (a Ray replica: the driver fetched them) every copy opens the cache offline."""
        from posezoo.drivers.pool import threads_per_worker
        from posezoo.zoo.resolve import get_zoo

        zoo = get_zoo()
        workers = config.limits.workers
        saved = os.environ.get(THREADS_ENV)
        if saved is None:
            os.environ[THREADS_ENV] = str(threads_per_worker(workers))
        try:
            served = []
            for name, variant in config.models:
                resolution = zoo.resolve(name, variant)  # once: every copy is built from it
                entry, vname = resolution.entry, resolution.variant_name
                if progress:
                    print(f"posezoo: serve: loading {name} ({vname}) x{workers}", file=sys.stderr, flush=True)
                copies = []
                for i in range(workers):
                    first = i == 0 and not cache_only
                    copies.append(
                        resolution.load(
                            device=config.device, mirror=config.mirror if first else None,
                            offline=config.offline if first else True, progress=progress and first,
                        )
                    )  # fmt: skip
                info = _info(name, vname, copies[0], entry.description, list(entry.variants))
                served.append(Served(name, vname, copies, Slots(workers), info))
        finally:
            if saved is None:
                os.environ.pop(THREADS_ENV, None)
        return cls(served, workers)
