"""Exact TFLite -> ONNX and TF.js graph model -> ONNX conversion.

MediaPipe publishes its models only as TFLite; posezoo runs them on onnxruntime, so it converts them
itself. The converter keeps the TFLite signature (input/output names, NHWC shapes, float32) and lays
the graph out the way onnxruntime runs fastest: NCHW inside, one Transpose after the input and before
each 4-D output, OIHW weights, constants folded (no DENSIFY/DEQUANTIZE at run time), fused
activations as Relu/Clip nodes after the Conv, SAME padding and zero PADs turned into Conv pads; then
:mod:`posezoo.supply.convert.optimize` rewrites patterns onnxruntime runs slowly into exact equivalents.

Public API::

    ensure_onnx(entry, cache)                    # the .onnx of a cached registry file, converted once
    convert_file(src, dst, *, model_name=None, target=None)   # .tflite -> .onnx, written atomically
    convert_bytes(data, *, model_name=None, target=None)      # -> serialized ONNX ModelProto
    detect_target(), Target                      # the machine a conversion is laid out for
    conversion_key(target=None)                  # converter version + target: what the cache compares
    CONVERTER_VERSION                            # bump when the output changes

    convert_tfjs_file(model_json, dst, *, weights=None, model_name=None)  # TF.js graph model -> .onnx
    convert_tfjs_bytes(model_json, shards, *, model_name=None)           # -> serialized ONNX ModelProto
    TFJS_CONVERTER_VERSION                       # the TF.js path's version (see posezoo.supply.convert.tfjs)

The layout depends on the CPU (onnxruntime's NCHWc channel block, see :mod:`posezoo.supply.convert.target`):
a conversion is made for ``target`` (default: this machine's), records it in the model's
metadata_props (``posezoo.target``, ``posezoo.nchwc_block``; a TFLite conversion also
``posezoo.converter_version``, ``posezoo.conversion_key``), and the cache converts again when the key
it recorded (converter version and block) is not this machine's.

Every failure is a :class:`posezoo.errors.ConvertError` with a one-line message.

Which converter a registry file needs, and its version, come from the format table
(:data:`posezoo.supply.formats.FORMATS`): ``ensure_onnx`` looks the file's format up there. The
converters themselves (:mod:`posezoo.supply.convert.tflite`, :mod:`posezoo.supply.convert.tfjs`, with onnx and
their op tables) are imported on first use: running a model that is already converted, which is what
``posezoo run`` and every batch worker do, never loads them.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

from posezoo.supply import formats, progress as _progress
from posezoo.supply.cache import Cache
from posezoo.supply.convert.target import Target, detect_target
from posezoo.supply.convert.versions import CONVERTER_VERSION, TFJS_CONVERTER_VERSION
from posezoo.errors import ConvertError
from posezoo.supply.registry import FileEntry

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

_CONVERTERS = {  # name -> the module that defines it, imported when the name is first asked for
    "SUPPORTED_OPS": "posezoo.supply.convert.tflite",
    "convert_bytes": "posezoo.supply.convert.tflite",
    "convert_file": "posezoo.supply.convert.tflite",
    "SUPPORTED_TFJS_OPS": "posezoo.supply.convert.tfjs",
    "convert_tfjs_bytes": "posezoo.supply.convert.tfjs",
    "convert_tfjs_file": "posezoo.supply.convert.tfjs",
}


def __getattr__(name: str) -> Any:
    module = _CONVERTERS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_CONVERTERS))


def conversion_key(target: Target | None = None, version: str | None = None) -> str:
    """What a converted model depends on: the converter version (default: the TFLite path's, from the
    format table) and the target's NCHWc block (two targets with the same block get the same graph),
    e.g. ``"5/nchwc16"``."""
    target = target or detect_target()
    version = version or formats.FORMATS["tflite"].version
    return f"{version}/nchwc{target.block}" if target.nchwc else f"{version}/nchw"


def ensure_onnx(entry: FileEntry, cache: Cache | None = None, *, progress: bool | None = True) -> Path:
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
    progress = _progress.enabled(progress)
    fmt = formats.FORMATS.get(entry.format)
    if fmt is None or not fmt.is_model:
        known = ", ".join(formats.names(formats.MODEL))
        what = "is an archive, not a model" if fmt is not None else "is not a known format"
        raise ConvertError(f"cannot convert {entry.name}: format {entry.format!r} {what}", f"model formats: {known}")
    if fmt.is_onnx:
        return cache.require_verified(entry)
    key = conversion_key(version=fmt.version)
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
            # (attribute access on the package: loads the converter on first use)
            convert = getattr(sys.modules[__name__], fmt.converter)
            with _progress.step(progress, f"converting {entry.name} to ONNX", f"converted {entry.name} to ONNX"):
                if fmt.shards:
                    weights = {shard.name: cache.require_verified(shard) for shard in entry.shards}
                    convert(src, dst, weights=weights, model_name=entry.name)
                else:
                    convert(src, dst, model_name=entry.name)
            try:
                cache.record_conversion(entry, key)
            except OSError as exc:
                raise cache.write_error(exc, f"record the conversion of {entry.name}") from None
    return dst
