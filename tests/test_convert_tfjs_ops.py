"""The TF.js converter's ops beyond what MoveNet exercises, against TF.js under node.

A small TF.js graph model is written here (model.json and two weight shards in two manifest groups,
weights stored as float16, uint8 and uint16, int32 included): every convolution flavour and fused
activation, SAME padding with stride 2 on odd and unknown sizes, the three resize modes, shape
arithmetic on unknown sizes (Shape, StridedSlice, Range, Fill, Tile, Size, Pack), StridedSlice masks,
floor division of negative integers, TopK/ArgMax ties, casts, reductions, splits. Every tensor is an
output; ONNX must equal TF.js's on two input sizes (integers and booleans exactly).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from posezoo.supply.convert import convert_tfjs_file

DT = {np.dtype("float32"): "DT_FLOAT", np.dtype("int32"): "DT_INT32", np.dtype("bool"): "DT_BOOL"}


def _ints(values) -> dict:
    return {"list": {"i": [str(int(v)) for v in values]}}


def _str(value: str) -> dict:
    return {"s": base64.b64encode(value.encode()).decode()}


def _strs(values) -> dict:
    return {"list": {"s": [base64.b64encode(v.encode()).decode() for v in values]}}


def _type(dtype) -> dict:
    return {"type": DT[np.dtype(dtype)]}


class GraphModel:
    """Writes a TF.js graph model: nodes as GraphDef JSON, weights in manifest groups (one shard each)."""

    def __init__(self, groups: int = 2):
        self.nodes: list[dict] = []
        self.groups: list[tuple[list[dict], list[bytes]]] = [([], []) for _ in range(groups)]
        self.outputs: list[str] = []
        self.rng = np.random.default_rng(42)

    def placeholder(self, name: str, dtype, shape) -> str:
        dims = [{"size": str(d)} for d in shape]
        self.nodes.append({"name": name, "op": "Placeholder", "attr": {"dtype": _type(dtype), "shape": {"shape": {"dim": dims}}}})
        return name

    def const(self, name: str, value, dtype=None, *, quant: str | None = None, group: int = 0) -> str:
        array = np.asarray(value, dtype=dtype)
        spec = {"name": name, "shape": list(array.shape), "dtype": {"float32": "float32", "int32": "int32"}[array.dtype.name]}
        if quant == "float16":
            data = array.astype("<f2").tobytes()
            spec["quantization"] = {"dtype": "float16", "original_dtype": "float32"}
        elif quant in ("uint8", "uint16"):
            lo, hi = float(array.min()), float(array.max())
            levels = 255 if quant == "uint8" else 65535
            scale = (hi - lo) / levels if hi > lo else 1.0
            q = np.round((array.astype(np.float64) - lo) / scale).astype("u1" if quant == "uint8" else "<u2")
            data = q.tobytes()
            spec["quantization"] = {"dtype": quant, "min": lo, "scale": scale, "original_dtype": spec["dtype"]}
        else:
            data = array.astype(array.dtype.newbyteorder("<")).tobytes()
        self.groups[group][0].append(spec)
        self.groups[group][1].append(data)
        self.nodes.append({"name": name, "op": "Const", "attr": {
            "value": {"tensor": {"dtype": DT[array.dtype], "tensorShape": {"dim": [{"size": str(d)} for d in array.shape]}}},
            "dtype": _type(array.dtype)}})
        return name

    def weights(self, name: str, shape, quant="float16", group=0) -> str:
        return self.const(name, self.rng.normal(0.0, 0.5, size=shape).astype(np.float32), quant=quant, group=group)

    def op(self, name: str, op: str, inputs, output: bool = True, **attrs) -> str:
        self.nodes.append({"name": name, "op": op, "input": list(inputs), "attr": attrs})
        if output:
            self.outputs.append(name)
        return name

    def write(self, folder: Path, inputs: dict[str, str]) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        manifest = []
        for g, (specs, blobs) in enumerate(self.groups):
            (folder / f"group{g + 1}-shard1of1.bin").write_bytes(b"".join(blobs))
            manifest.append({"paths": [f"group{g + 1}-shard1of1.bin"], "weights": specs})
        signature = {"inputs": {k: {"name": f"{v}:0"} for k, v in inputs.items()},
                     "outputs": {"out": {"name": f"{self.outputs[0]}:0"}}}
        model = {"format": "graph-model", "generatedBy": "posezoo tests", "convertedBy": "posezoo tests",
                 "signature": signature, "modelTopology": {"node": self.nodes, "library": {}, "versions": {}},
                 "weightsManifest": manifest}
        path = folder / "model.json"
        path.write_text(json.dumps(model))
        return path


def _conv_attrs(strides=(1, 1), padding="SAME", dilations=(1, 1), explicit=None, fused=None, num_args=None, **extra):
    attrs = {"strides": _ints([1, *strides, 1]), "padding": _str(padding), "dilations": _ints([1, *dilations, 1]),
             "data_format": _str("NHWC"), "T": _type(np.float32)}
    if explicit is not None:
        attrs["explicit_paddings"] = _ints(explicit)
    if fused is not None:
        attrs["fused_ops"] = _strs(fused)
        attrs["num_args"] = {"i": str(num_args)}
    attrs.update(extra)
    return attrs


def _slice_attrs(begin=0, end=0, ellipsis=0, new_axis=0, shrink=0):
    return {"begin_mask": {"i": str(begin)}, "end_mask": {"i": str(end)}, "ellipsis_mask": {"i": str(ellipsis)},
            "new_axis_mask": {"i": str(new_axis)}, "shrink_axis_mask": {"i": str(shrink)}}


def build_model() -> GraphModel:
    g = GraphModel()
    x = g.placeholder("x", np.float32, [1, -1, -1, 4])
    k = g.placeholder("k", np.int32, [6])
    i32, f32 = np.int32, np.float32
    # convolutions: plain, fused with every activation, depthwise with a multiplier, SAME / VALID / EXPLICIT
    c1 = g.op("conv/plain", "Conv2D", [x, g.weights("w1", [3, 3, 4, 6])], **_conv_attrs(strides=(2, 2)))
    c2 = g.op("conv/prelu", "_FusedConv2D", [c1, g.weights("w2", [1, 1, 6, 6], "uint8"), g.weights("b2", [6], None),
                                            g.weights("a2", [6], None, group=1)],
              **_conv_attrs(padding="VALID", fused=["BiasAdd", "Prelu"], num_args=2))
    c3 = g.op("conv/depthwise_elu", "FusedDepthwiseConv2dNative",
              [c2, g.weights("w3", [3, 3, 6, 2]), g.weights("b3", [12], group=1)],
              **_conv_attrs(dilations=(2, 2), fused=["BiasAdd", "Elu"], num_args=1))
    c4 = g.op("conv/explicit_leaky", "_FusedConv2D", [c3, g.weights("w4", [2, 2, 12, 5]), g.weights("b4", [5])],
              **_conv_attrs(padding="EXPLICIT", explicit=[0, 0, 1, 0, 0, 1, 0, 0], fused=["BiasAdd", "LeakyRelu"],
                            num_args=1, leakyrelu_alpha={"f": 0.1}))
    c5 = g.op("conv/relu6", "_FusedConv2D", [c4, g.weights("w5", [3, 3, 5, 3]), g.weights("b5", [3])],
              **_conv_attrs(strides=(2, 2), fused=["BiasAdd", "Relu6"], num_args=1))
    c6 = g.op("conv/sigmoid", "_FusedConv2D", [c5, g.weights("w6", [1, 1, 3, 3]), g.weights("b6", [3])],
              **_conv_attrs(fused=["BiasAdd", "Sigmoid"], num_args=1))
    g.op("conv/depthwise", "DepthwiseConv2dNative", [c4, g.weights("w7", [3, 3, 5, 1])], **_conv_attrs(strides=(2, 2)))
    g.op("conv/relu", "Relu", [c1])
    g.op("pool", "MaxPool", [c4], ksize=_ints([1, 3, 3, 1]), strides=_ints([1, 2, 2, 1]), padding=_str("SAME"),
         data_format=_str("NHWC"))
    # resizing: three coordinate modes with constant sizes, and Keras' UpSampling2D (size from Shape)
    g.op("resize/align", "ResizeBilinear", [c6, g.const("size1", [5, 7], i32)], align_corners={"b": True},
         half_pixel_centers={"b": False})
    g.op("resize/half", "ResizeBilinear", [c6, g.const("size2", [4, 9], i32)], align_corners={"b": False},
         half_pixel_centers={"b": True})
    g.op("resize/asym", "ResizeBilinear", [c6, g.const("size3", [6, 6], i32)], align_corners={"b": False},
         half_pixel_centers={"b": False})
    shape6 = g.op("up/shape", "Shape", [c6], output=False, out_type=_type(i32))
    hw = g.op("up/hw", "StridedSlice", [shape6, g.const("up/b", [1], i32), g.const("up/e", [3], i32),
                                        g.const("up/s", [1], i32)], output=False, **_slice_attrs())
    size = g.op("up/size", "Mul", [hw, g.const("up/k", [2, 2], i32)], output=False)
    g.op("up/resize", "ResizeBilinear", [c6, size], align_corners={"b": False}, half_pixel_centers={"b": True})
    # shape arithmetic on unknown sizes
    shape1 = g.op("dyn/shape", "Shape", [c1], out_type=_type(i32))
    h = g.op("dyn/h", "StridedSlice", [shape1, g.const("dyn/b", [1], i32), g.const("dyn/e", [2], i32),
                                       g.const("dyn/s", [1], i32)], **_slice_attrs(shrink=1))
    rng = g.op("dyn/range", "Range", [g.const("zero", 0, i32), h, g.const("one", 1, i32)], Tidx=_type(i32))
    g.op("dyn/fill", "Fill", [g.op("dyn/dims", "Pack", [h, g.const("three", 3, i32)], axis={"i": "0"}),
                              g.const("fill_value", 2.5, f32)])
    tiled = g.op("dyn/tile", "Tile", [g.op("dyn/row", "ExpandDims", [rng, g.const("axis0", 0, i32)]),
                                      g.op("dyn/reps", "Pack", [g.const("two", 2, i32), g.const("one_b", [1], i32)],
                                           axis={"i": "0"})])
    g.op("dyn/unpack", "Unpack", [tiled], num={"i": "2"}, axis={"i": "0"})
    g.op("dyn/size", "Size", [c1], out_type=_type(i32))
    g.op("dyn/reshape", "Reshape", [c4, g.const("rs", [1, -1, 5], i32)])
    # StridedSlice masks on a tensor stored NCHW inside
    g.op("slice/reverse", "StridedSlice", [c4, g.const("s1b", [0, 0, -1, 1], i32), g.const("s1e", [0, 0, 0, 4], i32),
                                           g.const("s1s", [1, 1, -1, 2], i32)], **_slice_attrs(begin=3, end=7))
    g.op("slice/ellipsis", "StridedSlice", [c4, g.const("s2b", [0, 0, 2], i32), g.const("s2e", [0, 0, 3], i32),
                                            g.const("s2s", [1, 1, 1], i32)], **_slice_attrs(ellipsis=1, new_axis=2, shrink=4))
    g.op("split", "Split", [g.const("split_axis", 3, i32), c3], num_split={"i": "3"})
    # integers: floor division of negatives, casts, comparisons, selects
    divisor = g.const("divisor", [2, -3, 3, -2, 5, 4], i32, quant="uint16")
    g.op("int/floordiv", "FloorDiv", [k, divisor])
    kf = g.op("int/float", "Cast", [k], DstT=_type(f32), SrcT=_type(i32))
    fdiv = g.op("int/floordiv_float", "FloorDiv", [kf, g.const("fdivisor", [2.5, -3.0, 3.0, -2.0, 0.5, 4.0], f32)])
    g.op("int/truncate", "Cast", [g.op("int/scaled", "Mul", [fdiv, g.const("s07", 0.7, f32)])], DstT=_type(i32))
    neg = g.op("int/negative", "Less", [k, g.const("zero_b", 0, i32)])
    g.op("int/negative_float", "Cast", [neg], DstT=_type(f32), SrcT=_type(bool))
    big = g.op("int/big", "Greater", [k, g.const("two_b", 2, i32)])
    g.op("int/select", "Select", [big, kf, g.const("nine", 9.5, f32)])
    g.op("int/and", "LogicalAnd", [neg, g.op("int/even", "Equal", [g.op("int/mod2", "FloorDiv", [k, g.const("two_c", 2, i32)]),
                                                                    g.const("minus4", -4, i32)])])
    # ties: TopK and ArgMax take the lower index, GatherNd
    rows = g.op("tie/rows", "Cast", [g.op("tie/reshape", "Reshape", [g.op("tie/tile", "Tile", [k, g.const("reps2", [2], i32)]),
                                                                     g.const("rows_shape", [2, 6], i32)])], DstT=_type(f32))
    g.op("tie/topk", "TopKV2", [rows, g.const("four", 4, i32)], sorted={"b": True})
    g.op("tie/argmax", "ArgMax", [rows, g.const("axis1", 1, i32)], output_type=_type(i32))
    g.op("tie/gather", "GatherNd", [c4, g.const("gidx", [[0, 1, 0], [0, 0, 1]], i32)])
    # reductions, n-ary and unary ops, concat on NCHW
    g.op("red/sum", "Sum", [c5, g.const("sum_axes", [-1, 1], i32)], keep_dims={"b": True})
    g.op("red/max", "Max", [c5, g.const("max_axes", [2], i32)], keep_dims={"b": False})
    g.op("n/addn", "AddN", [c5, c6, c5])
    g.op("n/sqdiff", "SquaredDifference", [c5, c6])
    g.op("n/min", "Minimum", [c5, c6])
    g.op("n/max", "Maximum", [c5, g.const("channel_floor", [0.1, 0.2, 0.3], f32)])
    g.op("n/ge", "GreaterEqual", [c5, c6])
    g.op("u/abs", "Abs", [c2])
    g.op("u/exp", "Exp", [c6])
    g.op("u/sqrt", "Sqrt", [c6])
    g.op("u/recip", "Reciprocal", [g.op("u/shift", "AddV2", [c6, g.const("one_f", 1.0, f32)])])
    g.op("u/realdiv", "RealDiv", [c5, g.const("per_channel", [[[[2.0, -4.0, 0.5]]]], f32)])
    g.op("u/sub", "Sub", [g.const("seven", 7.0, f32), c6])
    g.op("concat", "ConcatV2", [c5, c6, g.const("concat_axis", -1, i32)], N={"i": "2"})
    g.op("squeeze", "Squeeze", [g.op("expand", "ExpandDims", [c6, g.const("minus1", -1, i32)])], squeeze_dims=_ints([-1]))
    g.op("identity", "Identity", [c6])
    g.outputs.insert(0, g.outputs.pop(g.outputs.index(c6)))  # the signature's output
    return g


@pytest.mark.slow
def test_ops_match_tfjs(tmp_path, tfjs_runner):
    graph = build_model()
    model_json = graph.write(tmp_path / "model", {"x": "x", "k": "k"})
    outputs = list(graph.outputs) + ["split:1", "split:2", "dyn/unpack:1", "tie/topk:1"]
    onnx_path = tmp_path / "ops.onnx"
    convert_tfjs_file(model_json, onnx_path, extra_outputs=outputs[1:])
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["conv/sigmoid"] + outputs[1:]
    k = np.array([-7, 7, -8, 7, 0, -8], np.int32)
    cases = [{"x": np.random.default_rng(s).normal(size=(1, h, w, 4)).astype(np.float32), "k": k}
             for s, (h, w) in enumerate([(13, 9), (8, 16)])]
    expected = tfjs_runner.run(model_json, [(inputs, outputs) for inputs in cases], timeout=300)
    for inputs, want in zip(cases, expected):
        got = dict(zip([o.name for o in session.get_outputs()], session.run(None, inputs)))
        for name in outputs:
            ours, theirs = got[name], want[name]
            where = f"{name} at {inputs['x'].shape}"
            assert ours.shape == theirs.shape, (where, ours.shape, theirs.shape)
            if theirs.dtype == np.float32:
                assert ours.dtype == np.float32, where
                excess = np.abs(ours - theirs) - 1e-5 * np.maximum(1.0, np.abs(theirs))  # float rounding only
                assert excess.max(initial=-1.0) <= 0, (where, np.abs(ours - theirs).max())
            else:
                assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs), (where, ours, theirs)
