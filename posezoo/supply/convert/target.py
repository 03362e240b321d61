"""The machine a converted model is laid out for: onnxruntime's NCHWc channel block on this CPU.

onnxruntime's CPU provider (its MLAS library) runs convolutions in a blocked channel layout, NCHWc,
whose block is fixed when the library loads (``MLAS_PLATFORM`` in mlas/lib/platform.cpp):

* x86-64 with AVX-512F (and the OS saving its state): 16 channels;
* any other x86-64 (SSE2, AVX, AVX2/FMA3): 8 channels, with SSE/AVX/FMA3 kernels;
* ARM64: NCHWc kernels (16 channels) only in builds configured with ``onnxruntime_USE_ARM_NEON_NCHWC``;
  otherwise, like every other CPU, no NCHWc layout at all (plain NCHW kernels).

Some of the converter's rewrites only pay off for one block width (e.g. padding an 8-channel region
to a full block is free on AVX2 and a win on AVX-512), so a conversion is made for a :class:`Target`.
:func:`detect_target` finds this machine's: on Linux x86 from the ISA flags in ``/proc/cpuinfo`` (the
kernel lists AVX-512F only when it saves that state, as MLAS requires); elsewhere by asking the
installed onnxruntime which block its NCHWc transformer uses on a one-Conv model (which also answers
whether an ARM build has NCHWc at all). ``POSEZOO_CONVERT_TARGET`` (a name from :data:`TARGETS`)
overrides the detection, e.g. to prepare models for another machine.
"""

from __future__ import annotations

import os
import platform
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from posezoo.errors import ConvertError

ENV_VAR = "POSEZOO_CONVERT_TARGET"


@dataclass(frozen=True)
class Target:
    """``name``: what the conversion was made for; ``block``: the NCHWc channel block (1: no NCHWc)."""

    name: str
    block: int

    @property
    def nchwc(self) -> bool:
        return self.block > 1


TARGETS = {t.name: t for t in (
    Target("avx512", 16),  # x86-64 with AVX-512F
    Target("avx2", 8),  # x86-64 with AVX2 and FMA3
    Target("avx", 8),
    Target("sse", 8),  # the x86-64 baseline
    Target("nchwc16", 16),  # as onnxruntime answered (other systems, ARM64 builds with NCHWc)
    Target("nchwc8", 8),
    Target("nchw", 1),  # no NCHWc layout (default ARM64 builds, other CPUs)
)}


def target_named(name: str) -> Target:
    """The known target called ``name``; ConvertError for any other name."""
    key = name.strip().lower()
    if key not in TARGETS:
        raise ConvertError(f"unknown conversion target {name!r}", "use one of " + ", ".join(TARGETS))
    return TARGETS[key]


def detect_target() -> Target:
    """The target of this machine (``POSEZOO_CONVERT_TARGET`` first, when set)."""
    forced = os.environ.get(ENV_VAR, "").strip()
    if forced:
        try:
            return target_named(forced)
        except ConvertError as exc:
            raise ConvertError(f"{ENV_VAR}: {exc.message}", exc.fix) from None
    return _detected()


@lru_cache(maxsize=1)
def _detected() -> Target:
    flags = cpu_flags()
    if flags and _is_x86():
        return target_for_flags(flags)
    return _probe_onnxruntime()


def target_for_flags(flags: set[str] | frozenset[str]) -> Target:
    """MLAS's choice on x86-64 for these ``/proc/cpuinfo`` flags."""
    if {"avx2", "fma"} <= flags:
        return TARGETS["avx512" if "avx512f" in flags else "avx2"]
    return TARGETS["avx" if "avx" in flags else "sse"]


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (x86 ``flags``, ARM ``Features``); empty elsewhere."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or what the platform module knows."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware", "cpu model") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _is_x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64")


def probe_block() -> int:
    """The NCHWc block the installed onnxruntime uses on this machine (1: none), read from the graph
    it optimizes for a 1x1 Conv to 4 channels: NCHWc pads the filter's output channels to a block."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.ones((4, 8, 1, 1), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[1, 1])], "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 4, 4])], [weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    with tempfile.TemporaryDirectory(prefix="posezoo-probe-") as folder:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.optimized_model_filepath = str(Path(folder) / "probe.onnx")
        options.log_severity_level = 3
        ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        optimized = onnx.load(options.optimized_model_filepath)
    if not any(n.domain == "com.microsoft.nchwc" for n in optimized.graph.node):
        return 1
    conv = next(n for n in optimized.graph.node if n.op_type == "Conv")
    filters = next(t for t in optimized.graph.initializer if t.name == conv.input[1])
    return int(filters.dims[0])


def _probe_onnxruntime() -> Target:
    try:
        block = probe_block()
    except Exception:  # an onnxruntime that cannot say: the plain layout (exact everywhere, maybe slower)
        block = 1
    return TARGETS.get(f"nchwc{block}", Target(f"nchwc{block}", block)) if block > 1 else TARGETS["nchw"]
