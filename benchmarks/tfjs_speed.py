"""Latency of the converted MoveNet models (TF.js graph models) on onnxruntime, and of TF.js itself.

Converts the three MoveNet models of ../shared/models/human-models with posezoo.supply.convert into a
temporary folder, then times onnxruntime on seeded random int32 input (2 threads; warm-up, then N runs
in alternating blocks so background load hits all alike; medians), with and without thread spinning.
With ``--tfjs`` it also times TF.js 4 under node (pure-JS CPU backend, tests/node; `npm ci --prefix
tests/node` first): the median of its per-run execute() times after one warm-up run. Prints a
markdown table.

    python benchmarks/tfjs_speed.py [--models ../shared/models] [--runs 50] [--warmup 10] [--tfjs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from convert_speed import median_ms, ort_session  # noqa: E402  (benchmarks/, this script's folder)

from posezoo.supply.convert import convert_tfjs_file  # noqa: E402

# name: (model.json under models/, input sizes (height, width) to time)
MODELS = {
    "movenet-lightning": ("human-models/movenet-lightning.json", [(192, 192)]),
    "movenet-thunder": ("human-models/movenet-thunder.json", [(256, 256)]),
    "movenet-multipose": ("human-models/movenet-multipose.json", [(256, 256), (192, 256)]),
}
THREADS = 2


def tfjs_ms(model_json: Path, shape: tuple[int, ...], runs: int, workdir: Path) -> float | None:
    """Median TF.js execute() time over ``runs`` runs after one warm-up, or None without node/npm."""
    sys.path.insert(0, str(REPO / "tests"))
    from tfjs import TfjsRunner, ensure_installed, missing_tools

    if missing_tools():
        return None
    ensure_installed()
    x = np.random.default_rng(0).integers(0, 256, size=shape).astype(np.int32)
    job = TfjsRunner(workdir).start(model_json, [({"input": x}, ["Identity"])] * (runs + 1))
    job.result(timeout=60 * (runs + 1))
    return statistics.median(job.ms[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=Path(os.environ.get("POSEZOO_SHARED", REPO.parent / "shared")) / "models")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--tfjs", type=int, default=0, metavar="N", help="also time TF.js under node (N runs)")
    args = parser.parse_args()
    print(f"onnxruntime {ort.__version__}, {THREADS} threads, {os.cpu_count()} CPUs; median of {args.runs} runs")
    print()
    print("| model | input | convert s | ORT ms | ORT ms (no spinning) | TF.js-node ms |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, (rel, sizes) in MODELS.items():
            model_json = args.models / rel
            onnx_path = Path(tmp) / f"{name}.onnx"
            start = time.perf_counter()
            convert_tfjs_file(model_json, onnx_path)
            convert_s = time.perf_counter() - start
            sessions = {spin: ort_session(onnx_path, spin, THREADS) for spin in (True, False)}
            for h, w in sizes:
                x = np.random.default_rng(0).integers(0, 256, size=(1, h, w, 3)).astype(np.int32)
                ms = median_ms({spin: (lambda s=s: s.run(None, {"input": x})) for spin, s in sessions.items()},
                               args.warmup, args.runs, rounds=5)
                js = tfjs_ms(model_json, x.shape, args.tfjs, Path(tmp) / f"{name}-{h}x{w}") if args.tfjs else None
                js_text = f"{js:.0f}" if js is not None else "-"
                print(f"| {name} | {h}x{w} | {convert_s:.1f} | {ms[True]:.2f} | {ms[False]:.2f} | {js_text} |", flush=True)


if __name__ == "__main__":
    main()
