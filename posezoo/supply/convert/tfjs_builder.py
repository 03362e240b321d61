"""Build the ONNX graph of a TF.js model: typed values, layouts, constant folding, the final ModelProto.

TF tensors are NHWC. As in the TFLite path (:mod:`posezoo.supply.convert.builder`), 4-D activations are kept
NCHW inside the ONNX graph wherever an operator allows it; a :class:`Tensor` records, for each TF tensor,
the ONNX value holding it, its dtype and TF shape, and whether the value is stored NCHW. Converting
between layouts emits a Transpose at most once per value.

Unlike a TFLite file, a GraphDef carries no shapes and may compute shapes at run time (``Shape`` ->
``StridedSlice`` -> ``ResizeBilinear``), with dimensions unknown until then (a model may take any height and
width). So every emitted node gets its output types from ONNX's own per-node shape inference,
unknown dimensions stay symbolic, and a node whose inputs are all constants is not emitted at all: it is
evaluated at once with ONNX's reference evaluator and its outputs become constants (constant folding, so
shape arithmetic on static shapes disappears from the graph).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from posezoo.supply.convert.builder import NCHW_TO_NHWC, NHWC_TO_NCHW, OPSET, make_model, unique_name
from posezoo.supply.convert.tfjs_reader import Model
from posezoo.errors import ConvertError

Dim = int | str | None  # a size, a named symbolic size, or unknown


@dataclass(frozen=True)
class Tensor:
    """The ONNX value holding one TF tensor; ``shape`` is the TF (NHWC) shape."""

    name: str
    dtype: np.dtype
    shape: tuple[Dim, ...]
    nchw: bool = False

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def static(self) -> bool:
        return all(isinstance(d, int) for d in self.shape)


class TfjsBuilder:
    """Accumulates nodes and constants while the op handlers walk the TF graph in topological order."""

    def __init__(self, model: Model, label: str, input_dims: dict[int, str] | None = None):
        self.model = model
        self.label = label
        self.nodes: list[onnx.NodeProto] = []
        self.tensors: dict[str, Tensor] = {}  # TF tensor reference -> its value
        self.consts: dict[str, np.ndarray] = {}  # ONNX name -> value, for constant values
        self.types: dict[str, tuple[np.dtype, tuple[Dim, ...]]] = {}  # ONNX name -> stored dtype, shape
        self._layouts: dict[tuple[str, bool], str] = {}
        self._graph_inputs: list[onnx.ValueInfoProto] = []
        self._taken: set[str] = set()
        for spec in model.inputs:
            self._taken.add(spec.name)
        for name, array in model.constants.items():
            self.tensors[name] = self._register_const(array, name)
        for spec in model.inputs:
            dims = tuple(d if d is not None else _symbol(spec.name, axis, len(spec.shape), input_dims)
                         for axis, d in enumerate(spec.shape))
            self.types[spec.name] = (spec.dtype, dims)
            self.tensors[spec.ref] = Tensor(spec.name, spec.dtype, dims)
            self._graph_inputs.append(helper.make_tensor_value_info(
                spec.name, helper.np_dtype_to_tensor_dtype(spec.dtype), list(dims)))

    def reserve(self, names) -> None:
        """Keep ``names`` (the graph outputs) free for :meth:`finish`."""
        self._taken.update(names)

    # -- errors, names -----------------------------------------------------------------------------

    def fail(self, message: str, fix: str = "this model needs a newer posezoo converter") -> ConvertError:
        return ConvertError(f"cannot convert {self.label}: {message}", fix)

    def unique(self, base: str) -> str:
        return unique_name(base or "t", self._taken)

    # -- constants ---------------------------------------------------------------------------------

    def _register_const(self, array: np.ndarray, base: str) -> Tensor:
        array = np.asarray(array)
        name = self.unique(base)
        self.consts[name] = array
        self.types[name] = (array.dtype, tuple(int(d) for d in array.shape))
        return Tensor(name, array.dtype, tuple(int(d) for d in array.shape))

    def constant(self, values, dtype=None, base: str = "const") -> str:
        """A new constant value (folded into an initializer only if a node uses it)."""
        return self._register_const(np.asarray(values, dtype=dtype), base).name

    def const_value(self, ref: str) -> np.ndarray | None:
        """The value of TF tensor ``ref`` when it is a constant (in TF layout), else None."""
        t = self.get(ref)
        if t.name not in self.consts:
            return None
        value = self.consts[t.name]
        return value.transpose(NCHW_TO_NHWC) if t.nchw else value

    def require_const(self, ref: str, role: str) -> np.ndarray:
        value = self.const_value(ref)
        if value is None:
            raise self.fail(f"{role} ({ref!r}) is not a constant", "only constant values are supported there")
        return value

    # -- tensors -----------------------------------------------------------------------------------

    def get(self, ref: str) -> Tensor:
        if ref not in self.tensors:
            raise self.fail(f"tensor {ref!r} is used before it is computed")
        return self.tensors[ref]

    def set(self, ref: str, name: str, nchw: bool = False) -> Tensor:
        """Record that TF tensor ``ref`` is held by ONNX value ``name`` (stored NCHW if ``nchw``)."""
        dtype, dims = self.types[name]
        if nchw and len(dims) != 4:
            raise self.fail(f"internal: {ref!r} stored NCHW with rank {len(dims)}", "please report this as a posezoo bug")
        shape = tuple(dims[i] for i in NCHW_TO_NHWC) if nchw else dims
        if nchw and name in self.consts:  # constants live in TF layout
            return self.set(ref, self.constant(self.consts[name].transpose(NCHW_TO_NHWC), base=ref), False)
        self.tensors[ref] = Tensor(name, dtype, shape, nchw)
        return self.tensors[ref]

    def alias(self, ref: str, source: str) -> None:
        self.tensors[ref] = self.get(source)

    # -- nodes -------------------------------------------------------------------------------------

    def emit(self, op_type: str, inputs: list[str], base: str, outputs: int = 1, **attrs) -> list[str]:
        """Add an ONNX node (its output names are returned), or evaluate it now if every input is a
        constant. Output types come from ONNX shape inference."""
        names = [self.unique(base if k == 0 else f"{base}:{k}") for k in range(outputs)]
        node = helper.make_node(op_type, inputs, names, name=names[0], **attrs)
        present = [i for i in inputs if i]
        if all(i in self.consts for i in present):
            self._fold(node)
        else:
            self._infer(node)
            self.nodes.append(node)
        return names

    def node(self, op_type: str, inputs: list[str], base: str, **attrs) -> str:
        return self.emit(op_type, inputs, base, 1, **attrs)[0]

    def _fold(self, node: onnx.NodeProto) -> None:
        inputs = [i for i in node.input if i]
        graph = helper.make_graph(
            [node], "fold",
            [helper.make_tensor_value_info(i, helper.np_dtype_to_tensor_dtype(self.consts[i].dtype), None) for i in inputs],
            [helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None) for o in node.output])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        try:
            results = ReferenceEvaluator(model).run(None, {i: self.consts[i] for i in inputs})
        except Exception as exc:  # constants that contradict the op (the evaluator raises anything)
            raise self.fail(f"node {node.name!r} ({node.op_type}) cannot be evaluated on its constant inputs "
                            f"({type(exc).__name__})", "the model.json is inconsistent; download the model again") from None
        for name, value in zip(node.output, results):
            value = np.asarray(value)
            self.consts[name] = value
            self.types[name] = (value.dtype, tuple(int(d) for d in value.shape))

    def _infer(self, node: onnx.NodeProto) -> None:
        schema = onnx.defs.get_schema(node.op_type, OPSET)
        types, data = {}, {}
        for i in node.input:
            if not i:
                continue
            dtype, dims = self.types[i]
            types[i] = helper.make_tensor_type_proto(helper.np_dtype_to_tensor_dtype(dtype), list(dims))
            if i in self.consts and self.consts[i].size <= 64:
                data[i] = numpy_helper.from_array(self.consts[i], i)
        try:
            out = onnx.shape_inference.infer_node_outputs(schema, node, types, data,
                                                          opset_imports=[helper.make_opsetid("", OPSET)])
        except Exception as exc:  # onnx raises InferenceError (and others) on inconsistent shapes
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise self.fail(f"node {node.name!r} ({node.op_type}) has inconsistent shapes ({first})",
                            "the model.json is inconsistent; download the model again") from None
        for name in node.output:
            tp = out.get(name)
            if tp is None or not tp.tensor_type.HasField("shape"):
                raise self.fail(f"cannot tell the rank of {name!r} ({node.op_type})")
            dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tp.tensor_type.shape.dim)
            self.types[name] = (helper.tensor_dtype_to_np_dtype(tp.tensor_type.elem_type), dims)

    # -- layouts -----------------------------------------------------------------------------------

    def nhwc(self, ref: str) -> str:
        """TF tensor ``ref`` in its TF layout."""
        t = self.get(ref)
        if not t.nchw:
            return t.name
        return self._transposed(t.name, False, ref)

    def nchw(self, ref: str) -> str:
        """4-D TF tensor ``ref`` in NCHW."""
        t = self.get(ref)
        if t.nchw:
            return t.name
        if t.rank != 4:
            raise self.fail(f"tensor {ref!r} has rank {t.rank}, expected 4", "the model.json is inconsistent")
        return self._transposed(t.name, True, ref)

    def layout_input(self, ref: str, nchw: bool) -> str:
        return self.nchw(ref) if nchw else self.nhwc(ref)

    def _transposed(self, name: str, to_nchw: bool, ref: str) -> str:
        key = (name, to_nchw)
        if key not in self._layouts:
            perm = NHWC_TO_NCHW if to_nchw else NCHW_TO_NHWC
            dims = self.types[name][1]
            moved = [a for a in perm if dims[a] != 1]
            if moved == sorted(moved) and all(isinstance(d, int) for d in dims):  # only size-1 axes move
                target = self.constant([dims[a] for a in perm], np.int64, "shape")
                self._layouts[key] = self.node("Reshape", [name, target], ref + ("_nchw" if to_nchw else "_nhwc"))
            else:
                self._layouts[key] = self.node("Transpose", [name], ref + ("_nchw" if to_nchw else "_nhwc"), perm=list(perm))
        return self._layouts[key]

    # -- result ------------------------------------------------------------------------------------

    def finish(self, outputs: list[tuple[str, str]], graph_name: str, producer_version: str) -> onnx.ModelProto:
        """Name the graph outputs (``(onnx name, TF ref)`` pairs, TF layout) and assemble the model."""
        renames: dict[str, str] = {}
        extra: list[onnx.NodeProto] = []
        infos = []
        graph_inputs = {v.name for v in self._graph_inputs}
        for out_name, ref in outputs:
            source = self.nhwc(ref)
            if source in self.consts or source in graph_inputs or source in renames:
                source = renames.get(source, source)
                extra.append(helper.make_node("Identity", [source], [out_name], name=out_name))
            else:
                renames[source] = out_name
            dtype, dims = self.types[self.nhwc(ref)]
            infos.append(helper.make_tensor_value_info(out_name, helper.np_dtype_to_tensor_dtype(dtype), list(dims)))
        nodes = self.nodes + extra
        for node in nodes:
            node.input[:] = [renames.get(n, n) for n in node.input]
            node.output[:] = [renames.get(n, n) for n in node.output]
            node.name = renames.get(node.name, node.name)
        used: list[str] = []
        seen = set()
        for node in nodes:
            for i in node.input:
                if i in self.consts and i not in seen:
                    seen.add(i)
                    used.append(i)
        initializers = [numpy_helper.from_array(np.array(self.consts[n], order="C"), n) for n in used]  # keeps 0-d
        return make_model(nodes, self._graph_inputs, infos, initializers, graph_name, producer_version)


def _symbol(input_name: str, axis: int, rank: int, input_dims: dict[int, str] | None) -> str:
    """The name of a dimension of any size: batch/height/width/channels for a 4-D NHWC input."""
    names = input_dims or ({0: "batch", 1: "height", 2: "width", 3: "channels"} if rank == 4 else {})
    return names.get(axis, f"{input_name}_dim{axis}")
