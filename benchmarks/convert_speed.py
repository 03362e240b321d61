"""Latency of the converted ONNX models on onnxruntime vs the original TFLite on LiteRT.

Converts each of the six shipped MediaPipe models into a temporary folder, then times both runtimes
on the same random input (2 threads each; warm-up, then N runs of each in alternating blocks; medians) and prints a markdown table.
Target: ORT <= 1.1x LiteRT.

    python benchmarks/convert_speed.py [--models ../shared/models] [--runs 50] [--warmup 10]
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
from ai_edge_litert.interpreter import Interpreter

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from posezoo.convert import convert_file  # noqa: E402

MODELS = {
    "pose_detection": "mediapipe-assets/pose_detection.tflite",
    "pose_detection_v0.7.12": "mediapipe-v0.7.12/pose_detection.tflite",
    "pose_landmark_full": "mediapipe-assets/pose_landmark_full.tflite",
    "pose_landmark_lite": "mediapipe-v0.8.9/pose_landmark_lite.tflite",
    "palm_detection_full": "mediapipe-assets/palm_detection_full.tflite",
    "hand_landmark_full": "mediapipe-assets/hand_landmark_full.tflite",
}
THREADS = 2


def ort_session(path: Path, spinning: bool) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if not spinning:  # idle worker threads sleep instead of spinning: better when cores are shared
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def median_ms(runs_by_name: dict, warmup: int, runs: int, rounds: int = 5) -> dict[str, float]:
    """Median latency of each callable, timed in alternating blocks so background load hits all alike.

    Each block starts after a pause (onnxruntime's worker threads keep spinning for a while after a
    run and would otherwise steal a core from the next runtime) and a few warm-up runs.
    """
    times: dict[str, list[float]] = {name: [] for name in runs_by_name}
    for _ in range(rounds):
        for name, run in runs_by_name.items():
            time.sleep(0.05)
            for _ in range(max(1, warmup // rounds)):
                run()
            for _ in range(max(1, runs // rounds)):
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) * 1e3 for name, t in times.items()}


def bench_model(tflite_path: Path, onnx_path: Path, warmup: int, runs: int) -> dict[str, float]:
    """Median ms for LiteRT, ORT (default options) and ORT without thread spinning."""
    interpreter = Interpreter(model_path=str(tflite_path), num_threads=THREADS)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    x = np.random.default_rng(0).uniform(0.0, 1.0, detail["shape"]).astype(np.float32)

    def run_litert():
        interpreter.set_tensor(detail["index"], x)
        interpreter.invoke()

    sessions = {"ort": ort_session(onnx_path, spinning=True), "ort_nospin": ort_session(onnx_path, spinning=False)}
    feed = {sessions["ort"].get_inputs()[0].name: x}
    runs_by_name = {name: (lambda s=s: s.run(None, feed)) for name, s in sessions.items()}
    runs_by_name["litert"] = run_litert
    return median_ms(runs_by_name, warmup, runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=REPO.parent / "shared" / "models")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args(argv)

    load_before = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, rel in MODELS.items():
            tflite_path = args.models / rel
            onnx_path = Path(tmp) / f"{name}.onnx"
            start = time.perf_counter()
            convert_file(tflite_path, onnx_path)
            convert_s = time.perf_counter() - start
            rows.append((name, convert_s, bench_model(tflite_path, onnx_path, args.warmup, args.runs)))

    print(f"onnxruntime {ort.__version__} vs LiteRT, {THREADS} threads, median of {args.runs} runs; "
          f"1-min load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after\n")
    print("| model | convert s | ORT ms | LiteRT ms | ratio | ORT no-spin ms | ratio no-spin |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, convert_s, ms in rows:
        print(f"| {name} | {convert_s:.2f} | {ms['ort']:.2f} | {ms['litert']:.2f} | {ms['ort'] / ms['litert']:.2f} "
              f"| {ms['ort_nospin']:.2f} | {ms['ort_nospin'] / ms['litert']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
