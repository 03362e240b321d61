"""What ``posezoo serve`` serves and its limits: one frozen :class:`ServeConfig`, checked at start.

Every limit has a default that keeps one machine safe from one careless (or hostile) client, and each
can be set from the command line (``posezoo serve --help``) or here.
"""

from __future__ import annotations

import ipaddress
import math
import os
from dataclasses import dataclass, field, replace

from posezoo.errors import UsageError

API_KEY_ENV = "POSEZOO_API_KEY"
LOOPBACK_NAMES = {"localhost", "ip6-localhost"}


def parse_model_arg(text: str) -> tuple[str, str | None]:
    """``MODEL`` or ``MODEL:VARIANT`` -> (name, variant or None)."""
    name, sep, variant = str(text).strip().partition(":")
    if not name or (sep and not variant):
        raise UsageError(f"model {text!r} is not MODEL or MODEL:VARIANT", "`posezoo list` shows the models, `posezoo info MODEL` their variants")
    return name, variant or None


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost: addresses only this machine reaches."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def default_workers(cores: int) -> int:
    """Model copies running at once when not told: one per physical core, each with one onnxruntime
    thread (as ``posezoo run --jobs``). Measured on a quiet 2-core machine (benchmarks/serve_load.py,
    blazepose-full): in process, two copies of one thread ran 76 images/s, one copy of two threads 55;
    the server answered 64 requests/s with two copies and 46 with one."""
    return max(1, cores)


@dataclass(frozen=True)
class Limits:
    """The server's limits (each settable; see docs/serving.md).

    ``max_body_bytes``: a request body or one WebSocket message; ``max_pixels``: an image's width x
    height read from its header before decoding (decompression bombs); ``workers``: model runs at once
    (each holds its own copy of every model; default: one per physical core); ``max_queue``: requests waiting
    for a worker, past which a request is answered 503 with Retry-After; ``max_streams``: WebSocket
    streams at once; ``max_fps``: frames per second one stream may send (more are dropped, counted);
    ``request_timeout``: seconds from a request's first byte to its answer (body, queue and model
    together: 408 while reading, 504 after); ``idle_timeout``: seconds a stream (or a kept-alive HTTP
    connection) may send nothing; ``drain_timeout``: seconds Ctrl-C / SIGTERM waits for requests in
    flight before closing them.
    """

    max_body_bytes: int = 16 << 20
    max_pixels: int = 50_000_000
    workers: int = 0  # 0: one per physical core (at least 1), each with cores / workers threads
    max_queue: int = 16
    max_streams: int = 16
    max_fps: float = 30.0
    request_timeout: float = 30.0
    idle_timeout: float = 60.0
    drain_timeout: float = 30.0

    def checked(self) -> "Limits":
        from posezoo.inference.runtime import physical_cores

        for name in ("max_body_bytes", "max_pixels", "max_streams"):
            if int(getattr(self, name)) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be 1 or more, not {getattr(self, name)}")
        if self.workers < 0 or self.max_queue < 0:
            raise UsageError("--workers and --max-queue must be 0 or more")
        for name in ("max_fps", "request_timeout", "idle_timeout", "drain_timeout"):
            value = float(getattr(self, name))
            if not (math.isfinite(value) and value > 0):
                raise UsageError(f"--{name.replace('_', '-')} must be a positive number, not {getattr(self, name)}")
        return replace(self, workers=self.workers or default_workers(physical_cores()))


@dataclass(frozen=True)
class ServeConfig:
    """Models (``(name, variant or None)``, the first is the page's default), where to listen, the API
    key, how to load the models, and the :class:`Limits`."""

    models: tuple[tuple[str, str | None], ...] = ()
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    device: str = "auto"
    mirror: str | None = None
    offline: bool | None = None
    limits: Limits = field(default_factory=Limits)

    def checked(self) -> "ServeConfig":
        """The config with defaults filled in (the zoo's default model, the worker count), or a
        :class:`UsageError`: a non-loopback address without an API key is refused."""
        models = self.models
        if not models:
            from posezoo.zoo.resolve import get_zoo

            models = ((get_zoo().registry.default(), None),)
        if not (0 <= int(self.port) <= 65535):
            raise UsageError(f"--port must be in 0..65535, not {self.port}")
        key = self.api_key if self.api_key is not None else (os.environ.get(API_KEY_ENV) or None)
        if key is not None and (len(key) < 8 or any(c.isspace() for c in key)):
            raise UsageError("the API key must be 8 or more characters without spaces", f"set --api-key or ${API_KEY_ENV}")
        if not is_loopback(self.host) and not key:
            raise UsageError(
                f"binding {self.host} lets other machines in: an API key is required",
                f"set ${API_KEY_ENV} (or --api-key), or bind 127.0.0.1",
            )
        return replace(self, models=tuple(models), api_key=key, limits=self.limits.checked())
