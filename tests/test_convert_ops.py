"""Single TFLite operators (STRIDED_SLICE, MUL) converted and run against LiteRT on small files
written in the test (tests/tflite_build.py): bit-identical results, shapes included."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from ai_edge_litert.interpreter import Interpreter

from posezoo.errors import ConvertError
from posezoo.supply.convert import convert_bytes
from tflite_build import Op, T, tflite_model

_POOL = ("Pool2DOptions", {"Padding": 1, "StrideW": 1, "StrideH": 1, "FilterWidth": 1, "FilterHeight": 1})


def _litert(data: bytes, feeds: list[np.ndarray]) -> list[np.ndarray]:
    interpreter = Interpreter(model_content=data, num_threads=1)
    interpreter.allocate_tensors()
    for detail, x in zip(interpreter.get_input_details(), feeds):
        interpreter.set_tensor(detail["index"], x)
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]).copy() for d in interpreter.get_output_details()]


def _ours(data: bytes, feeds: list[np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(convert_bytes(data, model_name="op.tflite"), providers=["CPUExecutionProvider"])
    return session.run(None, {i.name: x for i, x in zip(session.get_inputs(), feeds)})


def _slice_model(shape, begin, end, strides, out_shape, nchw: bool, options: dict) -> bytes:
    """x -> [MAX_POOL_2D 1x1, which puts x in NCHW inside the converted graph] -> STRIDED_SLICE -> y."""
    tensors, ops, source = [T("x", shape)], [], 0
    if nchw:
        tensors.append(T("pooled", shape))
        ops.append(Op("MAX_POOL_2D", [0], [1], _POOL))
        source = 1
    n = len(tensors)
    tensors += [T(name, (len(v),), "int32", np.array(v, np.int32)) for name, v in (("begin", begin), ("end", end), ("strides", strides))]
    tensors.append(T("y", tuple(out_shape)))
    ops.append(Op("STRIDED_SLICE", [source, n, n + 1, n + 2], [n + 3], ("StridedSliceOptions", options)))
    return tflite_model(tensors, ops, [0], [n + 3])


S = (2, 5, 6, 7)
SLICES = [  # shape, begin, end, strides, options, output shape (as LiteRT computes it)
    (S, [0, 1, 0, 0], [2, 4, 6, 7], [1, 1, 1, 1], {}, (2, 3, 6, 7)),
    (S, [0, 1, 2, 1], [2, 4, 6, 7], [1, 2, 3, 2], {}, (2, 2, 2, 3)),
    (S, [0, 0, 0, 0], [1, 5, 6, 3], [1, 1, 1, 1], {}, (1, 5, 6, 3)),  # a channel crop, as in hand_recrop
    (S, [-1, -4, 0, 0], [0, -1, 6, 7], [1, 1, 1, 1], {"ShrinkAxisMask": 1}, (3, 6, 7)),
    (S, [1, 4, 5, 6], [0, 0, 0, 0], [-1, -2, -1, -3], {}, (1, 2, 5, 2)),
    (S, [1, 4, 5, 6], [0, 0, 0, 0], [-1, -2, -1, -3], {"EndMask": 0b1010}, (1, 3, 5, 3)),
    (S, [1, 4, 5, 6], [0, 0, 0, 0], [-1, -2, -1, -3], {"EndMask": 0b1111, "BeginMask": 0b0101}, (2, 3, 6, 3)),
    (S, [10, -100, 3, 0], [100, 100, -100, 7], [1, 1, -1, 1], {"BeginMask": 1}, (2, 5, 4, 7)),  # clamped
    (S, [0, 1], [0, 3], [1, 1], {"EllipsisMask": 1}, (2, 5, 6, 2)),  # [..., 1:3]
    (S, [0, 1, 2], [1, 3, 5], [1, 1, 1], {"EllipsisMask": 2}, (1, 5, 6, 3)),  # [0:1, ..., 2:5]
    (S, [1, 0, 2], [2, 0, 3], [1, 1, 1], {"NewAxisMask": 2, "ShrinkAxisMask": 4}, (1, 1, 6, 7)),  # [1:2, None, 2]
    (S, [1, 0, 2, 0], [2, 0, 3, 0], [1, 1, 1, 1], {"NewAxisMask": 2, "EllipsisMask": 8}, (1, 1, 1, 6, 7)),
    (S, [0, 0, 2], [0, 0, 3], [1, 1, 1], {"NewAxisMask": 1, "EllipsisMask": 2}, (1, 2, 5, 6, 1)),  # [None, ..., 2:3]
    (S, [0, -3, 2, 3], [1, 2, 2, 3], [1, 1, 1, 1], {"Offset": True}, (1, 2, 2, 3)),  # end relative to begin
    (S, [0, 1], [2, 3], [1, 1], {}, (2, 2, 6, 7)),  # spec shorter than the rank: the rest whole
    ((5, 7), [1, -1], [4, 0], [2, -1], {"EndMask": 2}, (2, 7)),
    ((3, 5, 7), [0, 0, 0], [0, 0, 0], [1, 1, 1], {"BeginMask": 7, "EndMask": 7}, (3, 5, 7)),  # identity
    ((1, 1, 1, 1404), [0, 0, 0, 0], [1, 1, 1, 1404], [1, 1, 1, 1], {}, (1, 1, 1, 1404)),  # the attention model's
]


def _layouts(cases):
    """Each case on an NHWC input and, for 4-D ones, on an input the converter holds NCHW."""
    return [pytest.param(*case, nchw, id=f"{i}-{'nchw' if nchw else 'nhwc'}")
            for i, case in enumerate(cases) for nchw in (False, True) if not nchw or len(case[0]) == 4]


@pytest.mark.parametrize("shape, begin, end, strides, options, out_shape, nchw", _layouts(SLICES))
def test_strided_slice_matches_litert(shape, begin, end, strides, options, out_shape, nchw):
    data = _slice_model(shape, begin, end, strides, out_shape, nchw, options)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    (want,), (got,) = _litert(data, [x]), _ours(data, [x])
    assert want.shape == got.shape == out_shape
    np.testing.assert_array_equal(got, want)


def test_strided_slice_rejects_empty_and_wrong_shapes():
    x_shape = (3, 5, 7)
    with pytest.raises(ConvertError) as info:
        convert_bytes(_slice_model(x_shape, [5, 0, 0], [9, 0, 0], [1, 1, 1], (1, 5, 7), False, {}), model_name="e.tflite")
    assert "STRIDED_SLICE" in str(info.value) and "empty" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ConvertError) as info:  # the file's output shape contradicts the slice
        convert_bytes(_slice_model(x_shape, [0, 0, 0], [2, 5, 7], [1, 1, 1], (3, 5, 7), False, {}), model_name="w.tflite")
    assert "the file says [3, 5, 7]" in str(info.value)


def _mul_model(a_shape, b_shape, b_const, nchw: bool, activation: int) -> bytes:
    tensors = [T("a", a_shape)]
    ops, inputs, source = [], [0], 0
    if nchw:
        tensors.append(T("pooled", a_shape))
        ops.append(Op("MAX_POOL_2D", [0], [1], _POOL))
        source = 1
    if b_const is not None:
        tensors.append(T("b", b_shape, data=b_const))
    else:
        tensors.append(T("b", b_shape))
        inputs.append(len(tensors) - 1)
    out_shape = np.broadcast_shapes(a_shape, b_shape)
    tensors.append(T("y", out_shape))
    ops.append(Op("MUL", [source, len(tensors) - 2], [len(tensors) - 1], ("MulOptions", {"FusedActivationFunction": activation})))
    return tflite_model(tensors, ops, inputs, [len(tensors) - 1])


MULS = [  # a, b, b constant?
    ((1, 6, 5, 8), (8,), True),  # per channel
    ((1, 6, 5, 8), (1, 1, 1, 8), True),
    ((1, 6, 5, 8), (1,), True),
    ((1, 6, 5, 8), (1, 6, 5, 8), False),
    ((1, 6, 5, 8), (1, 6, 1, 8), False),  # broadcast between two activations
    ((1, 468, 3), (1,), True),  # the attention model's landmark scaling
    ((1, 4, 4), (1, 4, 4), True),
]


@pytest.mark.parametrize("activation", [0, 1, 2, 3], ids=["none", "relu", "relu_n1_to_1", "relu6"])
@pytest.mark.parametrize("a_shape, b_shape, const, nchw", _layouts(MULS))
def test_mul_matches_litert(a_shape, b_shape, const, nchw, activation):
    rng = np.random.default_rng(1)
    b_value = (rng.standard_normal(b_shape) * 3).astype(np.float32)
    data = _mul_model(a_shape, b_shape, b_value if const else None, nchw, activation)
    feeds = [(rng.standard_normal(a_shape) * 3).astype(np.float32)] + ([] if const else [b_value])
    (want,), (got,) = _litert(data, feeds), _ours(data, feeds)
    assert want.shape == got.shape
    np.testing.assert_array_equal(got, want)
