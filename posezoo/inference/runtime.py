"""onnxruntime sessions: provider choice, tuned options, and a small wrapper that knows its I/O.

(MediaPipe's counterpart is ``InferenceCalculator``, which picks a delegate and runs the model.)
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Collection, Union

import numpy as np

from posezoo.errors import InputError, PluginError, UsageError
from posezoo.inference.timing import NO_CLOCK

class _Onnxruntime:
    """``onnxruntime``, imported on first use: `posezoo list` and --help load the plugins without it."""

    def __getattr__(self, name: str):
        import onnxruntime

        return getattr(onnxruntime, name)


ort = _Onnxruntime()

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


# A model whose run takes under this many milliseconds on the threads allowed is also timed on one
# thread when its session opens, and keeps one thread when that too is under this: a short run gains
# little from a second thread, and in a pipeline it runs beside other stages (Holistic's face models
# beside its hands), whose core a spinning second thread would take (measured on 2 cores: hand recrop,
# face detector, face landmarks 0.7-1.2 ms on one thread; the face model with attention 2.4 ms on one,
# 4.5 on two). A model that is slower than this on one thread keeps them all.
SMALL_RUN_MS = 5.0


def _best_run_ms(sess: ort.InferenceSession, feed: dict, runs: int = 5, *, enough: float = float("inf")) -> float:
    """The fastest of ``runs`` runs on ``feed``, in milliseconds, after one unmeasured run; stops early
    once a run is no faster than ``enough`` ms (a large model need not be timed further)."""
    sess.run(None, feed)  # the first run sets up what the next ones reuse
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        sess.run(None, feed)
        best = min(best, (time.perf_counter() - start) * 1e3)
        if best >= enough:
            break
    return best


def session_options(threads: int | None = None) -> ort.SessionOptions:
    """Tuned options: all graph optimizations, sequential execution, ``threads`` intra-op threads
    (default: one per core, or ``$POSEZOO_THREADS``).

    The intra-op threads spin while a run is under way (waiting for the next operator's work rather
    than sleeping: 10-30 % off a run of a big model on 2 cores, e.g. BlazePose full's landmark model
    8.2 -> 7.0 ms, its detector 6.0 -> 5.1) and stop when it ends (``session.force_spinning_stop``):
    the detector and landmark sessions alternate on every frame, and an idle session's spinning
    workers would otherwise keep the cores busy while the other one runs (up to 3x slower per frame).
    """
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = session_threads() if threads is None else threads
    spin = "1" if opts.intra_op_num_threads > 1 else "0"
    opts.add_session_config_entry("session.intra_op.allow_spinning", spin)
    opts.add_session_config_entry("session.force_spinning_stop", spin)
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return opts


def opencv_one_thread() -> None:
    """OpenCV's own thread pool down to one thread (``cv2.setNumThreads(1)``, process-wide), once a
    session spins its threads: the crops and colour conversions around a run gain nothing from
    OpenCV's threads here (a 256x256 crop takes 0.23 ms on one or two), while its pool's waiting
    workers and onnxruntime's spinning ones fight over the cores (measured on 2 cores: 5 processes in
    30 ran BlazePose 50 % slower throughout with both on, none in 28 with OpenCV on one thread)."""
    import cv2

    if cv2.getNumThreads() != 1:
        cv2.setNumThreads(1)


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
    :meth:`run_batch` and ``run_reused(skip=...)`` are for one-input models.

    Attributes: ``path``, ``role`` (the registry file role it was opened for, e.g. "landmark"),
    ``provider`` (the provider actually used), ``inputs`` (:class:`TensorInfo` each, in model order),
    ``input_name``, ``input_shape``, ``input_type``, ``input_dtype`` (the first input's),
    ``output_names``, ``output_shapes`` (lists; symbolic dims as None), ``threads`` (its intra-op
    threads: ``$POSEZOO_THREADS`` or one per core; one for a small model, :data:`SMALL_RUN_MS`),
    ``runs`` (how many times it ran; a batch of n counts n). With a ``clock`` (see
    :meth:`posezoo.inference.model.PoseModel.timed`) every run adds its seconds to the stage named by
    ``role``, and the first feed is kept in ``last_input`` for bare timings.
    """

    def __init__(self, path: str | Path, device: str = "auto", *, role: str | None = None):
        self.path = Path(path)
        self.role = role or self.path.stem
        providers = available_device(device)
        self._providers = providers
        self.threads = session_threads()
        try:
            self._sess = ort.InferenceSession(str(self.path), sess_options=session_options(self.threads), providers=providers)
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
        if providers[0] == "CPUExecutionProvider" and self.threads > 1 and len(self.inputs) == 1:  # an accelerator's runs are not the threads'
            self._fewer_threads()
        if self.threads > 1:
            opencv_one_thread()
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
        # run_batch: None = not tried yet; False = runs one input at a time; else the session that takes
        # a batch (this one when its batch dimension is symbolic) and whether it was checked yet
        self._batched: ort.InferenceSession | bool | None = None
        self._batch_checked = False
        # run_batch on several threads: None = not tried; False = not used; else (one-thread session, pool, checked)
        self._side_by_side: tuple | bool | None = None
        self._pruned: dict[frozenset[int], "_PrunedRun | bool"] = {}  # run_reused's skip -> its run, or False
        self._last_skip: frozenset[int] = frozenset()

    def _fewer_threads(self) -> None:
        """One intra-op thread for a small model (:data:`SMALL_RUN_MS`): timed on zeros, best of a few
        runs on the threads allowed and then on one, when its input has a fixed shape; kept on one where
        that run too is under :data:`SMALL_RUN_MS`."""
        if None in self.input_shape or self.input_type not in _NUMPY_TYPES:
            return
        feed = {self.input_name: np.zeros(self.input_shape, self.input_dtype)}
        try:
            many = _best_run_ms(self._sess, feed, enough=SMALL_RUN_MS)
            if many >= SMALL_RUN_MS:
                return
            one_sess = ort.InferenceSession(str(self.path), sess_options=session_options(1), providers=self._providers)
            one = _best_run_ms(one_sess, feed)
        except Exception:  # a model that will not run on zeros: left as it is
            return
        if one < SMALL_RUN_MS:
            self._sess, self.threads = one_sess, 1

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

    def _timed(self, run, tensor: Feed, count: int = 1) -> list[np.ndarray]:
        self.runs += count
        if not self.clock.enabled:
            return run(tensor)
        if self.last_input is None:
            self.last_input = (
                {k: np.array(v, copy=True) for k, v in tensor.items()} if isinstance(tensor, Mapping)
                else np.array(tensor[:1] if count > 1 else tensor, copy=True)
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

    def run_reused(self, tensor: Feed, skip: Collection[int] = ()) -> list[np.ndarray | None]:
        """Like :meth:`run`, but the outputs are written into arrays allocated once (IOBinding) and
        **overwritten by the next call**: callers copy what they keep. A video loop then allocates no
        output tensors per frame. Falls back to :meth:`run` when an output has a symbolic shape or a
        type numpy cannot hold.

        ``skip``: indices of outputs the caller does not need; they come back None, and the nodes only
        they need do not run (a second session of the graph pruned to the other outputs, opened on first
        use and kept only if its first run gave the full graph's outputs bit for bit: BlazePose's
        landmark model without its segmentation mask takes about 30 % less time)."""
        self._last_skip = frozenset(skip) if not isinstance(tensor, Mapping) else frozenset()
        if self._last_skip:
            pruned = self._pruned_run(self._last_skip)
            if pruned is not None:
                return self._timed(pruned, tensor)
        return self._timed(self._run_reused, tensor)

    def _pruned_run(self, skip: frozenset[int]):
        entry = self._pruned.get(skip)
        if entry is None:
            entry = False
            keep = [name for i, name in enumerate(self.output_names) if i not in skip]
            if keep and len(keep) < len(self.output_names):
                try:
                    sess = ort.InferenceSession(
                        _pruned_model(self.path, keep), sess_options=session_options(self.threads), providers=self._providers
                    )
                    entry = _PrunedRun(self, sess, skip)
                except Exception:  # a graph that cannot be cut (e.g. subgraphs): the whole one runs
                    entry = False
            self._pruned[skip] = entry
        return entry or None

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

    def run_batch(self, tensor: np.ndarray) -> list[np.ndarray]:
        """Run on a batch of n inputs stacked on the first axis (``tensor`` (n, ...) where the model takes
        (1, ...)); returns every output, in output order, each with the n results stacked on its first
        axis, exactly as n runs of :meth:`run` would give them.

        A model whose batch dimension is fixed to 1 (a converted TFLite model) is opened a second time
        with that dimension symbolic, on the first batch of more than one. That batch also runs one input
        at a time, and the batched session is kept only if it gave the same outputs, bit for bit (a
        graph that reshapes to a fixed batch of 1 fails or differs, and then every batch runs one input
        at a time). One run of n inputs costs less than n runs: the per-run overhead is paid once and
        the kernels work on n images.

        A session of several threads instead runs the inputs side by side, each on one thread of a
        one-thread session of the model (two 224x224 hand crops on 2 free cores: 8.2 ms, against 8.9 as
        one batch on 2 threads and 10.0 one after the other); its first batch is checked the same way."""
        n = len(tensor)
        if n == 1:
            return self.run(tensor)
        if self.threads > 1 and self._side_by_side is not False:
            return self._timed(self._run_side_by_side, tensor, n)
        return self._timed(self._run_batch, tensor, n)

    def _run_side_by_side(self, tensor: np.ndarray) -> list[np.ndarray]:
        from concurrent.futures import ThreadPoolExecutor

        if self._side_by_side is None:
            try:
                one = ort.InferenceSession(str(self.path), sess_options=session_options(1), providers=self._providers)
            except Exception:
                self._side_by_side = False
                return self._run_batch(tensor)
            self._side_by_side = (one, ThreadPoolExecutor(self.threads - 1, thread_name_prefix="posezoo-run"), False)
        one, pool, checked = self._side_by_side
        feed = lambda i: {self.input_name: tensor[i : i + 1]}  # noqa: E731
        n, workers = len(tensor), self.threads
        # input i runs on worker i % workers; the calling thread takes worker 0's share
        def share(w: int) -> list[tuple[int, list[np.ndarray]]]:
            return [(i, one.run(None, feed(i))) for i in range(w, n, workers)]

        jobs = [pool.submit(share, w) for w in range(1, min(n, workers))]
        done = dict(share(0))
        for job in jobs:
            done.update(job.result())
        outs = [np.concatenate(parts) for parts in zip(*(done[i] for i in range(n)))]
        if not checked:
            whole = [np.concatenate(parts) for parts in zip(*(self._run(tensor[i : i + 1]) for i in range(n)))]
            if not all(np.array_equal(a, b) for a, b in zip(outs, whole)):
                pool.shutdown(wait=False)
                self._side_by_side = False
                return whole
            self._side_by_side = (one, pool, True)
        return outs

    def _batch_session(self):
        if self._batched is None:
            self._batched = False
            if self.input_shape and self.input_shape[0] is None and all(s and s[0] is None for s in self.output_shapes):
                self._batched = self._sess
            elif self.input_shape and self.input_shape[0] == 1 and all(s and s[0] == 1 for s in self.output_shapes):
                opts = session_options(self.threads)
                opts.log_severity_level = 4  # a graph that cannot take a batch fails its first run: no log
                try:
                    self._batched = ort.InferenceSession(
                        _symbolic_batch(self.path, self.input_name), sess_options=opts, providers=self._providers
                    )
                except Exception:  # a graph that cannot take a batch: one input at a time
                    self._batched = False
        return self._batched

    def _run_batch(self, tensor: np.ndarray) -> list[np.ndarray]:
        n = len(tensor)
        sess = self._batch_session()
        singles = None
        if sess is not False:
            try:
                outs = sess.run(None, {self.input_name: tensor})
            except Exception:  # e.g. a Reshape to a fixed batch of 1
                outs = None
            if outs is not None and self._batch_checked:
                return outs
            if outs is not None and all(o.shape[:1] == (n,) for o in outs):
                singles = [self._run(tensor[i : i + 1]) for i in range(n)]
                stacked = [np.concatenate(parts) for parts in zip(*singles)]
                if all(np.array_equal(a, b) for a, b in zip(outs, stacked)):
                    self._batch_checked = True
                    return outs
            self._batched = False
        if singles is None:
            singles = [self._run(tensor[i : i + 1]) for i in range(n)]
        return [np.concatenate(parts) for parts in zip(*singles)]

    def time_bare(self, tensor: Feed | None = None) -> float:
        """Milliseconds of one plain ``InferenceSession.run`` on ``tensor`` (default: the kept
        ``last_input``), fresh outputs, no counting: the bench's reference time (of the graph the last
        :meth:`run_reused` ran: pruned when it skipped outputs)."""
        tensor = self.last_input if tensor is None else tensor
        if tensor is None:
            raise ValueError(f"session {self.role!r} has not run yet: no input to time")
        feed = dict(tensor) if isinstance(tensor, Mapping) else {self.input_name: tensor}
        pruned = self._pruned.get(self._last_skip) if self._last_skip else None
        sess, names = (pruned.sess, pruned.names) if pruned else (self._sess, None)
        start = time.perf_counter()
        sess.run(names, feed)
        return (time.perf_counter() - start) * 1e3


@lru_cache(maxsize=1)
def _onnx_proto():
    """onnx's generated protobuf classes (``ModelProto``, ``TensorProto``, ``AttributeProto``), loaded
    without the onnx package's own import (most of a second; these are tens of milliseconds: a model's
    first run should not wait for the converters' library). The same classes as ``onnx.ModelProto``
    (protobuf keeps one class per message). Falls back to ``import onnx``."""
    import importlib.util

    spec = importlib.util.find_spec("onnx")
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(folder) / "onnx_ml_pb2.py"
        if path.is_file():
            try:
                found = importlib.util.spec_from_file_location("posezoo_onnx_ml_pb2", path)
                module = importlib.util.module_from_spec(found)
                found.loader.exec_module(module)
                return module
            except Exception:
                break
    import onnx

    return onnx


def _load_proto(path: Path):
    model = _onnx_proto().ModelProto()
    model.ParseFromString(Path(path).read_bytes())
    return model


def _int64s(tensor) -> np.ndarray:
    """The values of an INT64 TensorProto."""
    if tensor.raw_data:
        return np.frombuffer(tensor.raw_data, "<i8").copy()
    return np.array(tensor.int64_data, np.int64)


def _symbolic_batch(path: Path, input_name: str) -> bytes:
    """The ONNX model at ``path`` with input ``input_name``'s and the outputs' first dimension symbolic
    (``batch``), its inferred intermediate shapes dropped (they held the batch of 1), and each Reshape to
    a constant shape of batch 1 reshaping to the batch it is given instead (its first dimension 0:
    copied from its input), serialised. (Whether that was right for every Reshape, :meth:`Session.run_batch`
    checks on its first batch.)"""
    model = _load_proto(path)
    graph = model.graph
    int64 = _onnx_proto().TensorProto.INT64
    constants = {i.name: i for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            constants[node.output[0]] = node.attribute[0].t
    for node in graph.node:
        if node.op_type != "Reshape" or len(node.input) < 2 or node.input[1] not in constants:
            continue
        if any(a.name == "allowzero" and a.i for a in node.attribute):
            continue
        tensor = constants[node.input[1]]
        if tensor.data_type != int64 or len(tensor.dims) != 1:
            continue
        shape = _int64s(tensor)
        if len(shape) and shape[0] == 1:
            shape[0] = 0
            del tensor.int64_data[:]
            tensor.raw_data = shape.astype("<i8").tobytes()
    for info in (*[i for i in graph.input if i.name == input_name], *graph.output):
        dim = info.type.tensor_type.shape.dim[0]
        dim.Clear()
        dim.dim_param = "batch"
    del graph.value_info[:]
    return model.SerializeToString()


class _PrunedRun:
    """:meth:`Session.run_reused` with some outputs skipped: ``sess`` is the owner's graph pruned to the
    other outputs, its outputs bound to arrays allocated once (where their shapes are fixed). Its first
    run is checked against the whole graph's; on any difference the owner runs whole from then on."""

    def __init__(self, owner: Session, sess: ort.InferenceSession, skip: frozenset[int]):
        self.owner, self.sess, self.skip = owner, sess, skip
        self.index = [i for i in range(len(owner.output_names)) if i not in skip]
        self.names = [owner.output_names[i] for i in self.index]
        self.checked = False
        self.binding = None
        shapes = [owner.output_shapes[i] for i in self.index]
        types = [owner.output_types[i] for i in self.index]
        if all(None not in shape for shape in shapes) and all(t in _NUMPY_TYPES for t in types):
            self.buffers = [np.empty(shape, _NUMPY_TYPES[t]) for shape, t in zip(shapes, types)]
            self.binding = sess.io_binding()
            for name, buf in zip(self.names, self.buffers):
                self.binding.bind_output(name, "cpu", 0, buf.dtype, list(buf.shape), buf.ctypes.data)

    def __call__(self, tensor: np.ndarray) -> list[np.ndarray | None]:
        owner = self.owner
        tensor = np.ascontiguousarray(tensor, owner.input_dtype)
        if self.binding is not None:
            self.binding.bind_cpu_input(owner.input_name, tensor)
            self.sess.run_with_iobinding(self.binding)
            got = self.buffers
        else:
            got = self.sess.run(self.names, {owner.input_name: tensor})
        out: list[np.ndarray | None] = [None] * len(owner.output_names)
        for i, value in zip(self.index, got):
            out[i] = value
        if not self.checked:
            whole = owner._run(tensor)
            if not all(np.array_equal(whole[i], out[i]) for i in self.index):
                owner._pruned[self.skip] = False
                return whole
            self.checked = True
        return out


def _pruned_model(path: Path, keep: list[str]) -> bytes:
    """The ONNX model at ``path`` with only the outputs ``keep`` and the nodes and initializers they need,
    serialised; ValueError for a graph with subgraphs (their inputs are not all on their nodes)."""
    model = _load_proto(path)
    graph = model.graph
    attribute = _onnx_proto().AttributeProto
    if any(a.type in (attribute.GRAPH, attribute.GRAPHS) for n in graph.node for a in n.attribute):
        raise ValueError("graph with subgraphs")
    needed, nodes = set(keep), []
    for node in reversed(graph.node):
        if any(o in needed for o in node.output):
            nodes.append(node)
            needed.update(i for i in node.input if i)
    nodes.reverse()
    outputs = [o for o in graph.output if o.name in keep]
    initializers = [i for i in graph.initializer if i.name in needed]
    infos = [v for v in graph.value_info if v.name in needed]
    kept = ((graph.node, nodes), (graph.output, outputs), (graph.initializer, initializers), (graph.value_info, infos))
    for field, items in kept:
        del field[:]
        field.extend(items)
    return model.SerializeToString()

