"""onnxruntime sessions: provider choice, tuned options, and a small wrapper that knows its I/O.

(MediaPipe's counterpart is ``InferenceCalculator``, which picks a delegate and runs the model.)
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Union
from pathlib import Path

import numpy as np

from posezoo.errors import InputError, PluginError, UsageError
from posezoo.inference.timing import NO_CLOCK

# Best first. Each accelerator provider is only worth using when onnxruntime was built with it.
_ACCELERATED = ("CUDAExecutionProvider", "CoreMLExecutionProvider", "DmlExecutionProvider")
_FORCED = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
THREADS_ENV = "POSEZOO_THREADS"


def available_device(device: str = "auto") -> list[str]:
    """The providers to ask onnxruntime for, best first (always ending with the CPU).

    ``device="auto"``: the best accelerator present (CUDA, CoreML, DirectML), else the CPU.
    ``"cpu"`` / ``"cuda"`` force one; an unknown device or a missing CUDA provider is a
    :class:`UsageError` (a capability refusal, exit 2).
    """
    import onnxruntime as ort  # (on first use: `posezoo list` and --help load the plugins without it)

    present = ort.get_available_providers()
    dev = device.lower()
    if dev == "auto":
        best = [p for p in _ACCELERATED if p in present][:1]
        return best + ["CPUExecutionProvider"]
    if dev not in _FORCED:
        raise UsageError(f"unknown device {device!r}", "use 'auto', 'cpu' or 'cuda'")
    want = _FORCED[dev]
    if want not in present:
        raise UsageError(
            f"device {device!r} is not available: this onnxruntime has {', '.join(present)}",
            "install onnxruntime-gpu with a matching CUDA, or use --device cpu",
        )
    return [want] if want == "CPUExecutionProvider" else [want, "CPUExecutionProvider"]


@lru_cache(maxsize=1)
def physical_cores() -> int:
    """Physical cores this process may use (affinity-aware; falls back to the logical count)."""
    try:
        allowed = os.sched_getaffinity(0)
    except AttributeError:  # macOS, Windows
        allowed = set(range(os.cpu_count() or 1))
    cores: set[tuple[str, str]] = set()
    try:
        cpu = phys = core = None
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                key, _, val = line.partition(":")
                key, val = key.strip(), val.strip()
                if key == "processor":
                    cpu = int(val)
                elif key == "physical id":
                    phys = val
                elif key == "core id":
                    core = val
                elif not key and cpu is not None:
                    if cpu in allowed:
                        cores.add((str(phys), str(core) if core is not None else str(cpu)))
                    cpu = phys = core = None
            if cpu is not None and cpu in allowed:
                cores.add((str(phys), str(core) if core is not None else str(cpu)))
    except OSError:
        pass
    return max(1, len(cores) or len(allowed))


def session_threads() -> int:
    """Intra-op threads per session: ``$POSEZOO_THREADS`` when set (a worker of a pool of N sets it to
    cores / N), else one per physical core."""
    raw = os.environ.get(THREADS_ENV, "").strip()
    if not raw:
        return physical_cores()
    if not raw.isdigit() or int(raw) < 1:
        raise InputError(f"${THREADS_ENV} is {raw!r}, not a whole number of threads", f"unset {THREADS_ENV} or give 1 or more")
    return int(raw)


def session_options() -> "onnxruntime.SessionOptions":  # noqa: F821
    """Tuned options: all graph optimizations, sequential execution, one intra-op thread per core
    (or ``$POSEZOO_THREADS``).

    Thread spinning is off: the detector and landmark sessions alternate on every frame, and the
    idle session's spinning workers would otherwise keep the cores busy while the other one runs
    (measured: up to 3x slower per frame on 2 cores).
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = session_threads()
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return opts


_NUMPY_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(bool)": np.bool_,
}


def format_shape(shape) -> str:
    """``[1, ?, ?, 3]``: a shape for a message (None or a symbol: ``?``)."""
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def shape_fits(actual, expected) -> bool:
    """Same rank, and every dimension equal where both are known."""
    return len(actual) == len(expected) and all(a is None or e is None or a == e for a, e in zip(actual, expected))


@dataclass(frozen=True)
class TensorInfo:
    """One input of a model: its ``name``, ``shape`` (symbolic dimensions as None), onnxruntime ``type``
    (``"tensor(float)"``) and the numpy ``dtype`` a caller passes."""

    name: str
    shape: tuple
    type: str
    dtype: np.dtype

    def describe(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "type": self.type}


Feed = Union[np.ndarray, Mapping[str, np.ndarray]]  # what a run takes: one array, or {input name: array}


class Session:
    """An InferenceSession that knows its file role, checks what it is fed and maps output names /
    indices.

    A model has one input or several (a detector exported with an image-size input, a model taking a
    threshold): :meth:`run` takes one array for a single-input model and a ``{input name: array}``
    mapping for any model; every input must be given, under its name, with its shape (where the model
    fixes it) and dtype, else a one-line :class:`PluginError` names the input and what was expected.

    Attributes: ``path``, ``role`` (the registry file role it was opened for, e.g. "landmark"),
    ``provider`` (the provider actually used), ``inputs`` (:class:`TensorInfo` each, in model order),
    ``input_name``, ``input_shape``, ``input_type``, ``input_dtype`` (the first input's),
    ``output_names``, ``output_shapes`` (lists; symbolic dims as None), ``runs`` (how many times it
    ran). With a ``clock`` (see :meth:`posezoo.inference.model.PoseModel.timed`) every run adds its seconds to
    the stage named by ``role``, and the first feed is kept in ``last_input`` for bare timings.
    """

    def __init__(self, path: str | Path, device: str = "auto", *, role: str | None = None):
        self.path = Path(path)
        self.role = role or self.path.stem
        providers = available_device(device)
        import onnxruntime as ort

        try:
            self._sess = ort.InferenceSession(str(self.path), sess_options=session_options(), providers=providers)
        except Exception as exc:  # onnxruntime raises several types; one line for the user
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise PluginError(f"cannot load model {self.path.name}: {msg}") from None
        self.inputs = [
            TensorInfo(i.name, tuple(d if isinstance(d, int) else None for d in i.shape), i.type,
                       np.dtype(_NUMPY_TYPES.get(i.type, np.float32)))
            for i in self._sess.get_inputs()
        ]  # fmt: skip
        if not self.inputs:
            raise PluginError(f"model {self.path.name} has no input")
        first = self.inputs[0]
        self.input_name = first.name
        self.input_shape = list(first.shape)
        self.input_type = first.type
        self.input_dtype = first.dtype
        outs = self._sess.get_outputs()
        self.output_names = [o.name for o in outs]
        self.output_shapes = [[d if isinstance(d, int) else None for d in o.shape] for o in outs]
        self.output_types = [o.type for o in outs]
        self.provider = self._sess.get_providers()[0]
        self.runs = 0
        self.clock = NO_CLOCK
        self.last_input: np.ndarray | dict[str, np.ndarray] | None = None
        self._binding = None  # IOBinding of run_reused, made on first use
        self._reused: list[np.ndarray] | None = None

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.inputs]

    def feed(self, tensor: Feed) -> dict[str, np.ndarray]:
        """``{input name: array}`` for one run, checked: a single array is the input of a one-input
        model; a mapping must give every input by name, each of its shape and dtype."""
        names = ", ".join(repr(i.name) for i in self.inputs)
        if not isinstance(tensor, Mapping):
            if len(self.inputs) != 1:
                raise PluginError(
                    f"model {self.path.name} has {len(self.inputs)} inputs ({names}), one array given",
                    "pass {input name: array} for every input",
                )
            tensor = {self.input_name: tensor}
        unknown = [k for k in tensor if k not in self.input_names]
        if unknown:
            raise PluginError(f"model {self.path.name} has no input {unknown[0]!r} (inputs: {names})")
        missing = [i.name for i in self.inputs if i.name not in tensor]
        if missing:
            raise PluginError(f"model {self.path.name}: input {missing[0]!r} not given (inputs: {names})")
        out = {}
        for info in self.inputs:
            value = tensor[info.name]
            if not isinstance(value, np.ndarray):
                raise PluginError(f"model {self.path.name}: input {info.name!r} must be a numpy array, not {type(value).__name__}")
            if value.dtype != info.dtype:
                raise PluginError(
                    f"model {self.path.name}: input {info.name!r} is {info.type} {format_shape(info.shape)}, "
                    f"given {value.dtype} {format_shape(value.shape)}",
                    f"pass a {info.dtype} array",
                )
            if not shape_fits(value.shape, info.shape):
                raise PluginError(
                    f"model {self.path.name}: input {info.name!r} has shape {format_shape(info.shape)}, "
                    f"given {format_shape(value.shape)}"
                )
            out[info.name] = value
        return out

    def describe(self) -> dict:
        """Input and outputs, for ``posezoo info`` and the API."""
        return {
            "file": self.path.name,
            "provider": self.provider,
            "input": {"name": self.input_name, "shape": self.input_shape, "type": self.input_type},
            "inputs": [i.describe() for i in self.inputs],
            "outputs": [
                {"name": n, "shape": s, "type": t}
                for n, s, t in zip(self.output_names, self.output_shapes, self.output_types)
            ],
        }

    def check_input(self, expected: tuple, *, spec: str, dtype: str | None = None, name: str | None = None) -> None:
        """Raise :class:`PluginError` unless input ``name`` (default: the first) has ``expected`` shape
        (None: any size) and, when given, the onnxruntime type ``dtype`` (e.g. ``"tensor(int32)"``)."""
        info = self.inputs[0]
        if name is not None:
            found = [i for i in self.inputs if i.name == name]
            if not found:
                raise PluginError(
                    f"model {self.path.name} has no input {name!r} (inputs: {', '.join(map(repr, self.input_names))}), "
                    f"spec {spec!r} expects one"
                )
            info = found[0]
        if not shape_fits(info.shape, expected) or (dtype is not None and info.type != dtype):
            what = f"is {info.type} " if dtype else "has shape "
            want = f"{dtype} {format_shape(expected)}" if dtype else format_shape(expected)
            raise PluginError(
                f"model {self.path.name}: input {info.name!r} {what}{format_shape(info.shape)}, "
                f"spec {spec!r} expects {want}"
            )

    def check_output(self, key: str | int, what: str, expected: tuple | None = None, *, spec: str, flat: bool = False) -> int:
        """The index of output ``key`` (a name or an index), checked to have shape ``expected``
        (``flat``: the same number of values, whatever the layout); :class:`PluginError` naming the
        file, the output and both shapes otherwise."""
        try:
            idx = self.output_index(key)
        except KeyError:
            raise PluginError(
                f"model {self.path.name}: no {what} output {key!r} (outputs: {', '.join(self.output_names)})"
            ) from None
        if expected is not None:
            actual = self.output_shapes[idx]
            if flat:
                ok = None in actual or None in expected or int(np.prod(actual)) == int(np.prod(expected))
            else:
                ok = shape_fits(actual, expected)
            if not ok:
                raise PluginError(
                    f"model {self.path.name}: {what} output {self.output_names[idx]!r} has shape "
                    f"{format_shape(actual)}, spec {spec!r} expects {format_shape(expected)}"
                )
        return idx

    def output_index(self, key: str | int) -> int:
        """Index of an output given by name or index; KeyError when there is none."""
        if isinstance(key, int) and 0 <= key < len(self.output_names):
            return key
        if isinstance(key, str) and key in self.output_names:
            return self.output_names.index(key)
        raise KeyError(key)

    def _timed(self, run, tensor: Feed) -> list[np.ndarray]:
        self.runs += 1
        if not self.clock.enabled:
            return run(tensor)
        if self.last_input is None:
            self.last_input = (
                {k: np.array(v, copy=True) for k, v in tensor.items()} if isinstance(tensor, Mapping)
                else np.array(tensor, copy=True)
            )  # fmt: skip
        start = time.perf_counter()
        try:
            return run(tensor)
        finally:
            self.clock.add(self.role, time.perf_counter() - start)

    def run(self, tensor: Feed) -> list[np.ndarray]:
        """Run on one input array (a one-input model) or ``{input name: array}`` (any model); returns
        every output, in output order. What is fed is checked (:meth:`feed`)."""
        return self._timed(self._run, tensor)

    def _run(self, tensor: Feed) -> list[np.ndarray]:
        if not isinstance(tensor, Mapping) and len(self.inputs) == 1 and isinstance(tensor, np.ndarray):
            info = self.inputs[0]  # the per-frame path: the cheap checks inline
            if tensor.dtype == info.dtype and shape_fits(tensor.shape, info.shape):
                return self._sess.run(None, {info.name: tensor})
        return self._sess.run(None, self.feed(tensor))

    def run_reused(self, tensor: Feed) -> list[np.ndarray]:
        """Like :meth:`run`, but the outputs are written into arrays allocated once (IOBinding) and
        **overwritten by the next call**: callers copy what they keep. A video loop then allocates no
        output tensors per frame. Falls back to :meth:`run` when an output has a symbolic shape or a
        type numpy cannot hold."""
        return self._timed(self._run_reused, tensor)

    def _run_reused(self, tensor: Feed) -> list[np.ndarray]:
        if self._binding is None:
            outs = self._sess.get_outputs()
            if any(None in shape for shape in self.output_shapes) or any(o.type not in _NUMPY_TYPES for o in outs):
                self._binding = False
            else:
                self._reused = [np.empty(shape, _NUMPY_TYPES[o.type]) for shape, o in zip(self.output_shapes, outs)]
                self._binding = self._sess.io_binding()
                for out, buf in zip(outs, self._reused):
                    self._binding.bind_output(out.name, "cpu", 0, buf.dtype, list(buf.shape), buf.ctypes.data)
        if self._binding is False:
            return self._run(tensor)
        if isinstance(tensor, Mapping) or len(self.inputs) != 1:
            for name, value in self.feed(tensor).items():
                self._binding.bind_cpu_input(name, np.ascontiguousarray(value))
        else:
            self._binding.bind_cpu_input(self.input_name, np.ascontiguousarray(tensor, self.input_dtype))
        self._sess.run_with_iobinding(self._binding)
        return self._reused

    def time_bare(self, tensor: Feed | None = None) -> float:
        """Milliseconds of one plain ``InferenceSession.run`` on ``tensor`` (default: the kept
        ``last_input``), fresh outputs, no counting: the bench's reference time."""
        tensor = self.last_input if tensor is None else tensor
        if tensor is None:
            raise ValueError(f"session {self.role!r} has not run yet: no input to time")
        feed = dict(tensor) if isinstance(tensor, Mapping) else {self.input_name: tensor}
        start = time.perf_counter()
        self._sess.run(None, feed)
        return (time.perf_counter() - start) * 1e3
