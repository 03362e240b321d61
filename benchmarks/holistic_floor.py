"""The floor under a tracked Holistic frame on this machine: what its models, crops and cores allow,
against issue 22's target (posezoo's video ms/frame <= 0.6 x MediaPipe's Holistic).

Over the clip of benchmarks/wholebody_speed.py (a 640x480 pan and zoom of the MPII photo):

1. **Runs per tracked frame** of each stage (body landmarks, hand recrop, hand landmarks, face detector,
   face landmarks), counted by the sessions over a tracked pass.
2. **Bare model runs** (ms, median), one thread: onnxruntime on the graph posezoo runs (the body's pruned
   of its mask, as the tracked frame runs it) and LiteRT's XNNPACK on the .tflite file MediaPipe runs
   (``ai-edge-litert``, where installed); and the body on the threads posezoo gives it.
3. **Crops**: posezoo's exact crop (OpenCV 4's fixed-point warp) and its float tensor, one per model run,
   timed alone for each input size.
4. **Bounds** on a tracked frame, counting no Python at all:
   - *CPU*: every model run on one thread plus every crop, divided by the cores: no schedule does better;
   - *chain*: body crop + body run (on its threads) + recrop crop + recrop + hand crop + hand run (one
     thread; the two hands run side by side): a frame's dependencies allow nothing shorter.
5. **Measured**: posezoo's tracked frame, wall and CPU (all threads); with ``--mediapipe PYTHON``,
   MediaPipe 0.10.14's Holistic on the same frames (video mode, model_complexity 1), wall and CPU.

    python benchmarks/holistic_floor.py --mediapipe /path/to/mp-venv/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from machine import cpu_model  # benchmarks/machine.py
from wholebody_speed import IMAGES, PAIRS, REPO, SHARED, TARGET, frames_of

STAGES = ("landmark", "hand_recrop", "hand_landmark", "face_detector", "face_landmark")


def median_ms(fn, runs: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def ort_ms(model_bytes_or_path, shape, threads: int, runs: int) -> float:
    import onnxruntime as ort

    from posezoo.inference.runtime import session_options

    src = model_bytes_or_path if isinstance(model_bytes_or_path, bytes) else str(model_bytes_or_path)
    sess = ort.InferenceSession(src, session_options(threads), providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: np.random.default_rng(0).uniform(0, 1, shape).astype(np.float32)}
    return median_ms(lambda: sess.run(None, feed), runs)


def litert_ms(tflite: Path, runs: int) -> float | None:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        return None
    interp = Interpreter(model_path=str(tflite), num_threads=1)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    interp.set_tensor(inp["index"], np.random.default_rng(0).uniform(0, 1, inp["shape"]).astype(np.float32))
    return median_ms(interp.invoke, runs)


def crop_ms(size: tuple[int, int], runs: int) -> float:
    """One exact crop of ``size`` (h, w) out of a 640x480 frame, rotated, and its float tensor."""
    import cv2

    from posezoo.inference.preprocess import Roi, crop, to_tensor

    frame = cv2.resize(cv2.imread(str(IMAGES / "images/mpii_052475643.jpg")), (640, 480))
    pixels, tensor = np.empty(size + (3,), np.uint8), np.empty((1,) + size + (3,), np.float32)
    step = iter(range(10**9))

    def one():
        i = next(step)
        crop(frame, Roi(300.0 + i % 9, 220.0 + i % 7, 180.0 + i % 5, 180.0 + i % 5, 0.3 + 1e-3 * (i % 11)), size, out=pixels)
        to_tensor(pixels, (0.0, 1.0), tensor)

    return median_ms(one, runs)


def tracked(model, frames, warmup: int, passes: int = 2) -> dict:
    """Tracked passes (a fresh tracker each): wall and CPU per frame (medians) of the fastest pass, runs
    per frame of each stage."""
    return min((tracked_once(model, frames, warmup) for _ in range(passes)), key=lambda r: r["wall_ms"])


def tracked_once(model, frames, warmup: int) -> dict:
    tracker = model.tracker(max_poses=1)
    before = {role: model.sessions[role].runs for role in STAGES}
    wall, cpu = [], []
    for i, frame in enumerate(frames):
        start, start_cpu = time.perf_counter(), time.process_time()
        tracker.update(frame, i / 30.0)
        if i >= warmup:
            wall.append((time.perf_counter() - start) * 1e3)
            cpu.append((time.process_time() - start_cpu) * 1e3)
    runs = {role: (model.sessions[role].runs - before[role]) / len(frames) for role in STAGES}
    return {"wall_ms": statistics.median(wall), "cpu_ms": statistics.median(cpu), "runs_per_frame": runs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=SHARED / "models", help="../shared/models")
    parser.add_argument("--frames", type=int, default=100, help="tracked frames")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--runs", type=int, default=50, help="timed runs of each bare model and crop")
    parser.add_argument("--mediapipe", metavar="PYTHON", help="also time MediaPipe's Holistic, run with this interpreter")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)

    import cv2

    sys.path.insert(0, str(REPO / "tests"))
    from mirror import build_mirror

    from posezoo.drivers.bench import write_clip
    from posezoo.inference.runtime import _pruned_model

    name, variant, solution, photo, _ = PAIRS["holistic"]
    out: dict = {"cpu": cpu_model(), "cores": os.cpu_count(), "load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        build_mirror(args.models, tmp / "mirror", link=True)
        os.environ["POSEZOO_HOME"] = str(tmp / "home")
        import posezoo

        clip = write_clip(tmp / "holistic.mp4", cv2.imread(str((IMAGES / photo).resolve())), 120)
        frames = frames_of(clip, args.warmup + args.frames)
        model = posezoo.load(name, variant, mirror=str(tmp / "mirror"), device="cpu")
        out["posezoo"] = tracked(model, frames, args.warmup)

        stages = {}
        for role in STAGES:
            session = model.sessions[role]
            shape = tuple(session.input_shape)
            graph: Path | bytes = session.path
            pruned = [skip for skip, run in session._pruned.items() if run]  # what the tracked frame ran
            if pruned:
                graph = _pruned_model(session.path, [n for i, n in enumerate(session.output_names) if i not in pruned[0]])
            tflite = Path(os.environ["POSEZOO_HOME"]) / "files" / session.path.name.removesuffix(".onnx")
            stages[role] = {
                "input": list(shape[1:3]),
                "runs_per_frame": out["posezoo"]["runs_per_frame"][role],
                "ort_1t_ms": ort_ms(graph, shape, 1, args.runs),
                "ort_threads": session.threads,
                "ort_ms": ort_ms(graph, shape, session.threads, args.runs),
                "litert_1t_ms": litert_ms(tflite, args.runs) if tflite.exists() else None,
                "crop_ms": crop_ms(tuple(shape[1:3]), args.runs),
                "pruned": bool(pruned),
            }
        out["stages"] = stages

        if args.mediapipe:
            cmd = [args.mediapipe, str(REPO / "benchmarks" / "wholebody_speed.py"), "--mediapipe-only", str(clip), solution,
                   "--frames", str(args.frames), "--warmup", str(args.warmup)]  # fmt: skip
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode == 0:
                video = json.loads(done.stdout.strip().splitlines()[-1])["video"]
                out["mediapipe"] = {"wall_ms": video["median_ms"], "cpu_ms": statistics.median(video["cpu"])}
            else:
                print(f"MediaPipe failed: {(done.stderr.strip().splitlines() or ['no output'])[-1]}", file=sys.stderr)

    st, cores = out["stages"], out["cores"]
    model_cpu = sum(s["runs_per_frame"] * s["ort_1t_ms"] for s in st.values())
    crops_cpu = sum(s["runs_per_frame"] * s["crop_ms"] for s in st.values())
    chain = (st["landmark"]["crop_ms"] + st["landmark"]["ort_ms"] + st["hand_recrop"]["crop_ms"] + st["hand_recrop"]["ort_1t_ms"]
             + st["hand_landmark"]["crop_ms"] + st["hand_landmark"]["ort_1t_ms"])  # fmt: skip
    out["bounds"] = {"models_cpu_ms": model_cpu, "crops_cpu_ms": crops_cpu, "cpu_bound_ms": (model_cpu + crops_cpu) / cores, "chain_ms": chain}
    out["load_after"] = os.getloadavg()
    if args.json:
        print(json.dumps(out, indent=2))
        return 0

    print(f"{out['cpu']}, {cores} cores; load {out['load_before'][0]:.2f} -> {out['load_after'][0]:.2f}\n")
    print("| stage | input | runs/frame | onnxruntime 1 thread ms | LiteRT (XNNPACK) 1 thread ms | onnxruntime, posezoo's threads | crop ms |")
    print("|---|---|---|---|---|---|---|")
    for role, s in st.items():
        lite = f"{s['litert_1t_ms']:.2f}" if s["litert_1t_ms"] is not None else "-"
        note = " (pruned of its mask)" if s["pruned"] else ""
        print(f"| {role}{note} | {s['input'][1]}x{s['input'][0]} | {s['runs_per_frame']:.2f} | {s['ort_1t_ms']:.2f} | {lite} | "
              f"{s['ort_ms']:.2f} on {s['ort_threads']} | {s['crop_ms']:.2f} |")  # fmt: skip
    b, pz = out["bounds"], out["posezoo"]
    print()
    print(f"models on one thread, per tracked frame: {b['models_cpu_ms']:.1f} ms CPU; crops {b['crops_cpu_ms']:.1f} ms CPU")
    print(f"CPU bound (models + crops) / {cores} cores: {b['cpu_bound_ms']:.1f} ms; chain bound: {b['chain_ms']:.1f} ms (no Python in either)")
    print(f"posezoo tracked: {pz['wall_ms']:.1f} ms wall, {pz['cpu_ms']:.1f} ms CPU; of the CPU, "
          f"{pz['cpu_ms'] - b['models_cpu_ms'] - b['crops_cpu_ms']:.1f} ms is neither a model run on one thread nor a crop")
    mp = out.get("mediapipe")
    if mp:
        target = TARGET * mp["wall_ms"]
        print(f"MediaPipe Holistic (video): {mp['wall_ms']:.1f} ms wall, {mp['cpu_ms']:.1f} ms CPU; target {TARGET} x = {target:.1f} ms; "
              f"posezoo {pz['wall_ms'] / mp['wall_ms']:.2f} x; bounds {max(b['cpu_bound_ms'], b['chain_ms']) / mp['wall_ms']:.2f} x")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
