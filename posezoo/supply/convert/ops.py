"""TFLite operator -> ONNX node handlers, and the dispatch table :data:`HANDLERS`.

Each handler takes the :class:`GraphBuilder` and one TFLite :class:`Operator`, emits ONNX nodes and
records its output value (and whether that value is NCHW). Constant-only operators (DENSIFY,
DEQUANTIZE) are folded into constants and emit nothing. Padding, weight layouts and activation
functions are translated here; layout bookkeeping lives in the builder.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from posezoo.supply.convert.builder import NHWC_TO_NCHW, GraphBuilder
from posezoo.supply.convert.custom_ops import CUSTOM_HANDLERS
from posezoo.supply.convert.tflite_reader import Operator

_SAME, _VALID = 0, 1
_ACT_NONE, _ACT_RELU, _ACT_RELU_N1_TO_1, _ACT_RELU6 = 0, 1, 2, 3
_ACT_NAMES = {4: "TANH", 5: "SIGN_BIT"}


# -- shared helpers ------------------------------------------------------------------------------

def _activation(b: GraphBuilder, name: str, fused: int, base: str) -> str:
    """Apply a fused activation as its own node (onnxruntime fuses Relu/Clip into the Conv)."""
    if fused == _ACT_NONE:
        return name
    if fused == _ACT_RELU:
        return b.node("Relu", [name], base)
    bounds = {_ACT_RELU6: (0.0, 6.0), _ACT_RELU_N1_TO_1: (-1.0, 1.0)}.get(fused)
    if bounds is None:
        raise b.fail(f"fused activation {_ACT_NAMES.get(fused, fused)} is not supported")
    lo, hi = (b.shared_constant(v, np.float32) for v in bounds)
    return b.node("Clip", [name, lo, hi], base)


def _window_pads(b: GraphBuilder, op: Operator, kernel: tuple[int, int], dilation: tuple[int, int]) -> list[int]:
    """ONNX pads [top, left, bottom, right] for a TFLite SAME/VALID window; checks the output size."""
    opts = op.options
    padding = opts.get("Padding", _SAME)
    if padding not in (_SAME, _VALID):
        raise b.fail(f"{op.code} padding {padding} is unknown", "the file is inconsistent")
    strides = (opts.get("StrideH", 1), opts.get("StrideW", 1))
    in_hw = b.shape(op.inputs[0])[1:3]
    out_hw = b.shape(op.outputs[0])[1:3]
    before, after = [], []
    for size, k, s, d, out in zip(in_hw, kernel, strides, dilation, out_hw):
        extent = (k - 1) * d + 1
        expected = math.ceil(size / s) if padding == _SAME else math.ceil((size - extent + 1) / s)
        if expected != out:
            raise b.fail(f"{op.code} output size {out} does not match its input size {size}", "the file is inconsistent")
        total = max((out - 1) * s + extent - size, 0) if padding == _SAME else 0
        before.append(total // 2)
        after.append(total - total // 2)
    return before + after


def _nchw_constant(array: np.ndarray) -> np.ndarray:
    """A constant that broadcasts against an NHWC tensor, rearranged to broadcast against NCHW."""
    array = array.reshape((1,) * (4 - array.ndim) + array.shape)
    return array.transpose(NHWC_TO_NCHW)


def _use_nchw(b: GraphBuilder, indices) -> bool:
    """Elementwise ops run NCHW when some input already is and every non-constant input is 4-D."""
    active = [i for i in indices if i not in b.constants]
    return any(b.is_nchw(i) for i in active) and all(len(b.shape(i)) == 4 for i in active)


def _elementwise_inputs(b: GraphBuilder, indices) -> tuple[list[str], bool]:
    nchw = _use_nchw(b, indices)
    names = []
    for i in indices:
        if i in b.constants:
            array = b.constants[i].astype(np.float32)
            names.append(b.initializer(_nchw_constant(array) if nchw else array, b.tensor_name(i)))
        else:
            names.append(b.layout_input(i, nchw))
    return names, nchw


def _unary(onnx_op: str) -> Callable[[GraphBuilder, Operator], None]:
    def handler(b: GraphBuilder, op: Operator) -> None:
        (x,), nchw = _elementwise_inputs(b, op.inputs[:1])
        b.set(op.outputs[0], b.node(onnx_op, [x], b.tensor_name(op.outputs[0])), nchw)

    return handler


# -- handlers ------------------------------------------------------------------------------------

def conv_2d(b: GraphBuilder, op: Operator) -> None:
    weights = b.constant(op.inputs[1], "CONV_2D filter")  # O, KH, KW, I
    _conv(b, op, weights.transpose(0, 3, 1, 2), group=b.shape(op.inputs[0])[3] // weights.shape[3])


def depthwise_conv_2d(b: GraphBuilder, op: Operator) -> None:
    weights = b.constant(op.inputs[1], "DEPTHWISE_CONV_2D filter")  # 1, KH, KW, C * multiplier
    _conv(b, op, weights.transpose(3, 0, 1, 2), group=b.shape(op.inputs[0])[3])


def _conv(b: GraphBuilder, op: Operator, weights: np.ndarray, group: int) -> None:
    """Conv (OIHW weights) absorbing any pending zero pads of its input, then the fused activation."""
    out_channels, in_per_group, kh, kw = weights.shape
    if group < 1 or in_per_group * group != b.shape(op.inputs[0])[3] or out_channels % group:
        raise b.fail(f"{op.code} filter shape {list(weights.shape)} does not fit its input", "the file is inconsistent")
    x, pending = b.nchw_unpadded(op.inputs[0])
    dilation = (op.options.get("DilationHFactor", 1), op.options.get("DilationWFactor", 1))
    pads = _window_pads(b, op, (kh, kw), dilation)
    top, left, bottom, right = pending
    pads = [pads[0] + top, pads[1] + left, pads[2] + bottom, pads[3] + right]
    name = b.tensor_name(op.outputs[0])
    window = dict(kernel_shape=[kh, kw], strides=[op.options.get("StrideH", 1), op.options.get("StrideW", 1)],
                  dilations=list(dilation), pads=pads)
    bias = []
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        bias = [b.initializer(b.constant(op.inputs[2], f"{op.code} bias").astype(np.float32), name + "_bias")]
    if out_channels == 1 and group == 1 and in_per_group > 1 and kh * kw > 1 and b.target.nchwc:
        y = _single_channel_conv(b, x, weights, bias, window, name)
    else:
        y = b.node("Conv", [x, b.initializer(weights.astype(np.float32), name + "_weights")] + bias, name, group=group, **window)
    b.set(op.outputs[0], _activation(b, y, op.options.get("FusedActivationFunction", 0), name), True)


def _single_channel_conv(b: GraphBuilder, x: str, weights: np.ndarray, bias: list[str], window: dict, name: str) -> str:
    """A KxK Conv to one output channel as a depthwise KxK Conv plus a 1x1 channel sum: onnxruntime's
    blocked layout pads output channels to its block size (8/16), so one channel would cost 8-16x.
    (Only for NCHWc targets: without that layout the plain Conv is one small GEMM.)"""
    channels = weights.shape[1]
    depthwise = b.initializer(weights.reshape(channels, 1, *weights.shape[2:]).astype(np.float32), name + "_weights")
    per_channel = b.node("Conv", [x, depthwise], name + "_per_channel", group=channels, **window)
    ones = b.shared_constant(np.ones((1, channels, 1, 1)), np.float32)
    return b.node("Conv", [per_channel, ones] + bias, name, kernel_shape=[1, 1])


def max_pool_2d(b: GraphBuilder, op: Operator) -> None:
    """MaxPool ignores its pads, like TFLite's SAME max pooling."""
    opts = op.options
    kernel = (opts.get("FilterHeight", 1), opts.get("FilterWidth", 1))
    pads = _window_pads(b, op, kernel, (1, 1))
    name = b.tensor_name(op.outputs[0])
    y = b.node("MaxPool", [b.nchw(op.inputs[0])], name, kernel_shape=list(kernel),
               strides=[opts.get("StrideH", 1), opts.get("StrideW", 1)], pads=pads)
    b.set(op.outputs[0], _activation(b, y, opts.get("FusedActivationFunction", 0), name), True)


def add(b: GraphBuilder, op: Operator) -> None:
    """ADD with its fused activation. On NCHW tensors, for NCHWc targets, a clipping activation
    (RELU6) goes after an identity 1x1 depthwise Conv: onnxruntime fuses Conv+Clip in its NCHWc
    layout (its NCHWc transformer fuses Relu but not Clip after an Add), whereas a bare Add -> Clip
    would make it leave that layout and come back (two reorders per ADD)."""
    names, nchw = _elementwise_inputs(b, op.inputs[:2])
    name = b.tensor_name(op.outputs[0])
    fused = op.options.get("FusedActivationFunction", 0)
    y = b.node("Add", names, name)
    if nchw and fused not in (_ACT_NONE, _ACT_RELU) and b.target.nchwc:
        channels = b.shape(op.outputs[0])[3]
        identity = b.shared_constant(np.ones((channels, 1, 1, 1)), np.float32)
        y = b.node("Conv", [y, identity], name, group=channels)
    b.set(op.outputs[0], _activation(b, y, fused, name), nchw)


def mul(b: GraphBuilder, op: Operator) -> None:
    """MUL with numpy broadcasting (constants rearranged for NCHW operands) and its fused activation."""
    names, nchw = _elementwise_inputs(b, op.inputs[:2])
    name = b.tensor_name(op.outputs[0])
    y = b.node("Mul", names, name)
    b.set(op.outputs[0], _activation(b, y, op.options.get("FusedActivationFunction", 0), name), nchw)


def prelu(b: GraphBuilder, op: Operator) -> None:
    """Per-channel PRELU on an NCHW tensor becomes x + (1 - alpha) * relu(-x): two 1x1 depthwise Convs
    (the first with a fused Relu, the second with the Add fused in), which onnxruntime runs in its
    blocked NCHWc layout; its own PRelu kernel is slow and breaks that layout. (Without NCHWc too: the
    Convs are faster than its PRelu kernel, palm_detection_full 15% in all.)"""
    alpha = b.constant(op.inputs[1], "PRELU alpha").astype(np.float32)
    shape = b.shape(op.inputs[0])
    name = b.tensor_name(op.outputs[0])
    if len(shape) == 4 and b.is_nchw(op.inputs[0]) and alpha.size == shape[3] and alpha.shape[-1] == shape[3]:
        channels = shape[3]
        x = b.nchw(op.inputs[0])
        minus_one = b.initializer(np.full((channels, 1, 1, 1), -1.0, np.float32), name + "_negate")
        negative = b.node("Relu", [b.node("Conv", [x, minus_one], name + "_negate", group=channels)], name + "_negative")
        slope = b.initializer((1.0 - alpha).reshape(channels, 1, 1, 1), name + "_slope")
        scaled = b.node("Conv", [negative, slope], name + "_scaled", group=channels)
        b.set(op.outputs[0], b.node("Add", [scaled, x], name), True)
        return
    names, nchw = _elementwise_inputs(b, op.inputs[:2])
    b.set(op.outputs[0], b.node("PRelu", names, name), nchw)


def pad(b: GraphBuilder, op: Operator) -> None:
    """Zero PAD. On a 4-D tensor: spatial pads stay pending so a following Conv absorbs them; for NCHWc
    targets a channel pad becomes a 1x1 Conv with 0/1 weights (exact), which keeps onnxruntime in its
    NCHWc layout."""
    paddings = b.constant(op.inputs[1], "PAD paddings").astype(np.int64).reshape(-1, 2)
    shape = b.shape(op.inputs[0])
    if paddings.shape[0] != len(shape) or (paddings < 0).any():
        raise b.fail(f"PAD paddings {paddings.tolist()} do not fit a rank-{len(shape)} tensor", "the file is inconsistent")
    name = b.tensor_name(op.outputs[0])
    (top, bottom), (left, right) = paddings[1:3] if len(shape) == 4 else ((0, 0), (0, 0))
    spatial = (int(top), int(left), int(bottom), int(right))
    if len(shape) == 4 and not paddings[0].any() and not paddings[3].any():
        b.set(op.outputs[0], b.nchw(op.inputs[0]), True, pads=spatial)  # nchw(): earlier pending pads applied
    elif len(shape) == 4 and not paddings[0].any() and b.target.nchwc:
        channels, (before, after) = shape[3], paddings[3]
        embed = np.zeros((before + channels + after, channels, 1, 1), np.float32)
        embed[before + np.arange(channels), np.arange(channels)] = 1.0
        x, pending = b.nchw_unpadded(op.inputs[0])
        pads = [p + q for p, q in zip(pending, spatial)]
        y = b.node("Conv", [x, b.initializer(embed, name + "_embed")], name, kernel_shape=[1, 1], pads=pads)
        b.set(op.outputs[0], y, True)
    else:
        nchw = len(shape) == 4
        x = b.layout_input(op.inputs[0], nchw)
        if nchw:
            paddings = paddings[list(NHWC_TO_NCHW)]
        pads = b.shared_constant(np.concatenate([paddings[:, 0], paddings[:, 1]]), np.int64)
        b.set(op.outputs[0], b.node("Pad", [x, pads], name), nchw)


def reshape(b: GraphBuilder, op: Operator) -> None:
    """Reshape with NHWC semantics: the input goes back to NHWC (free when only size-1 axes move)."""
    in_shape, out_shape = b.shape(op.inputs[0]), b.shape(op.outputs[0])
    if np.prod(in_shape, dtype=np.int64) != np.prod(out_shape, dtype=np.int64):
        raise b.fail(f"RESHAPE from {list(in_shape)} to {list(out_shape)} changes the element count", "the file is inconsistent")
    target = b.shared_constant(out_shape, np.int64)
    b.set(op.outputs[0], b.node("Reshape", [b.nhwc(op.inputs[0]), target], b.tensor_name(op.outputs[0])), False)


def concatenation(b: GraphBuilder, op: Operator) -> None:
    """Concat in NCHW when the inputs are (the NHWC axis mapped), else in the TFLite layout."""
    rank = len(b.shape(op.outputs[0]))
    axis = op.options.get("Axis", 0) % rank
    names, nchw = _elementwise_inputs(b, op.inputs)
    if nchw:
        axis = NHWC_TO_NCHW.index(axis)
    name = b.tensor_name(op.outputs[0])
    y = b.node("Concat", names, name, axis=axis)
    b.set(op.outputs[0], _activation(b, y, op.options.get("FusedActivationFunction", 0), name), nchw)


def strided_slice_ranges(shape, begin, end, strides, options) -> tuple[list[tuple[int, int, int]], list[int]]:
    """TFLite STRIDED_SLICE with constant indices, resolved against the input ``shape``.

    Returns ``(ranges, out_shape)``: one ``(start, stop, stride)`` per input axis (Python ``range``
    semantics: ``stop`` -1 with a negative stride means "down to index 0 included") and the output
    shape. Follows the TFLite kernel: the ellipsis bit expands to the axes the spec leaves out (a
    new-axis bit at the ellipsis has no effect); a new-axis bit inserts a size-1 axis; spec entries
    past the given ones take the whole axis; a negative index counts from the end; begin/end are
    clamped to the axis ([0, n] going forward, [-1, n-1] going backward), then a begin/end mask bit
    takes the whole extent; ``offset`` makes end relative to the (resolved) begin; a shrink bit keeps
    the one element at begin and drops the axis. Raises ValueError on a zero stride or an index out of
    range on a shrunk axis.
    """
    begin, end, strides = (list(map(int, np.asarray(v).reshape(-1))) for v in (begin, end, strides))
    if not len(begin) == len(end) == len(strides):
        raise ValueError("begin, end and strides differ in length")
    bit = lambda mask, i: bool(int(options.get(mask, 0)) >> i & 1)  # noqa: E731
    count, rank = len(begin), len(shape)
    ellipsis = [i for i in range(count) if bit("EllipsisMask", i)]
    if len(ellipsis) > 1:
        raise ValueError("more than one ellipsis")
    new_axes = sum(1 for i in range(count) if bit("NewAxisMask", i) and not bit("EllipsisMask", i))
    # the spec, expanded to one entry per output-producing axis: ("axis", spec index | None) or ("new",)
    entries: list[tuple] = []
    for i in range(count):
        if bit("EllipsisMask", i):
            entries += [("axis", None)] * max(rank - (count - 1 - new_axes), 0)
        elif bit("NewAxisMask", i):
            entries.append(("new",))
        else:
            entries.append(("axis", i))
    entries += [("axis", None)] * (rank - sum(1 for e in entries if e[0] == "axis"))
    if sum(1 for e in entries if e[0] == "axis") != rank:
        raise ValueError("the slice spec has more axes than the input")
    ranges, out_shape, axis = [], [], 0
    for entry in entries:
        if entry[0] == "new":
            out_shape.append(1)
            continue
        size, i = int(shape[axis]), entry[1]
        axis += 1
        if i is None:
            ranges.append((0, size, 1))
            out_shape.append(size)
            continue
        stride = strides[i]
        if stride == 0:
            raise ValueError("zero stride")
        lo, hi = (0, size) if stride > 0 else (-1, size - 1)
        start = begin[i] + size if begin[i] < 0 else begin[i]
        start = min(max(start, lo), hi)
        if bit("BeginMask", i):
            start = 0 if stride > 0 else size - 1
        if bit("ShrinkAxisMask", i):
            if not 0 <= start < size:
                raise ValueError("shrunk axis index out of range")
            ranges.append((start, start + 1, 1))
            continue
        stop = end[i] + start if options.get("Offset", False) else end[i]
        stop = stop + size if stop < 0 else stop
        stop = min(max(stop, lo), hi)
        if bit("EndMask", i):
            stop = size if stride > 0 else -1
        ranges.append((start, stop, stride))
        out_shape.append(len(range(start, stop, stride)))
    return ranges, out_shape


def strided_slice(b: GraphBuilder, op: Operator) -> None:
    """STRIDED_SLICE with constant begin/end/strides: an ONNX Slice over the axes it narrows, then a
    Reshape where axes are added or dropped. On an NCHW tensor with neither it slices in NCHW (the
    axes mapped); a slice that keeps everything passes its input on; a constant input is folded."""
    shape = b.shape(op.inputs[0])
    begin, end, strides = (b.constant(i, f"STRIDED_SLICE {role}") for i, role in zip(op.inputs[1:4], ("begin", "end", "strides")))
    ranges, out_shape = strided_slice_ranges(shape, begin, end, strides, op.options)
    if 0 in out_shape:
        raise b.fail(f"STRIDED_SLICE of {list(shape)} gives an empty tensor {out_shape}", "the file is inconsistent")
    if tuple(out_shape) != tuple(b.shape(op.outputs[0])):
        raise b.fail(f"STRIDED_SLICE of {list(shape)} gives {out_shape}, the file says {list(b.shape(op.outputs[0]))}",
                     "the file is inconsistent")
    if op.inputs[0] in b.constants:
        index = tuple(slice(start, None if stop < 0 else stop, step) for start, stop, step in ranges)
        b.set_constant(op.outputs[0], np.ascontiguousarray(b.constants[op.inputs[0]][index]).reshape(out_shape))
        return
    name = b.tensor_name(op.outputs[0])
    narrowed = [a for a, (start, stop, step) in enumerate(ranges) if (start, stop, step) != (0, shape[a], 1)]
    reshaped = len(out_shape) != len(shape)
    nchw = len(shape) == 4 and not reshaped and b.is_nchw(op.inputs[0])
    if not narrowed and not reshaped:
        if op.outputs[0] in b.graph.outputs:  # a graph output needs a node of its own to be named by
            b.set(op.outputs[0], b.node("Identity", [b.nhwc(op.inputs[0])], name), False)
        else:
            b.set(op.outputs[0], b.layout_input(op.inputs[0], nchw), nchw)
        return
    y = b.layout_input(op.inputs[0], nchw)
    if narrowed:
        axes = [NHWC_TO_NCHW.index(a) if nchw else a for a in narrowed]
        starts = [ranges[a][0] for a in narrowed]
        # a stop of -1 going backward means "past index 0": ONNX reads -1 as the last element, so
        # give it -(n + 1), which ONNX maps to -1
        ends = [ranges[a][1] if ranges[a][1] >= 0 else -(shape[a] + 1) for a in narrowed]
        steps = [ranges[a][2] for a in narrowed]
        consts = [b.shared_constant(v, np.int64) for v in (starts, ends, axes, steps)]
        y = b.node("Slice", [y] + consts, name)
    if reshaped:
        y = b.node("Reshape", [y, b.shared_constant(out_shape, np.int64)], name)
    b.set(op.outputs[0], y, nchw)


def resize_bilinear(b: GraphBuilder, op: Operator) -> None:
    """TFLite align_corners / half_pixel_centers map to ONNX align_corners / half_pixel / asymmetric."""
    align, half = op.options.get("AlignCorners", False), op.options.get("HalfPixelCenters", False)
    if align and half:
        raise b.fail("RESIZE_BILINEAR with both align_corners and half_pixel_centers", "the file is inconsistent")
    mode = "align_corners" if align else "half_pixel" if half else "asymmetric"
    n, h, w, c = b.shape(op.outputs[0])
    if op.inputs[1] in b.constants and b.constants[op.inputs[1]].reshape(-1).tolist() != [h, w]:
        raise b.fail(f"RESIZE_BILINEAR size does not match its output shape {[n, h, w, c]}", "the file is inconsistent")
    sizes = b.shared_constant([n, c, h, w], np.int64)
    y = b.node("Resize", [b.nchw(op.inputs[0]), "", "", sizes], b.tensor_name(op.outputs[0]),
               mode="linear", coordinate_transformation_mode=mode)
    b.set(op.outputs[0], y, True)


def depth_to_space(b: GraphBuilder, op: Operator) -> None:
    """TFLite DEPTH_TO_SPACE on NHWC splits channels as (row, col, c): ONNX DCR mode on NCHW."""
    block = op.options.get("BlockSize", 2)
    n, h, w, c = b.shape(op.inputs[0])
    if block < 1 or c % (block * block) or b.shape(op.outputs[0]) != (n, h * block, w * block, c // (block * block)):
        raise b.fail(f"DEPTH_TO_SPACE block size {block} does not fit its shapes", "the file is inconsistent")
    y = b.node("DepthToSpace", [b.nchw(op.inputs[0])], b.tensor_name(op.outputs[0]), blocksize=block, mode="DCR")
    b.set(op.outputs[0], y, True)


def mean(b: GraphBuilder, op: Operator) -> None:
    """MEAN stays NCHW when the kept axes come out in NHWC order (e.g. a spatial mean to [N, C])."""
    rank = len(b.shape(op.inputs[0]))
    axes = sorted({int(a) % rank for a in b.constant(op.inputs[1], "MEAN axes").reshape(-1)})
    keep = bool(op.options.get("KeepDims", False))
    kept = [a for a in range(rank) if a not in axes]
    nchw = rank == 4 and b.is_nchw(op.inputs[0]) and (keep or [a for a in NHWC_TO_NCHW if a in kept] == kept)
    if nchw:
        axes = sorted(NHWC_TO_NCHW.index(a) for a in axes)
    y = b.node("ReduceMean", [b.layout_input(op.inputs[0], nchw)], b.tensor_name(op.outputs[0]),
               axes=axes, keepdims=int(keep))
    b.set(op.outputs[0], y, nchw and keep)


def fully_connected(b: GraphBuilder, op: Operator) -> None:
    """Gemm on the input flattened (NHWC order) to [rows, in]; reshaped to the output shape if needed."""
    opts = op.options
    if opts.get("WeightsFormat", 0) != 0:
        raise b.fail("FULLY_CONNECTED with shuffled weights is not supported")
    weights = b.constant(op.inputs[1], "FULLY_CONNECTED weights")  # out, in
    name = b.tensor_name(op.outputs[0])
    x = b.nhwc(op.inputs[0])
    in_shape = b.shape(op.inputs[0])
    if len(in_shape) != 2 or in_shape[1] != weights.shape[1]:
        x = b.node("Reshape", [x, b.shared_constant([-1, weights.shape[1]], np.int64)], name + "_flat")
    inputs = [x, b.initializer(weights.astype(np.float32), name + "_weights")]
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        inputs.append(b.initializer(b.constant(op.inputs[2], "FULLY_CONNECTED bias").astype(np.float32), name + "_bias"))
    y = b.node("Gemm", inputs, name, transB=1)
    rows = int(np.prod(in_shape, dtype=np.int64)) // weights.shape[1]
    out_shape = b.shape(op.outputs[0])
    if tuple(out_shape) != (rows, weights.shape[0]):
        y = b.node("Reshape", [y, b.shared_constant(out_shape, np.int64)], name)
    b.set(op.outputs[0], _activation(b, y, opts.get("FusedActivationFunction", 0), name), False)


def dequantize(b: GraphBuilder, op: Operator) -> None:
    """fp16 constant -> fp32 constant, folded at conversion time."""
    data = b.constant(op.inputs[0], "DEQUANTIZE input")
    if data.dtype != np.float16:
        raise b.fail(f"DEQUANTIZE of {data.dtype.name} tensors is not supported", "use the float model")
    b.set_constant(op.outputs[0], data.astype(np.float32))


def densify(b: GraphBuilder, op: Operator) -> None:
    """Sparse constants are densified while reading; DENSIFY just passes the dense value on."""
    b.set_constant(op.outputs[0], b.constant(op.inputs[0], "DENSIFY input"))


HANDLERS: dict[str, Callable[[GraphBuilder, Operator], None]] = {
    "ADD": add,
    "CONCATENATION": concatenation,
    "CONV_2D": conv_2d,
    "DENSIFY": densify,
    "DEPTH_TO_SPACE": depth_to_space,
    "DEPTHWISE_CONV_2D": depthwise_conv_2d,
    "DEQUANTIZE": dequantize,
    "FULLY_CONNECTED": fully_connected,
    "LOGISTIC": _unary("Sigmoid"),
    "MAX_POOL_2D": max_pool_2d,
    "MEAN": mean,
    "MUL": mul,
    "PAD": pad,
    "PRELU": prelu,
    "RELU": _unary("Relu"),
    "RESHAPE": reshape,
    "RESIZE_BILINEAR": resize_bilinear,
    "STRIDED_SLICE": strided_slice,
    **CUSTOM_HANDLERS,
}
