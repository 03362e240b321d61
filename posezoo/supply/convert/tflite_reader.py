"""Read a TFLite flatbuffer into plain, immutable Python data.

All flatbuffer access happens here, so that anything the ``tflite``/``flatbuffers`` reader throws on a
malformed or truncated file can be caught in one place and reported as a :class:`ConvertError`.
The result, a :class:`Graph`, holds the first subgraph: its tensors (constant ones with their data,
sparse ones already densified), its operators (builtin name, tensor indices and decoded options) and
its input/output tensor indices.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import flatbuffers
import numpy as np
from flatbuffers import flexbuffers
import tflite
from tflite.BuiltinOperator import BuiltinOperator
from tflite.BuiltinOptions import BuiltinOptions
from tflite.DimensionType import DimensionType
from tflite.SparseIndexVector import SparseIndexVector

from posezoo.errors import ConvertError

_IDENTIFIER = b"TFL3"
_DTYPES = {
    0: np.dtype("<f4"),  # FLOAT32
    1: np.dtype("<f2"),  # FLOAT16
    2: np.dtype("<i4"),  # INT32
    3: np.dtype("u1"),  # UINT8
    4: np.dtype("<i8"),  # INT64
    6: np.dtype("?"),  # BOOL
    7: np.dtype("<i2"),  # INT16
    9: np.dtype("i1"),  # INT8
    10: np.dtype("<f8"),  # FLOAT64
}
_OP_NAMES = {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}
_OPTION_CLASSES = {v: getattr(tflite, k) for k, v in vars(BuiltinOptions).items() if not k.startswith("_") and v}
_INDEX_VECTORS = {
    SparseIndexVector.Int32Vector: tflite.Int32Vector,
    SparseIndexVector.Uint16Vector: tflite.Uint16Vector,
    SparseIndexVector.Uint8Vector: tflite.Uint8Vector,
}


@dataclass(frozen=True)
class Tensor:
    """One tensor: ``data`` is its dense value when it is a constant, else ``None``."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype | None  # None: a type this converter does not know
    data: np.ndarray | None


@dataclass(frozen=True)
class Operator:
    """One operator: ``code`` is the builtin name (``CONV_2D``) or ``CUSTOM (<name>)``; ``-1`` in
    ``inputs`` is an absent input; ``version`` is its operator code's version; ``custom_options`` the
    raw bytes a custom operator carries (a flexbuffer, read by :func:`custom_options`)."""

    code: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict[str, Any]
    version: int = 1
    custom_options: bytes = b""


@dataclass(frozen=True)
class Graph:
    tensors: tuple[Tensor, ...]
    operators: tuple[Operator, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


def read_graph(data: bytes, label: str) -> Graph:
    """Parse ``data`` (a .tflite file's bytes); raise ConvertError if it is not a valid TFLite model."""
    if len(data) < 8 or data[4:8] != _IDENTIFIER:
        raise ConvertError(f"cannot convert {label}: not a TFLite model (no TFL3 identifier)",
                           "pass a .tflite file")
    try:
        return _read(data)
    except ConvertError:
        raise
    except Exception as exc:  # the flatbuffer reader throws anything on corrupt offsets
        kind = type(exc).__name__ if type(exc).__module__ == "builtins" else f"{type(exc).__module__}.{type(exc).__name__}"
        raise ConvertError(f"cannot convert {label}: malformed or truncated TFLite file ({kind})",
                           "download the model again") from None


def _read(data: bytes) -> Graph:
    model = tflite.Model.GetRootAs(data, 0)
    if model.SubgraphsLength() < 1:
        raise ValueError("no subgraph")
    sg = model.Subgraphs(0)
    tensors = tuple(_read_tensor(model, sg.Tensors(i), data) for i in range(sg.TensorsLength()))
    operators = tuple(_read_operator(model, sg.Operators(i)) for i in range(sg.OperatorsLength()))
    n = len(tensors)
    inputs = tuple(int(i) for i in _ints(sg.InputsAsNumpy, sg.InputsLength))
    outputs = tuple(int(i) for i in _ints(sg.OutputsAsNumpy, sg.OutputsLength))
    for op in operators:
        if any(not -1 <= i < n for i in op.inputs) or any(not 0 <= i < n for i in op.outputs):
            raise IndexError("operator tensor index out of range")
    if any(not 0 <= i < n for i in inputs + outputs):
        raise IndexError("graph tensor index out of range")
    return Graph(tensors, operators, inputs, outputs)


def _ints(as_numpy, length) -> list[int]:
    """A flatbuffer int vector as a list (the generated code returns 0, not [], for an absent vector)."""
    return [int(v) for v in as_numpy()] if length() else []


def _read_tensor(model, t, data: bytes) -> Tensor:
    name = t.Name().decode("utf-8", "replace") if t.Name() is not None else ""
    shape = tuple(_ints(t.ShapeAsNumpy, t.ShapeLength))
    dtype = _DTYPES.get(t.Type())
    raw = _buffer_bytes(model.Buffers(t.Buffer()), data)
    if raw is None or dtype is None:
        return Tensor(name, shape, dtype, None)
    values = np.frombuffer(raw, dtype=dtype)
    sparsity = t.Sparsity()
    if sparsity is not None:
        return Tensor(name, shape, dtype, _densify(values, shape, sparsity))
    if values.size != int(np.prod(shape, dtype=np.int64)):
        raise ValueError(f"tensor {name}: {values.size} values for shape {shape}")
    return Tensor(name, shape, dtype, values.reshape(shape))


def _buffer_bytes(buffer, data: bytes) -> bytes | None:
    """A constant's raw bytes: inline in the buffer, or (large models) at an offset into the file."""
    if buffer.DataLength():
        return buffer.DataAsNumpy().tobytes()
    if buffer.Offset() > 1:
        start, size = buffer.Offset(), buffer.Size()
        if start + size > len(data):
            raise ValueError("buffer outside the file")
        return data[start:start + size]
    return None


def _read_operator(model, op) -> Operator:
    code = model.OperatorCodes(op.OpcodeIndex())
    builtin = builtin_code(code)
    name = _OP_NAMES.get(builtin, f"BUILTIN_{builtin}")
    if name == "CUSTOM":
        name = f"CUSTOM ({(code.CustomCode() or b'').decode('utf-8', 'replace')})"
    return Operator(
        code=name,
        inputs=tuple(_ints(op.InputsAsNumpy, op.InputsLength)),
        outputs=tuple(_ints(op.OutputsAsNumpy, op.OutputsLength)),
        options=_read_options(op),
        version=int(code.Version()),
        custom_options=op.CustomOptionsAsNumpy().tobytes() if op.CustomOptionsLength() else b"",
    )


def custom_options(op: Operator) -> dict[str, Any]:
    """A custom operator's options: its flexbuffer map as a dict (empty when it carries none).
    Raises ValueError when the bytes are not a flexbuffer map."""
    if not op.custom_options:
        return {}
    try:
        value = flexbuffers.Loads(op.custom_options)
    except Exception as exc:  # the flexbuffer reader throws anything on bad bytes
        raise ValueError(f"unreadable custom options ({type(exc).__name__})") from None
    if not isinstance(value, dict):
        raise ValueError("custom options are not a flexbuffer map")
    return value


def builtin_code(code: tflite.OperatorCode) -> int:
    """The operator code's builtin number, as TFLite's own ``GetBuiltinCode`` reads it: the larger of
    ``builtin_code`` (int32, schema field 3) and ``deprecated_builtin_code`` (int8, field 0).

    Read raw, not through ``tflite.OperatorCode.BuiltinCode()``: that returns the deprecated field
    whenever ``builtin_code`` is below 127, so a file that stores only ``builtin_code`` (as
    MediaPipe 0.8.2's pose_landmark_full_body.tflite does; flatbuffers omit the absent int8 field,
    read as 0) would read as ADD everywhere.
    """
    table = code._tab
    offset = table.Offset(10)
    new = table.Get(flatbuffers.number_types.Int32Flags, table.Pos + offset) if offset else 0
    return max(int(new), int(code.DeprecatedBuiltinCode()))


def _read_options(op) -> dict[str, Any]:
    """Decode the operator's builtin options table into ``{"StrideH": 2, "NewShape": [1, -1], ...}``."""
    cls = _OPTION_CLASSES.get(op.BuiltinOptionsType())
    table = op.BuiltinOptions()
    if cls is None or table is None:
        return {}
    obj = cls()
    obj.Init(table.Bytes, table.Pos)
    options = {}
    for field, method in vars(cls).items():
        if not field[0].isupper() or field.startswith("GetRootAs") or field == "Init":
            continue
        if field.endswith(("AsNumpy", "Length", "IsNone", "BufferHasIdentifier")):
            continue
        if hasattr(cls, field + "AsNumpy"):
            options[field] = _ints(getattr(obj, field + "AsNumpy"), getattr(obj, field + "Length"))
        elif len(inspect.signature(method).parameters) == 1:
            options[field] = getattr(obj, field)()
    return options


def _densify(values: np.ndarray, shape: tuple[int, ...], sparsity) -> np.ndarray:
    """Expand a TFLite sparse constant (traversal order, block map, DENSE/SPARSE_CSR dims) to dense.

    Walks the traversal-order levels breadth-first, which enumerates the stored values in the same
    (lexicographic) order as TFLite's depth-first ``FormatConverter``; then scatters them.
    """
    rank = len(shape)
    order = _ints(sparsity.TraversalOrderAsNumpy, sparsity.TraversalOrderLength)
    block_map = _ints(sparsity.BlockMapAsNumpy, sparsity.BlockMapLength)
    if sorted(order) != list(range(rank + len(block_map))) or sparsity.DimMetadataLength() != len(order):
        raise ValueError("inconsistent sparsity parameters")
    positions = np.zeros(1, dtype=np.int64)  # index into the current level (CSR: into array_indices)
    level_indices = []  # per level: the coordinate of every node at the deepest level so far
    block_sizes = {}
    for level, dim in enumerate(order):
        meta = sparsity.DimMetadata(level)
        if meta.Format() == DimensionType.DENSE:
            size = meta.DenseSize()
            coords = np.tile(np.arange(size, dtype=np.int64), positions.size)
            parents = np.repeat(np.arange(positions.size), size)
            positions = positions[parents] * size + coords
        else:
            segments = _index_vector(meta.ArraySegmentsType(), meta.ArraySegments())
            indices = _index_vector(meta.ArrayIndicesType(), meta.ArrayIndices())
            if positions.size and positions.max() + 1 >= segments.size:
                raise ValueError("sparse segments too short")
            starts, ends = segments[positions], segments[positions + 1]
            counts = ends - starts
            if (counts < 0).any() or ends.max(initial=0) > indices.size:
                raise ValueError("sparse segments out of range")
            parents = np.repeat(np.arange(positions.size), counts)
            positions = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts) + starts[parents]
            coords = indices[positions]
            size = None
        level_indices = [idx[parents] for idx in level_indices] + [coords]
        if dim >= rank:
            block_sizes[dim - rank] = size
    if positions.size != values.size:
        raise ValueError(f"sparse tensor has {values.size} values, its metadata {positions.size}")
    coords = [None] * rank
    for level, dim in enumerate(order):
        if dim < rank:
            coords[dim] = level_indices[level]
    for block, dim in enumerate(block_map):
        if block_sizes.get(block) is None:
            raise ValueError("sparse block dimension must be dense")
        level = order.index(rank + block)
        coords[dim] = coords[dim] * block_sizes[block] + level_indices[level]
    if any(c is None for c in coords):
        raise ValueError("sparse traversal order misses a dimension")
    for c, n in zip(coords, shape):
        if c.size and (c.min() < 0 or c.max() >= n):
            raise ValueError("sparse index out of range")
    dense = np.zeros(shape, dtype=values.dtype)
    dense[tuple(coords)] = values
    return dense


def _index_vector(kind: int, table) -> np.ndarray:
    cls = _INDEX_VECTORS.get(kind)
    if cls is None or table is None:
        raise ValueError("missing sparse index vector")
    vec = cls()
    vec.Init(table.Bytes, table.Pos)
    if not vec.ValuesLength():
        return np.zeros(0, dtype=np.int64)
    return vec.ValuesAsNumpy().astype(np.int64)
