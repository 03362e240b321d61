"""``posezoo serve``: pose estimation over HTTP and WebSocket, a page on the webcam, Ray Serve.

    posezoo serve [MODEL[:VARIANT]...] [--host 127.0.0.1] [--port 8000] [--ray local|ADDRESS --replicas N]

Modules: :mod:`~posezoo.serve.config` (what is served, the limits), :mod:`~posezoo.serve.models` (the
models, loaded at start in one copy per worker), :mod:`~posezoo.serve.app` (the FastAPI app: routes,
guard, errors), :mod:`~posezoo.serve.stream` (the WebSocket protocol), :mod:`~posezoo.serve.metrics`
(Prometheus), :mod:`~posezoo.serve.server` (uvicorn, draining on SIGTERM), :mod:`~posezoo.serve.ray_serve`
(the same app as a Ray Serve application); ``static/`` holds the page. FastAPI, uvicorn and the rest
come with ``pip install "posezoo[serve]"`` (Ray Serve: ``"posezoo[serve,ray]"``).
"""

from __future__ import annotations

from posezoo.serve.config import Limits, ServeConfig, parse_model_arg

__all__ = ["Limits", "ServeConfig", "parse_model_arg", "serve"]

SERVE_MODULES = ("fastapi", "uvicorn", "websockets", "multipart", "prometheus_client")


def require_serve(ray: bool = False) -> None:
    """A one-line MissingDependencyError unless the serve extra (and Ray Serve) are installed."""
    import importlib.util

    from posezoo.errors import MissingDependencyError

    missing = [m for m in SERVE_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingDependencyError(f"posezoo serve needs {missing[0]}, which is not installed", 'pip install "posezoo[serve]"')
    if ray:
        try:
            import ray.serve  # noqa: F401
        except ImportError:
            raise MissingDependencyError("posezoo serve --ray needs Ray Serve, which is not installed", 'pip install "posezoo[serve,ray]"') from None


def serve(config: ServeConfig, *, ray: str | None = None, replicas: int = 1, progress: bool = True) -> None:
    """Serve ``config`` here (uvicorn) or, with ``ray``, as a Ray Serve application of ``replicas``
    replicas; returns after Ctrl-C / SIGTERM once the requests in flight are answered."""
    require_serve(ray=ray is not None)
    workers_given = config.limits.workers  # (0: per replica, from its CPUs)
    config = config.checked()
    if ray is None:
        from posezoo.serve.server import run_local

        run_local(config, progress=progress)
    else:
        from posezoo.serve.ray_serve import run_ray

        run_ray(config, ray, replicas=replicas, workers=workers_given, progress=progress)
