"""MoveNet speed: ms/frame of posezoo's MoveNet pipeline on a tracked 640x480 clip, against the bare
onnxruntime model timed in the same run.

Writes a pan-and-zoom clip over a test photo, converts the shared TF.js MoveNet files
(../shared/models/human-models) into a temporary folder, runs ``posezoo.drivers.bench`` on the clip (its
tracking mode: the crop follows the person; static: the centred square every frame) and prints a
markdown table per model (``$POSEZOO_SHARED`` or ../shared) plus the target: tracking ms/frame <= 1.15 x the bare model. Single-person
models run twice: with their default video crop (OpenCV's warp, spec ``video_crop="fast"``) and with
TensorFlow's exact ``crop_and_resize`` (``video_crop="exact"``), for comparison. The bench
interleaves a bare ``InferenceSession.run`` on the pipeline's own input after every frame, so both
numbers see the same machine load; still, repeat on a busy machine (``--repeat``).

    python benchmarks/movenet_speed.py [--models movenet-lightning ...] [--frames 300] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("POSEZOO_SHARED") or REPO.parent / "shared")
PHOTO = SHARED / "testdata" / "images" / "coco_000000000785.jpg"
TARGET_RATIO = 1.15
MODELS = ("movenet-lightning", "movenet-thunder", "movenet-multipose")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared-models", type=Path, default=SHARED / "models", help="../shared/models")
    parser.add_argument("--image", type=Path, default=PHOTO, help="photo to pan and zoom over")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=["movenet-lightning"])
    parser.add_argument("--frames", type=int, default=300, help="timed frames per mode")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=1, help="runs per model (the median ratio is the verdict)")
    parser.add_argument("--clip", type=Path, help="write (or reuse) the clip here instead of a temp file")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO))
    from video_speed import bench_clip  # benchmarks/, this script's folder

    from posezoo.drivers.bench import open_input, run_bench
    from posezoo.supply.convert import convert_tfjs_file

    try:
        from posezoo_plugins.movenet import LIGHTNING, MULTIPOSE, THUNDER, MoveNet
    except ImportError:  # not installed: the plugins folder holds the package
        sys.path.insert(0, str(REPO / "plugins"))
        from movenet import LIGHTNING, MULTIPOSE, THUNDER, MoveNet
    specs = {s.name: s for s in (LIGHTNING, THUNDER, MULTIPOSE)}

    results: dict[str, list[dict]] = {}
    tables = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clip = bench_clip(args, parser, tmp)
        for name in args.models:
            onnx = tmp / f"{name}.onnx"
            convert_tfjs_file(args.shared_models / "human-models" / f"{name}.json", onnx)
            spec = specs[name]
            runs = [(name, spec)] if spec.multipose else [(name, spec), (f"{name} (exact video crop)", replace(spec, video_crop="exact"))]
            for _ in range(args.repeat):
                for label, run_spec in runs:  # interleaved: both crops see the same machine
                    model = MoveNet(run_spec, {"model": onnx}, variant="default", device="cpu")
                    report = run_bench(model, open_input(video=clip), frames=args.frames, warmup=args.warmup, model_name=label)
                    results.setdefault(label, []).append(report.to_dict())
                    tables.append(report.table())

    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print("\n\n".join(tables))
    print()
    for name, runs in results.items():
        for mode in ("tracking", "static"):
            ratios = [r["modes"][mode]["ratio"] for r in runs]
            ms = [r["modes"][mode]["pipeline_ms"] for r in runs]
            ort = [r["modes"][mode]["ort_ms"] for r in runs]
            ratio = statistics.median(ratios)
            verdict = ("ok" if ratio <= TARGET_RATIO else "OVER") if mode == "tracking" and "exact" not in name else "info"
            print(
                f"{name} {mode}: {statistics.median(ms):.2f} ms/frame = {ratio:.3f} x bare ORT "
                f"{statistics.median(ort):.2f} ms (runs: {', '.join(f'{r:.3f}' for r in ratios)}; "
                f"target <= {TARGET_RATIO}: {verdict})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
