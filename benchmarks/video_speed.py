"""Video speed: ms/frame of posezoo's pipeline, static and tracking, on a 640x480 clip, against the
bare onnxruntime models timed in the same run (and, optionally, MediaPipe's own Python package).

Makes a pan-and-zoom clip over a test photo, converts the BlazePose TFLite files from ../shared into
a temporary folder, runs ``posezoo.drivers.bench`` on the clip and prints a markdown table plus the targets:

* tracking ms/frame <= 1.15 x the landmark model's bare onnxruntime time, static <= 1.15 x
  (detector + landmark);
* against MediaPipe 0.10.14 on such a clip (49.7 ms tracking, 85.7 ms static, full model, 2 cores,
  measured here): <= 0.55 x and <= 0.5 x.

    python benchmarks/video_speed.py [--variant full] [--frames 300] [--clip clip.mp4]

MediaPipe pins a protobuf that conflicts with onnx, so it lives in its own venv; this script runs it
there with only numpy, OpenCV and mediapipe imported:

    python benchmarks/video_speed.py --mediapipe /path/to/mp-venv/bin/python
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
PHOTO = SHARED / "testdata" / "images" / "coco_000000000785.jpg"
TFLITE = {
    "detector": "mediapipe-assets/pose_detection.tflite",
    "full": "mediapipe-assets/pose_landmark_full.tflite",
    "lite": "mediapipe-v0.8.9/pose_landmark_lite.tflite",
}
MEDIAPIPE_MS = {"tracking": 49.7, "static": 85.7}  # 0.10.14, full model, 2 cores, such a clip
TARGET_VS_MEDIAPIPE = {"tracking": 0.55, "static": 0.5}
TARGET_RATIO = 1.15


def mediapipe_only(clip: Path, frames: int, warmup: int, complexity: int) -> dict:
    """Time mediapipe.solutions.pose on the clip (needs only numpy, OpenCV and mediapipe)."""
    import cv2
    import mediapipe as mp

    out = {"version": mp.__version__}
    for mode in ("static", "tracking"):
        pose = mp.solutions.pose.Pose(static_image_mode=mode == "static", model_complexity=complexity)
        cap = cv2.VideoCapture(str(clip))
        times = []
        for i in range(warmup + frames):
            ok, frame = cap.read()
            if not ok:
                cap.release()
                cap = cv2.VideoCapture(str(clip))
                ok, frame = cap.read()
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            start = time.perf_counter()
            pose.process(rgb)
            if i >= warmup:
                times.append((time.perf_counter() - start) * 1e3)
        cap.release()
        pose.close()
        out[mode] = {"median_ms": statistics.median(times), "mean_ms": statistics.fmean(times)}
    return out


def bench_clip(args: argparse.Namespace, parser: argparse.ArgumentParser, folder: Path) -> Path:
    """The clip the video benchmarks time: ``--clip`` if it exists, else a 300-frame pan and zoom over
    ``--image`` written there (or into ``folder``). Needs posezoo on sys.path."""
    import cv2

    from posezoo.drivers.bench import write_clip

    clip = args.clip or folder / "clip.mp4"
    if not clip.exists():
        photo = cv2.imread(str(args.image))
        if photo is None:
            parser.error(f"cannot read {args.image}")
        write_clip(clip, photo, 300)
    return clip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=SHARED / "models", help="../shared/models")
    parser.add_argument("--image", type=Path, default=PHOTO, help="photo to pan and zoom over")
    parser.add_argument("--variant", choices=("full", "lite"), default="full")
    parser.add_argument("--frames", type=int, default=300, help="timed frames per mode")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--clip", type=Path, help="write (or reuse) the clip here instead of a temp file")
    parser.add_argument("--mediapipe", metavar="PYTHON", help="also time MediaPipe, run with this interpreter")
    parser.add_argument("--mediapipe-only", type=Path, metavar="CLIP", help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    complexity = 1 if args.variant == "full" else 0

    if args.mediapipe_only:  # inside MediaPipe's venv: no posezoo imports
        print(json.dumps(mediapipe_only(args.mediapipe_only, args.frames, args.warmup, complexity)))
        return 0

    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "plugins"))

    from posezoo.drivers.bench import open_input, run_bench
    from posezoo.supply.convert import convert_file
    from posezoo_plugins.mediapipe.model import PoseEstimator

    try:
        from posezoo_plugins.blazepose_full import SPEC
    except ImportError:  # not installed: the plugin folder is the package
        from blazepose_full import SPEC

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clip = bench_clip(args, parser, tmp)
        files = {}
        for role, key in (("detector", "detector"), ("landmark", args.variant)):
            files[role] = tmp / f"{key}.onnx"
            convert_file(args.models / TFLITE[key], files[role])
        estimator = PoseEstimator(SPEC, files, variant=args.variant, device="cpu")
        report = run_bench(estimator, open_input(video=clip), frames=args.frames, warmup=args.warmup)
        mp_result = None
        if args.mediapipe:
            cmd = [args.mediapipe, __file__, "--mediapipe-only", str(clip), "--frames", str(args.frames),
                   "--warmup", str(args.warmup), "--variant", args.variant]  # fmt: skip
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:  # e.g. the lite/heavy model is downloaded on first use
                last = (done.stderr.strip().splitlines() or ["no output"])[-1]
                print(f"MediaPipe run failed, comparing with the quoted numbers: {last}", file=sys.stderr)
            else:
                mp_result = json.loads(done.stdout.strip().splitlines()[-1])

    data = report.to_dict()
    data["mediapipe"] = mp_result
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print(report.table())
    print()
    for mode, r in report.modes.items():
        ok = "ok" if r.ratio <= TARGET_RATIO else "OVER"
        line = f"{mode}: {r.pipeline_ms:.2f} ms/frame = {r.ratio:.3f} x bare ORT {r.ort_ms:.2f} ms (target <= {TARGET_RATIO}: {ok})"
        if mp_result or args.variant == "full":  # the quoted numbers are for the full model
            ref = mp_result[mode]["median_ms"] if mp_result else MEDIAPIPE_MS[mode]
            src = f"MediaPipe {mp_result['version']} measured now" if mp_result else "MediaPipe 0.10.14 (quoted)"
            target = TARGET_VS_MEDIAPIPE[mode]
            ok = "ok" if r.pipeline_ms <= target * ref else "OVER"
            line += f"; {r.pipeline_ms / ref:.3f} x {src} {ref:.1f} ms (target <= {target}: {ok})"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
