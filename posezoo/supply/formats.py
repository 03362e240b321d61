"""The format table: every kind of file the registry may name, and what the supply chain does with it.

One :class:`Format` per name, in :data:`FORMATS`. Two kinds:

- *model* formats (``tflite``, ``tfjs``, ``onnx``): the ``format`` of a registry file. ``converter`` is
  the name of the function :mod:`posezoo.supply.convert` exports for it, looked up (and so imported)
  only when a conversion is due; ``version`` is that converter's version, which the cache compares
  (bump it whenever the converter's output changes); ``shards`` says the file lists weight shards
  (a TF.js ``model.json``). ``onnx`` has no converter: the file is its own model.
- *archive* formats (``zip``, ``tar.gz``): the ``format`` of an ``archive`` a registry file is a member
  of. ``open_member`` is the post-fetch step: once the archive is fetched and verified like any file,
  it opens the named member (:mod:`posezoo.supply.archive`), which fetch streams out, bounded and
  verified like a download. ``suffixes`` give the format of an archive whose entry names none.

The registry validates ``format`` against these names and fetch and convert look formats up here, so
a new format is one row of this table (plus its converter or reader). This module sits below the
registry and imports nothing above it: converters are named, never imported, here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from posezoo.errors import RegistryError
from posezoo.supply import archive

MODEL = "model"
ARCHIVE = "archive"


@dataclass(frozen=True)
class Format:
    name: str
    kind: str  # MODEL or ARCHIVE
    what: str  # one line for docs and messages
    converter: str | None = None  # model formats: the posezoo.supply.convert function that converts it
    version: str | None = None  # that converter's version (the cache converts again when it changes)
    shards: bool = False  # the file lists weight shards (required then, refused otherwise)
    open_member: Callable[..., archive.OpenMember] | None = None  # archive formats: the post-fetch step
    suffixes: tuple[str, ...] = ()  # archive formats: the file-name endings that mean this format

    @property
    def is_model(self) -> bool:
        return self.kind == MODEL

    @property
    def is_archive(self) -> bool:
        return self.kind == ARCHIVE

    @property
    def is_onnx(self) -> bool:
        """A model format with no converter: the file is its own ONNX model."""
        return self.is_model and self.converter is None


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("tflite", MODEL, "a TFLite flatbuffer, converted to ONNX by posezoo",
               converter="convert_file", version="5"),
        Format("tfjs", MODEL, "a TF.js graph model's model.json, its weights in `shards`; converted to ONNX",
               converter="convert_tfjs_file", version="tfjs-1", shards=True),
        Format("onnx", MODEL, "an ONNX model, used as it is"),
        Format("zip", ARCHIVE, "a .zip archive (stored or deflated members)",
               open_member=archive.open_zip_member, suffixes=(".zip",)),
        Format("tar.gz", ARCHIVE, "a gzip-compressed tar archive",
               open_member=archive.open_tar_member, suffixes=(".tar.gz", ".tgz")),
    )
}


def names(kind: str) -> tuple[str, ...]:
    """The names of the formats of one kind (MODEL or ARCHIVE), in table order."""
    return tuple(name for name, f in FORMATS.items() if f.kind == kind)


def lookup(name: str, kind: str = MODEL) -> Format:
    """The format ``name`` of ``kind``; a one-line RegistryError naming it and the known ones."""
    fmt = FORMATS.get(name)
    if fmt is None or fmt.kind != kind:
        raise RegistryError(f"format {name!r} is not a known {kind} format", f"use one of: {', '.join(names(kind))}")
    return fmt


def archive_format_of(file_name: str) -> Format | None:
    """The archive format a file name's ending says (``bundle.tgz`` -> tar.gz); None when none does."""
    lower = file_name.lower()
    for fmt in FORMATS.values():
        if fmt.is_archive and any(lower.endswith(s) for s in fmt.suffixes):
            return fmt
    return None
