"""The converter's graph rewrites (posezoo/convert/optimize.py): same outputs on onnxruntime, new shape.

Small graphs built with onnx.helper run before and after each rewrite on real onnxruntime sessions;
the shipped models are checked for what the rewrites remove. Agreement with LiteRT on the real models
is tested in test_convert.py.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from posezoo.supply.convert import convert_bytes
from posezoo.supply.convert.optimize import optimize
from posezoo.supply.convert.target import TARGETS, Target

RNG = np.random.default_rng(7)
AVX512, AVX2, NCHW = TARGETS["avx512"], TARGETS["avx2"], TARGETS["nchw"]


def _model(nodes, inputs: dict[str, list[int]], outputs: list[str], weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["n", "c", "h", "w"]) for n in outputs],
        initializer=[numpy_helper.from_array(v, k) for k, v in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def _optimized_matches(model: onnx.ModelProto, feeds, target: Target = AVX512) -> onnx.ModelProto:
    """Optimize a copy of ``model`` for ``target``; assert both give the same outputs; return the copy."""
    before = _run(model, feeds)
    rewritten = optimize(onnx.ModelProto.FromString(model.SerializeToString()), target)
    onnx.checker.check_model(rewritten)
    after = _run(rewritten, feeds)
    for b, a in zip(before, after):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * float(np.abs(b).max()))
    return rewritten


def _ops(model: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in model.graph.node]


def _w(*shape) -> np.ndarray:
    return RNG.normal(size=shape).astype(np.float32)


def _d2s_head(block: int, kernel: int, pads: list[int], stride: int, channels: int = 3) -> onnx.ModelProto:
    """x -> DepthToSpace -> depthwise Conv (kernel, stride, pads) -> two 1x1 Convs (two outputs)."""
    nodes = [
        helper.make_node("DepthToSpace", ["x"], ["y"], blocksize=block, mode="DCR"),
        helper.make_node("Conv", ["y", "dw", "dw_b"], ["z"], group=channels, kernel_shape=[kernel, kernel],
                         strides=[stride, stride], pads=pads),
        helper.make_node("Conv", ["z", "p1", "p1_b"], ["out1"], kernel_shape=[1, 1]),
        helper.make_node("Conv", ["z", "p2"], ["out2"], kernel_shape=[1, 1]),
    ]
    weights = {"dw": _w(channels, 1, kernel, kernel), "dw_b": _w(channels), "p1": _w(2, channels, 1, 1),
               "p1_b": _w(2), "p2": _w(5, channels, 1, 1)}
    return _model(nodes, {"x": [1, block * block * channels, 6, 6]}, ["out1", "out2"], weights)


@pytest.mark.parametrize("block, kernel, pads", [
    (2, 3, [1, 1, 1, 1]),  # BlazePose: PAD 1 then VALID
    (2, 3, [0, 0, 1, 1]),  # TFLite SAME with stride 2
    (3, 5, [2, 2, 2, 2]),
])
def test_depth_to_space_head_folds_exactly(block, kernel, pads):
    model = _d2s_head(block, kernel, pads, stride=block)
    x = {"x": _w(1, block * block * 3, 6, 6)}
    rewritten = _optimized_matches(model, x)
    assert "DepthToSpace" not in _ops(rewritten)
    depthwise = rewritten.graph.node[0]
    attrs = {a.name: helper.get_attribute_value(a) for a in depthwise.attribute}
    assert depthwise.op_type == "Conv" and depthwise.input[0] == "x"
    assert attrs["group"] == block * block * 3 and attrs["strides"] == [1, 1]


@pytest.mark.parametrize("stride, pads", [(1, [1, 1, 1, 1]), (2, [2, 2, 2, 2])])
def test_depth_to_space_left_alone_when_it_does_not_fold(stride, pads):
    """Stride other than the block, or pads that change the output size: the graph keeps DepthToSpace."""
    model = _d2s_head(2, 3, pads, stride=stride)
    rewritten = _optimized_matches(model, {"x": _w(1, 12, 6, 6)})
    assert "DepthToSpace" in _ops(rewritten)


def _resize_conv(cin: int, cout: int, mode: str, size=(10, 14)) -> onnx.ModelProto:
    """x (5x7) -> bilinear Resize to ``size`` -> 1x1 Conv -> Clip(0, 6) -> Add(skip)."""
    nodes = [
        helper.make_node("Resize", ["x", "", "", "sizes"], ["up"], mode="linear", coordinate_transformation_mode=mode),
        helper.make_node("Conv", ["up", "w", "b"], ["c"], kernel_shape=[1, 1]),
        helper.make_node("Clip", ["c", "lo", "hi"], ["a"]),
        helper.make_node("Add", ["a", "skip"], ["out"]),
    ]
    weights = {"sizes": np.array([1, cin, *size], np.int64), "w": _w(cout, cin, 1, 1), "b": _w(cout),
               "lo": np.array(0.0, np.float32), "hi": np.array(6.0, np.float32)}
    return _model(nodes, {"x": [1, cin, 5, 7], "skip": [1, cout, *size]}, ["out"], weights)


@pytest.mark.parametrize("mode", ["half_pixel", "align_corners", "asymmetric"])
@pytest.mark.parametrize("target", [AVX512, NCHW], ids=lambda t: t.name)
def test_resize_moves_after_the_pointwise_conv(mode, target):
    model = _resize_conv(12, 4, mode)
    feeds = {"x": _w(1, 12, 5, 7), "skip": _w(1, 4, 10, 14)}
    rewritten = _optimized_matches(model, feeds, target)
    ops = _ops(rewritten)
    assert ops.index("Conv") < ops.index("Resize")
    resize = next(n for n in rewritten.graph.node if n.op_type == "Resize")
    sizes = next(numpy_helper.to_array(t) for t in rewritten.graph.initializer if t.name == resize.input[3])
    assert sizes.tolist() == [1, 4, 10, 14]
    # NCHWc: the Clip follows an identity depthwise Conv (fused there); plain NCHW: it follows the Resize
    assert ops.count("Conv") == (2 if target.nchwc else 1)


@pytest.mark.parametrize("cin, cout, size", [(4, 12, (10, 14)), (12, 4, (3, 4))])
def test_resize_stays_when_the_conv_would_not_get_cheaper(cin, cout, size):
    """More output channels than input, or a downsample: the Resize stays first."""
    model = _resize_conv(cin, cout, "half_pixel", size)
    rewritten = _optimized_matches(model, {"x": _w(1, cin, 5, 7), "skip": _w(1, cout, *size)})
    assert _ops(rewritten)[0] == "Resize"


def _narrow_region(channels: int, to_output: bool, pool: bool = True) -> onnx.ModelProto:
    """A ``channels``-wide region: two Convs -> Add -> depthwise Conv -> Relu -> MaxPool -> Resize -> Conv
    (without the MaxPool when not ``pool``)."""
    tail = "r" if to_output else "out"
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["a"], kernel_shape=[1, 1]),
        helper.make_node("Conv", ["x", "w2"], ["b"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["a", "b"], ["s"]),
        helper.make_node("Conv", ["s", "dw", "dwb"], ["d"], group=channels, kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["d"], ["e"]),
        helper.make_node("MaxPool", ["e"], ["m"], kernel_shape=[2, 2], strides=[2, 2]) if pool
        else helper.make_node("Relu", ["e"], ["m"]),
        helper.make_node("Resize", ["m", "", "", "sizes"], ["r"], mode="linear"),
    ]
    if not to_output:
        nodes.append(helper.make_node("Conv", ["r", "w3", "b3"], ["out"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
    weights = {"w1": _w(channels, 20, 1, 1), "b1": _w(channels), "w2": _w(channels, 20, 3, 3),
               "dw": _w(channels, 1, 3, 3), "dwb": _w(channels), "sizes": np.array([1, channels, 8, 8], np.int64)}
    if not to_output:
        weights.update(w3=_w(2, channels, 3, 3), b3=_w(2))
    return _model(nodes, {"x": [1, 20, 8, 8]}, [tail], weights)


@pytest.mark.parametrize("channels, target", [(1, AVX512), (8, AVX512), (1, AVX2), (5, AVX2), (24, AVX512)],
                         ids=lambda v: getattr(v, "name", v))
def test_narrow_region_widens_to_the_targets_block(channels, target):
    """Fewer channels than a block, or (24 on AVX-512) a MaxPool on a part block: whole blocks."""
    model = _narrow_region(channels, to_output=False)
    rewritten = _optimized_matches(model, {"x": _w(1, 20, 8, 8)}, target)
    block = -(-channels // target.block) * target.block  # the width it gets
    arrays = {t.name: numpy_helper.to_array(t) for t in rewritten.graph.initializer}
    convs = {n.output[0]: n for n in rewritten.graph.node if n.op_type == "Conv"}
    assert arrays[convs["a"].input[1]].shape[0] == block and arrays[convs["b"].input[1]].shape[0] == block
    assert arrays[convs["d"].input[1]].shape[:2] == (block, 1)
    assert [a.i for a in convs["d"].attribute if a.name == "group"] == [block]
    assert arrays[convs["out"].input[1]].shape[:2] == (2, block)
    resize = next(n for n in rewritten.graph.node if n.op_type == "Resize")
    assert arrays[resize.input[3]].tolist() == [1, block, 8, 8]


@pytest.mark.parametrize("channels, target, to_output, pool", [
    (8, AVX512, True, True),  # reaches a graph output
    (8, AVX2, False, True),  # already one full block
    (24, AVX2, False, True),  # three
    (16, AVX512, False, True),
    (24, AVX512, False, False),  # no MaxPool: onnxruntime pads the Convs to whole blocks itself
    (8, NCHW, False, True),  # no blocked layout: padding would only add work
], ids=str)
def test_region_left_alone(channels, target, to_output, pool):
    model = _narrow_region(channels, to_output=to_output, pool=pool)
    rewritten = _optimized_matches(model, {"x": _w(1, 20, 8, 8)}, target)
    assert rewritten.graph.node == model.graph.node
    assert sorted(t.name for t in rewritten.graph.initializer) == sorted(t.name for t in model.graph.initializer)


def _padded_skip(channels: int, before: int, after: int, relu: bool) -> onnx.ModelProto:
    """BlazeBlock: x -> MaxPool -> zero channel pad (as a 0/1 1x1 Conv); h -> Conv 3x3; Add; Relu."""
    total = before + channels + after
    embed = np.zeros((total, channels, 1, 1), np.float32)
    embed[before + np.arange(channels), np.arange(channels)] = 1.0
    nodes = [
        helper.make_node("MaxPool", ["x"], ["m"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["m", "embed"], ["p"], kernel_shape=[1, 1]),
        helper.make_node("Conv", ["h", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c", "p"], ["s"]),
    ]
    if relu:
        nodes.append(helper.make_node("Relu", ["s"], ["out"]))
    weights = {"embed": embed, "w": _w(total, 8, 3, 3), "b": _w(total)}
    return _model(nodes, {"x": [1, channels, 8, 8], "h": [1, 8, 4, 4]}, ["out" if relu else "s"], weights)


@pytest.mark.parametrize("before, after, relu", [(0, 16, True), (16, 32, False), (0, 8, True)])
def test_channel_pad_becomes_a_concat_of_conv_pieces(before, after, relu):
    model = _padded_skip(16, before, after, relu)
    target = AVX512 if after % 16 == 0 else AVX2
    rewritten = _optimized_matches(model, {"x": _w(1, 16, 8, 8), "h": _w(1, 8, 4, 4)}, target)
    ops = _ops(rewritten)
    arrays = {t.name: numpy_helper.to_array(t) for t in rewritten.graph.initializer}
    widths = [arrays[n.input[1]].shape[0] for n in rewritten.graph.node if n.op_type == "Conv"]
    assert widths == [w for w in (before, 16, after) if w]  # the embedding Conv is gone
    assert ops[-1] == "Concat" and ops.count("Relu") == (len(widths) if relu else 0)


@pytest.mark.parametrize("target", [AVX512, NCHW], ids=lambda t: t.name)
def test_channel_pad_stays_when_concat_would_leave_nchwc(target):
    """8 added channels are half a 16-channel block; without NCHWc there is nothing to gain."""
    model = _padded_skip(16, 0, 8, True)
    rewritten = _optimized_matches(model, {"x": _w(1, 16, 8, 8), "h": _w(1, 8, 4, 4)}, target)
    assert "Concat" not in _ops(rewritten) and _ops(rewritten).count("Conv") == 2


# -- the shipped models ---------------------------------------------------------------------------

def _convert(shared_models, rel: str, target: Target = AVX512) -> onnx.ModelProto:
    return onnx.load_from_string(convert_bytes((shared_models / rel).read_bytes(), model_name=rel, target=target))


def test_pose_detector_runs_without_depth_to_space_or_wide_resizes(shared_models):
    model = _convert(shared_models, "mediapipe-assets/pose_detection.tflite")
    consumers = {i: n for n in model.graph.node for i in n.input}
    assert "DepthToSpace" not in _ops(model)
    resizes = [n for n in model.graph.node if n.op_type == "Resize"]
    assert len(resizes) == 2
    for resize in resizes:  # each upsample now follows the 1x1 Conv that used to follow it
        assert consumers[resize.output[0]].op_type != "Conv" or "identity" in consumers[resize.output[0]].name


@pytest.mark.parametrize("target", [AVX512, AVX2], ids=lambda t: t.name)
@pytest.mark.parametrize("rel", ["mediapipe-assets/pose_landmark_full.tflite", "mediapipe-v0.8.9/pose_landmark_lite.tflite"])
def test_landmark_segmentation_head_is_a_full_block_wide(shared_models, rel, target):
    """No Conv inside the graph reads fewer channels than a block except the first, on the 3-channel
    input; for AVX2 (8-channel blocks) the 8-channel segmentation head stays 8 wide."""
    model = _convert(shared_models, rel, target)
    arrays = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]

    def in_channels(node) -> int:
        return arrays[node.input[1]].shape[1] * next((a.i for a in node.attribute if a.name == "group"), 1)

    assert in_channels(convs[0]) == 3
    assert [n.name for n in convs if in_channels(n) < target.block] == [convs[0].name]
    assert min(in_channels(n) for n in convs[1:]) == target.block  # the head: exactly one block
