"""Per-stage timing for the bench: a clock models and sessions add their seconds to.

Models time their stages through ``PoseModel.clock`` and onnxruntime runs through ``Session.clock``;
:data:`NO_CLOCK` (the default) does nothing, so timing costs nothing when nobody asks.
"""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager, nullcontext
from typing import Iterator


class StageClock:
    """Seconds spent per stage, summed until :meth:`clear`: ``with clock("decode"): ...``."""

    enabled = True

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] += seconds

    def clear(self) -> None:
        self.seconds.clear()

    @contextmanager
    def _timing(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start

    def __call__(self, stage: str):
        return self._timing(stage)


class _NoClock(StageClock):
    enabled = False
    _null = nullcontext()

    def add(self, stage: str, seconds: float) -> None:
        pass

    def __call__(self, stage: str):
        return self._null


NO_CLOCK: StageClock = _NoClock()
