"""Conversion targets (posezoo/convert/target.py): detection, the rewrites that follow the block width,
what a converted model records, and the cache converting again for another target.

Graphs for 16- and 8-channel blocks (AVX-512 and AVX2) and for no blocked layout are all converted on
this machine and checked against LiteRT on a real photo crop; onnxruntime here runs them with its own
kernels, so this checks that every target's graph is exact, not the other CPUs' speed.
"""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest

from httpserver import home, mirror_dir  # noqa: F401  (pytest fixtures)
from posezoo.supply.cache import Cache
from posezoo.supply.convert import CONVERTER_VERSION, conversion_key, convert_bytes, detect_target, ensure_onnx
from posezoo.supply.convert.target import ENV_VAR, TARGETS, cpu_flags, probe_block, target_for_flags, target_named
from posezoo.errors import ConvertError
from posezoo.supply.fetch import fetch_file
from posezoo.supply.registry import build_registry
from test_convert import MODELS, _inputs, _litert, _run_litert, _run_ort

AVX512, AVX2, NCHW = TARGETS["avx512"], TARGETS["avx2"], TARGETS["nchw"]
DETECTOR = build_registry(user_files=[]).files["pose_detection.tflite"]


@pytest.fixture(autouse=True)
def no_forced_target(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)


def test_flags_pick_mlas_block():
    """onnxruntime's MLAS: AVX-512F -> 16-channel blocks; AVX2+FMA, AVX, SSE -> 8."""
    epyc_milan = {"sse4_2", "avx", "avx2", "fma", "f16c"}
    assert target_for_flags(frozenset(epyc_milan | {"avx512f", "avx512bw", "avx512vl"})) == AVX512
    assert target_for_flags(frozenset(epyc_milan)) == AVX2
    assert target_for_flags(frozenset(epyc_milan - {"fma"})).name == "avx"  # MLAS needs FMA3 for its AVX2 path
    assert target_for_flags(frozenset({"sse", "sse2"})) == TARGETS["sse"]
    assert {t.block for t in (AVX2, TARGETS["avx"], TARGETS["sse"])} == {8}


def test_detection_agrees_with_onnxruntime():
    """The block detected from the CPU flags is the one this onnxruntime's NCHWc transformer uses."""
    target = detect_target()
    assert target.block == probe_block()
    if "avx512f" in cpu_flags():
        assert target == AVX512


def test_forced_target(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "AVX2")
    assert detect_target() == AVX2
    assert conversion_key() == f"{CONVERTER_VERSION}/nchwc8"
    monkeypatch.setenv(ENV_VAR, "avx9000")
    with pytest.raises(ConvertError) as info:
        detect_target()
    assert "\n" not in str(info.value)
    assert ENV_VAR in str(info.value) and "avx9000" in str(info.value) and "avx512" in str(info.value)
    with pytest.raises(ConvertError):
        target_named("")


def _convert(shared_models, name: str, target) -> onnx.ModelProto:
    return onnx.load_from_string(convert_bytes((shared_models / MODELS[name][0]).read_bytes(),
                                               model_name=name, target=target))


def _widths(model: onnx.ModelProto) -> list[int]:
    """Output channels of every Conv, in graph order."""
    arrays = {t.name: t for t in model.graph.initializer}
    return [arrays[n.input[1]].dims[0] for n in model.graph.node if n.op_type == "Conv"]


def _check_exact(model: onnx.ModelProto, name: str, shared_models, testdata, tmp_path) -> None:
    """Every output within test_convert's bound of LiteRT on the photo crop."""
    path = tmp_path / f"{name}.onnx"
    path.write_bytes(model.SerializeToString())
    interpreter = _litert(shared_models / MODELS[name][0])
    x = _inputs(interpreter.get_input_details()[0]["shape"], MODELS[name][1], testdata)["photo"]
    want, got = _run_litert(interpreter, x), _run_ort(path, x)
    for out, ref in want.items():
        assert np.abs(got[out] - ref).max() <= 1e-3 + 5e-4 * np.abs(ref).max(), (name, out)


def test_rewrites_follow_the_block(shared_models, testdata, tmp_path):
    """pose_landmark_full: for 16-channel blocks its 8-channel segmentation head is padded to 16
    channels; for 8-channel blocks it stays 8 wide (a full block already); without blocks the
    NCHWc-only forms (identity Conv before a Relu6 after an Add, depthwise+sum for a one-channel Conv)
    are left out. The graphs differ only there, and each is exact."""
    graphs = {t.name: _convert(shared_models, "pose_landmark_full", t) for t in (AVX512, AVX2, NCHW)}
    wide, narrow, plain = (_widths(graphs[t]) for t in ("avx512", "avx2", "nchw"))
    assert len(wide) == len(narrow)
    changed = [(w, n) for w, n in zip(wide, narrow) if w != n]
    assert changed and set(changed) == {(16, 8)}  # the head's Convs, 16 wide for AVX-512 only
    assert len(plain) < len(narrow)
    ops = {t: [n.op_type for n in g.graph.node] for t, g in graphs.items()}
    assert ops["avx512"] == ops["avx2"]
    assert ops["nchw"].count("Clip") == ops["avx2"].count("Clip")
    for target, model in graphs.items():
        props = {p.key: p.value for p in model.metadata_props}
        assert props == {"posezoo.converter_version": CONVERTER_VERSION, "posezoo.target": target,
                         "posezoo.nchwc_block": str(TARGETS[target].block),
                         "posezoo.conversion_key": conversion_key(TARGETS[target])}
        _check_exact(model, "pose_landmark_full", shared_models, testdata, tmp_path)


def test_channel_pads_for_each_layout(shared_models, testdata, tmp_path):
    """palm_detection_full (channel PADs, PRELU): NCHWc targets get Convs for the pads, plain NCHW keeps
    Pad nodes; PRELU becomes Convs for both (faster than onnxruntime's PRelu kernel either way)."""
    for target in (AVX2, NCHW):
        model = _convert(shared_models, "palm_detection_full", target)
        kinds = {n.op_type for n in model.graph.node}
        assert ("Pad" in kinds) != target.nchwc and "PRelu" not in kinds, target
        _check_exact(model, "palm_detection_full", shared_models, testdata, tmp_path)


def _target_of(path) -> str:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}["posezoo.target"]


def test_cache_converts_again_for_another_target(home, mirror_dir, monkeypatch):
    """A cached .onnx made for another NCHWc block is converted again; the same block is reused."""
    fetch_file(DETECTOR, mirror=str(mirror_dir), progress=False)
    cache = Cache()
    monkeypatch.setenv(ENV_VAR, "avx2")
    path = ensure_onnx(DETECTOR, cache, progress=False)
    assert _target_of(path) == "avx2"
    assert cache.manifest(DETECTOR.name)["onnx"]["converter_version"] == f"{CONVERTER_VERSION}/nchwc8"
    stamp = path.stat().st_mtime_ns
    os.utime(path, ns=(stamp - 10**9, stamp - 10**9))  # an older mtime: a rewrite would be seen

    monkeypatch.setenv(ENV_VAR, "sse")  # another CPU with 8-channel blocks: same graph, kept
    assert ensure_onnx(DETECTOR, cache, progress=False) == path
    assert path.stat().st_mtime_ns == stamp - 10**9 and _target_of(path) == "avx2"

    monkeypatch.setenv(ENV_VAR, "avx512")
    assert ensure_onnx(DETECTOR, cache, progress=False) == path
    assert path.stat().st_mtime_ns != stamp - 10**9 and _target_of(path) == "avx512"
    assert cache.manifest(DETECTOR.name)["onnx"]["converter_version"] == f"{CONVERTER_VERSION}/nchwc16"
