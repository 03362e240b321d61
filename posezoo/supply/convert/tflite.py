"""The TFLite -> ONNX converter proper (see :mod:`posezoo.supply.convert` for the guarantees): read the
flatbuffer, build the ONNX graph op by op, optimize it for the target, record the conversion."""

from __future__ import annotations

from pathlib import Path

import onnx

from posezoo.supply.convert import conversion_key
from posezoo.supply.convert.builder import GraphBuilder, checked_bytes
from posezoo.supply.convert.files import read_source, write_onnx
from posezoo.supply.convert.ops import HANDLERS
from posezoo.supply.convert.optimize import optimize
from posezoo.supply.convert.target import Target, detect_target
from posezoo.supply.convert.tflite_reader import Graph, read_graph
from posezoo.supply.convert.versions import CONVERTER_VERSION
from posezoo.errors import ConvertError

SUPPORTED_OPS = tuple(sorted(HANDLERS))


def convert_bytes(data: bytes, *, model_name: str | None = None, target: Target | None = None) -> bytes:
    """Convert a TFLite model (the bytes of a .tflite file) to a serialized ONNX model laid out for
    ``target`` (default: this machine, :func:`detect_target`)."""
    label = model_name or "TFLite model"
    target = target or detect_target()
    graph = read_graph(bytes(data), label)
    _check_supported(graph, label)
    builder = GraphBuilder(graph, label, target)
    for number, op in enumerate(graph.operators):
        try:
            HANDLERS[op.code](builder, op)
        except (ValueError, IndexError, KeyError) as exc:  # shapes/values that contradict each other
            raise ConvertError(f"cannot convert {label}: operator #{number} {op.code} is malformed ({type(exc).__name__})",
                               "the file is inconsistent; download the model again") from None
    model = optimize(builder.finish(Path(label).stem, CONVERTER_VERSION), target)  # records the target
    props = {p.key: p.value for p in model.metadata_props}
    props["posezoo.converter_version"] = CONVERTER_VERSION
    props["posezoo.conversion_key"] = conversion_key(target, CONVERTER_VERSION)
    onnx.helper.set_model_props(model, props)
    return checked_bytes(model, label)


def convert_file(src: str | Path, dst: str | Path, *, model_name: str | None = None,
                 target: Target | None = None) -> None:
    """Convert the .tflite at ``src`` to ``dst`` (.onnx) for ``target``, replacing ``dst`` atomically."""
    src, dst = Path(src), Path(dst)
    data = read_source(src, "give a .tflite file")
    write_onnx(dst, convert_bytes(data, model_name=model_name or src.name, target=target))


def _check_supported(graph: Graph, label: str) -> None:
    unsupported = sorted({op.code for op in graph.operators if op.code not in HANDLERS})
    if unsupported:
        which = "operators " + ", ".join(unsupported) + " are" if len(unsupported) > 1 else f"operator {unsupported[0]} is"
        raise ConvertError(f"cannot convert {label}: {which} not supported",
                           "supported: " + ", ".join(SUPPORTED_OPS))
