"""``posezoo serve --ray local --replicas 2``: the same app on a real local Ray Serve, answering exactly as
the single-process server does, over REST and WebSocket; SIGTERM stops Serve and the Ray it started."""

from __future__ import annotations

import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import pytest

pytest.importorskip("fastapi", reason="posezoo[serve] is not installed (the test extra installs it)")
pytest.importorskip("ray.serve", reason="Ray Serve is not installed (the test extra installs it)")
import requests  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

from clitools import posezoo_env  # noqa: E402
from mirror import fetched_home  # noqa: E402
from servetools import ServerProcess, free_port  # noqa: E402

PHOTOS = sorted(["aic_ff945ae2e729f24eea992814639d59b3bdec8bd8.jpg", "coco_000000000785.jpg", "h36m_S1_Directions_1.54138969_000001.jpg", "mpii_052475643.jpg"])


@pytest.fixture(scope="module")
def env(shared_models, tmp_path_factory):
    root = fetched_home(shared_models, tmp_path_factory.mktemp("serve-ray"), ("blazepose-full", "--variant", "lite"), link=True)
    return posezoo_env(root, POSEZOO_OFFLINE="1")


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (Ray's GCS, raylet, workers and replicas for a driver)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
                if fields[0] != "Z":
                    parents[int(entry.name)] = int(fields[1])
            except (OSError, IndexError, ValueError):
                pass
    out, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - out
        out |= frontier
    return out


def alive(pids: set[int]) -> set[int]:
    left = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if state != "Z":
            left.add(pid)
    return left


def _predict(url: str, photos: Path, name: str):
    return requests.post(
        f"{url}/v1/models/blazepose-full/predict", files={"image": (name, (photos / name).read_bytes(), "image/jpeg")}, timeout=120
    )


def _stream(ws_url: str, frames) -> list[dict]:
    with connect(f"{ws_url}/v1/models/blazepose-full/stream?fps=30", open_timeout=60) as ws:
        assert json.loads(ws.recv(timeout=60))["type"] == "ready"
        out = []
        for frame in frames:
            ws.send(cv2.imencode(".png", frame)[1].tobytes())
            msg = json.loads(ws.recv(timeout=60))
            out.append({k: v for k, v in msg.items() if k not in ("latency_ms", "model_ms")})
        return out


@pytest.mark.slow
def test_ray_serve_with_two_replicas_answers_as_the_single_process_server(env, testdata):
    photos = testdata / "images"
    cap = cv2.VideoCapture(str(testdata / "video" / "soccer_5frames.mp4"))
    frames = [cap.read()[1] for _ in range(3)]
    cap.release()

    local = ServerProcess(["blazepose-full:lite", "--workers", "1"], env)
    try:
        expected = {name: _predict(local.url, photos, name).text for name in PHOTOS}
        expected_stream = _stream(local.ws_url, frames)
    finally:
        assert local.stop() == 0, local.stderr

    ray_env = {**env, "RAY_USAGE_STATS_ENABLED": "0"}
    srv = ServerProcess(["blazepose-full:lite", "--ray", "local", "--replicas", "2"], ray_env, port=free_port(), timeout=240)
    tree: set[int] = set()
    try:
        assert "with Ray Serve (2 replicas" in srv.stderr
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda name: (name, _predict(srv.url, photos, name)), PHOTOS * 4))
        replicas = set()
        for name, r in answers:
            assert r.status_code == 200, r.text
            assert r.text == expected[name]  # the same bytes as the single-process server
            replicas.add(r.headers["x-posezoo-replica"])
        assert len(replicas) == 2, replicas
        assert _stream(srv.ws_url, frames) == expected_stream  # a tracker per connection on a replica
        bad = requests.post(f"{srv.url}/v1/models/nope/predict", data=b"x", timeout=60)
        assert bad.status_code == 404 and bad.json()["status"] == 404
        tree = descendants(srv.proc.pid)
        assert len(tree) >= 3, "Ray's processes (GCS, raylet, workers) run under the server"
        assert srv.stop(signal.SIGTERM, timeout=120) == 0, srv.stderr
        assert "Traceback" not in srv.stderr
        deadline = time.monotonic() + 30
        while alive(tree) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not alive(tree), f"processes outlived the server: {alive(tree)}"
    finally:
        srv.kill()
        for pid in alive(tree):  # (only when the test failed: nothing of it may stay)
            os.kill(pid, signal.SIGKILL)
