"""Reading a source model file and writing the converted one, for both converters: every failure is a
one-line :class:`ConvertError` naming the file, and the ONNX file appears whole or not at all."""

from __future__ import annotations

from pathlib import Path

from posezoo.supply.atomic import write_bytes
from posezoo.errors import ConvertError


def read_source(path: Path, not_a_file_fix: str, what: str = "") -> bytes:
    """The bytes of ``path`` (``what`` it is, e.g. "weight shard", goes before its name in messages).
    Anything but a regular file is refused before it is opened: a FIFO would block, a device such as
    /dev/zero never end."""
    name = f"{what} {path}" if what else str(path)
    if path.exists() and not path.is_file():
        raise ConvertError(f"cannot read {name}: it is not a regular file", not_a_file_fix)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConvertError(f"cannot read {name}: {exc.strerror or type(exc).__name__}",
                           "check the path, or delete the cached file so it is downloaded again") from None


def write_onnx(dst: Path, onnx_bytes: bytes) -> None:
    """Write the converted model to ``dst`` atomically."""
    try:
        write_bytes(dst, onnx_bytes)
    except OSError as exc:
        raise ConvertError(f"cannot write {dst}: {exc.strerror or type(exc).__name__}",
                           "check that the folder is writable and the disk is not full") from None
