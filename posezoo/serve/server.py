"""One process: uvicorn runs the app; Ctrl-C and SIGTERM drain it and exit 0.

uvicorn's own signal handling re-raises the signal once it has shut down (the process would then end
by SIGTERM, or by KeyboardInterrupt: exit 130); :class:`DrainingServer` keeps the drain and drops the
re-raise: the first signal stops accepting, marks the server not ready (``/readyz`` 503, new requests
503), lets the requests in flight finish (at most ``drain_timeout`` seconds) and returns; a second
signal closes at once.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading

from posezoo.serve.config import ServeConfig


def _say(message: str) -> None:
    print(f"posezoo: serve: {message}", file=sys.stderr, flush=True)


def make_server(config: ServeConfig, app):
    import uvicorn

    class DrainingServer(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):
            if threading.current_thread() is not threading.main_thread():
                yield
                return

            def handle(sig, frame):
                if self.should_exit:
                    self.force_exit = True
                    return
                _say(f"{signal.Signals(sig).name}: draining (requests in flight finish; again to close now)")
                app.state.runtime.draining = True
                self.should_exit = True

            originals = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, old in originals.items():
                    signal.signal(sig, old)

        async def startup(self, sockets=None):
            await super().startup(sockets=sockets)
            if self.should_exit:  # (the port could not be bound: uvicorn said why)
                return
            ports = [s.getsockname()[1] for server in self.servers for s in server.sockets]
            host = config.host if ":" not in config.host else f"[{config.host}]"
            port = ports[0] if ports else config.port
            served = ", ".join(app.state.runtime.models.served)
            _say(f"serving {served} on http://{host}:{port} (page: /, API: /docs; Ctrl-C to stop)")

    lim = config.limits
    uv = uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        log_level="warning",
        access_log=False,  # (a browser's stream URL may carry ?token=)
        ws_max_size=lim.max_body_bytes,
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        timeout_keep_alive=int(min(lim.idle_timeout, 75)),
        timeout_graceful_shutdown=int(max(1, lim.drain_timeout)),
        lifespan="on",
        server_header=False,
    )
    return DrainingServer(uv)


def run_local(config: ServeConfig, *, progress: bool = True) -> None:
    """Load the models, serve until Ctrl-C / SIGTERM, drain, return."""
    from posezoo.serve.app import create_app
    from posezoo.serve.models import ModelSet

    models = ModelSet.load(config, progress=progress)
    server = make_server(config, create_app(config, models))
    server.run()
    if not server.started:
        from posezoo.errors import UsageError

        raise UsageError(f"cannot listen on {config.host}:{config.port}", "is another server on that port? try --port")
    _say("stopped")
