"""Exact TF.js graph model -> ONNX conversion.

TF.js publishes models as ``model.json`` (a TensorFlow GraphDef as JSON plus a weights manifest) and
``.bin`` weight shards. The converter keeps the model's signature (input/output names without ``:0``,
dtypes such as an int32 image input, NHWC shapes, unknown dimensions as symbolic ONNX dimensions)
and lays the graph out the way onnxruntime runs fastest: NCHW inside, OIHW weights, float16 weights
widened exactly as TF.js widens them, constants folded (shape arithmetic on static shapes disappears),
fused activations as Relu/Clip nodes after the Conv; then :mod:`posezoo.supply.convert.optimize` applies the
TFLite path's exact rewrites. Results differ from TF.js only by float rounding.

Public API (re-exported by :mod:`posezoo.supply.convert`)::

    convert_tfjs_file(model_json, dst, *, weights=None, model_name=None)  # -> .onnx, written atomically
    convert_tfjs_bytes(model_json, shards, *, model_name=None)          # -> serialized ONNX ModelProto
    TFJS_CONVERTER_VERSION                                               # bump when the output changes
    SUPPORTED_TFJS_OPS

``extra_outputs`` (both functions) exposes intermediate TF tensors (``"node"`` or ``"node:k"``) as
additional ONNX outputs of the same name, in TF layout: tests compare them with TF.js.
Every failure is a :class:`posezoo.errors.ConvertError` with a one-line message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from posezoo.supply.convert.builder import checked_bytes
from posezoo.supply.convert.files import read_source, write_onnx
from posezoo.supply.convert.optimize import optimize
from posezoo.supply.convert.tfjs_builder import TfjsBuilder
from posezoo.supply.convert.tfjs_ops import HANDLERS
from posezoo.supply.convert.tfjs_reader import Model, Node, manifest_paths, read_model, split_ref, tensor_ref
from posezoo.supply.convert.versions import TFJS_CONVERTER_VERSION
from posezoo.errors import ConvertError

__all__ = ["SUPPORTED_TFJS_OPS", "TFJS_CONVERTER_VERSION", "convert_tfjs_bytes", "convert_tfjs_file"]

_STRUCTURAL = ("Const", "Placeholder")
SUPPORTED_TFJS_OPS = tuple(sorted(set(HANDLERS) | set(_STRUCTURAL)))
_NOT_A_FILE = "give the model.json of a TF.js model"


def convert_tfjs_bytes(model_json: bytes, shards: Sequence[bytes], *, model_name: str | None = None,
                       extra_outputs: Sequence[str] = (), shard_names: Sequence[str] = ()) -> bytes:
    """Convert a TF.js graph model (the bytes of its model.json and of its weight shards, in the
    manifest's order) to a serialized ONNX model. ``shard_names`` only label error messages."""
    label = model_name or "TF.js model"
    model = read_model(bytes(model_json), [bytes(s) for s in shards], label, shard_names)
    outputs = [(spec.name, spec.ref) for spec in model.outputs]
    for ref in map(tensor_ref, extra_outputs):
        if split_ref(ref)[0] not in model.nodes:
            raise ConvertError(f"cannot convert {label}: extra output {ref!r} is not a node of the graph",
                               "name a node of the model.json")
        if ref not in (r for _, r in outputs):
            outputs.append((ref, ref))
    order = _schedule(model, [ref for _, ref in outputs], label)
    _check_supported(order, label)
    builder = TfjsBuilder(model, label)
    builder.reserve(name for name, _ in outputs)
    for node in order:
        if node.op in _STRUCTURAL:
            if node.name not in builder.tensors:
                raise ConvertError(f"cannot convert {label}: placeholder {node.name!r} is not an input of the signature",
                                   "the model.json is inconsistent; download the model again")
            continue
        try:
            HANDLERS[node.op](builder, node)
        except (ValueError, IndexError, KeyError, TypeError, AttributeError) as exc:  # attributes of the wrong kind
            raise ConvertError(f"cannot convert {label}: node {node.name!r} ({node.op}) is malformed ({type(exc).__name__})",
                               "the model.json is inconsistent; download the model again") from None
    onnx_model = builder.finish(outputs, Path(label).stem, TFJS_CONVERTER_VERSION)
    return checked_bytes(optimize(onnx_model), label)


def convert_tfjs_file(model_json: str | Path, dst: str | Path, *, weights: Mapping[str, str | Path] | None = None,
                      model_name: str | None = None, extra_outputs: Sequence[str] = ()) -> None:
    """Convert the TF.js model.json at ``model_json`` to ``dst`` (.onnx), replacing ``dst`` atomically.

    ``weights`` maps shard names to local files; by default the manifest's paths are read beside
    model.json. Manifest paths find their file by base name; when the names differ but the counts match,
    by order.
    """
    src, dst = Path(model_json), Path(dst)
    label = model_name or src.name
    json_bytes = read_source(src, _NOT_A_FILE, "model.json")
    paths = manifest_paths(json_bytes, label)
    files = _shard_files(src, paths, weights, label)
    shards = [read_source(f, _NOT_A_FILE, "weight shard") for f in files]
    onnx_bytes = convert_tfjs_bytes(json_bytes, shards, model_name=label, extra_outputs=extra_outputs,
                                    shard_names=[f.name for f in files])
    write_onnx(dst, onnx_bytes)


def _shard_files(src: Path, paths: list[str], weights: Mapping[str, str | Path] | None, label: str) -> list[Path]:
    if weights is None:
        return [src.parent / p for p in paths]
    by_name = {Path(str(k)).name: Path(v) for k, v in weights.items()}
    if all(Path(p).name in by_name for p in paths):
        return [by_name[Path(p).name] for p in paths]
    if len(weights) == len(paths):
        return [Path(v) for v in weights.values()]
    missing = next(p for p in paths if Path(p).name not in by_name)
    raise ConvertError(f"cannot convert {label}: no file for its weight shard {missing!r} "
                       f"({len(weights)} given, the manifest lists {len(paths)})",
                       "pass every shard the model.json lists: " + ", ".join(paths))


def _schedule(model: Model, refs: list[str], label: str) -> list[Node]:
    """The nodes the outputs depend on, inputs first (depth-first, iterative); a cycle is an error."""
    order: list[Node] = []
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    for ref in refs:
        stack = [(split_ref(ref)[0], False)]
        while stack:
            name, expanded = stack.pop()
            if expanded:
                state[name] = 2
                order.append(model.nodes[name])
                continue
            if state.get(name) == 2:
                continue
            if state.get(name) == 1:
                raise ConvertError(f"cannot convert {label}: the graph has a cycle through {name!r}",
                                   "models with control flow loops are not supported")
            state[name] = 1
            stack.append((name, True))
            for dep in reversed(model.nodes[name].inputs):
                dep_name = split_ref(dep)[0]
                if state.get(dep_name) == 1:
                    raise ConvertError(f"cannot convert {label}: the graph has a cycle through {dep_name!r}",
                                       "models with control flow loops are not supported")
                if state.get(dep_name) != 2:
                    stack.append((dep_name, False))
    return order


def _check_supported(order: list[Node], label: str) -> None:
    unsupported = sorted({n.op for n in order if n.op not in HANDLERS and n.op not in _STRUCTURAL})
    if unsupported:
        which = "ops " + ", ".join(unsupported) + " are" if len(unsupported) > 1 else f"op {unsupported[0]} is"
        raise ConvertError(f"cannot convert {label}: {which} not supported",
                           "supported: " + ", ".join(SUPPORTED_TFJS_OPS))

