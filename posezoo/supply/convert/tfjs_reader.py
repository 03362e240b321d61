"""Read a TF.js graph model (``model.json`` + weight shards) into plain Python data.

``model.json`` holds a TensorFlow GraphDef as JSON (``modelTopology.node``: name, op, input, attr) and a
``weightsManifest``: groups of shard ``paths`` and ``weights`` (name, shape, dtype, optional
``quantization``). The shards of all groups, concatenated in manifest order, hold the weights packed in
manifest order. Every ``Const`` node takes its value from the weight of the same name, decoded exactly
as TF.js decodes it (float16 widened bit-exactly; uint8/uint16 as ``q * scale + min``, computed in
double precision and rounded once to float32, or with JavaScript's ``Math.round`` for int32).

All JSON and byte parsing happens here, so that anything malformed is one :class:`ConvertError`.
The result, a :class:`Model`, holds the graph nodes (attributes decoded to Python values), the constants,
and the signature: input Placeholder names and output tensors.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from posezoo.errors import ConvertError

# TF DataType names -> the dtype TF.js computes in (it runs int64/uint8/... as int32, double as float32).
TF_DTYPES = {
    "DT_FLOAT": np.dtype("float32"),
    "DT_DOUBLE": np.dtype("float32"),
    "DT_HALF": np.dtype("float32"),
    "DT_INT32": np.dtype("int32"),
    "DT_INT64": np.dtype("int32"),
    "DT_INT16": np.dtype("int32"),
    "DT_INT8": np.dtype("int32"),
    "DT_UINT8": np.dtype("int32"),
    "DT_UINT16": np.dtype("int32"),
    "DT_BOOL": np.dtype("bool"),
}
# weightsManifest dtypes -> bytes per stored value
_WEIGHT_DTYPES = {"float32": np.dtype("<f4"), "int32": np.dtype("<i4"), "bool": np.dtype("u1")}
_QUANTIZED = {"float16": np.dtype("<f2"), "uint8": np.dtype("u1"), "uint16": np.dtype("<u2")}


@dataclass(frozen=True)
class Node:
    """One graph node. ``inputs`` are tensor references, ``"node"`` (output 0) or ``"node:k"``; control
    inputs (``"^node"``) are dropped. ``attrs`` maps attribute names to decoded values: a dtype name
    (``"DT_FLOAT"``), int, float, bool, str, list, ``("shape", dims)`` or the raw ``tensor`` dict."""

    name: str
    op: str
    inputs: tuple[str, ...]
    attrs: Mapping[str, Any]


@dataclass(frozen=True)
class TensorSpec:
    """A graph input or output: ONNX name (the tensor name without ``:0``), the tensor reference, and,
    for inputs, the dtype and shape (``None`` for a dimension of any size)."""

    name: str
    ref: str
    dtype: np.dtype | None = None
    shape: tuple[int | None, ...] | None = None


@dataclass(frozen=True)
class Model:
    nodes: Mapping[str, Node]  # in file order
    constants: Mapping[str, np.ndarray]  # Const node name -> value
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


def tensor_ref(text: str) -> str:
    """``"a:0"`` -> ``"a"``; ``"a:2"`` stays; the form used as a key everywhere in the converter."""
    name, sep, index = text.rpartition(":")
    if sep and index.isdigit() and name:
        return name if int(index) == 0 else f"{name}:{int(index)}"
    return text


def split_ref(ref: str) -> tuple[str, int]:
    """``"a:2"`` -> ``("a", 2)``; ``"a"`` -> ``("a", 0)``."""
    name, sep, index = ref.rpartition(":")
    if sep and index.isdigit() and name:
        return name, int(index)
    return ref, 0


def manifest_paths(model_json: bytes, label: str) -> list[str]:
    """The shard paths of a model.json, in the order their bytes are concatenated."""
    data = _load_json(model_json, label)
    return [p for group in _manifest(data, label) for p in group[0]]


def read_model(model_json: bytes, shards: Sequence[bytes], label: str, shard_names: Sequence[str] = ()) -> Model:
    """Parse ``model_json`` and decode the weights from ``shards`` (the manifest's paths, in order)."""
    data = _load_json(model_json, label)
    topology = data.get("modelTopology")
    if not isinstance(topology, dict) or not isinstance(topology.get("node"), list):
        raise _malformed(label, "no modelTopology.node list")
    groups = _manifest(data, label)
    specs = [spec for _, weights in groups for spec in weights]
    weights = _decode_weights(specs, shards, label, shard_names)
    nodes: dict[str, Node] = {}
    for i, raw in enumerate(topology["node"]):
        node = _read_node(raw, i, label)
        if node.name in nodes:
            raise _malformed(label, f"two nodes are named {node.name!r}")
        nodes[node.name] = node
    constants = {}
    for node in nodes.values():
        if node.op == "Const":
            if node.name not in weights:
                raise ConvertError(f"cannot convert {label}: constant {node.name!r} has no weights in the manifest",
                                   "the model.json and its weights do not belong together; download the model again")
            constants[node.name] = weights[node.name]
    for node in nodes.values():
        for ref in node.inputs:
            if split_ref(ref)[0] not in nodes:
                raise ConvertError(f"cannot convert {label}: node {node.name!r} reads {ref!r}, which does not exist",
                                   "the model.json is inconsistent; download the model again")
    inputs, outputs = _signature(data, nodes, label)
    return Model(nodes, constants, inputs, outputs)


# -- JSON ------------------------------------------------------------------------------------------

def _malformed(label: str, what: str) -> ConvertError:
    return ConvertError(f"cannot convert {label}: malformed model.json ({what})",
                        "pass a TF.js graph model's model.json; download the model again if it is damaged")


def _load_json(model_json: bytes, label: str) -> dict:
    try:
        data = json.loads(model_json)
    except (ValueError, UnicodeDecodeError) as exc:
        where = f"line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
        raise _malformed(label, f"not valid JSON, {where}") from None
    if not isinstance(data, dict):
        raise _malformed(label, "not a JSON object")
    fmt = data.get("format")
    if fmt is not None and fmt != "graph-model":
        raise ConvertError(f"cannot convert {label}: a TF.js {fmt!r}, not a graph model",
                           "only TF.js graph models (format graph-model) can be converted")
    return data


def _manifest(data: dict, label: str) -> list[tuple[list[str], list[dict]]]:
    manifest = data.get("weightsManifest")
    if not isinstance(manifest, list):
        raise _malformed(label, "no weightsManifest list")
    groups = []
    for group in manifest:
        paths = group.get("paths") if isinstance(group, dict) else None
        weights = group.get("weights") if isinstance(group, dict) else None
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths) or not isinstance(weights, list):
            raise _malformed(label, "a weightsManifest group without paths or weights")
        if not all(isinstance(w, dict) for w in weights):
            raise _malformed(label, "a weight entry is not an object")
        groups.append((paths, weights))
    return groups


def _read_node(raw: Any, i: int, label: str) -> Node:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not isinstance(raw.get("op"), str):
        raise _malformed(label, f"node #{i} has no name or op")
    inputs = raw.get("input", [])
    attrs = raw.get("attr", {})
    if not isinstance(inputs, list) or not all(isinstance(s, str) for s in inputs) or not isinstance(attrs, dict):
        raise _malformed(label, f"node {raw['name']!r} has a bad input or attr list")
    try:
        decoded = {key: _attr_value(value) for key, value in attrs.items()}
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise _malformed(label, f"node {raw['name']!r} has a bad attribute ({type(exc).__name__})") from None
    refs = tuple(tensor_ref(s) for s in inputs if not s.startswith("^"))
    return Node(raw["name"], raw["op"], refs, decoded)


def _attr_value(value: dict) -> Any:
    """A TF AttrValue in protobuf JSON form -> a Python value."""
    if not isinstance(value, dict):
        raise TypeError("attribute is not an object")
    if "list" in value:
        items = value["list"]
        for key in ("i", "f", "s", "b", "type", "shape"):
            if key in items:
                return [_scalar(key, v) for v in items[key]]
        return []
    for key in ("i", "f", "s", "b", "type", "shape"):
        if key in value:
            return _scalar(key, value[key])
    if "tensor" in value:
        return value["tensor"]
    if "func" in value:
        return ("func", value["func"])
    return None


def _scalar(kind: str, v: Any) -> Any:
    if kind == "i":
        return int(v)
    if kind == "f":
        return float(v)  # "NaN", "Infinity" included
    if kind == "b":
        if not isinstance(v, bool):
            raise TypeError("bool attribute is not a bool")
        return v
    if kind == "s":
        return base64.b64decode(v, validate=True).decode("utf-8", "replace")
    if kind == "type":
        return str(v)
    if kind == "shape":
        if v.get("unknownRank"):
            return ("shape", None)
        return ("shape", tuple(int(d.get("size", -1)) for d in v.get("dim", [])))
    raise KeyError(kind)


def _signature(data: dict, nodes: Mapping[str, Node], label: str) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """Inputs: the Placeholders (signature order when there is one); outputs: the signature's, else the
    tensors no node reads (as TF.js does)."""
    placeholders = {name: node for name, node in nodes.items() if node.op == "Placeholder"}
    signature = data.get("signature") if isinstance(data.get("signature"), dict) else {}
    inputs, outputs = [], []
    for key, kind in (("inputs", inputs), ("outputs", outputs)):
        entries = signature.get(key)
        if entries is None:
            continue
        if not isinstance(entries, dict) or not all(isinstance(e, dict) and isinstance(e.get("name"), str)
                                                     for e in entries.values()):
            raise _malformed(label, f"signature {key} without tensor names")
        for entry in entries.values():
            ref = tensor_ref(entry["name"])
            if split_ref(ref)[0] not in nodes:
                raise ConvertError(f"cannot convert {label}: the signature names {entry['name']!r}, which is not a node",
                                   "the model.json is inconsistent; download the model again")
            kind.append(ref)
    if not inputs:
        inputs = list(placeholders)
    if not outputs:
        read = {split_ref(r)[0] for node in nodes.values() for r in node.inputs}
        outputs = [name for name, node in nodes.items() if name not in read and node.op not in ("Const", "Placeholder", "NoOp")]
    if not outputs:
        raise _malformed(label, "the graph has no outputs")
    input_specs = []
    for ref in inputs:
        node = nodes[split_ref(ref)[0]]
        if node.op != "Placeholder":
            raise ConvertError(f"cannot convert {label}: input {ref!r} is a {node.op} node, not a Placeholder",
                               "only models whose inputs are Placeholders can be converted")
        dtype = TF_DTYPES.get(node.attrs.get("dtype"))
        shape_attr = node.attrs.get("shape")
        dims = shape_attr[1] if isinstance(shape_attr, tuple) else None
        if dtype is None:
            raise ConvertError(f"cannot convert {label}: input {ref!r} has type {node.attrs.get('dtype')}",
                               "only float32, int32 and bool inputs are supported")
        if dims is None:
            raise ConvertError(f"cannot convert {label}: input {ref!r} has no known rank",
                               "only models with inputs of known rank can be converted")
        input_specs.append(TensorSpec(_onnx_name(ref), ref, dtype, tuple(d if d >= 0 else None for d in dims)))
    output_specs = [TensorSpec(_onnx_name(ref), ref) for ref in outputs]
    return tuple(input_specs), tuple(output_specs)


def _onnx_name(ref: str) -> str:
    name, index = split_ref(ref)
    return name if index == 0 else f"{name}:{index}"


# -- weights ---------------------------------------------------------------------------------------

def _decode_weights(specs: list[dict], shards: Sequence[bytes], label: str, shard_names: Sequence[str]) -> dict[str, np.ndarray]:
    layout = []
    total = 0
    for spec in specs:
        name, dtype, shape = spec.get("name"), spec.get("dtype"), spec.get("shape")
        if not isinstance(name, str) or not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise _malformed(label, f"weight {name!r} has no name or a bad shape")
        if dtype not in _WEIGHT_DTYPES:
            raise ConvertError(f"cannot convert {label}: weight {name!r} has type {dtype!r}",
                               "only float32, int32 and bool weights are supported")
        quant = spec.get("quantization")
        stored = _WEIGHT_DTYPES[dtype]
        if quant is not None:
            if not isinstance(quant, dict) or quant.get("dtype") not in _QUANTIZED:
                kind = quant.get("dtype") if isinstance(quant, dict) else quant
                raise ConvertError(f"cannot convert {label}: weight {name!r} has quantization {kind!r}",
                                   "supported quantizations: float16, uint8, uint16")
            if quant["dtype"] == "float16" and dtype != "float32":
                raise _malformed(label, f"weight {name!r} is float16-quantized but of type {dtype}")
            if quant["dtype"] != "float16" and (dtype == "bool" or not all(
                    isinstance(quant.get(k), (int, float)) and not isinstance(quant.get(k), bool) for k in ("scale", "min"))):
                raise _malformed(label, f"weight {name!r} is {quant['dtype']}-quantized without numeric scale and min")
            stored = _QUANTIZED[quant["dtype"]]
        count = math.prod(shape)
        layout.append((name, dtype, tuple(shape), quant, stored, total, count))
        total += count * stored.itemsize
    have = sum(len(s) for s in shards)
    if have != total:
        names = ", ".join(shard_names) if shard_names else f"{len(shards)} shard(s)"
        raise ConvertError(f"cannot convert {label}: the weight shards ({names}) hold {have} bytes, "
                           f"the manifest's weights need {total}",
                           "a shard is truncated or belongs to another model; download the model again")
    blob = shards[0] if len(shards) == 1 else b"".join(shards)
    out = {}
    for name, dtype, shape, quant, stored, offset, count in layout:
        raw = np.frombuffer(blob, dtype=stored, count=count, offset=offset)
        out[name] = _dequantize(raw, dtype, quant).reshape(shape)
    return out


def _dequantize(raw: np.ndarray, dtype: str, quant: dict | None) -> np.ndarray:
    """The weight values as TF.js decodes them."""
    if quant is None:
        return raw.astype(np.bool_ if dtype == "bool" else np.dtype(dtype))
    if quant["dtype"] == "float16":
        return raw.astype(np.float32)  # every float16 is exactly a float32 (TF.js widens bit-exactly too)
    real = raw.astype(np.float64) * float(quant["scale"]) + float(quant["min"])
    if dtype == "float32":
        return real.astype(np.float32)
    floor = np.floor(real)  # JavaScript Math.round: halves round up
    rounded = floor + (real - floor >= 0.5)
    return (np.mod(rounded, 2.0**32).astype(np.uint32)).view(np.int32)  # Int32Array wraps modulo 2^32
