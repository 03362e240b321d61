"""Drawing speed: ms per 640x480 frame of ``posezoo.draw`` with real poses, against the drawing of
another git revision timed in the same run (interleaved, so both see the same machine load).

The four shared photos (``$POSEZOO_SHARED`` or ../shared) are resized to 640x480; blazepose-full
(the shared TFLite files, converted into a temporary folder; with its segmentation mask) and
movenet-lightning (the shared TF.js files) run once on each, and then every case draws onto a copy of
those frames, round robin:

* ``blazepose-full + box``: one pose, 33 points, 35 edges, its box and score (the mask left out);
* ``movenet-lightning + box``: one pose, 17 points;
* ``blazepose-full + box + mask``: the same pose with its segmentation mask.

Target (issue 24): under 1 ms per frame for the first two (median wall time). The process's CPU time
per draw is printed too: on a shared, loaded machine it is the steadier of the two.

    python benchmarks/draw_speed.py [--against 2cfb1d8] [--frames 400] [--json]

``--against REV`` times ``posezoo/io/draw.py`` of that revision too (its ``draw_poses``; the last
revision before the issue-24 style is 2cfb1d8).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
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
SHARED = Path(os.environ.get("POSEZOO_SHARED") or REPO.parent / "shared")
SIZE = (640, 480)
TARGET_MS = 1.0


def draw_of_revision(rev: str, folder: Path):
    """``draw_poses`` of ``posezoo/io/draw.py`` at git revision ``rev`` (imported from a copy)."""
    git = ["git", "show", f"{rev}:posezoo/io/draw.py"]
    source = subprocess.run(git, cwd=REPO, capture_output=True, text=True, check=True).stdout
    path = folder / f"draw_{rev}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"draw_{rev}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.draw_poses


def real_poses(folder: Path) -> tuple[list, dict]:
    """[(frame, {model: (poses, skeleton)})] for the four shared photos at 640x480."""
    import cv2

    sys.path.insert(0, str(REPO / "plugins"))
    from posezoo.supply.convert import convert_file, convert_tfjs_file

    try:
        from posezoo_plugins.blazepose_full import SPEC
        from posezoo_plugins.mediapipe.model import PoseEstimator
        from posezoo_plugins.movenet import LIGHTNING, MoveNet
    except ImportError:  # not installed: the plugins folder holds the packages
        from blazepose_full import SPEC
        from mediapipe.model import PoseEstimator
        from movenet import LIGHTNING, MoveNet

    models = SHARED / "models"
    convert_file(models / "mediapipe-assets/pose_detection.tflite", folder / "detector.onnx")
    convert_file(models / "mediapipe-assets/pose_landmark_full.tflite", folder / "full.onnx")
    convert_tfjs_file(models / "human-models/movenet-lightning.json", folder / "lightning.onnx")
    files = {"detector": folder / "detector.onnx", "landmark": folder / "full.onnx"}
    blaze = PoseEstimator(SPEC, files, variant="full", device="cpu")
    movenet = MoveNet(LIGHTNING, {"model": folder / "lightning.onnx"}, variant="default", device="cpu")
    seg = blaze.capabilities.make_options("blazepose-full", {"segmentation": True})
    frames = []
    for photo in sorted((SHARED / "testdata" / "images").glob("*.jpg")):
        frame = cv2.resize(cv2.imread(str(photo)), SIZE, interpolation=cv2.INTER_AREA)
        masked = blaze.predict(frame, max_poses=1, options=seg)
        frames.append((frame, {
            "blazepose-full + box": ([dataclasses.replace(p, mask=None) for p in masked], blaze.skeleton),
            "movenet-lightning + box": (movenet.predict(frame), movenet.skeleton),
            "blazepose-full + box + mask": (masked, blaze.skeleton),
        }))  # fmt: skip
    return frames, {"blazepose-full": len(blaze.skeleton), "movenet-lightning": len(movenet.skeleton)}


def time_cases(frames: list, draws: dict, count: int, warmup: int) -> dict:
    """{case: {draw name: ([wall ms per call], [CPU ms per call])}}, the draws interleaved call by call.
    The process's CPU time is the steadier number on a shared machine (another process's turn on the
    core is not counted in it)."""
    out: dict[str, dict[str, tuple[list[float], list[float]]]] = {}
    for case in frames[0][1]:
        times = out.setdefault(case, {name: ([], []) for name in draws})
        for i in range(warmup + count):
            frame, poses = frames[i % len(frames)]
            plist, skeleton = poses[case]
            for name, draw in draws.items():
                cpu, start = time.process_time(), time.perf_counter()
                draw(frame, plist, skeleton, boxes=True)
                wall, cpu = time.perf_counter() - start, time.process_time() - cpu
                if i >= warmup:
                    times[name][0].append(wall * 1e3)
                    times[name][1].append(cpu * 1e3)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", metavar="REV", help="also time posezoo/io/draw.py of this git revision")
    parser.add_argument("--frames", type=int, default=400, help="timed draws per case and drawing")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO))
    from posezoo.io.draw import draw_poses

    with tempfile.TemporaryDirectory() as tmp:
        draws = {}
        if args.against:
            draws[args.against] = draw_of_revision(args.against, Path(tmp))
        draws["now"] = draw_poses
        frames, edges = real_poses(Path(tmp))
    results = time_cases(frames, draws, args.frames, args.warmup)
    summary = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "load": os.getloadavg()[0],
        "frame": f"{SIZE[0]}x{SIZE[1]}",
        "edges": edges,
        "cases": {
            case: {
                name: {
                    "median_ms": statistics.median(wall),
                    "mean_ms": statistics.fmean(wall),
                    "cpu_median_ms": statistics.median(cpu),
                }
                for name, (wall, cpu) in by.items()
            }
            for case, by in results.items()
        },  # fmt: skip
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"{summary['cpu']}, {summary['cores']} cores, load {summary['load']:.1f}; {summary['frame']} frames;"
          " ms per draw: median wall (mean wall) median CPU\n")  # fmt: skip
    names = list(draws)
    print("| case | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for case, by in summary["cases"].items():
        cells = [f"{by[n]['median_ms']:.3f} ({by[n]['mean_ms']:.3f}) {by[n]['cpu_median_ms']:.3f}" for n in names]
        print(f"| {case} | " + " | ".join(cells) + " |")
    print()
    for case in ("blazepose-full + box", "movenet-lightning + box"):
        ms = summary["cases"][case]["now"]["median_ms"]
        print(f"{case}: {ms:.3f} ms (target < {TARGET_MS} ms: {'ok' if ms < TARGET_MS else 'OVER'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
