"""What "nothing unverified runs" costs at load time: ``ensure_onnx`` on an already converted model
re-hashes the .onnx against the digest recorded when it was written. Compared with the cheap check it
replaced (manifest + size) and with creating the onnxruntime session that follows it.

Fills a temporary cache from ../shared/models (the pose detector and the lite, full and heavy landmark
models), converts them once, then times, in alternating rounds, per model: the cheap check, the
verified lookup, and an onnxruntime session; prints medians as a markdown table.

    python benchmarks/verify_overhead.py [--models ../shared/models] [--rounds 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from mirror import build_mirror  # noqa: E402
from posezoo.supply.cache import Cache  # noqa: E402
from posezoo.supply.convert import CONVERTER_VERSION, ensure_onnx  # noqa: E402
from posezoo.supply.fetch import fetch_file  # noqa: E402
from posezoo.supply.registry import build_registry  # noqa: E402
from posezoo.inference.runtime import session_options  # noqa: E402

NAMES = ["pose_detection.tflite", "pose_landmark_lite_v0.8.9.tflite", "pose_landmark_full.tflite",
         "pose_landmark_heavy.tflite"]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=REPO.parent / "shared" / "models")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()

    import onnxruntime as ort

    registry = build_registry(user_files=[])
    entries = [registry.files[n] for n in NAMES]
    with tempfile.TemporaryDirectory() as tmp:
        mirror = Path(tmp) / "mirror"
        build_mirror(args.models, mirror, entries, link=True)
        cache = Cache(Path(tmp) / "home")
        for e in entries:
            fetch_file(e, cache=cache, mirror=str(mirror), progress=False)
            ensure_onnx(e, cache, progress=False)

        steps = {
            "cheap check (manifest + size)": lambda e: cache.is_converted(e, CONVERTER_VERSION),
            "verified lookup (re-hash)": lambda e: ensure_onnx(e, cache, progress=False),
            "onnxruntime session": lambda e: ort.InferenceSession(
                str(cache.onnx_path(e)), session_options(), providers=["CPUExecutionProvider"]
            ),
        }
        times = {(e.name, s): [] for e in entries for s in steps}
        for _ in range(args.rounds):
            for e in entries:
                for step, run in steps.items():
                    start = time.perf_counter()
                    run(e)
                    times[(e.name, step)].append(time.perf_counter() - start)

        print(f"{os.cpu_count()} CPUs; medians of {args.rounds} rounds (alternating); ms\n")
        print("| model | .onnx MiB | " + " | ".join(steps) + " | re-hash / session |")
        print("|---|---:|" + "---:|" * (len(steps) + 1))
        for e in entries:
            mib = cache.onnx_path(e).stat().st_size / (1 << 20)
            med = {s: statistics.median(times[(e.name, s)]) * 1000 for s in steps}
            cells = " | ".join(f"{med[s]:.2f}" for s in steps)
            ratio = med["verified lookup (re-hash)"] / med["onnxruntime session"]
            print(f"| {e.name} | {mib:.1f} | {cells} | {ratio:.0%} |")


if __name__ == "__main__":
    main()
