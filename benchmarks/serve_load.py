"""Load on ``posezoo serve`` over loopback, against the same model in-process, in one run.

1. In-process, all cores: the model on the same images (decoded), ``W`` Python threads each with its
   own model copy and cores / W onnxruntime threads (as the server runs it), one copy with every core,
   and one copy per core; images/s of the best.
2. REST: ``--clients`` closed-loop clients (keep-alive) POST the images for ``--seconds``: requests/s,
   p50/p95/p99 latency, and the ratio to (1).
3. WebSocket: one stream sends the clip's frames at ``--fps`` (30) for ``--seconds``: the latency a frame
   sees (client round trip) against the model's own time (``model_ms``): the median added latency.
4. Overload: open-loop arrivals at ``--overload`` (3) x the REST throughput of (2) until
   ``--overload-requests`` (10,000) were sent: p99 of the answered, how many 503s, timeouts (none
   wanted), and the server's resident memory sampled every second (first tenth against the end).

Every phase is bounded in time; traffic goes to 127.0.0.1 only; the server is stopped (SIGTERM) at the
end. Weights: the normal cache, or ``--mirror DIR``.

    python benchmarks/serve_load.py [--model blazepose-full] [--variant full] [--clients 8] [--seconds 20]
        [--workers 0] [--overload 3] [--overload-requests 10000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import requests

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("POSEZOO_SHARED", REPO.parent / "shared"))


def pct(values, p):
    return float(np.percentile(np.asarray(values, np.float64), p)) if len(values) else float("nan")


def load_images() -> list[bytes]:
    folder = SHARED / "testdata" / "images"
    paths = sorted(folder.glob("*.jpg")) if folder.is_dir() else []
    if not paths:
        from posezoo.io.sources import sample_image_path

        paths = [sample_image_path()]
    return [p.read_bytes() for p in paths]


def clip_frames() -> list[bytes]:
    clip = SHARED / "testdata" / "video" / "soccer_5frames.mp4"
    frames = []
    cap = cv2.VideoCapture(str(clip))
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(cv2.resize(frame, (640, 360), interpolation=cv2.INTER_AREA))
    cap.release()
    if not frames:
        frames = [cv2.imdecode(np.frombuffer(load_images()[0], np.uint8), cv2.IMREAD_COLOR)]
    loop = frames + frames[::-1]
    return [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes() for f in loop]


# ------------------------------------------------------------------------------------------ in-process


def in_process(model: str, variant: str | None, images: list[bytes], workers: int, seconds: float) -> dict:
    import posezoo
    from posezoo.inference.runtime import THREADS_ENV, physical_cores

    decoded = [cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR) for b in images]
    out = {}
    configs = {(workers, max(1, physical_cores() // workers)), (1, physical_cores()), (physical_cores(), 1)}
    for copies, threads in sorted(configs):
        label = "copies"
        os.environ[THREADS_ENV] = str(threads)
        models = [posezoo.load(model, variant, offline=True) for _ in range(copies)]
        os.environ.pop(THREADS_ENV, None)
        for m in models:
            m.predict(decoded[0])
        stop = time.perf_counter() + seconds
        counts = [0] * copies

        def run(i):
            k = 0
            while time.perf_counter() < stop:
                models[i].predict(decoded[k % len(decoded)], max_poses=1)
                k += 1
            counts[i] = k

        start = time.perf_counter()
        threads_ = [threading.Thread(target=run, args=(i,)) for i in range(copies)]
        for t in threads_:
            t.start()
        for t in threads_:
            t.join()
        out[f"{label} ({copies}x{threads} threads)"] = sum(counts) / (time.perf_counter() - start)
    return out


# ------------------------------------------------------------------------------------------ server


class Server:
    def __init__(self, args: list[str]):
        cmd = [sys.executable, "-m", "posezoo", "serve", *args, "--port", "0"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.url = None
        deadline = time.time() + 300
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            m = re.search(r"on (http://127\.0\.0\.1:\d+)", line)
            if m:
                self.url = m.group(1)
                break
        if self.url is None:
            self.proc.kill()
            raise SystemExit("the server did not start")
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return -9


def rest_closed_loop(url: str, images: list[bytes], clients: int, seconds: float) -> dict:
    lat, codes = [], {}
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def client(i):
        s = requests.Session()
        k = i
        while time.perf_counter() < stop:
            t = time.perf_counter()
            r = s.post(url, data=images[k % len(images)], headers={"Content-Type": "image/jpeg"}, timeout=60)
            dt = time.perf_counter() - t
            with lock:
                codes[r.status_code] = codes.get(r.status_code, 0) + 1
                if r.status_code == 200:
                    lat.append(dt)
            k += 1

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    wall = time.perf_counter() - start
    return {"rps": codes.get(200, 0) / wall, "p50_ms": pct(lat, 50) * 1e3, "p95_ms": pct(lat, 95) * 1e3, "p99_ms": pct(lat, 99) * 1e3, "codes": codes}


def websocket_stream(ws_url: str, frames: list[bytes], fps: float, seconds: float) -> dict:
    from websockets.sync.client import connect

    sent_at, rtt, added, model_ms, server_ms = {}, [], [], [], []
    last = {"dropped": 0}
    with connect(ws_url, max_size=None) as ws:
        json.loads(ws.recv(timeout=30))

        def reader():
            while True:
                try:
                    msg = json.loads(ws.recv(timeout=10))
                except Exception:
                    return
                if msg.get("type") != "poses":
                    continue
                t = sent_at.pop(msg["frame"], None)
                if t is not None:
                    r = (time.perf_counter() - t) * 1e3
                    rtt.append(r)
                    added.append(r - msg["model_ms"])
                    model_ms.append(msg["model_ms"])
                    server_ms.append(msg["latency_ms"])
                last["dropped"] = msg["dropped"]

        th = threading.Thread(target=reader, daemon=True)
        th.start()
        n = int(seconds * fps)
        start = time.perf_counter()
        for i in range(n):
            wait = start + i / fps - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            sent_at[i] = time.perf_counter()
            ws.send(frames[i % len(frames)])
        time.sleep(1.0)
        ws.close()
        th.join(15)
    return {
        "frames": n, "answered": len(rtt), "dropped": last["dropped"],
        "rtt_p50_ms": pct(rtt, 50), "rtt_p95_ms": pct(rtt, 95), "model_p50_ms": pct(model_ms, 50),
        "added_p50_ms": pct(added, 50), "added_p95_ms": pct(added, 95), "server_p50_ms": pct(server_ms, 50),
    }  # fmt: skip


def overload(server: Server, url: str, images: list[bytes], rate: float, total: int, max_seconds: float) -> dict:
    lat, codes, errors = [], {}, [0]
    lock = threading.Lock()
    rss = []
    done = threading.Event()

    def sample():
        while not done.wait(1.0):
            rss.append(server.rss_mb())

    local = threading.local()

    def one(i):
        s = getattr(local, "s", None) or requests.Session()
        local.s = s
        t = time.perf_counter()
        try:
            r = s.post(url, data=images[i % len(images)], headers={"Content-Type": "image/jpeg"}, timeout=30)
        except requests.RequestException:
            with lock:
                errors[0] += 1
            return
        with lock:
            codes[r.status_code] = codes.get(r.status_code, 0) + 1
            if r.status_code == 200:
                lat.append(time.perf_counter() - t)

    threading.Thread(target=sample, daemon=True).start()
    start = time.perf_counter()
    sent = 0
    with ThreadPoolExecutor(96) as pool:
        while sent < total and time.perf_counter() - start < max_seconds:
            due = start + sent / rate
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            pool.submit(one, sent)
            sent += 1
    wall = time.perf_counter() - start
    done.set()
    tenth = max(1, len(rss) // 10)
    return {
        "offered_rps": rate, "sent": sent, "seconds": wall, "codes": codes, "client_errors": errors[0],
        "ok_rps": codes.get(200, 0) / wall, "p50_ms": pct(lat, 50) * 1e3, "p99_ms": pct(lat, 99) * 1e3, "max_ms": max(lat) * 1e3 if lat else None,
        "rss_first_tenth_mb": statistics.mean(rss[:tenth]) if rss else None, "rss_end_mb": rss[-1] if rss else None,
        "rss_max_mb": max(rss) if rss else None,
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="blazepose-full")
    ap.add_argument("--variant", default=None)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--overload", type=float, default=3.0)
    ap.add_argument("--overload-requests", type=int, default=10_000)
    ap.add_argument("--overload-max-seconds", type=float, default=240.0)
    ap.add_argument("--mirror", default=None)
    ap.add_argument("--json", dest="json_out", default=None)
    a = ap.parse_args()

    from posezoo.inference.runtime import physical_cores
    import posezoo

    posezoo.load(a.model, a.variant, mirror=a.mirror, progress=True)  # fetched and verified before any timing
    from posezoo.serve.config import default_workers

    workers = a.workers or default_workers(physical_cores())
    images = load_images()
    cpu = next((l.split(":", 1)[1].strip() for l in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines() if l.startswith("Model name")), "?")
    report = {"cpu": cpu, "cores": physical_cores(), "model": a.model, "variant": a.variant, "workers": workers, "images": len(images)}
    print(f"CPU: {cpu}, {physical_cores()} cores; {a.model} {a.variant or ''}; workers {workers}", flush=True)

    report["in_process"] = in_process(a.model, a.variant, images, workers, a.seconds)
    best = max(report["in_process"].values())
    print(f"in-process: {json.dumps({k: round(v, 1) for k, v in report['in_process'].items()})} images/s", flush=True)

    spec = a.model + (f":{a.variant}" if a.variant else "")
    server = Server([spec, "--workers", str(workers), "--offline", "--max-fps", str(max(30.0, a.fps))])
    try:
        predict = f"{server.url}/v1/models/{a.model}/predict"
        rest_closed_loop(predict, images, a.clients, 2.0)  # warm-up
        rest = rest_closed_loop(predict, images, a.clients, a.seconds)
        rest["vs_in_process"] = rest["rps"] / best
        report["rest"] = rest
        print(f"REST, {a.clients} clients: {rest['rps']:.1f} req/s = {rest['vs_in_process']:.2f}x in-process; p50 {rest['p50_ms']:.0f} ms, p95 {rest['p95_ms']:.0f}, p99 {rest['p99_ms']:.0f}; {rest['codes']}", flush=True)

        ws_url = server.url.replace("http://", "ws://") + f"/v1/models/{a.model}/stream"
        ws = websocket_stream(ws_url, clip_frames(), a.fps, a.seconds)
        report["websocket"] = ws
        print(f"WebSocket at {a.fps:g} fps: {ws['answered']}/{ws['frames']} answered, {ws['dropped']} dropped; round trip p50 {ws['rtt_p50_ms']:.1f} ms (model {ws['model_p50_ms']:.1f}): added p50 {ws['added_p50_ms']:.1f} ms, p95 {ws['added_p95_ms']:.1f}", flush=True)

        ov = overload(server, predict, images, a.overload * rest["rps"], a.overload_requests, a.overload_max_seconds)
        report["overload"] = ov
        print(
            f"overload {a.overload:g}x ({ov['offered_rps']:.0f} req/s offered, {ov['sent']} sent in {ov['seconds']:.0f} s): {ov['codes']}, "
            f"client errors/timeouts {ov['client_errors']}; answered {ov['ok_rps']:.1f} req/s, p50 {ov['p50_ms']:.0f} ms, p99 {ov['p99_ms']:.0f} ms, max {ov['max_ms']:.0f} ms; "
            f"RSS {ov['rss_first_tenth_mb']:.0f} MB (first tenth) -> {ov['rss_end_mb']:.0f} MB (end), max {ov['rss_max_mb']:.0f}",
            flush=True,
        )
    finally:
        report["server_exit"] = server.stop()
    print(f"server stopped: exit {report['server_exit']}")
    if a.json_out:
        Path(a.json_out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
