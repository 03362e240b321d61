"""Exact TFLite -> ONNX and TF.js graph model -> ONNX conversion.

MediaPipe publishes its models only as TFLite; posezoo runs them on onnxruntime, so it converts them
itself. The converter keeps the TFLite signature (input/output names, NHWC shapes, float32) and lays
the graph out the way onnxruntime runs fastest: NCHW inside, one Transpose after the input and before
each 4-D output, OIHW weights, constants folded (no DENSIFY/DEQUANTIZE at run time), fused
activations as Relu/Clip nodes after the Conv, SAME padding and zero PADs turned into Conv pads; then
:mod:`posezoo.convert.optimize` rewrites patterns onnxruntime runs slowly into exact equivalents.

Public API::

    ensure_onnx(entry, cache)                    # the .onnx of a cached registry file, converted once
    convert_file(src, dst, *, model_name=None)   # .tflite -> .onnx, written atomically
    convert_bytes(data, *, model_name=None)      # -> serialized ONNX ModelProto
    CONVERTER_VERSION                            # bump when the output changes

    convert_tfjs_file(model_json, dst, *, weights=None, model_name=None)  # TF.js graph model -> .onnx
    convert_tfjs_bytes(model_json, shards, *, model_name=None)           # -> serialized ONNX ModelProto
    TFJS_CONVERTER_VERSION                       # the TF.js path's version (see posezoo.convert.tfjs)

Every failure is a :class:`posezoo.errors.ConvertError` with a one-line message.
"""

from __future__ import annotations

from pathlib import Path

from posezoo.atomic import write_bytes
from posezoo.convert.builder import GraphBuilder, checked_bytes
from posezoo.convert.ops import HANDLERS
from posezoo.convert.optimize import optimize
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
    "convert_bytes",
    "convert_file",
    "convert_tfjs_bytes",
    "convert_tfjs_file",
    "ensure_onnx",
]

CONVERTER_VERSION = "4"
SUPPORTED_OPS = tuple(sorted(HANDLERS))


def convert_bytes(data: bytes, *, model_name: str | None = None) -> bytes:
    """Convert a TFLite model (the bytes of a .tflite file) to a serialized ONNX model."""
    label = model_name or "TFLite model"
    graph = read_graph(bytes(data), label)
    _check_supported(graph, label)
    builder = GraphBuilder(graph, label)
    for number, op in enumerate(graph.operators):
        try:
            HANDLERS[op.code](builder, op)
        except (ValueError, IndexError, KeyError) as exc:  # shapes/values that contradict each other
            raise ConvertError(f"cannot convert {label}: operator #{number} {op.code} is malformed ({type(exc).__name__})",
                               "the file is inconsistent; download the model again") from None
    return checked_bytes(optimize(builder.finish(Path(label).stem, CONVERTER_VERSION)), label)


def convert_file(src: str | Path, dst: str | Path, *, model_name: str | None = None) -> None:
    """Convert the .tflite at ``src`` to ``dst`` (.onnx), replacing ``dst`` atomically."""
    src, dst = Path(src), Path(dst)
    if src.exists() and not src.is_file():  # a FIFO would block, a device such as /dev/zero never end
        raise ConvertError(f"cannot read {src}: it is not a regular file", "give a .tflite file")
    try:
        data = src.read_bytes()
    except OSError as exc:
        raise ConvertError(f"cannot read {src}: {exc.strerror or type(exc).__name__}",
                           "check the path, or delete the cached file so it is downloaded again") from None
    onnx_bytes = convert_bytes(data, model_name=model_name or src.name)
    try:
        write_bytes(dst, onnx_bytes)
    except OSError as exc:
        raise ConvertError(f"cannot write {dst}: {exc.strerror or type(exc).__name__}",
                           "check that the folder is writable and the disk is not full") from None


def _check_supported(graph: Graph, label: str) -> None:
    unsupported = sorted({op.code for op in graph.operators if op.code not in HANDLERS})
    if unsupported:
        which = "operators " + ", ".join(unsupported) + " are" if len(unsupported) > 1 else f"operator {unsupported[0]} is"
        raise ConvertError(f"cannot convert {label}: {which} not supported",
                           "supported: " + ", ".join(SUPPORTED_OPS))


def ensure_onnx(entry: FileEntry, cache: Cache | None = None, *, progress: bool = True) -> Path:
    """The ONNX model of a cached registry file, converted now when missing, written by another
    converter version, or no longer the bytes recorded when it was written (the cache records which
    version wrote it and its digest). A file of format onnx is its own model; one of format tfjs (a
    model.json) is converted with its cached weight shards.

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
    dst = cache.verified_onnx(entry, version)
    if dst is not None:
        return dst
    with cache.hold(entry, "converting", progress):
        dst = cache.verified_onnx(entry, version)
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
                cache.record_conversion(entry, version)
            except OSError as exc:
                raise cache.write_error(exc, f"record the conversion of {entry.name}") from None
    return dst
