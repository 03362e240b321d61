"""Exact TFLite -> ONNX and TF.js graph model -> ONNX conversion.

MediaPipe publishes its models only as TFLite; posezoo runs them on onnxruntime, so it converts them
itself. The converter keeps the TFLite signature (input/output names, NHWC shapes, float32) and lays
the graph out the way onnxruntime runs fastest: NCHW inside, one Transpose after the input and before
each 4-D output, OIHW weights, constants folded (no DENSIFY/DEQUANTIZE at run time), fused
activations as Relu/Clip nodes after the Conv, SAME padding and zero PADs turned into Conv pads; then
:mod:`posezoo.convert.optimize` rewrites patterns onnxruntime runs slowly into exact equivalents.

Public API::

    ensure_onnx(entry, cache)                    # the .onnx of a cached registry file, converted once
    convert_file(src, dst, *, model_name=None, target=None)   # .tflite -> .onnx, written atomically
    convert_bytes(data, *, model_name=None, target=None)      # -> serialized ONNX ModelProto
    detect_target(), Target                      # the machine a conversion is laid out for
    conversion_key(target=None)                  # converter version + target: what the cache compares
    CONVERTER_VERSION                            # bump when the output changes

    convert_tfjs_file(model_json, dst, *, weights=None, model_name=None)  # TF.js graph model -> .onnx
    convert_tfjs_bytes(model_json, shards, *, model_name=None)           # -> serialized ONNX ModelProto
    TFJS_CONVERTER_VERSION                       # the TF.js path's version (see posezoo.convert.tfjs)

The layout depends on the CPU (onnxruntime's NCHWc channel block, see :mod:`posezoo.convert.target`):
a conversion is made for ``target`` (default: this machine's), records it in the model's
metadata_props (``posezoo.target``, ``posezoo.nchwc_block``; a TFLite conversion also
``posezoo.converter_version``, ``posezoo.conversion_key``), and the cache converts again when the key
it recorded (converter version and block) is not this machine's.

Every failure is a :class:`posezoo.errors.ConvertError` with a one-line message.
"""

from __future__ import annotations

from pathlib import Path

import onnx

from posezoo.convert.builder import GraphBuilder, checked_bytes
from posezoo.convert.files import read_source, write_onnx
from posezoo.convert.ops import HANDLERS
from posezoo.convert.optimize import optimize
from posezoo.convert.target import Target, detect_target
from posezoo.convert.tfjs import SUPPORTED_TFJS_OPS, TFJS_CONVERTER_VERSION, convert_tfjs_bytes, convert_tfjs_file
from posezoo.convert.tflite_reader import Graph, read_graph
from posezoo.cache import Cache
from posezoo.errors import ConvertError
from posezoo.registry import FileEntry

__all__ = [
    "CONVERTER_VERSION",
    "SUPPORTED_OPS",
    "SUPPORTED_TFJS_OPS",
    "TFJS_CONVERTER_VERSION",
    "Target",
    "conversion_key",
    "convert_bytes",
    "convert_file",
    "convert_tfjs_bytes",
    "convert_tfjs_file",
    "detect_target",
    "ensure_onnx",
]

CONVERTER_VERSION = "5"
SUPPORTED_OPS = tuple(sorted(HANDLERS))


def conversion_key(target: Target | None = None, version: str | None = None) -> str:
    """What a converted model depends on: the converter version (default: the TFLite path's) and the
    target's NCHWc block (two targets with the same block get the same graph), e.g. ``"5/nchwc16"``."""
    target = target or detect_target()
    version = version or CONVERTER_VERSION
    return f"{version}/nchwc{target.block}" if target.nchwc else f"{version}/nchw"


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
    props.update({"posezoo.converter_version": CONVERTER_VERSION, "posezoo.conversion_key": conversion_key(target)})
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


def ensure_onnx(entry: FileEntry, cache: Cache | None = None, *, progress: bool = True) -> Path:
    """The ONNX model of a cached registry file, converted now when missing, written by another
    converter version or for another CPU target, or no longer the bytes recorded when it was written
    (the cache records :func:`conversion_key`, i.e. version and NCHWc block, and its digest). A file of
    format onnx is its own model; one of format tfjs (a model.json) is converted with its cached
    weight shards.

    Nothing unverified is returned: an existing .onnx is re-hashed against its recorded digest, the
    source (and every shard) is re-hashed against the registry digest before every conversion, and a
    file of format onnx is re-hashed before it is returned. Conversion failures raise
    :class:`ConvertError`; a file that is not cached, has changed, or a cache that cannot be written,
    ``FetchError``.
    """
    cache = cache or Cache()
    if entry.format == "onnx":
        return cache.require_verified(entry)
    version = TFJS_CONVERTER_VERSION if entry.format == "tfjs" else CONVERTER_VERSION
    key = conversion_key(version=version)
    dst = cache.verified_onnx(entry, key)
    if dst is not None:
        return dst
    with cache.hold(entry, "converting", progress):
        dst = cache.verified_onnx(entry, key)
        if dst is None:
            src = cache.require_verified(entry)
            dst = cache.onnx_path(entry)
            try:
                dst.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise cache.write_error(exc, f"convert {entry.name}") from None
            if entry.format == "tflite":
                convert_file(src, dst, model_name=entry.name)
            elif entry.format == "tfjs":
                weights = {shard.name: cache.require_verified(shard) for shard in entry.shards}
                convert_tfjs_file(src, dst, weights=weights, model_name=entry.name)
            else:
                raise ConvertError(f"cannot convert {entry.name}: format {entry.format!r} has no converter yet")
            try:
                cache.record_conversion(entry, key)
            except OSError as exc:
                raise cache.write_error(exc, f"record the conversion of {entry.name}") from None
    return dst
