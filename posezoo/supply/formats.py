"""The format table: every kind of file the registry may name, and what the supply chain does with it.

One :class:`Format` per name, in :data:`FORMATS`: the *model* formats (``tflite``, ``tfjs``, ``onnx``),
the ``format`` of a registry file. ``converter`` is the name of the function
:mod:`posezoo.supply.convert` exports for it, looked up (and so imported) only when a conversion is
due; ``version`` is that converter's version, which the cache compares (bump it whenever the
converter's output changes); ``shards`` says the file lists weight shards (a TF.js ``model.json``).
``onnx`` has no converter: the file is its own model.

The registry validates ``format`` against these names and convert looks formats up here, so a new
format is one row of this table (plus its converter). This module sits below the registry and imports
nothing above it: converters are named, never imported, here.
"""

from __future__ import annotations

from dataclasses import dataclass

from posezoo.errors import RegistryError

MODEL = "model"


@dataclass(frozen=True)
class Format:
    name: str
    kind: str  # MODEL
    what: str  # one line for docs and messages
    converter: str | None = None  # model formats: the posezoo.supply.convert function that converts it
    version: str | None = None  # that converter's version (the cache converts again when it changes)
    shards: bool = False  # the file lists weight shards (required then, refused otherwise)

    @property
    def is_model(self) -> bool:
        return self.kind == MODEL

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
    )
}


def names(kind: str) -> tuple[str, ...]:
    """The names of the formats of one kind (MODEL), in table order."""
    return tuple(name for name, f in FORMATS.items() if f.kind == kind)


def lookup(name: str, kind: str = MODEL) -> Format:
    """The format ``name`` of ``kind``; a one-line RegistryError naming it and the known ones."""
    fmt = FORMATS.get(name)
    if fmt is None or fmt.kind != kind:
        raise RegistryError(f"format {name!r} is not a known {kind} format", f"use one of: {', '.join(names(kind))}")
    return fmt

