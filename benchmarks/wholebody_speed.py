"""Whole-body speed: ms/frame of posezoo's Holistic and Hands against MediaPipe's own, same frames, same run.

For each pair (posezoo model -> MediaPipe solution) a 640x480 pan-and-zoom clip is written over a
photo where the parts are visible (Holistic: the MPII photo, a face and a hand; Hands: the AIC photo,
a hand), then both are timed on its frames, in static mode (every frame on its own: detector each
time) and in video mode (tracking: the detector only when a part is lost):

    posezoo   mediapipe-holistic  <->  mp.solutions.holistic.Holistic(model_complexity=1)
    posezoo   mediapipe-hands     <->  mp.solutions.hands.Hands(model_complexity=1, max_num_hands=2)

Targets (issue 22): posezoo's video ms/frame <= 0.6 x MediaPipe's, for each pair. Each frame's CPU time
(the process's, all threads) is reported beside its wall time: on 2 cores a frame cannot take less wall
time than half its CPU time (benchmarks/holistic_floor.py has the rest of that floor).

posezoo's models are loaded through the public API (``posezoo.load``) from a mirror folder of the
shared weights (files matched to the registry by digest, as the tests do), into a temporary cache.
MediaPipe pins a protobuf that conflicts with onnx, so it runs in its own venv, in a subprocess of
this script that imports only numpy, OpenCV and mediapipe:

    python benchmarks/wholebody_speed.py --mediapipe /path/to/mp-venv/bin/python [--frames 150]
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
from machine import cpu_model  # benchmarks/machine.py

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
IMAGES = SHARED / "testdata"
# posezoo model, variant, MediaPipe solution, photo the clip pans over, poses at most (as MediaPipe's:
# Holistic follows one person, Hands here max_num_hands=2)
PAIRS = {
    "holistic": ("mediapipe-holistic", None, "holistic", "images/mpii_052475643.jpg", 1),
    "hands": ("mediapipe-hands", "full", "hands", "images/aic_ff945ae2e729f24eea992814639d59b3bdec8bd8.jpg", 2),
}
TARGET = 0.6


def frames_of(clip: Path, count: int):
    """``count`` BGR frames of ``clip`` (looping over it when it is shorter)."""
    import cv2

    cap = cv2.VideoCapture(str(clip))
    out = []
    while len(out) < count:
        ok, frame = cap.read()
        if not ok:
            cap.release()
            cap = cv2.VideoCapture(str(clip))
            continue
        out.append(frame)
    cap.release()
    return out


def mediapipe_only(clip: Path, solution: str, frames: int, warmup: int) -> dict:
    """Time a MediaPipe solution on the clip, static and video (needs only numpy, OpenCV, mediapipe)."""
    import cv2
    import mediapipe as mp

    images = [cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in frames_of(clip, warmup + frames)]
    out = {"version": mp.__version__}
    for mode in ("static", "video"):
        if solution == "holistic":
            graph = mp.solutions.holistic.Holistic(static_image_mode=mode == "static", model_complexity=1)
        else:
            graph = mp.solutions.hands.Hands(static_image_mode=mode == "static", model_complexity=1, max_num_hands=2)
        times, cpu, found = [], [], 0
        for i, rgb in enumerate(images):
            start, start_cpu = time.perf_counter(), time.process_time()
            result = graph.process(rgb)
            if i >= warmup:
                times.append((time.perf_counter() - start) * 1e3)
                cpu.append((time.process_time() - start_cpu) * 1e3)
                parts = (
                    [result.pose_landmarks, result.left_hand_landmarks, result.right_hand_landmarks, result.face_landmarks]
                    if solution == "holistic"
                    else list(result.multi_hand_landmarks or [])
                )
                found += sum(p is not None for p in parts)
        graph.close()
        out[mode] = {"median_ms": statistics.median(times), "mean_ms": statistics.fmean(times), "parts_per_frame": found / frames,
                     "times": times, "cpu": cpu}  # fmt: skip
    return out


def posezoo_side(model, frames: list, warmup: int, max_poses: int) -> dict:
    """Time a posezoo model on the frames: ``predict`` per frame (static), a tracker (video)."""
    out = {}
    for mode in ("static", "video"):
        times, cpu, found = [], [], 0
        tracker = model.tracker(max_poses=max_poses) if mode == "video" else None
        for i, frame in enumerate(frames):
            start, start_cpu = time.perf_counter(), time.process_time()
            poses = tracker.update(frame, i / 30.0) if tracker is not None else model.predict(frame, max_poses=max_poses)
            if i >= warmup:
                times.append((time.perf_counter() - start) * 1e3)
                cpu.append((time.process_time() - start_cpu) * 1e3)
                for p in poses:
                    found += sum(r is not None for r in p.part_ranges().values())
        out[mode] = {"median_ms": statistics.median(times), "mean_ms": statistics.fmean(times),
                     "parts_per_frame": found / (len(frames) - warmup), "times": times, "cpu": cpu}  # fmt: skip
    return out


def merged(runs: list[dict]) -> dict:
    """One side's repeats as one: per mode, the median and mean of every timed frame of every repeat."""
    out = {}
    for mode in ("static", "video"):
        times = [t for r in runs for t in r[mode]["times"]]
        cpu = [t for r in runs for t in r[mode]["cpu"]]
        out[mode] = {
            "median_ms": statistics.median(times), "mean_ms": statistics.fmean(times), "cpu_ms": statistics.median(cpu),
            "parts_per_frame": statistics.fmean(r[mode]["parts_per_frame"] for r in runs),
            "repeat_medians_ms": [r[mode]["median_ms"] for r in runs],
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=SHARED / "models", help="../shared/models")
    parser.add_argument("--pairs", default="holistic,hands", help="comma-separated: " + ", ".join(PAIRS))
    parser.add_argument("--frames", type=int, default=150, help="timed frames per mode")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=1,
                        help="time each side this many times, posezoo and MediaPipe taking turns (a shared machine's load "
                             "then weighs on both alike); medians over every timed frame of every repeat")
    parser.add_argument("--mediapipe", metavar="PYTHON", help="also time MediaPipe, run with this interpreter")
    parser.add_argument("--mediapipe-only", nargs=2, metavar=("CLIP", "SOLUTION"), help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)

    if args.mediapipe_only:  # inside MediaPipe's venv: no posezoo imports
        clip, solution = args.mediapipe_only
        print(json.dumps(mediapipe_only(Path(clip), solution, args.frames, args.warmup)))
        return 0

    import cv2

    sys.path.insert(0, str(REPO / "tests"))
    from mirror import build_mirror  # the tests' mirror builder: registry files found in ../shared by digest

    from posezoo.drivers.bench import write_clip

    results = {"cpu": cpu_model(), "cores": os.cpu_count(), "load_before": os.getloadavg(), "pairs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        build_mirror(args.models, tmp / "mirror", link=True)
        os.environ["POSEZOO_HOME"] = str(tmp / "home")
        import posezoo

        for key in [k.strip() for k in args.pairs.split(",") if k.strip()]:
            name, variant, solution, photo, max_poses = PAIRS[key]
            clip = write_clip(tmp / f"{key}.mp4", cv2.imread(str((IMAGES / photo).resolve())), 120)
            model = posezoo.load(name, variant, mirror=str(tmp / "mirror"), device="cpu")
            frames = frames_of(clip, args.warmup + args.frames)
            ours_runs, theirs_runs = [], []
            for _ in range(max(1, args.repeat)):  # posezoo and MediaPipe take turns
                ours_runs.append(posezoo_side(model, frames, args.warmup, max_poses))
                if args.mediapipe:
                    cmd = [args.mediapipe, __file__, "--mediapipe-only", str(clip), solution,
                           "--frames", str(args.frames), "--warmup", str(args.warmup)]  # fmt: skip
                    done = subprocess.run(cmd, capture_output=True, text=True)
                    if done.returncode != 0:
                        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
                        print(f"MediaPipe {solution} failed: {last}", file=sys.stderr)
                    else:
                        theirs_runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
            ours = merged(ours_runs)
            theirs = None
            if theirs_runs:
                theirs = dict(merged(theirs_runs), version=theirs_runs[0]["version"])
            results["pairs"][key] = {"model": name, "variant": model.variant, "posezoo": ours, "mediapipe": theirs}

    results["load_after"] = os.getloadavg()
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    load = " -> ".join(", ".join(f"{v:.2f}" for v in results[k]) for k in ("load_before", "load_after"))
    print(f"{results['cpu']}, {results['cores']} cores; {args.frames} frames per mode x {max(1, args.repeat)} repeats, 640x480; "
          f"load average {load}\n")
    print("| pair | mode | posezoo ms/frame | MediaPipe ms/frame | ratio | CPU ms/frame (posezoo / MediaPipe) | parts/frame (posezoo / MediaPipe) |")
    print("|---|---|---|---|---|---|---|")
    verdicts = []
    for key, r in results["pairs"].items():
        for mode in ("static", "video"):
            ours, theirs = r["posezoo"][mode], (r["mediapipe"] or {}).get(mode)
            ratio = ours["median_ms"] / theirs["median_ms"] if theirs else None
            print(
                f"| {r['model']} | {mode} | {ours['median_ms']:.1f} | {theirs['median_ms']:.1f} | {ratio:.2f} | "
                f"{ours['cpu_ms']:.1f} / {theirs['cpu_ms']:.1f} | {ours['parts_per_frame']:.2f} / {theirs['parts_per_frame']:.2f} |"
                if theirs
                else f"| {r['model']} | {mode} | {ours['median_ms']:.1f} | - | - | {ours['cpu_ms']:.1f} / - | {ours['parts_per_frame']:.2f} / - |"
            )
            if mode == "video" and ratio is not None:
                verdicts.append(f"{r['model']} video: {ratio:.2f} x MediaPipe (target <= {TARGET}: {'ok' if ratio <= TARGET else 'OVER'})")
    print()
    print("\n".join(verdicts) or "MediaPipe not timed (give --mediapipe PYTHON)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
