"""TFLite custom operators -> ONNX subgraphs: the three geometric kernels of the face landmark model
with attention (version 2 of each, as registered by MediaPipe 0.10.x, ``util/tflite/operations/``).

Each handler rebuilds its kernel's arithmetic from standard ONNX operators in the same order and
precision as the C++ kernel (float32 where it computes in float, float64 where a ``double`` literal
promotes the expression), so the results agree with the kernel to float rounding:

``Landmarks2TransformMatrix`` (v2)
    landmarks [1, N, 3] -> a 4x4 matrix [1, 4, 4] mapping a crop's pixel grid into landmark space:
    the rotation that levels the line left -> right landmark (plus ``target_rotation_radians``), the
    box of the ``subset_idxs`` landmarks in that rotated frame, scaled by ``scale_x``/``scale_y`` per
    output pixel of an ``output_width`` x ``output_height`` crop.
``TransformTensorBilinear`` (v2)
    a feature map [1, H, W, C] and such a matrix -> the [1, h, w, C] crop it describes, sampled
    bilinearly at pixel centres; a sample outside the input is zero.
``TransformLandmarks`` (v2)
    landmarks [1, N, 2 or 3] and a matrix -> x, y mapped through its first two rows (z unchanged).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from onnx import TensorProto

from posezoo.supply.convert.builder import GraphBuilder
from posezoo.supply.convert.tflite_reader import Operator, custom_options

_F32, _F64, _I64 = np.float32, np.float64, np.int64


def _check(b: GraphBuilder, op: Operator, version: int, n_inputs: int) -> None:
    if op.version != version:
        raise b.fail(f"operator {op.code} version {op.version} is not supported (only version {version})")
    if len(op.inputs) != n_inputs or len(op.outputs) != 1 or any(i < 0 for i in op.inputs):
        raise b.fail(f"operator {op.code} takes {n_inputs} inputs and gives 1 output", "the file is inconsistent")


def _options(b: GraphBuilder, op: Operator, required: tuple[str, ...]) -> dict:
    try:
        options = custom_options(op)
    except ValueError as exc:
        raise b.fail(f"operator {op.code} has {exc}", "the file is inconsistent") from None
    missing = [k for k in required if k not in options]
    if missing:
        raise b.fail(f"operator {op.code} lacks the option(s) {', '.join(missing)}", "the file is inconsistent")
    return options


class _Ops:
    """Terse node emission for the small arithmetic graphs below (every name derived from ``base``)."""

    def __init__(self, b: GraphBuilder, base: str):
        self.b, self.base = b, base

    def __call__(self, op_type: str, *inputs: str, **attrs) -> str:
        return self.b.node(op_type, list(inputs), f"{self.base}_{op_type.lower()}", **attrs)

    def const(self, values, dtype=_F32) -> str:
        return self.b.shared_constant(values, dtype)

    def f64(self, x: str) -> str:
        return self("Cast", x, to=TensorProto.DOUBLE)

    def f32(self, x: str) -> str:
        return self("Cast", x, to=TensorProto.FLOAT)

    def pick(self, flat: str, indices) -> str:
        """Elements of a 1-D value, as a 1-D value (a list of one index gives shape [1])."""
        return self("Gather", flat, self.const(list(indices), _I64), axis=0)


# -- Landmarks2TransformMatrix -------------------------------------------------------------------

_L2TM_OPTIONS = ("subset_idxs", "left_rotation_idx", "right_rotation_idx", "target_rotation_radians",
                 "output_height", "output_width", "scale_x", "scale_y")


def landmarks_to_transform_matrix(b: GraphBuilder, op: Operator) -> None:
    _check(b, op, 2, 1)
    opts = _options(b, op, _L2TM_OPTIONS)
    shape = b.shape(op.inputs[0])
    if len(shape) != 3 or shape[0] != 1 or shape[2] != 3 or tuple(b.shape(op.outputs[0])) != (1, 4, 4):
        raise b.fail(f"operator {op.code} maps [1, N, 3] landmarks to a [1, 4, 4] matrix, not {list(shape)} "
                     f"to {list(b.shape(op.outputs[0]))}", "the file is inconsistent")
    count = shape[1]
    subset = [int(i) for i in opts["subset_idxs"]]
    left, right = int(opts["left_rotation_idx"]), int(opts["right_rotation_idx"])
    out_w, out_h = int(opts["output_width"]), int(opts["output_height"])
    if not subset or any(not 0 <= i < count for i in subset + [left, right]) or out_w <= 0 or out_h <= 0:
        raise b.fail(f"operator {op.code} has landmark indices or an output size out of range", "the file is inconsistent")
    name = b.tensor_name(op.outputs[0])
    o = _Ops(b, name)
    flat = b.node("Reshape", [b.nhwc(op.inputs[0]), o.const([count * 3], _I64)], name + "_flat")
    # rotation = target - atan2(right.y - left.y, right.x - left.x)
    delta = o("Sub", o.pick(flat, [3 * right, 3 * right + 1]), o.pick(flat, [3 * left, 3 * left + 1]))
    dx, dy = o.pick(delta, [0]), o.pick(delta, [1])
    theta = _atan2(o, dy, dx)
    rotation = o("Sub", o.const([float(opts["target_rotation_radians"])]), theta)
    c, s = o("Cos", rotation), o("Sin", rotation)
    # the subset rotated by the rotation: x' = c x - s y, y' = s x + c y; its box
    xs = o.pick(flat, [3 * i for i in subset])
    ys = o.pick(flat, [3 * i + 1 for i in subset])
    xr = o("Sub", o("Mul", c, xs), o("Mul", s, ys))
    yr = o("Add", o("Mul", s, xs), o("Mul", c, ys))
    x_max, x_min = o("ReduceMax", xr, keepdims=1), o("ReduceMin", xr, keepdims=1)
    y_max, y_min = o("ReduceMax", yr, keepdims=1), o("ReduceMin", yr, keepdims=1)
    width, height = o("Sub", x_max, x_min), o("Sub", y_max, y_min)
    two = o.const([2.0])
    mid_x, mid_y = o("Div", o("Add", x_min, x_max), two), o("Div", o("Add", y_min, y_max), two)
    # the box centre rotated back (by -rotation: cos(-r) = c, sin(-r) = -s)
    centre_x = o("Add", o("Mul", c, mid_x), o("Mul", s, mid_y))
    centre_y = o("Sub", o("Mul", c, mid_y), o("Mul", s, mid_x))
    # shift(centre) . rotate(-rotation) . scale(scale * size / output size) . shift(-output size / 2)
    scale_x = o("Div", o("Mul", o.const([float(opts["scale_x"])]), width), o.const([float(out_w)]))
    scale_y = o("Div", o("Mul", o.const([float(opts["scale_y"])]), height), o.const([float(out_h)]))
    m00, m01 = o("Mul", c, scale_x), o("Mul", s, scale_y)
    m10, m11 = o("Neg", o("Mul", s, scale_x)), o("Mul", c, scale_y)
    shift_x, shift_y = o.const([-(out_w / 2.0)]), o.const([-(out_h / 2.0)])
    m03 = o("Add", o("Add", o("Mul", m00, shift_x), o("Mul", m01, shift_y)), centre_x)
    m13 = o("Add", o("Add", o("Mul", m10, shift_x), o("Mul", m11, shift_y)), centre_y)
    zero, one = o.const([0.0]), o.const([1.0])
    entries = [m00, m01, zero, m03, m10, m11, zero, m13, zero, zero, one, zero, zero, zero, zero, one]
    matrix = o("Concat", *entries, axis=0)
    b.set(op.outputs[0], b.node("Reshape", [matrix, o.const([1, 4, 4], _I64)], name), False)


def _atan2(o: _Ops, y: str, x: str) -> str:
    """atan2(y, x) = atan(y / x), +pi or -pi (the sign of y) where x < 0; x = 0 gives atan(+-inf) = +-pi/2
    and x = y = 0 gives 0, as libm's atan2 (the differences of two equal floats are +0)."""
    zero = o.const([0.0])
    both_zero = o("And", o("Equal", x, zero), o("Equal", y, zero))
    base = o("Where", both_zero, zero, o("Atan", o("Div", y, x)))
    half_turn = o("Where", o("Less", y, o.const([0.0])), o.const([-math.pi]), o.const([math.pi]))
    return o("Add", base, o("Where", o("Less", x, o.const([0.0])), half_turn, o.const([0.0])))


# -- TransformTensorBilinear ---------------------------------------------------------------------

def transform_tensor_bilinear(b: GraphBuilder, op: Operator) -> None:
    _check(b, op, 2, 2)
    opts = _options(b, op, ("output_height", "output_width"))
    shape, out_shape = b.shape(op.inputs[0]), b.shape(op.outputs[0])
    out_h, out_w = int(opts["output_height"]), int(opts["output_width"])
    if (len(shape) != 4 or shape[0] != 1 or tuple(out_shape) != (1, out_h, out_w, shape[3])
            or tuple(b.shape(op.inputs[1])) not in ((1, 4, 4), (4, 4))):
        raise b.fail(f"operator {op.code} of {list(shape)} with a 4x4 matrix cannot give {list(out_shape)}",
                     "the file is inconsistent")
    _, height, width, channels = shape
    name = b.tensor_name(op.outputs[0])
    o = _Ops(b, name)
    pixels = b.node("Reshape", [b.nchw(op.inputs[0]), o.const([1, channels, height * width], _I64)], name + "_pixels")
    m = b.node("Reshape", [b.nhwc(op.inputs[1]), o.const([16], _I64)], name + "_matrix")
    # the kernel moves the matrix to pixel centres in double: t[3] += t[0] * 0.5 + t[1] * 0.5 - 0.5
    half = o.const([0.5], _F64)

    def centred(row: int) -> tuple[str, str, str]:
        a, c = o.pick(m, [4 * row]), o.pick(m, [4 * row + 1])
        shift = o("Sub", o("Add", o("Mul", o.f64(a), half), o("Mul", o.f64(c), half)), half)
        return a, c, o.f32(o("Add", o.f64(o.pick(m, [4 * row + 3])), shift))

    grid_y, grid_x = np.meshgrid(np.arange(out_h, dtype=_F32), np.arange(out_w, dtype=_F32), indexing="ij")
    gx, gy = o.const(grid_x.reshape(-1)), o.const(grid_y.reshape(-1))
    sample = []
    for a, c, t in (centred(0), centred(1)):
        sample.append(o("Add", o("Add", o("Mul", a, gx), o("Mul", c, gy)), t))
    sx, sy = sample
    zero = o.const([0.0])
    outside = o("Or", o("Or", o("Less", sx, zero), o("Greater", sx, o.const([float(width - 1)]))),
                o("Or", o("Less", sy, zero), o("Greater", sy, o.const([float(height - 1)]))))
    fx, fy = o("Floor", sx), o("Floor", sy)
    right, lower = o("Sub", sx, fx), o("Sub", sy, fy)

    def index(f: str, step: int, size: int) -> str:
        """floor (+1), clamped into the axis: a clamped read only ever gets weight 0 or lies outside."""
        i = o("Cast", f, to=TensorProto.INT64)
        if step:
            i = o("Add", i, o.const([step], _I64))
        return o("Clip", i, o.const(0, _I64), o.const(size - 1, _I64))

    x0, x1 = index(fx, 0, width), index(fx, 1, width)
    row0 = o("Mul", index(fy, 0, height), o.const([width], _I64))
    row1 = o("Mul", index(fy, 1, height), o.const([width], _I64))
    q11, q21 = (o("Gather", pixels, o("Add", row0, x), axis=2) for x in (x0, x1))
    q12, q22 = (o("Gather", pixels, o("Add", row1, x), axis=2) for x in (x0, x1))
    one = o.const([1.0], _F64)

    def mix(w: str, a: str, c: str) -> str:
        """(float) ((1.0 - w) * a + (float) (w * c)), the products and the sum in double."""
        return o.f32(o("Add", o("Mul", o("Sub", one, o.f64(w)), o.f64(a)), o.f64(o("Mul", w, c))))

    upper, bottom = mix(right, q11, q21), mix(right, q12, q22)
    # result = lower * bottom + (1.0 - lower) * upper, the first product in float
    value = o.f32(o("Add", o.f64(o("Mul", lower, bottom)), o("Mul", o("Sub", one, o.f64(lower)), o.f64(upper))))
    value = o("Where", outside, zero, value)
    b.set(op.outputs[0], b.node("Reshape", [value, o.const([1, channels, out_h, out_w], _I64)], name), True)


# -- TransformLandmarks --------------------------------------------------------------------------

def transform_landmarks(b: GraphBuilder, op: Operator) -> None:
    _check(b, op, 2, 2)
    shape = b.shape(op.inputs[0])
    if (len(shape) != 3 or shape[2] not in (2, 3) or tuple(b.shape(op.outputs[0])) != tuple(shape)
            or tuple(b.shape(op.inputs[1])) not in ((1, 4, 4), (4, 4))):
        raise b.fail(f"operator {op.code} maps [1, N, 2 or 3] landmarks with a 4x4 matrix, not {list(shape)}",
                     "the file is inconsistent")
    name = b.tensor_name(op.outputs[0])
    o = _Ops(b, name)
    points = b.nhwc(op.inputs[0])
    m = b.node("Reshape", [b.nhwc(op.inputs[1]), o.const([16], _I64)], name + "_matrix")
    axis = o.const([2], _I64)
    x = o("Slice", points, o.const([0], _I64), o.const([1], _I64), axis)
    y = o("Slice", points, o.const([1], _I64), o.const([2], _I64), axis)
    # row . (x, y, 0, 1) = (m0 x + m1 y) + m3 (the z term is zero)
    out = [o("Add", o("Add", o("Mul", o.pick(m, [4 * r]), x), o("Mul", o.pick(m, [4 * r + 1]), y)), o.pick(m, [4 * r + 3]))
           for r in (0, 1)]
    if shape[2] == 3:
        out.append(o("Slice", points, o.const([2], _I64), o.const([3], _I64), axis))
    b.set(op.outputs[0], b.node("Concat", out, name, axis=2), False)


CUSTOM_HANDLERS: dict[str, Callable[[GraphBuilder, Operator], None]] = {
    "CUSTOM (Landmarks2TransformMatrix)": landmarks_to_transform_matrix,
    "CUSTOM (TransformLandmarks)": transform_landmarks,
    "CUSTOM (TransformTensorBilinear)": transform_tensor_bilinear,
}
