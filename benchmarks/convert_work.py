"""Work of the converted models as onnxruntime's NCHWc kernels do it, per CPU target, and where the time goes.

onnxruntime cannot be made to run its AVX2 kernels on an AVX-512 machine (MLAS picks its kernels and
its NCHWc block from CPUID when it loads; no option or variable restricts that), so the AVX2 side is
counted rather than timed: for every shared TFLite model and each conversion target, the multiply-adds
of its Convs as NCHWc runs them with a given block (channels padded to whole blocks, first Conv on
the NCHW input unpadded) and the elements that memory-bound nodes (Add, Resize, MaxPool, Concat,
Clip, Relu) write. ``--profile`` adds onnxruntime's own per-op-type profile of this machine (median
of the runs, 2 threads).

    python benchmarks/convert_work.py [--models $POSEZOO_SHARED/models] [--targets avx512,avx2] [--profile]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import shape_inference

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("POSEZOO_SHARED") or REPO.parent / "shared")
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from convert_speed import TFLITE_MODELS, cpu_line  # noqa: E402
from posezoo.supply.convert import convert_bytes, detect_target  # noqa: E402
from posezoo.supply.convert.target import target_named  # noqa: E402

MEMORY_BOUND = ("Add", "Resize", "MaxPool", "Concat", "Clip", "Relu")


def _whole_blocks(channels: int, block: int) -> int:
    return -(-channels // block) * block


def work(model: onnx.ModelProto, block: int) -> tuple[float, float]:
    """(multiply-adds, elements written by memory-bound nodes), channels padded to ``block``."""
    inferred = shape_inference.infer_shapes(model).graph
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in list(inferred.value_info) + list(inferred.output) + list(inferred.input)}
    weights = {t.name: list(t.dims) for t in model.graph.initializer}
    macs = elements = 0
    for node in model.graph.node:
        out = shapes.get(node.output[0], [])
        if len(out) != 4:
            continue
        pixels = out[2] * out[3]
        if node.op_type == "Conv":
            o, i, kh, kw = weights[node.input[1]]
            group = next((a.i for a in node.attribute if a.name == "group"), 1)
            if group > 1:  # depthwise
                macs += _whole_blocks(o, block) * kh * kw * pixels
            else:  # fewer input channels than a block: NCHWc reads the NCHW input as it is
                macs += _whole_blocks(o, block) * (i if i < block else _whole_blocks(i, block)) * kh * kw * pixels
        elif node.op_type in MEMORY_BOUND:
            elements += _whole_blocks(out[1], block) * pixels
    return macs, elements


def profile(model_bytes: bytes, runs: int) -> dict[str, float]:
    """Median ms per op type over ``runs`` runs of onnxruntime's profiler (2 threads)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 2, 1
    options.log_severity_level = 3
    options.enable_profiling = True
    with tempfile.TemporaryDirectory() as folder:
        options.profile_file_prefix = str(Path(folder) / "profile")
        session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
        feed = session.get_inputs()[0]
        x = np.random.default_rng(0).uniform(0.0, 1.0, feed.shape).astype(np.float32)
        for _ in range(runs):
            session.run(None, {feed.name: x})
        events = json.loads(Path(session.end_profiling()).read_text())
    per_node: dict[str, list[float]] = collections.defaultdict(list)
    kinds = {}
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            per_node[event["name"]].append(event["dur"] / 1e3)
            kinds[event["name"]] = event["args"].get("op_name", "?")
    totals: dict[str, float] = collections.defaultdict(float)
    for name, times in per_node.items():
        totals[kinds[name]] += statistics.median(times)
    return dict(sorted(totals.items(), key=lambda kv: -kv[1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=SHARED / "models")
    parser.add_argument("--targets", default="avx512,avx2")
    parser.add_argument("--profile", action="store_true", help="also onnxruntime's per-op profile here")
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args(argv)
    targets = [target_named(t) for t in args.targets.split(",")]

    print(cpu_line())
    print(f"detected target: {detect_target().name}; MMAC = padded multiply-adds (millions), "
          "Melem = elements written by memory-bound nodes (millions), each for NCHWc blocks of 16 and 8\n")
    print("| model | graph for | MMAC @16 | MMAC @8 | Melem @16 | Melem @8 |")
    print("|---|---|---:|---:|---:|---:|")
    profiles = {}
    for name, rel in TFLITE_MODELS.items():
        data = (args.models / rel).read_bytes()
        for target in targets:
            model_bytes = convert_bytes(data, model_name=name, target=target)
            model = onnx.load_from_string(model_bytes)
            (m16, e16), (m8, e8) = work(model, 16), work(model, 8)
            print(f"| {name} | {target.name} | {m16 / 1e6:.1f} | {m8 / 1e6:.1f} | {e16 / 1e6:.2f} | {e8 / 1e6:.2f} |")
            if args.profile and target == detect_target():
                profiles[name] = profile(model_bytes, args.runs)
    for name, totals in profiles.items():
        total = sum(totals.values())
        shares = ", ".join(f"{op} {ms:.2f} ms ({100 * ms / total:.0f}%)" for op, ms in totals.items())
        print(f"\n{name}: {total:.2f} ms in nodes: {shares}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
