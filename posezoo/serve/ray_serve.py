"""``posezoo serve --ray local|ADDRESS --replicas N``: the same app as a Ray Serve application.

The driver (this process) fetches, verifies and converts every model first (the progress lines of a
local server), then starts or joins Ray, starts Serve's HTTP proxy on ``--host``/``--port`` and deploys
one deployment, ``posezoo``, of N replicas. Each replica builds the app of :func:`create_app` once, with
its models opened from the verified cache offline (``POSEZOO_OFFLINE=1`` in the replicas' environment;
on a cluster each node fetches through the same verified fetch, or reads ``--mirror``). Ray Serve's
proxy spreads requests and WebSocket streams over the replicas; each replica applies the limits of
``posezoo serve`` itself (its queue, body and pixel limits, its own ``/metrics``).

Locally the machine's cores are shared out: each replica gets cores / N Ray CPUs, ``--workers`` model
runs (default: its CPUs, at least 1) and onnxruntime threads to match. Ctrl-C or SIGTERM shuts Serve
down (replicas finish their requests first) and stops the Ray this command started.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from dataclasses import replace

from posezoo.errors import PosezooError
from posezoo.serve.config import ServeConfig

APP_NAME = "posezoo"


def _say(message: str) -> None:
    print(f"posezoo: serve: {message}", file=sys.stderr, flush=True)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return " ".join(text.splitlines()[0].split()) if text else type(exc).__name__


def replica_settings(config: ServeConfig, address: str, replicas: int, workers_given: int) -> tuple[ServeConfig, float, dict]:
    """(the config each replica serves, Ray CPUs per replica, environment of the replicas)."""
    from posezoo.inference.runtime import THREADS_ENV, physical_cores

    env = {k: v for k, v in os.environ.items() if k.startswith("POSEZOO_") and k != "POSEZOO_API_KEY"}
    env["POSEZOO_OFFLINE"] = "1"
    if address == "local":
        cpus = max(1.0, physical_cores() / replicas)
        workers = workers_given or max(1, int(cpus))
        env[THREADS_ENV] = str(max(1, int(cpus) // workers))
    else:
        cpus = 1.0
        workers = workers_given or 1
    limits = replace(config.limits, workers=workers)
    return replace(config, limits=limits, mirror=None, offline=True), cpus, env


def build_deployment(config: ServeConfig, replicas: int, cpus: float):
    """The Ray Serve deployment: ``replicas`` replicas, each with the app of ``config`` built once."""
    from ray import serve

    def build_app():
        from posezoo.serve.app import create_app
        from posezoo.serve.models import ModelSet

        try:
            replica = serve.get_replica_context().replica_id.unique_id
        except Exception:
            replica = "replica"
        return create_app(config, ModelSet.load(config, progress=False, cache_only=True), replica=replica)

    @serve.ingress(build_app)
    class PosezooReplica:
        pass

    lim = config.limits
    return serve.deployment(
        PosezooReplica,
        name=APP_NAME,
        num_replicas=replicas,
        ray_actor_options={"num_cpus": cpus},
        max_ongoing_requests=lim.workers + lim.max_queue + lim.max_streams + 8,  # the app's own limits answer first
        graceful_shutdown_timeout_s=lim.drain_timeout,
        health_check_period_s=5,
    )


def start_ray(address: str, env: dict) -> bool:
    """Start Ray here (``local``) or join ``address``; True when this call started it."""
    import ray

    from posezoo.inference.runtime import physical_cores

    if ray.is_initialized():
        return False
    quiet = dict(include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    try:
        if address == "local":
            ray.init(num_cpus=physical_cores(), runtime_env={"env_vars": env}, **quiet)
        else:
            ray.init(address=address, runtime_env={"env_vars": env}, **quiet)
    except Exception as exc:
        raise PosezooError(f"cannot start or reach Ray at {address!r}: {_first_line(exc)}", "check --ray (local, auto, ray://HOST:10001)") from None
    return True


def run_ray(config: ServeConfig, address: str, *, replicas: int = 1, workers: int = 0, progress: bool = True) -> None:
    """Deploy and serve until Ctrl-C / SIGTERM (see the module docstring)."""
    from posezoo.zoo.resolve import get_zoo

    for name, variant in config.models:  # fetch, verify, convert here, once, with progress lines
        get_zoo().resolve(name, variant).files(mirror=config.mirror, offline=config.offline, progress=progress)
    replica_config, cpus, env = replica_settings(config, address, replicas, workers)
    for name in ("ray", "ray.serve", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)
    stop = threading.Event()
    signals = {}

    def handle(sig, frame):
        if stop.is_set():
            return
        _say(f"{signal.Signals(sig).name}: shutting Ray Serve down (replicas finish their requests first)")
        stop.set()

    started = False
    try:
        started = start_ray(address, env)
        if threading.current_thread() is threading.main_thread():  # (after ray.init, which sets its own)
            signals = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        from ray import serve

        _say(f"starting Ray Serve: {replicas} replica(s), {replica_config.limits.workers} worker(s) each")
        try:
            serve.start(http_options={"host": config.host, "port": config.port}, logging_config={"log_level": "ERROR"})
            serve.run(build_deployment(replica_config, replicas, cpus).bind(), name=APP_NAME, route_prefix="/", blocking=False)
        except Exception as exc:
            raise PosezooError(f"Ray Serve could not start the deployment: {_first_line(exc)}", "see Ray's logs (/tmp/ray/session_latest/logs/serve)") from None
        served = ", ".join(f"{n}:{v}" if v else n for n, v in config.models)
        _say(f"serving {served} on http://{config.host}:{config.port} with Ray Serve ({replicas} replicas; Ctrl-C to stop)")
        while not stop.wait(0.5):
            pass
    finally:
        try:
            if started or stop.is_set():
                from ray import serve

                serve.shutdown()
        except Exception:
            pass
        if started:
            import ray

            ray.shutdown()
        for sig, old in signals.items():
            signal.signal(sig, old)
    _say("stopped")
