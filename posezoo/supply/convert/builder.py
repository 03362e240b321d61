"""Build the ONNX graph: values, layouts, constants, node emission and the final ModelProto.

TFLite tensors are NHWC. Inside the ONNX graph every 4-D activation is kept NCHW (onnxruntime's fast
layout) wherever an operator allows it; a :class:`Value` records, for each TFLite tensor, the ONNX
value holding it and whether that value is stored NCHW. Converting between the two layouts emits a
Transpose at most once per tensor (cached). A zero PAD in front of a convolution is not emitted at
once: the value carries the pending ``pads`` so the convolution can absorb them, and any other
consumer materialises the Pad node.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from posezoo.supply.convert.target import Target, detect_target
from posezoo.supply.convert.tflite_reader import Graph
from posezoo.errors import ConvertError

OPSET = 17
IR_VERSION = 8
NHWC_TO_NCHW = (0, 3, 1, 2)
NCHW_TO_NHWC = (0, 2, 3, 1)
_FLOAT32 = np.dtype("float32")


@dataclass
class Value:
    """The ONNX value holding one TFLite tensor.

    ``nchw``: stored as the NCHW transpose of the (4-D, NHWC) TFLite tensor.
    ``pads``: pending zero padding (top, left, bottom, right) not yet applied to ``name``.
    """

    name: str
    nchw: bool
    pads: tuple[int, int, int, int] | None = None


class GraphBuilder:
    """Accumulates nodes and initializers while the operator handlers walk the TFLite graph."""

    def __init__(self, graph: Graph, label: str, target: Target | None = None):
        self.graph = graph
        self.label = label
        self.target = target or detect_target()  # the layout choices that depend on the CPU read it
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.values: dict[int, Value] = {}
        self.constants: dict[int, np.ndarray] = {}
        self._nhwc_cache: dict[int, str] = {}
        self._shared_consts: dict[tuple, str] = {}
        self._io_names = {graph.tensors[i].name for i in graph.inputs + graph.outputs}
        self._taken = set(self._io_names)
        for i, t in enumerate(graph.tensors):
            if t.data is not None:
                self.constants[i] = t.data
        for i in graph.inputs:
            self._check_float(i)
            self.values[i] = Value(graph.tensors[i].name, nchw=False)

    # -- errors, names, shapes ------------------------------------------------------------------

    def fail(self, message: str, fix: str = "this model needs a newer posezoo converter") -> ConvertError:
        return ConvertError(f"cannot convert {self.label}: {message}", fix)

    def unique(self, base: str) -> str:
        return unique_name(base or "t", self._taken)

    def shape(self, index: int) -> tuple[int, ...]:
        return self.graph.tensors[index].shape

    def tensor_name(self, index: int) -> str:
        return self.graph.tensors[index].name

    # -- constants -------------------------------------------------------------------------------

    def constant(self, index: int, role: str) -> np.ndarray:
        """The value of a constant input (folded DENSIFY/DEQUANTIZE included); fail if it is not one."""
        if index not in self.constants:
            raise self.fail(f"{role} ({self.tensor_name(index)!r}) is not a constant", "only constant weights are supported")
        return self.constants[index]

    def set_constant(self, index: int, array: np.ndarray) -> None:
        self.constants[index] = array

    def initializer(self, array: np.ndarray, base: str) -> str:
        name = self.unique(base)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def shared_constant(self, values, dtype) -> str:
        """A small constant (clip bounds, shapes) stored once however often it is used."""
        array = np.asarray(values, dtype=dtype)
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self._shared_consts:
            self._shared_consts[key] = self.initializer(array, "const")
        return self._shared_consts[key]

    # -- nodes -----------------------------------------------------------------------------------

    def node(self, op_type: str, inputs: list[str], base: str, **attrs) -> str:
        out = self.unique(base)
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def set(self, index: int, name: str, nchw: bool, pads=None) -> None:
        """Record that TFLite tensor ``index`` is now held by ONNX value ``name``."""
        self._check_float(index)
        self.values[index] = Value(name, nchw, pads)

    def _check_float(self, index: int) -> None:
        t = self.graph.tensors[index]
        if t.dtype != _FLOAT32:
            kind = t.dtype.name if t.dtype is not None else "unknown"
            raise self.fail(f"tensor {t.name!r} has type {kind}; only float32 activations are supported",
                            "use the float model")

    # -- layouts ---------------------------------------------------------------------------------

    def value(self, index: int) -> Value:
        if index not in self.values:
            if index not in self.constants:
                raise self.fail(f"tensor {self.tensor_name(index)!r} is used before it is computed")
            array = self.constants[index]
            self.values[index] = Value(self.initializer(array.astype(np.float32), self.tensor_name(index)), False)
        return self.values[index]

    def is_nchw(self, index: int) -> bool:
        return self.value(index).nchw

    def nchw_unpadded(self, index: int) -> tuple[str, tuple[int, int, int, int]]:
        """The tensor in NCHW without its pending zero pads, and those pads (for a Conv to absorb)."""
        v = self.value(index)
        if not v.nchw:
            self._require_rank(index, 4)
            v = Value(self.node("Transpose", [v.name], v.name + "_nchw", perm=list(NHWC_TO_NCHW)), True)
            self.values[index] = v
        return v.name, v.pads or (0, 0, 0, 0)

    def nchw(self, index: int) -> str:
        """The tensor in NCHW, pads applied."""
        name, pads = self.nchw_unpadded(index)
        if any(pads):
            top, left, bottom, right = pads
            pads_const = self.shared_constant([0, 0, top, left, 0, 0, bottom, right], np.int64)
            name = self.node("Pad", [name, pads_const], self.tensor_name(index))
            self.values[index] = Value(name, True)
        return name

    def nhwc(self, index: int) -> str:
        """The tensor in its TFLite (NHWC) layout."""
        if not self.value(index).nchw:
            return self.value(index).name
        if index not in self._nhwc_cache:
            name = self.nchw(index)
            shape = self.shape(index)
            if _is_noop_permutation([shape[p] for p in NHWC_TO_NCHW], NCHW_TO_NHWC):
                target = self.shared_constant(shape, np.int64)
                out = self.node("Reshape", [name, target], self.tensor_name(index) + "_nhwc")
            else:
                out = self.node("Transpose", [name], self.tensor_name(index) + "_nhwc", perm=list(NCHW_TO_NHWC))
            self._nhwc_cache[index] = out
        return self._nhwc_cache[index]

    def layout_input(self, index: int, nchw: bool) -> str:
        return self.nchw(index) if nchw else self.nhwc(index)

    def _require_rank(self, index: int, rank: int) -> None:
        if len(self.shape(index)) != rank:
            raise self.fail(f"tensor {self.tensor_name(index)!r} has shape {list(self.shape(index))}, expected rank {rank}")

    # -- result ----------------------------------------------------------------------------------

    def finish(self, graph_name: str, producer_version: str) -> onnx.ModelProto:
        """Name the graph outputs after the TFLite outputs (NHWC again) and assemble the model."""
        renames = {}
        for index in self.graph.outputs:
            if index not in self.values or index in self.graph.inputs:
                raise self.fail(f"output {self.tensor_name(index)!r} is not computed by an operator")
            renames[self.nhwc(index)] = self.tensor_name(index)
        for node in self.nodes:
            node.input[:] = [renames.get(n, n) for n in node.input]
            node.output[:] = [renames.get(n, n) for n in node.output]
            node.name = renames.get(node.name, node.name)
        return make_model(self.nodes, [self._value_info(i) for i in self.graph.inputs],
                          [self._value_info(i) for i in self.graph.outputs], self.initializers,
                          graph_name, producer_version)

    def _value_info(self, index: int) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(self.tensor_name(index), TensorProto.FLOAT, list(self.shape(index)))


def make_model(nodes, inputs, outputs, initializers, graph_name: str, producer_version: str) -> onnx.ModelProto:
    """The ModelProto of every converter: opset :data:`OPSET`, IR :data:`IR_VERSION`, posezoo as producer."""
    graph = helper.make_graph(nodes, graph_name, inputs, outputs, initializer=initializers)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="posezoo.supply.convert",
        producer_version=producer_version,
    )
    model.ir_version = IR_VERSION
    return model


def checked_bytes(model: onnx.ModelProto, label: str) -> bytes:
    """``model`` serialized, after onnx's checker accepted it (else a one-line ConvertError)."""
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConvertError(f"cannot convert {label}: produced an invalid ONNX graph ({first_line})",
                           "please report this as a posezoo bug") from None
    return model.SerializeToString()


def unique_name(base: str, taken: set[str]) -> str:
    """``base``, or ``base_1``, ``base_2``... whichever is not in ``taken`` first; added to ``taken``."""
    name, n = base, 0
    while name in taken:
        n += 1
        name = f"{base}_{n}"
    taken.add(name)
    return name


def _is_noop_permutation(shape, perm) -> bool:
    """True when transposing ``shape`` by ``perm`` keeps the memory order (only size-1 axes move)."""
    moved = [axis for axis in perm if shape[axis] != 1]
    return moved == sorted(moved)
