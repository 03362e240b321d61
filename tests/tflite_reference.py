"""A reference for TFLite models with custom operators LiteRT cannot run: LiteRT for the builtin
operators, a plain numpy port of the custom kernels for the rest.

The numpy ports transcribe MediaPipe 0.10.14's kernels (``mediapipe/util/tflite/operations/``:
landmarks_to_transform_matrix.cc, transform_tensor_bilinear.cc, transform_landmarks.cc, version 2 of
each) line by line: float32 where the C++ computes in float (every product and sum rounded, summed in
the kernel's loop order), float64 where a ``double`` literal promotes the expression, libm's
atan2/cos/sin (correctly rounded from double). They are independent of the converter
(posezoo/supply/convert/custom_ops.py), which builds the same arithmetic from ONNX operators.

:func:`run_split` evaluates a whole model: it cuts the graph at its custom operators, runs each
stretch of builtin operators as its own LiteRT model (the original file with its operator list,
inputs and outputs replaced: :func:`submodel`) and the custom operators with the numpy ports.
"""

from __future__ import annotations

import math

import flatbuffers
import numpy as np
import tflite
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter
from flatbuffers import flexbuffers

f32, f64 = np.float32, np.float64


# -- the kernels ---------------------------------------------------------------------------------

def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The kernels' Mat3/Mat4 product: sum = 0; sum += a[r][k] * b[k][c], in float."""
    out = np.zeros((a.shape[0], b.shape[1]), f32)
    for r in range(a.shape[0]):
        for c in range(b.shape[1]):
            total = f32(0)
            for k in range(a.shape[1]):
                total = f32(total + f32(a[r, k] * b[k, c]))
            out[r, c] = total
    return out


def _cos(x) -> np.float32:
    return f32(math.cos(float(x)))


def _sin(x) -> np.float32:
    return f32(math.sin(float(x)))


def landmarks_to_transform_matrix_v2(landmarks: np.ndarray, options: dict) -> np.ndarray:
    """[1, N, 3] landmarks -> [1, 4, 4] (LandmarksToTransformMatrixV2)."""
    lm = landmarks.astype(f32).reshape(-1, 3)
    left, right = lm[int(options["left_rotation_idx"])], lm[int(options["right_rotation_idx"])]
    rotation = f32(math.atan2(float(f32(right[1] - left[1])), float(f32(right[0] - left[0]))))
    rotation = f32(f32(options["target_rotation_radians"]) - rotation)
    idx = [int(i) for i in options["subset_idxs"]]
    pairs = [(idx[2 * i], idx[2 * i + 1]) for i in range(len(idx) // 2)] + ([(idx[-1], idx[-1])] if len(idx) % 2 else [])
    points = np.array([[lm[i][0], lm[i][1], 1.0] for pair in pairs for i in pair], f32)  # z set to 1
    r = rotation
    t_rotation = np.array([[_cos(r), -_sin(r), 0], [_sin(r), _cos(r), 0], [0, 0, 1]], f32)
    t_inverse = np.array([[_cos(-r), -_sin(-r), 0], [_sin(-r), _cos(-r), 0], [0, 0, 1]], f32)
    rotated = _matmul(t_rotation, points.T).T
    hi, lo = rotated[0].copy(), rotated[0].copy()
    for p in rotated[1:]:
        hi[:2] = np.maximum(hi[:2], p[:2])
        lo[:2] = np.minimum(lo[:2], p[:2])
    crop_w, crop_h = f32(hi[0] - lo[0]), f32(hi[1] - lo[1])
    centre = lo.copy()
    centre[0], centre[1] = f32(f32(centre[0] + hi[0]) / f32(2)), f32(f32(centre[1] + hi[1]) / f32(2))
    centre = _matmul(t_inverse, centre.reshape(3, 1)).reshape(3)
    t = np.eye(4, dtype=f32)
    shift = np.eye(4, dtype=f32)
    shift[0, 3], shift[1, 3] = centre[0], centre[1]
    t = _matmul(t, shift)
    rr = f32(-rotation)
    rotate = np.array([[_cos(rr), -_sin(rr), 0, 0], [_sin(rr), _cos(rr), 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], f32)
    t = _matmul(t, rotate)
    out_w, out_h = int(options["output_width"]), int(options["output_height"])
    scale = np.diag([f32(f32(f32(options["scale_x"]) * crop_w) / f32(out_w)),
                     f32(f32(f32(options["scale_y"]) * crop_h) / f32(out_h)), 1, 1]).astype(f32)
    t = _matmul(t, scale)
    shift2 = np.eye(4, dtype=f32)
    shift2[0, 3], shift2[1, 3] = f32(-1.0 * (out_w / 2.0)), f32(-1.0 * (out_h / 2.0))
    return _matmul(t, shift2).reshape(1, 4, 4)


def _dot(row: np.ndarray, x, y) -> np.ndarray:
    """DotProduct(row, (x, y, 0, 1)) in float: ((r0 x + r1 y) + r2 0) + r3 1."""
    total = f32(row[0]) * x + f32(row[1]) * y  # numpy float32: each product, then the sum, rounded
    total = (total + f32(row[2]) * f32(0)).astype(f32)
    return (total + f32(row[3]) * f32(1)).astype(f32)


def transform_tensor_bilinear_v2(data: np.ndarray, matrix: np.ndarray, options: dict) -> np.ndarray:
    """[1, H, W, C] and [1, 4, 4] -> [1, h, w, C] (TransformTensorBilinearV2)."""
    _, height, width, channels = data.shape
    out_h, out_w = int(options["output_height"]), int(options["output_width"])
    m = matrix.astype(f32).reshape(16)
    x_t, y_t = m[0:4].copy(), m[4:8].copy()
    for t in (x_t, y_t):
        t[3] = f32(f64(t[3]) + (f64(t[0]) * 0.5 + f64(t[1]) * 0.5 - 0.5))
    oy, ox = np.meshgrid(np.arange(out_h, dtype=f32), np.arange(out_w, dtype=f32), indexing="ij")
    tx, ty = _dot(x_t, ox, oy), _dot(y_t, ox, oy)
    outside = (tx < 0) | (tx > width - 1) | (ty < 0) | (ty > height - 1)
    fx, fy = np.floor(tx), np.floor(ty)
    ix, iy = np.where(outside, 0, fx).astype(np.int64), np.where(outside, 0, fy).astype(np.int64)
    image = data[0].astype(f32)

    def read(h, w):
        valid = (h >= 0) & (w >= 0) & (h < height) & (w < width)
        return np.where(valid[..., None], image[np.clip(h, 0, height - 1), np.clip(w, 0, width - 1)], f32(0))

    q11, q21, q12, q22 = read(iy, ix), read(iy, ix + 1), read(iy + 1, ix), read(iy + 1, ix + 1)
    right = (tx - fx).astype(f32)[..., None]
    lower_c = (ty - fy).astype(f32)[..., None]
    upper = ((1.0 - right.astype(f64)) * q11.astype(f64) + (right * q21).astype(f32).astype(f64)).astype(f32)
    lower = ((1.0 - right.astype(f64)) * q12.astype(f64) + (right * q22).astype(f32).astype(f64)).astype(f32)
    result = ((lower_c * lower).astype(f32).astype(f64) + (1.0 - lower_c.astype(f64)) * upper.astype(f64)).astype(f32)
    result = np.where(outside[..., None], f32(0), result)
    return result.reshape(1, out_h, out_w, channels)


def transform_landmarks_v2(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """[1, N, 2 or 3] and [1, 4, 4] -> the points' x, y through the matrix (TransformLandmarksV2)."""
    m = matrix.astype(f32).reshape(16)
    p = points.astype(f32)
    out = p.copy()
    out[..., 0] = _dot(m[0:4], p[..., 0], p[..., 1])
    out[..., 1] = _dot(m[4:8], p[..., 0], p[..., 1])
    return out


KERNELS = {
    "Landmarks2TransformMatrix": lambda inputs, options: landmarks_to_transform_matrix_v2(inputs[0], options),
    "TransformTensorBilinear": lambda inputs, options: transform_tensor_bilinear_v2(inputs[0], inputs[1], options),
    "TransformLandmarks": lambda inputs, options: transform_landmarks_v2(inputs[0], inputs[1]),
}


# -- cutting a TFLite model into LiteRT-runnable pieces ------------------------------------------

def submodel(data: bytes, operators: list[int], inputs: list[int], outputs: list[int]) -> bytes:
    """The model ``data`` keeping only ``operators`` (indices, in order), with new graph inputs/outputs."""
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    graph = model.subgraphs[0]
    graph.operators = [graph.operators[i] for i in operators]
    graph.inputs, graph.outputs = list(inputs), list(outputs)
    model.signatureDefs = None
    builder = flatbuffers.Builder(len(data) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def graph_ops(data: bytes) -> list[dict]:
    """Per operator: code name (``CUSTOM:<name>`` for custom ones), inputs, outputs, custom options."""
    model = tflite.Model.GetRootAs(data, 0)
    graph = model.Subgraphs(0)
    names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
    ops = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        number = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        name = f"CUSTOM:{code.CustomCode().decode()}" if number == tflite.BuiltinOperator.CUSTOM else names[number]
        raw = op.CustomOptionsAsNumpy().tobytes() if op.CustomOptionsLength() else b""
        ops.append({"code": name, "inputs": [int(v) for v in op.InputsAsNumpy()],
                    "outputs": [int(v) for v in op.OutputsAsNumpy()],
                    "options": flexbuffers.Loads(raw) if raw else {}})
    return ops


def run_split(data: bytes, feeds: dict[int, np.ndarray], threads: int = 1) -> dict[int, np.ndarray]:
    """Every tensor the model computes from ``feeds`` ({tensor index: value}): builtin operators on
    LiteRT (one model per stretch between custom operators), custom ones with :data:`KERNELS`."""
    model = tflite.Model.GetRootAs(data, 0)
    graph = model.Subgraphs(0)
    constant = {i for i in range(graph.TensorsLength()) if model.Buffers(graph.Tensors(i).Buffer()).DataLength()}
    ops = graph_ops(data)
    const_only = [k for k, op in enumerate(ops) if all(i < 0 or i in constant for i in op["inputs"])]
    const_made = {t for k in const_only for t in ops[k]["outputs"]}
    graph_outputs = {int(v) for v in graph.OutputsAsNumpy()}
    known = dict(feeds)
    remaining = [k for k in range(len(ops)) if k not in const_only]
    while remaining:
        stretch, made = [], set()
        for k in remaining:
            op = ops[k]
            if op["code"].startswith("CUSTOM:"):
                continue
            if all(i < 0 or i in constant or i in const_made or i in known or i in made for i in op["inputs"]):
                stretch.append(k)
                made.update(op["outputs"])
        if stretch:
            needed_consts = [k for k in const_only if set(ops[k]["outputs"]) & {i for s in stretch for i in ops[s]["inputs"]}]
            ins = sorted({i for s in stretch for i in ops[s]["inputs"] if i >= 0 and i not in constant
                          and i not in const_made and i not in made})
            inside = set(stretch)
            used_outside = {i for k in remaining if k not in inside for i in ops[k]["inputs"]}
            outs = sorted(t for t in made if t in graph_outputs or t in used_outside)
            part = submodel(data, sorted(needed_consts + stretch), ins, outs)
            interpreter = Interpreter(model_content=part, num_threads=threads)
            interpreter.allocate_tensors()
            by_index = {d["index"]: d for d in interpreter.get_input_details()}
            for i in ins:
                interpreter.set_tensor(by_index[i]["index"], known[i])
            interpreter.invoke()
            for d in interpreter.get_output_details():
                known[d["index"]] = interpreter.get_tensor(d["index"]).copy()
        customs = [k for k in remaining if k not in stretch and ops[k]["code"].startswith("CUSTOM:")
                   and all(i in known for i in ops[k]["inputs"])]
        for k in customs:
            op = ops[k]
            kernel = KERNELS[op["code"].split(":", 1)[1]]
            known[op["outputs"][0]] = kernel([known[i] for i in op["inputs"]], op["options"])
        if not stretch and not customs:
            raise RuntimeError("the model's graph cannot be evaluated in order")
        remaining = [k for k in remaining if k not in stretch and k not in customs]
    return known
