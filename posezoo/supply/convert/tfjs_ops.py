"""TF.js graph op -> ONNX node handlers, and the dispatch table :data:`HANDLERS`.

Each handler takes the :class:`TfjsBuilder` and one graph :class:`Node`, emits ONNX nodes (the builder
folds those whose inputs are all constants) and records its output tensors. Semantics follow TF.js's
kernels: int32 wherever TF.js computes in int32 (ONNX indices are int64 only inside a handler), floor
division rounding down, TF's SAME padding, StridedSlice's masks, ArgMax/TopK ties to the lower index.

Convolutions, pooling and resizing run NCHW; elementwise ops follow their inputs' layout (NCHW when some
input is NCHW and every non-constant input is 4-D); everything else runs in TF's NHWC layout.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from posezoo.supply.convert.builder import NHWC_TO_NCHW
from posezoo.supply.convert.tfjs_builder import Tensor, TfjsBuilder
from posezoo.supply.convert.tfjs_reader import TF_DTYPES, Node, split_ref

_INT64_MAX = np.iinfo(np.int64).max
_INT64_MIN = np.iinfo(np.int64).min


# -- shared helpers ------------------------------------------------------------------------------

def _out(node: Node, k: int = 0) -> str:
    return node.name if k == 0 else f"{node.name}:{k}"


def _int64(b: TfjsBuilder, name: str, base: str) -> str:
    return b.node("Cast", [name], base + "_i64", to=7) if b.types[name][0] != np.int64 else name


def _int32(b: TfjsBuilder, name: str, base: str) -> str:
    return b.node("Cast", [name], base, to=6) if b.types[name][0] != np.int32 else name


def _axis(b: TfjsBuilder, value, rank: int, what: str) -> int:
    axis = int(np.asarray(value).reshape(-1)[0]) if np.asarray(value).size == 1 else None
    if axis is None or not -rank <= axis < rank:
        raise b.fail(f"{what} {value} is out of range for rank {rank}", "the model.json is inconsistent")
    return axis % rank


def _nchw_constant(array: np.ndarray) -> np.ndarray:
    """A constant that broadcasts against an NHWC tensor, rearranged to broadcast against NCHW."""
    array = array.reshape((1,) * (4 - array.ndim) + array.shape)
    return array.transpose(NHWC_TO_NCHW)


def _per_channel(t: Tensor) -> bool:
    """A constant that varies along the last (channel) axis only, e.g. an image mean [1, 1, 1, 3]."""
    return t.rank >= 1 and t.shape[-1] != 1 and all(d == 1 for d in t.shape[:-1])


def _elementwise_inputs(b: TfjsBuilder, refs) -> tuple[list[str], bool]:
    """The inputs of an elementwise op in one layout: NCHW when every non-constant input is 4-D and
    some input already is NCHW, or a constant is per channel (onnxruntime broadcasts a per-channel
    constant over NHWC one pixel at a time, over NCHW a whole plane at a time). Constants of rank <= 4
    are rearranged to broadcast the same way."""
    tensors = [b.get(r) for r in refs]
    active = [t for t in tensors if t.name not in b.consts]
    channelwise = any(_per_channel(t) for t in tensors if t.name in b.consts)
    nchw = (bool(active) and (any(t.nchw for t in active) or channelwise)
            and all(t.rank == 4 for t in active) and all(t.rank <= 4 for t in tensors))
    names = []
    for ref, t in zip(refs, tensors):
        if t.name in b.consts:
            value = b.const_value(ref)
            names.append(b.constant(_nchw_constant(value), base=ref + "_nchw") if nchw else t.name)
        else:
            names.append(b.layout_input(ref, nchw))
    return names, nchw


def _promoted(b: TfjsBuilder, names: list[str], base: str) -> list[str]:
    """Inputs of different types cast to the wider one, as TF.js does (bool < int32 < float32)."""
    dtypes = [b.types[n][0] for n in names]
    if len(set(dtypes)) < 2:
        return names
    wide = max(dtypes, key=lambda d: _RANK.get(np.dtype(d), 3))
    return [n if d == wide else b.node("Cast", [n], base + "_cast", to=_onnx_type(wide)) for n, d in zip(names, dtypes)]


_RANK = {np.dtype("bool"): 0, np.dtype("int32"): 1, np.dtype("float32"): 2}


def _binary(onnx_op: str) -> Callable[[TfjsBuilder, Node], None]:
    def handler(b: TfjsBuilder, node: Node) -> None:
        names, nchw = _elementwise_inputs(b, node.inputs[:2])
        b.set(node.name, b.node(onnx_op, _promoted(b, names, node.name), node.name), nchw)

    return handler


def real_div(b: TfjsBuilder, node: Node) -> None:
    """Division; of two int32 tensors, TF.js divides with floor division."""
    if all(b.get(r).dtype == np.int32 for r in node.inputs[:2]):
        floor_div(b, node)
        return
    _binary("Div")(b, node)


def _unary(onnx_op: str) -> Callable[[TfjsBuilder, Node], None]:
    def handler(b: TfjsBuilder, node: Node) -> None:
        t = b.get(node.inputs[0])
        b.set(node.name, b.node(onnx_op, [t.name], node.name), t.nchw)

    return handler


def _dtype_attr(b: TfjsBuilder, node: Node, key: str) -> np.dtype:
    dtype = TF_DTYPES.get(node.attrs.get(key))
    if dtype is None:
        raise b.fail(f"node {node.name!r} ({node.op}) has type {node.attrs.get(key)}",
                     "only float32, int32 and bool tensors are supported")
    return dtype


def _onnx_type(dtype: np.dtype) -> int:
    return {np.dtype("float32"): 1, np.dtype("int32"): 6, np.dtype("bool"): 9, np.dtype("int64"): 7}[np.dtype(dtype)]


# -- windows: convolution and pooling ------------------------------------------------------------

def _window(b: TfjsBuilder, node: Node, x: Tensor, kernel: tuple[int, int], strides, dilations) -> dict:
    """ONNX window attributes for TF padding SAME / VALID / EXPLICIT on NHWC ``x``. SAME pads are
    explicit when they do not depend on the input size (stride 1, or a known size), else auto_pad."""
    padding = node.attrs.get("padding", "VALID")
    window = dict(kernel_shape=list(kernel), strides=list(strides))
    if padding == "VALID":
        window["pads"] = [0, 0, 0, 0]
    elif padding == "EXPLICIT":
        explicit = list(node.attrs.get("explicit_paddings", []))
        if len(explicit) != 8 or any(p < 0 for p in explicit) or any(explicit[:2]) or any(explicit[6:]):
            raise b.fail(f"node {node.name!r} has explicit paddings {explicit}", "the model.json is inconsistent")
        window["pads"] = [explicit[2], explicit[4], explicit[3], explicit[5]]
    elif padding == "SAME":
        before, after = [], []
        for size, k, s, d in zip(x.shape[1:3], kernel, strides, dilations):
            extent = (k - 1) * d + 1
            if s == 1:
                total = extent - 1
            elif isinstance(size, int):
                total = max((math.ceil(size / s) - 1) * s + extent - size, 0)
            else:
                window["auto_pad"] = "SAME_UPPER"
                return window
            before.append(total // 2)
            after.append(total - total // 2)
        window["pads"] = before + after
    else:
        raise b.fail(f"node {node.name!r} has padding {padding!r}", "the model.json is inconsistent")
    return window


def _hw(b: TfjsBuilder, node: Node, key: str) -> tuple[int, int]:
    values = list(node.attrs.get(key, [1, 1, 1, 1]))
    if len(values) != 4 or values[0] != 1 or values[3] != 1 or min(values) < 1:
        raise b.fail(f"node {node.name!r} has {key} {values}", "only NHWC windows over height and width are supported")
    return values[1], values[2]


def _check_nhwc(b: TfjsBuilder, node: Node) -> None:
    fmt = node.attrs.get("data_format", "NHWC")
    if fmt != "NHWC":
        raise b.fail(f"node {node.name!r} ({node.op}) has data format {fmt}", "only NHWC models are supported")


def _activation(b: TfjsBuilder, node: Node, y: str, activation: str | None, prelu: str | None) -> str:
    base = node.name
    if activation is None:
        return y
    if activation == "relu":
        return b.node("Relu", [y], base)
    if activation == "relu6":
        return b.node("Clip", [y, b.constant(0.0, np.float32), b.constant(6.0, np.float32)], base)
    if activation == "elu":
        return b.node("Elu", [y], base, alpha=1.0)
    if activation == "sigmoid":
        return b.node("Sigmoid", [y], base)
    if activation == "leakyrelu":
        return b.node("LeakyRelu", [y], base, alpha=float(node.attrs.get("leakyrelu_alpha", 0.2)))
    if activation == "prelu":
        alpha = b.require_const(prelu, "PReLU alpha").astype(np.float32)
        slope = _nchw_constant(alpha)[0] if alpha.ndim <= 4 else None
        if slope is None:
            raise b.fail(f"node {node.name!r} has a PReLU alpha of rank {alpha.ndim}")
        return b.node("PRelu", [y, b.constant(slope, base=base + "_alpha")], base)
    raise b.fail(f"node {node.name!r} fuses activation {activation!r}")


def _fused_args(b: TfjsBuilder, node: Node) -> tuple[str | None, str | None, str | None]:
    """(bias ref, activation, prelu alpha ref) of a fused convolution, as TF.js reads them."""
    ops = [s.lower() for s in node.attrs.get("fused_ops", [])]
    extra, activation = (ops + [None, None])[:2]
    if extra == "fusedbatchnorm":
        raise b.fail(f"node {node.name!r} fuses FusedBatchNorm (TF.js cannot run it either)")
    if extra not in (None, "biasadd") and activation is None:
        extra, activation = None, extra
    args = list(node.inputs[2:])
    num_args = node.attrs.get("num_args", len(args))
    if extra == "biasadd" and num_args != (2 if activation == "prelu" else 1):
        raise b.fail(f"node {node.name!r} fuses {ops} with {num_args} extra arguments", "the model.json is inconsistent")
    if len(args) < num_args:
        raise b.fail(f"node {node.name!r} has {len(args)} extra arguments, expects {num_args}", "the model.json is inconsistent")
    if extra == "biasadd":
        return args[0], activation, args[1] if activation == "prelu" else None
    return None, activation, args[0] if activation == "prelu" else None


def _conv(b: TfjsBuilder, node: Node, weights: np.ndarray, group: int, bias_ref, activation, prelu_ref) -> None:
    """Conv on NCHW with OIHW ``weights``, bias and the fused activation."""
    _check_nhwc(b, node)
    x = b.get(node.inputs[0])
    if x.rank != 4 or x.shape[3] != weights.shape[1] * group:
        raise b.fail(f"node {node.name!r}: filter {list(weights.shape)} does not fit input {list(x.shape)}",
                     "the model.json is inconsistent")
    strides, dilations = _hw(b, node, "strides"), _hw(b, node, "dilations")
    window = _window(b, node, x, weights.shape[2:], strides, dilations)
    inputs = [b.nchw(node.inputs[0]), b.constant(weights.astype(np.float32), base=node.name + "_oihw")]
    if bias_ref is not None:
        bias = b.require_const(bias_ref, "convolution bias").astype(np.float32).reshape(-1)
        if bias.size != weights.shape[0]:
            raise b.fail(f"node {node.name!r}: bias of {bias.size} for {weights.shape[0]} channels", "the model.json is inconsistent")
        inputs.append(b.constant(bias, base=node.name + "_bias"))
    y = b.node("Conv", inputs, node.name, group=group, dilations=list(dilations), **window)
    b.set(node.name, _activation(b, node, y, activation, prelu_ref), True)


# -- handlers: convolution, pooling, resizing ----------------------------------------------------

def fused_conv2d(b: TfjsBuilder, node: Node) -> None:
    filt = b.require_const(node.inputs[1], "convolution filter")  # KH, KW, I, O
    if filt.ndim != 4:
        raise b.fail(f"node {node.name!r} has a filter of rank {filt.ndim}", "the model.json is inconsistent")
    _conv(b, node, filt.transpose(3, 2, 0, 1), 1, *_fused_args(b, node))


def conv2d(b: TfjsBuilder, node: Node) -> None:
    filt = b.require_const(node.inputs[1], "convolution filter")
    if filt.ndim != 4:
        raise b.fail(f"node {node.name!r} has a filter of rank {filt.ndim}", "the model.json is inconsistent")
    _conv(b, node, filt.transpose(3, 2, 0, 1), 1, None, None, None)


def _depthwise_weights(b: TfjsBuilder, node: Node) -> np.ndarray:
    filt = b.require_const(node.inputs[1], "depthwise filter")  # KH, KW, C, M
    if filt.ndim != 4:
        raise b.fail(f"node {node.name!r} has a filter of rank {filt.ndim}", "the model.json is inconsistent")
    kh, kw, c, m = filt.shape
    return filt.transpose(2, 3, 0, 1).reshape(c * m, 1, kh, kw)  # output channel c * M + m


def fused_depthwise(b: TfjsBuilder, node: Node) -> None:
    weights = _depthwise_weights(b, node)
    _conv(b, node, weights, b.get(node.inputs[0]).shape[3], *_fused_args(b, node))


def depthwise(b: TfjsBuilder, node: Node) -> None:
    weights = _depthwise_weights(b, node)
    _conv(b, node, weights, b.get(node.inputs[0]).shape[3], None, None, None)


def max_pool(b: TfjsBuilder, node: Node) -> None:
    """TF's SAME max pooling ignores the padded cells, as ONNX MaxPool does."""
    _check_nhwc(b, node)
    x = b.get(node.inputs[0])
    kernel, strides = _hw(b, node, "ksize"), _hw(b, node, "strides")
    window = _window(b, node, x, kernel, strides, (1, 1))
    b.set(node.name, b.node("MaxPool", [b.nchw(node.inputs[0])], node.name, **window), True)


def resize_bilinear(b: TfjsBuilder, node: Node) -> None:
    """align_corners / half_pixel_centers map to ONNX align_corners / half_pixel / asymmetric. A size
    computed as ``input height and width * k`` (Keras UpSampling2D) becomes constant scales."""
    align, half = bool(node.attrs.get("align_corners", False)), bool(node.attrs.get("half_pixel_centers", False))
    if align and half:
        raise b.fail(f"node {node.name!r} has both align_corners and half_pixel_centers", "the model.json is inconsistent")
    mode = "align_corners" if align else "half_pixel" if half else "asymmetric"
    x = b.get(node.inputs[0])
    if x.rank != 4:
        raise b.fail(f"node {node.name!r} resizes a rank-{x.rank} tensor", "the model.json is inconsistent")
    size = b.const_value(node.inputs[1])
    scales = _upsampling_factors(b, node.inputs[1], node.inputs[0]) if size is None else None
    if scales is not None:
        inputs = [b.nchw(node.inputs[0]), "", b.constant([1.0, 1.0, *scales], np.float32, "scales")]
    elif size is not None and isinstance(x.shape[0], int) and isinstance(x.shape[3], int):
        size = size.reshape(-1).astype(np.int64)
        inputs = [b.nchw(node.inputs[0]), "", "", b.constant([x.shape[0], x.shape[3], *size], np.int64, "sizes")]
    else:
        xn = b.nchw(node.inputs[0])
        batch_channels = b.node("Slice", [b.node("Shape", [xn], node.name + "_shape"), b.constant([0], np.int64),
                                          b.constant([2], np.int64)], node.name + "_nc")
        hw = _int64(b, b.nhwc(node.inputs[1]), node.name + "_size")
        inputs = [xn, "", "", b.node("Concat", [batch_channels, hw], node.name + "_sizes", axis=0)]
    y = b.node("Resize", inputs, node.name, mode="linear", coordinate_transformation_mode=mode)
    b.set(node.name, y, True)


def _upsampling_factors(b: TfjsBuilder, size_ref: str, x_ref: str) -> list[float] | None:
    """(k_h, k_w) when ``size_ref`` is ``Shape(x)[1:3] * k`` with constant integer k, else None."""
    nodes = b.model.nodes
    mul = nodes.get(split_ref(size_ref)[0])
    if mul is None or mul.op != "Mul" or split_ref(size_ref)[1] != 0:
        return None
    for dims_ref, k_ref in (mul.inputs, mul.inputs[::-1]):
        k = b.const_value(k_ref)
        sliced = nodes.get(split_ref(dims_ref)[0])
        if k is None or sliced is None or sliced.op != "StridedSlice" or split_ref(dims_ref)[1] != 0:
            continue
        shape_node = nodes.get(split_ref(sliced.inputs[0])[0])
        if shape_node is None or shape_node.op != "Shape" or shape_node.inputs[0] != x_ref:
            continue
        bounds = [b.const_value(r) for r in sliced.inputs[1:4]]
        masks = [sliced.attrs.get(m, 0) for m in ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask")]
        if any(v is None for v in bounds) or any(masks):
            continue
        if [v.reshape(-1).tolist() for v in bounds] != [[1], [3], [1]]:
            continue
        k = k.reshape(-1)
        if k.size not in (1, 2) or (k < 1).any():
            continue
        factors = [float(v) for v in np.broadcast_to(k, (2,))]
        return factors
    return None


# -- handlers: elementwise -----------------------------------------------------------------------

def squared_difference(b: TfjsBuilder, node: Node) -> None:
    names, nchw = _elementwise_inputs(b, node.inputs[:2])
    d = b.node("Sub", names, node.name + "_diff")
    b.set(node.name, b.node("Mul", [d, d], node.name), nchw)


def floor_div(b: TfjsBuilder, node: Node) -> None:
    """Floor division; TF.js computes ``Math.floor(a / b)`` in double precision and returns int32
    whatever the input type. Floats: divided in float64, floored, cast. Integers: the truncating Div
    corrected down by one where the remainder is non-zero and of the other sign than the divisor."""
    names, nchw = _elementwise_inputs(b, node.inputs[:2])
    a, d = _promoted(b, names, node.name)
    if b.types[a][0] != np.int32:
        wide = [b.node("Cast", [v], node.name + "_f64", to=11) for v in (a, d)]
        q = b.node("Floor", [b.node("Div", wide, node.name + "_div")], node.name + "_floor")
        b.set(node.name, b.node("Cast", [q], node.name, to=6), nchw)
        return
    q = b.node("Div", [a, d], node.name + "_trunc")
    r = b.node("Sub", [a, b.node("Mul", [q, d], node.name + "_back")], node.name + "_rem")
    zero = b.constant(0, np.int32)
    divisor = b.const_value(node.inputs[1])
    if divisor is not None and (divisor > 0).all():
        wrong = b.node("Less", [r, zero], node.name + "_neg")
    else:
        signs = b.node("Xor", [b.node("Less", [r, zero], node.name + "_rneg"), b.node("Less", [d, zero], node.name + "_dneg")],
                       node.name + "_signs")
        nonzero = b.node("Not", [b.node("Equal", [r, zero], node.name + "_exact")], node.name + "_inexact")
        wrong = b.node("And", [signs, nonzero], node.name + "_wrong")
    fix = b.node("Cast", [wrong], node.name + "_fix", to=6)
    b.set(node.name, b.node("Sub", [q, fix], node.name), nchw)


def add_n(b: TfjsBuilder, node: Node) -> None:
    names, nchw = _elementwise_inputs(b, node.inputs)
    if len(names) == 1:
        b.alias(node.name, node.inputs[0])
        return
    b.set(node.name, b.node("Sum", names, node.name), nchw)


def select(b: TfjsBuilder, node: Node) -> None:
    """Select and SelectV2 both broadcast, as in TF.js (``tf.where``)."""
    names, nchw = _elementwise_inputs(b, node.inputs[:3])
    b.set(node.name, b.node("Where", names, node.name), nchw)


def cast(b: TfjsBuilder, node: Node) -> None:
    t = b.get(node.inputs[0])
    dtype = _dtype_attr(b, node, "DstT")
    if t.dtype == dtype:
        b.alias(node.name, node.inputs[0])
        return
    b.set(node.name, b.node("Cast", [t.name], node.name, to=_onnx_type(dtype)), t.nchw)


def identity(b: TfjsBuilder, node: Node) -> None:
    b.alias(node.name, node.inputs[0])


# -- handlers: shapes and indexing ---------------------------------------------------------------

def reshape(b: TfjsBuilder, node: Node) -> None:
    """Reshape in TF layout; a 0 in the target shape is a zero-size dimension (allowzero)."""
    x = b.nhwc(node.inputs[0])
    shape = b.const_value(node.inputs[1])
    target = (b.constant(shape.reshape(-1).astype(np.int64), base=node.name + "_shape") if shape is not None
              else _int64(b, b.nhwc(node.inputs[1]), node.name + "_shape"))
    b.set(node.name, b.node("Reshape", [x, target], node.name, allowzero=int(shape is None or 0 in shape)))


def squeeze(b: TfjsBuilder, node: Node) -> None:
    t = b.get(node.inputs[0])
    dims = [d % t.rank for d in node.attrs.get("squeeze_dims", node.attrs.get("axis", []))]
    if not dims:
        if not t.static:
            raise b.fail(f"node {node.name!r} squeezes all size-1 axes of {list(t.shape)}, some of unknown size")
        dims = [a for a, d in enumerate(t.shape) if d == 1]
    if not dims:
        b.alias(node.name, node.inputs[0])
        return
    axes = b.constant(sorted(set(dims)), np.int64)
    b.set(node.name, b.node("Squeeze", [b.nhwc(node.inputs[0]), axes], node.name))


def expand_dims(b: TfjsBuilder, node: Node) -> None:
    t = b.get(node.inputs[0])
    axis = _axis(b, b.require_const(node.inputs[1], "ExpandDims axis"), t.rank + 1, "ExpandDims axis")
    axes = b.constant([axis], np.int64)
    b.set(node.name, b.node("Unsqueeze", [b.nhwc(node.inputs[0]), axes], node.name))


def pack(b: TfjsBuilder, node: Node) -> None:
    """Stack along a new axis. As in TF.js, inputs of another shape (but the same one without its
    size-1 axes) are first reshaped to the first input's shape."""
    first = b.get(node.inputs[0])
    axis = _axis(b, node.attrs.get("axis", 0), first.rank + 1, "Pack axis")
    axes = b.constant([axis], np.int64)
    parts = []
    for ref in node.inputs:
        x, t = b.nhwc(ref), b.get(ref)
        if t.rank != first.rank or (t.static and first.static and t.shape != first.shape):
            squeezed = [d for d in t.shape if d != 1], [d for d in first.shape if d != 1]
            if not first.static or squeezed[0] != squeezed[1]:
                raise b.fail(f"node {node.name!r} stacks shapes {list(first.shape)} and {list(t.shape)}",
                             "the model.json is inconsistent")
            x = b.node("Reshape", [x, b.constant(list(first.shape), np.int64)], node.name + "_like_first")
        parts.append(b.node("Unsqueeze", [x, axes], node.name + "_part"))
    b.set(node.name, parts[0] if len(parts) == 1 else b.node("Concat", parts, node.name, axis=axis))


def unpack(b: TfjsBuilder, node: Node) -> None:
    t = b.get(node.inputs[0])
    axis = _axis(b, node.attrs.get("axis", 0), t.rank, "Unpack axis")
    num = int(node.attrs.get("num", t.shape[axis] if isinstance(t.shape[axis], int) else 0))
    if num < 1 or (isinstance(t.shape[axis], int) and t.shape[axis] != num):
        raise b.fail(f"node {node.name!r} unpacks {num} from axis {axis} of {list(t.shape)}", "the model.json is inconsistent")
    x = b.nhwc(node.inputs[0])
    parts = b.emit("Split", [x], node.name + "_split", outputs=num, axis=axis) if num > 1 else [x]
    axes = b.constant([axis], np.int64)
    for k, part in enumerate(parts):
        b.set(_out(node, k), b.node("Squeeze", [part, axes], _out(node, k)))


def concat(b: TfjsBuilder, node: Node) -> None:
    refs, axis_ref = node.inputs[:-1], node.inputs[-1]
    rank = b.get(refs[0]).rank
    axis = _axis(b, b.require_const(axis_ref, "ConcatV2 axis"), rank, "ConcatV2 axis")
    names, nchw = _elementwise_inputs(b, refs)
    if nchw:
        axis = NHWC_TO_NCHW.index(axis)
    y = names[0] if len(names) == 1 else b.node("Concat", names, node.name, axis=axis)
    b.set(node.name, y, nchw)


def split(b: TfjsBuilder, node: Node) -> None:
    t = b.get(node.inputs[1])
    axis = _axis(b, b.require_const(node.inputs[0], "Split axis"), t.rank, "Split axis")
    num = int(node.attrs.get("num_split", 1))
    if num < 1 or (isinstance(t.shape[axis], int) and t.shape[axis] % num):
        raise b.fail(f"node {node.name!r} splits axis {axis} of {list(t.shape)} into {num}", "the model.json is inconsistent")
    x = b.nhwc(node.inputs[1])
    parts = b.emit("Split", [x], node.name, outputs=num, axis=axis) if num > 1 else [x]
    for k, part in enumerate(parts):
        b.set(_out(node, k), part)


def shape(b: TfjsBuilder, node: Node) -> None:
    t = b.get(node.inputs[0])
    if t.static:
        b.set(node.name, b.constant(list(t.shape), np.int32, node.name))
        return
    s = b.node("Shape", [t.name], node.name + "_i64")
    if t.nchw:
        s = b.node("Gather", [s, b.constant([0, 2, 3, 1], np.int64)], node.name + "_nhwc", axis=0)
    b.set(node.name, _int32(b, s, node.name))


def size(b: TfjsBuilder, node: Node) -> None:
    t = b.get(node.inputs[0])
    if t.static:
        b.set(node.name, b.constant(math.prod(t.shape), np.int32, node.name))
        return
    b.set(node.name, _int32(b, b.node("Size", [t.name], node.name + "_i64"), node.name))


def strided_slice(b: TfjsBuilder, node: Node) -> None:
    """TF StridedSlice (begin/end/ellipsis/new-axis/shrink masks) as Slice, Squeeze and Unsqueeze."""
    t = b.get(node.inputs[0])
    begin, end, strides = (b.require_const(r, "StridedSlice bounds").reshape(-1).astype(np.int64) for r in node.inputs[1:4])
    if not len(begin) == len(end) == len(strides) or (strides == 0).any():
        raise b.fail(f"node {node.name!r} has bounds {begin.tolist()}, {end.tolist()}, {strides.tolist()}",
                     "the model.json is inconsistent")
    masks = {m: int(node.attrs.get(m, 0)) for m in ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask")}
    bit = lambda m, i: bool(masks[m] >> i & 1)  # noqa: E731
    dense = []  # ("new",) | ("full", axis) | ("dim", axis, i)
    axis = 0
    for i in range(len(begin)):
        if bit("ellipsis_mask", i):
            after = sum(1 for j in range(i + 1, len(begin)) if not bit("new_axis_mask", j))
            while axis < t.rank - after:
                dense.append(("full", axis))
                axis += 1
        elif bit("new_axis_mask", i):
            dense.append(("new",))
        else:
            dense.append(("dim", axis, i))
            axis += 1
    if axis > t.rank:
        raise b.fail(f"node {node.name!r} slices {axis} axes of a rank-{t.rank} tensor", "the model.json is inconsistent")
    while axis < t.rank:
        dense.append(("full", axis))
        axis += 1
    starts, ends, axes, steps, shrink, new, position = [], [], [], [], [], [], 0
    for entry in dense:
        if entry[0] == "new":
            new.append(position)
            position += 1
            continue
        if entry[0] == "full":
            position += 1
            continue
        _, a, i = entry
        if bit("shrink_axis_mask", i):
            start = int(begin[i])
            starts.append(start), ends.append(start + 1 if start != -1 else _INT64_MAX), axes.append(a), steps.append(1)
            shrink.append(a)
            continue
        step = int(strides[i])
        start = (0 if step > 0 else _INT64_MAX) if bit("begin_mask", i) else int(begin[i])
        stop = (_INT64_MAX if step > 0 else _INT64_MIN) if bit("end_mask", i) else int(end[i])
        if not (step == 1 and start == 0 and stop == _INT64_MAX):
            starts.append(start), ends.append(stop), axes.append(a), steps.append(step)
        position += 1
    x = y = b.nhwc(node.inputs[0])
    if axes:
        consts = [b.constant(v, np.int64) for v in (starts, ends, axes, steps)]
        y = b.node("Slice", [y, *consts], node.name + ("_slice" if shrink or new else ""))
    if shrink:
        y = b.node("Squeeze", [y, b.constant(shrink, np.int64)], node.name + ("_shrink" if new else ""))
    if new:
        y = b.node("Unsqueeze", [y, b.constant(new, np.int64)], node.name)
    if y == x:
        b.alias(node.name, node.inputs[0])
    else:
        b.set(node.name, y)


def gather_nd(b: TfjsBuilder, node: Node) -> None:
    indices = _int64(b, b.nhwc(node.inputs[1]), node.name + "_indices")
    b.set(node.name, b.node("GatherND", [b.nhwc(node.inputs[0]), indices], node.name))


def tile(b: TfjsBuilder, node: Node) -> None:
    reps = _int64(b, b.nhwc(node.inputs[1]), node.name + "_multiples")
    b.set(node.name, b.node("Tile", [b.nhwc(node.inputs[0]), reps], node.name))


def fill(b: TfjsBuilder, node: Node) -> None:
    dims = _int64(b, b.nhwc(node.inputs[0]), node.name + "_dims")
    b.set(node.name, b.node("Expand", [b.nhwc(node.inputs[1]), dims], node.name))


def range_(b: TfjsBuilder, node: Node) -> None:
    """Range in the type of attribute Tidx (TF.js: float32 when it is absent)."""
    dtype = TF_DTYPES.get(node.attrs.get("Tidx", "DT_FLOAT"))
    if dtype is None or dtype == np.bool_:
        raise b.fail(f"node {node.name!r} has type {node.attrs.get('Tidx')}", "the model.json is inconsistent")
    names = []
    for ref in node.inputs[:3]:
        name = b.nhwc(ref)
        names.append(name if b.types[name][0] == dtype else b.node("Cast", [name], node.name + "_cast", to=_onnx_type(dtype)))
    b.set(node.name, b.node("Range", names, node.name))


# -- handlers: reductions, arg/top-k -------------------------------------------------------------

def _reduce(onnx_op: str, axes_as_input: bool) -> Callable[[TfjsBuilder, Node], None]:
    def handler(b: TfjsBuilder, node: Node) -> None:
        t = b.get(node.inputs[0])
        axes = sorted({int(a) % max(t.rank, 1) for a in b.require_const(node.inputs[1], f"{node.op} axes").reshape(-1)})
        keep = int(bool(node.attrs.get("keep_dims", False)))
        if not axes:
            b.alias(node.name, node.inputs[0])
            return
        x = b.nhwc(node.inputs[0])
        if axes_as_input:
            y = b.node(onnx_op, [x, b.constant(axes, np.int64)], node.name, keepdims=keep)
        else:
            y = b.node(onnx_op, [x], node.name, axes=axes, keepdims=keep)
        b.set(node.name, y)

    return handler


def arg_max(b: TfjsBuilder, node: Node) -> None:
    """ArgMax, ties to the lowest index (as TF.js); the index comes out int32 as in TF.js."""
    t = b.get(node.inputs[0])
    axis = _axis(b, b.require_const(node.inputs[1], "ArgMax axis"), t.rank, "ArgMax axis")
    y = b.node("ArgMax", [b.nhwc(node.inputs[0])], node.name + "_i64", axis=axis, keepdims=0, select_last_index=0)
    b.set(node.name, _int32(b, y, node.name))


def top_k(b: TfjsBuilder, node: Node) -> None:
    """TopKV2 along the last axis, ties to the lower index (as TF.js); indices int32."""
    k = b.require_const(node.inputs[1], "TopKV2 k").reshape(-1).astype(np.int64)
    if k.size != 1 or k[0] < 0:
        raise b.fail(f"node {node.name!r} has k = {k.tolist()}", "the model.json is inconsistent")
    values, indices = b.emit("TopK", [b.nhwc(node.inputs[0]), b.constant(k, np.int64)], node.name, outputs=2,
                             axis=-1, largest=1, sorted=1)
    b.set(node.name, values)
    b.set(_out(node, 1), _int32(b, indices, _out(node, 1)))


# -- dispatch table ------------------------------------------------------------------------------

HANDLERS: dict[str, Callable[[TfjsBuilder, Node], None]] = {
    "Abs": _unary("Abs"),
    "AddN": add_n,
    "AddV2": _binary("Add"),
    "Add": _binary("Add"),
    "ArgMax": arg_max,
    "Cast": cast,
    "ConcatV2": concat,
    "Conv2D": conv2d,
    "DepthwiseConv2dNative": depthwise,
    "Equal": _binary("Equal"),
    "Exp": _unary("Exp"),
    "ExpandDims": expand_dims,
    "Fill": fill,
    "FloorDiv": floor_div,
    "FusedDepthwiseConv2dNative": fused_depthwise,
    "GatherNd": gather_nd,
    "Greater": _binary("Greater"),
    "GreaterEqual": _binary("GreaterOrEqual"),
    "Identity": identity,
    "Less": _binary("Less"),
    "LogicalAnd": _binary("And"),
    "Max": _reduce("ReduceMax", axes_as_input=False),
    "MaxPool": max_pool,
    "Maximum": _binary("Max"),
    "Minimum": _binary("Min"),
    "Mul": _binary("Mul"),
    "Pack": pack,
    "Range": range_,
    "RealDiv": real_div,
    "Reciprocal": _unary("Reciprocal"),
    "Relu": _unary("Relu"),
    "Reshape": reshape,
    "ResizeBilinear": resize_bilinear,
    "Select": select,
    "SelectV2": select,
    "Shape": shape,
    "Sigmoid": _unary("Sigmoid"),
    "Size": size,
    "Split": split,
    "Sqrt": _unary("Sqrt"),
    "SquaredDifference": squared_difference,
    "Squeeze": squeeze,
    "StridedSlice": strided_slice,
    "Sub": _binary("Sub"),
    "Sum": _reduce("ReduceSum", axes_as_input=True),
    "Tile": tile,
    "TopKV2": top_k,
    "Unpack": unpack,
    "_FusedConv2D": fused_conv2d,
}
