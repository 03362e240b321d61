"""``runtime.Session`` with several inputs: named inputs as a dict, checked before onnxruntime sees them.

Detectors exported with an image-size input (``image_size`` beside the image) are common; a family
plugin passes ``{name: array}``, and a wrong name, a missing input, a wrong dtype or shape is one line
naming the file, the input and what it expects. The models are tiny ONNX graphs built here with
``onnx.helper`` and run by real onnxruntime sessions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from posezoo.errors import PluginError
from posezoo.inference.runtime import Session
from posezoo.inference.timing import StageClock


def two_input_model(path: Path) -> Path:
    """``boxes = image.sum(axis=(1, 2)) * float(image_size)``: image float32 [1, ?, ?, 3], image_size
    int64 [1, 2] (h, w) -> boxes float32 [1, 3], scale float32 [1, 2]."""
    graph = helper.make_graph(
        [
            helper.make_node("ReduceSum", ["image", "axes"], ["sums"], keepdims=0),
            helper.make_node("Cast", ["image_size"], ["size_f"], to=TensorProto.FLOAT),
            helper.make_node("ReduceSum", ["size_f", "axis1"], ["area"], keepdims=1),
            helper.make_node("Mul", ["sums", "area"], ["boxes"]),
            helper.make_node("Identity", ["size_f"], ["scale"]),
        ],
        "two_inputs",
        [
            helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, None, None, 3]),
            helper.make_tensor_value_info("image_size", TensorProto.INT64, [1, 2]),
        ],
        [
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 3]),
            helper.make_tensor_value_info("scale", TensorProto.FLOAT, [1, 2]),
        ],
        initializer=[
            helper.make_tensor("axes", TensorProto.INT64, [2], [1, 2]),
            helper.make_tensor("axis1", TensorProto.INT64, [1], [1]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def one_input_model(path: Path) -> Path:
    graph = helper.make_graph(
        [helper.make_node("Neg", ["x"], ["y"])],
        "one_input",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


@pytest.fixture
def session(tmp_path) -> Session:
    return Session(two_input_model(tmp_path / "det.onnx"), "cpu", role="detector")


IMAGE = np.arange(1 * 2 * 2 * 3, dtype=np.float32).reshape(1, 2, 2, 3)
SIZE = np.array([[480, 640]], np.int64)
EXPECTED = IMAGE.sum(axis=(1, 2)) * 1120.0


def test_named_inputs_run(session):
    assert session.input_names == ["image", "image_size"]
    assert [(i.name, i.shape, i.type) for i in session.inputs] == [
        ("image", (1, None, None, 3), "tensor(float)"),
        ("image_size", (1, 2), "tensor(int64)"),
    ]
    boxes, scale = session.run({"image": IMAGE, "image_size": SIZE})
    np.testing.assert_array_equal(boxes, EXPECTED)
    np.testing.assert_array_equal(scale, [[480.0, 640.0]])
    # the order of the dict does not matter; run_reused binds every input and reuses its outputs
    out = session.run_reused({"image_size": SIZE, "image": IMAGE})
    np.testing.assert_array_equal(out[0], EXPECTED)
    again = session.run_reused({"image_size": SIZE * 2, "image": IMAGE})
    assert again[0] is out[0]
    np.testing.assert_array_equal(again[0], EXPECTED * 2)
    assert session.runs == 3
    info = session.describe()
    assert info["inputs"] == [
        {"name": "image", "shape": [1, None, None, 3], "type": "tensor(float)"},
        {"name": "image_size", "shape": [1, 2], "type": "tensor(int64)"},
    ]
    assert info["input"]["name"] == "image"  # the first input, as before


def test_bench_timing_keeps_the_whole_feed(session):
    clock = StageClock()
    session.clock = clock
    session.run({"image": IMAGE, "image_size": SIZE})
    assert set(session.last_input) == {"image", "image_size"}
    assert session.time_bare() > 0
    assert clock.seconds["detector"] > 0


@pytest.mark.parametrize(
    "feed,message",
    [
        (IMAGE, "model det.onnx has 2 inputs ('image', 'image_size'), one array given (pass {input name: array} for every input)"),
        ({"image": IMAGE}, "model det.onnx: input 'image_size' not given (inputs: 'image', 'image_size')"),
        ({"image": IMAGE, "image_size": SIZE, "size": SIZE}, "model det.onnx has no input 'size' (inputs: 'image', 'image_size')"),
        ({"image": IMAGE, "image_size": SIZE.astype(np.int32)},
         "model det.onnx: input 'image_size' is tensor(int64) [1, 2], given int32 [1, 2] (pass a int64 array)"),
        ({"image": IMAGE, "image_size": np.array([480, 640], np.int64)},
         "model det.onnx: input 'image_size' has shape [1, 2], given [2]"),
        ({"image": IMAGE[0], "image_size": SIZE}, "model det.onnx: input 'image' has shape [1, ?, ?, 3], given [2, 2, 3]"),
        ({"image": IMAGE.tolist(), "image_size": SIZE}, "model det.onnx: input 'image' must be a numpy array, not list"),
    ],
    ids=["one-array", "missing", "unknown", "dtype", "shape", "rank", "list"],
)
def test_bad_feeds_are_one_line_errors(session, feed, message):
    for run in (session.run, session.run_reused):
        with pytest.raises(PluginError) as err:
            run(feed)
        text = str(err.value)
        assert text == message
        assert "\n" not in text


def test_check_input_by_name(session):
    session.check_input((1, 2), spec="toy", dtype="tensor(int64)", name="image_size")
    session.check_input((1, 256, 256, 3), spec="toy")  # the first input: any size fits its ? dims
    with pytest.raises(PluginError, match=r"input 'image_size' is tensor\(int64\) \[1, 2\], spec 'toy' expects tensor\(int32\)"):
        session.check_input((1, 2), spec="toy", dtype="tensor(int32)", name="image_size")
    with pytest.raises(PluginError, match=r"has no input 'scale' \(inputs: 'image', 'image_size'\), spec 'toy' expects one"):
        session.check_input((1,), spec="toy", name="scale")


def test_one_input_models_take_an_array_or_a_dict(tmp_path):
    s = Session(one_input_model(tmp_path / "neg.onnx"), "cpu")
    x = np.array([[1, 2, 3, 4]], np.float32)
    np.testing.assert_array_equal(s.run(x)[0], -x)
    np.testing.assert_array_equal(s.run({"x": x})[0], -x)
    np.testing.assert_array_equal(s.run_reused(x)[0], -x)
    with pytest.raises(PluginError, match=r"input 'x' is tensor\(float\) \[1, 4\], given float64 \[1, 4\]"):
        s.run(x.astype(np.float64))
