"""Latency of the converted ONNX models on onnxruntime vs the original models on their own runtime.

Converts every TFLite model under ``--models`` (the shared MediaPipe files, named below, and any other
``*.tflite`` found there) into a temporary folder, for this machine's target or the ``--targets``
given, then times onnxruntime and LiteRT on the same random input: 2 threads each (``--threads``), warm-up, then
``--runs`` runs of each in alternating blocks; medians. ``--repeat`` measures everything again
(fresh interleaving) and reports the median and the range of the medians. Prints the CPU, its vector
extensions and the detected conversion target with a markdown table. Target: ORT <= 1.1x LiteRT.

    python benchmarks/convert_speed.py [--models $POSEZOO_SHARED/models] [--runs 100] [--repeat 3]
                                       [--targets avx512,avx2] [--only pose_landmark_full,...]

Other source formats (e.g. TF.js graph models) fit in as more :class:`Case` rows: a converter from
the source file to .onnx for a target, and a reference runner for the source.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("POSEZOO_SHARED") or REPO.parent / "shared")
sys.path.insert(0, str(REPO))

from posezoo.supply.convert import Target, convert_file, detect_target  # noqa: E402
from posezoo.supply.convert.target import cpu_flags, cpu_name, target_named  # noqa: E402

# name: file under --models (every other *.tflite there is added under its path)
TFLITE_MODELS = {
    "pose_detection": "mediapipe-assets/pose_detection.tflite",
    "pose_detection_v0.7.12": "mediapipe-v0.7.12/pose_detection.tflite",
    "pose_landmark_lite": "mediapipe-v0.8.9/pose_landmark_lite.tflite",
    "pose_landmark_full": "mediapipe-assets/pose_landmark_full.tflite",
    "pose_landmark_heavy": "mediapipe-assets/pose_landmark_heavy.tflite",
    "pose_landmark_upper_body": "mediapipe-v0.7.12/pose_landmark_upper_body.tflite",
    "pose_landmark_full_body_0.8.2": "mediapipe-0.8.2/pose_landmark_full_body.tflite",
    "palm_detection_full": "mediapipe-assets/palm_detection_full.tflite",
    "hand_landmark_full": "mediapipe-assets/hand_landmark_full.tflite",
}
# vector extensions worth naming (x86 /proc/cpuinfo flags, ARM Features)
VECTOR_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
                "avx512_bf16", "avx512_fp16", "amx_tile", "asimd", "asimddp", "sve", "sve2", "i8mm", "bf16")

Runner = Callable[[], object]


@dataclass(frozen=True)
class Case:
    """One row: ``convert(source, dst, target)`` writes the .onnx; ``reference(source, threads)`` returns
    the input shape and a factory that, given the input array, returns a zero-argument run callable."""

    name: str
    source: Path
    convert: Callable[[Path, Path, Target], None]
    reference: Callable[[Path, int], tuple[list[int], Callable[[np.ndarray], Runner]]]
    reference_name: str


def litert_reference(path: Path, threads: int) -> tuple[list[int], Callable[[np.ndarray], Runner]]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]

    def make(x: np.ndarray) -> Runner:
        def run():
            interpreter.set_tensor(detail["index"], x)
            interpreter.invoke()
        return run

    return [int(d) for d in detail["shape"]], make


def convert_tflite(src: Path, dst: Path, target: Target) -> None:
    convert_file(src, dst, target=target)


def tflite_cases(models: Path) -> list[Case]:
    found = {name: models / rel for name, rel in TFLITE_MODELS.items()}
    known = set(found.values())
    for extra in sorted(models.rglob("*.tflite")):
        if extra not in known:
            found[str(extra.relative_to(models).with_suffix(""))] = extra
    return [Case(name, path, convert_tflite, litert_reference, "LiteRT") for name, path in found.items()]


def ort_session(path: Path, spinning: bool, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if not spinning:  # idle worker threads sleep instead of spinning: better when cores are shared
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def median_ms(runs_by_name: dict[str, Runner], warmup: int, runs: int, rounds: int = 10) -> dict[str, float]:
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


def cpu_line() -> str:
    flags = cpu_flags()
    vector = " ".join(f for f in VECTOR_FLAGS if f in flags) or "unknown"
    return f"CPU: {cpu_name()} ({os.cpu_count()} logical CPUs); vector extensions: {vector}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=SHARED / "models")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=1, help="measure everything this many times")
    parser.add_argument("--targets", default="", help="comma-separated conversion targets (default: detected)")
    parser.add_argument("--only", default="", help="comma-separated model names")
    parser.add_argument("--threads", type=int, default=2, help="threads for each runtime")
    args = parser.parse_args(argv)

    targets = [target_named(t) for t in args.targets.split(",") if t.strip()] or [detect_target()]
    cases = [c for c in tflite_cases(args.models) if not args.only or c.name in args.only.split(",")]
    load_before = os.getloadavg()[0]
    rows: dict[tuple[str, str], dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        prepared = []
        for case in cases:
            shape, make = case.reference(case.source, args.threads)
            x = np.random.default_rng(0).uniform(0.0, 1.0, shape).astype(np.float32)
            runners = {"ref": make(x)}
            for target in targets:
                onnx_path = Path(tmp) / f"{case.name}.{target.name}.onnx"
                start = time.perf_counter()
                case.convert(case.source, onnx_path, target)
                convert_s = time.perf_counter() - start
                for spinning, key in ((True, "ort"), (False, "ort_nospin")):
                    session = ort_session(onnx_path, spinning, args.threads)
                    feed = {session.get_inputs()[0].name: x}
                    runners[f"{key}:{target.name}"] = lambda s=session, f=feed: s.run(None, f)
                rows[(case.name, target.name)] = {"convert_s": convert_s, "ratios": [], "ratios_nospin": [],
                                                  "ort": [], "ort_nospin": [], "ref": []}
            prepared.append((case, runners))
        for _ in range(args.repeat):
            for case, runners in prepared:
                ms = median_ms(runners, args.warmup, args.runs)
                for target in targets:
                    row = rows[(case.name, target.name)]
                    row["ref"].append(ms["ref"])
                    for key in ("ort", "ort_nospin"):
                        row[key].append(ms[f"{key}:{target.name}"])
                        row["ratios" if key == "ort" else "ratios_nospin"].append(ms[f"{key}:{target.name}"] / ms["ref"])

    def spread(values: list[float]) -> str:
        mid = statistics.median(values)
        return f"{mid:.2f}" if len(values) == 1 else f"{mid:.2f} ({min(values):.2f}-{max(values):.2f})"

    print(cpu_line())
    print(f"detected conversion target: {detect_target().name} (NCHWc block {detect_target().block}); "
          f"onnxruntime {ort.__version__}; {args.threads} threads; median of {args.runs} runs, "
          f"{args.repeat} repeat(s) (median, range); 1-min load average {load_before:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after\n")
    print("| model | target | convert s | ORT ms | reference | reference ms | ratio | ORT no-spin ms | ratio no-spin |")
    print("|---|---|---:|---:|---|---:|---:|---:|---:|")
    for case in cases:
        for target in targets:
            row = rows[(case.name, target.name)]
            print(f"| {case.name} | {target.name} | {row['convert_s']:.2f} | {spread(row['ort'])} | {case.reference_name} "
                  f"| {spread(row['ref'])} | {spread(row['ratios'])} | {spread(row['ort_nospin'])} "
                  f"| {spread(row['ratios_nospin'])} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
