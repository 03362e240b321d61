"""Write small TFLite files in tests: tensors, a few operators, their options (builtin or custom).

``tflite_model(tensors, ops, inputs, outputs)`` returns the bytes of a one-subgraph TFLite model that
LiteRT can load (and our converter can read). A tensor is ``T(name, shape, dtype, data)`` (``data``
None for an activation); an op is ``Op(code, inputs, outputs, options, custom_options)`` where ``code``
is a builtin name (``"STRIDED_SLICE"``) or ``"CUSTOM:<name>"`` (``version``: its operator code's), and ``options`` is
``(OptionsTableName, {"FieldName": value})`` as the tflite schema names them (``("MulOptions",
{"FusedActivationFunction": 1})``).
"""

from __future__ import annotations

from dataclasses import dataclass

import flatbuffers
import numpy as np
import tflite

_TYPES = {np.dtype("float32"): 0, np.dtype("int32"): 2, np.dtype("int64"): 4}


@dataclass
class T:
    name: str
    shape: tuple
    dtype: str = "float32"
    data: np.ndarray | None = None


@dataclass
class Op:
    code: str
    inputs: list
    outputs: list
    options: tuple | None = None
    custom_options: bytes | None = None
    version: int = 1  # the operator code's version


def _ints(builder, values):
    builder.StartVector(4, len(values), 4)
    for v in reversed(list(values)):
        builder.PrependInt32(int(v))
    return builder.EndVector()


def _bytes(builder, data: bytes):
    return builder.CreateNumpyVector(np.frombuffer(data, np.uint8))


def _offsets(builder, offsets):
    builder.StartVector(4, len(offsets), 4)
    for o in reversed(offsets):
        builder.PrependUOffsetTRelative(o)
    return builder.EndVector()


def tflite_model(tensors: list[T], ops: list[Op], inputs: list[int], outputs: list[int]) -> bytes:
    b = flatbuffers.Builder(1024)
    # buffers: 0 is the empty sentinel, then one per constant
    buffer_data = [None] + [t.data for t in tensors if t.data is not None]
    buffers = []
    for data in buffer_data:
        raw = None if data is None else _bytes(b, np.ascontiguousarray(data, dtype=np.dtype(data.dtype).newbyteorder("<")).tobytes())
        tflite.BufferStart(b)
        if raw is not None:
            tflite.BufferAddData(b, raw)
        buffers.append(tflite.BufferEnd(b))
    tensor_offsets, next_buffer = [], 1
    for t in tensors:
        name = b.CreateString(t.name)
        shape = _ints(b, t.shape)
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, shape)
        tflite.TensorAddType(b, _TYPES[np.dtype(t.dtype)])
        tflite.TensorAddName(b, name)
        if t.data is not None:
            tflite.TensorAddBuffer(b, next_buffer)
            next_buffer += 1
        else:
            tflite.TensorAddBuffer(b, 0)
        tensor_offsets.append(tflite.TensorEnd(b))
    codes: list[tuple[str, int]] = []
    for op in ops:
        if (op.code, op.version) not in codes:
            codes.append((op.code, op.version))
    code_offsets = []
    for code, version in codes:
        custom = b.CreateString(code.split(":", 1)[1]) if code.startswith("CUSTOM:") else None
        number = tflite.BuiltinOperator.CUSTOM if custom else getattr(tflite.BuiltinOperator, code)
        tflite.OperatorCodeStart(b)
        tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(number, 127))
        tflite.OperatorCodeAddBuiltinCode(b, number)
        tflite.OperatorCodeAddVersion(b, version)
        if custom is not None:
            tflite.OperatorCodeAddCustomCode(b, custom)
        code_offsets.append(tflite.OperatorCodeEnd(b))
    op_offsets = []
    for op in ops:
        ins, outs = _ints(b, op.inputs), _ints(b, op.outputs)
        options = None
        if op.options is not None:
            table, fields = op.options
            getattr(tflite, table + "Start")(b)
            for name, value in fields.items():
                getattr(tflite, f"{table}Add{name}")(b, value)
            options = getattr(tflite, table + "End")(b)
        custom = _bytes(b, op.custom_options) if op.custom_options is not None else None
        tflite.OperatorStart(b)
        tflite.OperatorAddOpcodeIndex(b, codes.index((op.code, op.version)))
        tflite.OperatorAddInputs(b, ins)
        tflite.OperatorAddOutputs(b, outs)
        if options is not None:
            tflite.OperatorAddBuiltinOptionsType(b, getattr(tflite.BuiltinOptions, op.options[0]))
            tflite.OperatorAddBuiltinOptions(b, options)
        if custom is not None:
            tflite.OperatorAddCustomOptions(b, custom)
        op_offsets.append(tflite.OperatorEnd(b))
    tensors_vec, ops_vec = _offsets(b, tensor_offsets), _offsets(b, op_offsets)
    in_vec, out_vec = _ints(b, inputs), _ints(b, outputs)
    tflite.SubGraphStart(b)
    tflite.SubGraphAddTensors(b, tensors_vec)
    tflite.SubGraphAddOperators(b, ops_vec)
    tflite.SubGraphAddInputs(b, in_vec)
    tflite.SubGraphAddOutputs(b, out_vec)
    subgraph = tflite.SubGraphEnd(b)
    subgraphs, codes_vec, buffers_vec = _offsets(b, [subgraph]), _offsets(b, code_offsets), _offsets(b, buffers)
    description = b.CreateString("posezoo test model")
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, 3)
    tflite.ModelAddOperatorCodes(b, codes_vec)
    tflite.ModelAddSubgraphs(b, subgraphs)
    tflite.ModelAddDescription(b, description)
    tflite.ModelAddBuffers(b, buffers_vec)
    b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())
