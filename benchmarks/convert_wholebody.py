"""The hand and face TFLite models (MediaPipe 0.10.14's assets): conversion time, exactness against
LiteRT on real crops, and ONNX (onnxruntime) vs LiteRT latency, single-threaded and at each runtime's
default thread count.

Each model gets a real input: the shared whole-body photos cropped around MediaPipe's own landmarks
for them (tests data ``mediapipe_wholebody_reference.json``) and resized to the model's input. The
face landmark model with attention has custom operators LiteRT's Python interpreter cannot run: its
reference is LiteRT cut at those operators with a numpy port of their kernels in the cuts
(tests/tflite_reference.py), and it has no LiteRT timing.

    python benchmarks/convert_wholebody.py [--runs 50] [--only face_landmark,...]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("POSEZOO_SHARED") or REPO.parent / "shared")
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "tests"))

from convert_speed import cpu_line, median_ms, ort_session  # noqa: E402
from posezoo.supply.convert import convert_file, detect_target  # noqa: E402

# name: (file under models/mediapipe-assets, input range, which crop)
MODELS = {
    "palm_detection_lite": ("palm_detection_lite.tflite", (0.0, 1.0), "hand_photo"),
    "palm_detection_full": ("palm_detection_full.tflite", (0.0, 1.0), "hand_photo"),
    "hand_landmark_lite": ("hand_landmark_lite.tflite", (0.0, 1.0), "hand"),
    "hand_landmark_full": ("hand_landmark_full.tflite", (0.0, 1.0), "hand"),
    "hand_recrop": ("hand_recrop.tflite", (0.0, 1.0), "hand"),
    "face_detection_short_range": ("face_detection_short_range.tflite", (-1.0, 1.0), "face_photo"),
    "face_landmark": ("face_landmark.tflite", (0.0, 1.0), "face"),
    "face_landmark_with_attention": ("face_landmark_with_attention.tflite", (0.0, 1.0), "face"),
    "iris_landmark": ("iris_landmark.tflite", (0.0, 1.0), "eye"),
}
HAND_PHOTO, FACE_PHOTO = "onehand10k_33.jpg", "300vw_001_000006.jpg"


def _photo(name: str) -> np.ndarray:
    for folder in ("images", "images-wholebody"):
        path = SHARED / "testdata" / folder / name
        if path.is_file():
            return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    raise FileNotFoundError(name)


def _square_crop(image: np.ndarray, points: np.ndarray, scale: float, size: tuple[int, int]) -> np.ndarray:
    """An axis-aligned square around ``points`` (long side x ``scale``), resized to ``size`` (w, h)."""
    centre = (points.min(axis=0) + points.max(axis=0)) / 2
    side = scale * (points.max(axis=0) - points.min(axis=0)).max()
    sx, sy = size[0] / side, size[1] / side
    matrix = np.array([[sx, 0, size[0] / 2 - sx * centre[0]], [0, sy, size[1] / 2 - sy * centre[1]]])
    return cv2.warpAffine(image, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def real_input(kind: str, shape, value_range) -> np.ndarray:
    reference = json.loads((SHARED / "testdata" / "mediapipe_wholebody_reference.json").read_text())["images"]
    _, height, width, _ = (int(d) for d in shape)
    if kind in ("hand_photo", "face_photo"):
        image = _photo(HAND_PHOTO if kind == "hand_photo" else FACE_PHOTO)
        side = max(image.shape[:2])  # letterboxed, as the detectors see a photo
        pixels = cv2.resize(cv2.copyMakeBorder(image, 0, side - image.shape[0], 0, side - image.shape[1], cv2.BORDER_CONSTANT),
                            (width, height), interpolation=cv2.INTER_AREA)
    elif kind == "hand":
        hand = np.asarray(reference[HAND_PHOTO]["hands"][0]["landmarks"])[:, :2]
        pixels = _square_crop(_photo(HAND_PHOTO), hand, 2.0, (width, height))
    elif kind == "face":
        face = np.asarray(reference[FACE_PHOTO]["face_mesh_refine1"][0])[:, :2]
        pixels = _square_crop(_photo(FACE_PHOTO), face, 1.5, (width, height))
    else:  # one eye: corners 33 and 133
        face = np.asarray(reference[FACE_PHOTO]["face_mesh_refine1"][0])[:, :2]
        corners = face[[33, 133]]
        pixels = _square_crop(_photo(FACE_PHOTO), corners, 2.3, (width, height))
    lo, hi = value_range
    return (pixels.astype(np.float32) / 255.0 * (hi - lo) + lo)[None]


def litert(path: Path, threads: int | None):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    interpreter.allocate_tensors()
    return interpreter


def reference_outputs(path: Path, x: np.ndarray) -> tuple[dict[str, np.ndarray], str]:
    """The model's outputs from LiteRT, or from LiteRT + numpy kernels when it has custom operators."""
    try:
        interpreter = litert(path, 1)
    except RuntimeError:  # an unresolved custom operator
        import tflite
        from tflite_reference import run_split

        data = path.read_bytes()
        graph = tflite.Model.GetRootAs(data, 0).Subgraphs(0)
        known = run_split(data, {int(graph.Inputs(0)): x})
        names = {int(graph.Outputs(i)): graph.Tensors(int(graph.Outputs(i))).Name().decode() for i in range(graph.OutputsLength())}
        return {name: known[index] for index, name in names.items()}, "LiteRT + numpy kernels"
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return {d["name"]: interpreter.get_tensor(d["index"]).copy() for d in interpreter.get_output_details()}, "LiteRT"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--only", default="", help="comma-separated model names")
    args = parser.parse_args(argv)
    names = [n for n in MODELS if not args.only or n in args.only.split(",")]
    target = detect_target()
    load_before = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            file, value_range, kind = MODELS[name]
            source = SHARED / "models" / "mediapipe-assets" / file
            onnx_path = Path(tmp) / f"{name}.onnx"
            start = time.perf_counter()
            convert_file(source, onnx_path, target=target)
            convert_s = time.perf_counter() - start
            session = ort_session(onnx_path, True, 1)
            shape = session.get_inputs()[0].shape
            x = real_input(kind, shape, value_range)
            got = dict(zip([o.name for o in session.get_outputs()], session.run(None, {session.get_inputs()[0].name: x})))
            want, reference_name = reference_outputs(source, x)
            diffs = {out: float(np.abs(got[out] - ref).max()) for out, ref in want.items()}
            worst = max(diffs, key=diffs.get)
            row = {"name": name, "input": f"{kind} {list(shape[1:3])} {list(value_range)}", "convert_s": convert_s,
                   "diff": diffs[worst], "worst": worst, "scale": float(np.abs(want[worst]).max()),
                   "reference": reference_name}
            for label, threads in (("1", 1), ("default", None)):
                ort_run = ort_session(onnx_path, True, threads or 0)
                runners = {"ort": lambda s=ort_run: s.run(None, {s.get_inputs()[0].name: x})}
                if reference_name == "LiteRT":
                    interpreter = litert(source, threads)
                    index = interpreter.get_input_details()[0]["index"]

                    def run_litert(i=interpreter, k=index):
                        i.set_tensor(k, x)
                        i.invoke()
                    runners["litert"] = run_litert
                ms = median_ms(runners, args.warmup, args.runs)
                row[f"ort_{label}"] = ms["ort"]
                row[f"litert_{label}"] = ms.get("litert")
            rows.append(row)

    def cell(v) -> str:
        return "n/a" if v is None else f"{v:.2f}"

    def ratio(a, b) -> str:
        return "n/a" if b is None else f"{a / b:.2f}"

    print(cpu_line())
    import onnxruntime as ort

    print(f"conversion target: {target.name} (NCHWc block {target.block}); onnxruntime {ort.__version__}; "
          f"median of {args.runs} runs in alternating blocks; default threads: onnxruntime's (one per physical "
          f"core) and LiteRT's; 1-min load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after\n")
    print("| model | input | convert s | max abs diff (worst output, its max abs value) | reference | ORT ms 1T | LiteRT ms 1T "
          "| ratio 1T | ORT ms default | LiteRT ms default | ratio default |")
    print("|---|---|---:|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['name']} | {r['input']} | {r['convert_s']:.2f} | {r['diff']:.2e} ({r['worst']}, {r['scale']:.3g}) "
              f"| {r['reference']} | {cell(r['ort_1'])} | {cell(r['litert_1'])} | {ratio(r['ort_1'], r['litert_1'])} "
              f"| {cell(r['ort_default'])} | {cell(r['litert_default'])} | {ratio(r['ort_default'], r['litert_default'])} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
