"""A top-down family written from scratch composes through the core's seam with no core edit.

The plugin is the module docs/compose.md shows (taken from the page, so the docs stay true): a blob
detector and a two-keypoint model, each a tiny ONNX file built here with ``onnx.helper``, joined by
``posezoo.inference.regions.TopDownModel``. It runs in this process (predict, tracker) and as a local
plugin of the real CLI, from a mirror folder, offline (info, run on a photo and a clip, a refused
``--max-poses``)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import yaml
from onnx import TensorProto, helper, numpy_helper

from clitools import one_line_error, posezoo_env, run_posezoo
from conftest import REPO

PAGE = REPO / "docs" / "compose.md"
MARK = "<!-- tested: tests/test_compose_plugin.py"
SIZE = (640, 400)
PEOPLE = [(100, 200, 160), (300, 220, 140), (500, 180, 180)]  # centre x, y, height


def plugin_source() -> str:
    text = PAGE.read_text(encoding="utf-8")
    m = re.search(re.escape(MARK) + r".*?-->\s*```python\n(.*?)^```", text, re.S | re.M)
    assert m, f"{PAGE} lost its tested example"
    return m.group(1)


def detector_onnx(size: int = 64) -> bytes:
    """(1, s, s, 3) RGB in [0, 1] -> (1, s, s): each pixel's brightest channel."""
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, size, size, 3])
    y = helper.make_tensor_value_info("heat", TensorProto.FLOAT, [1, size, size])
    node = helper.make_node("ReduceMax", ["image"], ["heat"], axes=[3], keepdims=0)
    return _model(helper.make_graph([node], "toy_detector", [x], [y]))


def keypoints_onnx(size: int = 32) -> bytes:
    """(1, s, s, 3) RGB in [0, 1] -> (1, 3, 3): per channel its mass and first moments in x and y, in
    crop pixels (crop pixel i is crop point i, as posezoo.inference.preprocess.crop samples)."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    grid = np.stack([np.ones(size * size, np.float32), xs.ravel(), ys.ravel()], axis=1)
    x = helper.make_tensor_value_info("crop", TensorProto.FLOAT, [1, size, size, 3])
    y = helper.make_tensor_value_info("moments", TensorProto.FLOAT, [1, 3, 3])
    nodes = [
        helper.make_node("Transpose", ["crop"], ["chw"], perm=[0, 3, 1, 2]),
        helper.make_node("Reshape", ["chw", "flat_shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "grid"], ["moments"]),
    ]
    inits = [numpy_helper.from_array(np.array([1, 3, size * size], np.int64), "flat_shape"), numpy_helper.from_array(grid, "grid")]
    return _model(helper.make_graph(nodes, "toy_keypoints", [x], [y], initializer=inits))


def _model(graph) -> bytes:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="posezoo-tests")
    model.ir_version = 7
    onnx.checker.check_model(model)
    return model.SerializeToString()


def draw_people(people, size=SIZE) -> np.ndarray:
    """BGR: each person a green body, a red head on top, blue feet below."""
    img = np.zeros((size[1], size[0], 3), np.uint8)
    for cx, cy, ph in people:
        cx, cy, ph = int(cx), int(cy), int(ph)
        cv2.rectangle(img, (cx - ph // 6, cy - ph // 2 + ph // 6), (cx + ph // 6, cy + ph // 2 - ph // 10), (0, 160, 0), -1)
        cv2.circle(img, head(cx, cy, ph), ph // 10, (0, 0, 255), -1)
        cv2.ellipse(img, feet(cx, cy, ph), (ph // 6, ph // 20), 0, 0, 360, (255, 0, 0), -1)
    return img


def head(cx, cy, ph):
    return int(cx), int(cy) - int(ph) // 2 + int(ph) // 12


def feet(cx, cy, ph):
    return int(cx), int(cy) + int(ph) // 2 - int(ph) // 20


YAML_MARK = "<!-- tested: tests/test_compose_plugin.py fetches"


def registry_source() -> str:
    """The page's registry file of the plugin: an ``onnx``-format registry entry."""
    text = PAGE.read_text(encoding="utf-8")
    m = re.search(re.escape(YAML_MARK) + r".*?-->\s*```yaml\n(.*?)^```", text, re.S | re.M)
    assert m, f"{PAGE} lost its tested registry example"
    return m.group(1)


@pytest.fixture(scope="module")
def plugin(tmp_path_factory) -> dict:
    """The plugin folder (module + the page's registry file), a mirror folder with the two ONNX files."""
    root = tmp_path_factory.mktemp("compose")
    folder, mirror = root / "plugins", root / "mirror"
    folder.mkdir()
    mirror.mkdir()
    files = yaml.safe_load(registry_source())["models"]["toy-people"]["variants"]["default"]["files"]
    for role, data in (("detector", detector_onnx()), ("keypoints", keypoints_onnx())):
        entry = files[role]
        assert entry["format"] == "onnx"
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        assert (entry["digest"], entry["size"]) == (digest, len(data)), (
            f"docs/compose.md: the {role} entry of toy_people.yaml should say digest: {digest}, size: {len(data)}"
        )
        (mirror / entry["name"]).write_bytes(data)
    (folder / "toy_people.py").write_text(plugin_source())
    (folder / "toy_people.yaml").write_text(registry_source())
    return {"root": root, "folder": folder, "mirror": mirror}


@pytest.fixture(scope="module")
def module(plugin):
    spec = importlib.util.spec_from_file_location("toy_people_under_test", plugin["folder"] / "toy_people.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def model(module, plugin):
    m = plugin["mirror"]
    files = {"detector": m / "toy-detector.onnx", "keypoints": m / "toy-keypoints.onnx"}
    return module.ToyModel(module.ToySpec(name="toy-people"), files, variant="default", device="cpu")


def truth(people) -> np.ndarray:
    return np.array([[head(*p), feet(*p)] for p in people], np.float64)


def test_the_example_uses_only_the_public_seam_and_no_core_file_names_it():
    source = plugin_source()
    imports = set(re.findall(r"^from (posezoo[\w.]*) import", source, re.M))
    assert imports <= {"posezoo", "posezoo.inference.model", "posezoo.inference.preprocess", "posezoo.inference.regions", "posezoo.inference.runtime"}
    assert not any("toy" in p.read_text(encoding="utf-8").lower() for p in (REPO / "posezoo").rglob("*.py"))


def test_the_composed_model_finds_every_person_within_a_pixel(model):
    poses = model.predict(draw_people(PEOPLE), max_poses=8)
    assert len(poses) == 3 and model.family == "toy-top-down" and set(model.sessions) == {"detector", "keypoints"}
    got = np.array([p.landmarks[:, :2] for p in sorted(poses, key=lambda p: p.landmarks[0, 0])])
    assert np.abs(got - truth(PEOPLE)).max() <= 1.0
    assert all(p.names == ("head", "feet") and p.columns == ("x", "y", "score") for p in poses)
    assert len(model.predict(draw_people(PEOPLE), max_poses=2)) == 2
    assert model.predict(np.zeros((200, 300, 3), np.uint8)) == []


def test_the_composed_tracker_keeps_ids_loses_and_finds_people(model):
    tracker = model.tracker(max_poses=3, redetect_every=4)
    ids, ran = [], []
    for i in range(12):
        people = [(x + 4 * i, y, h) for x, y, h in PEOPLE]
        if 5 <= i < 8:
            people = people[:2]  # the third person steps out for three frames
        before = tracker.detector_runs
        poses = tracker.update(draw_people(people), timestamp=i / 30)
        ran.append(tracker.detector_runs > before)
        ids.append(sorted(p.track_id for p in poses))
        heads = truth(people)[:, 0]
        for p in poses:  # each pose on a person's head, within a pixel
            assert np.linalg.norm(heads - p.landmarks[0, :2], axis=1).min() <= 1.0
    # ids in the detector's order, biggest first: the tall third person is 0, back as 3
    assert ids == [[0, 1, 2]] * 5 + [[1, 2]] * 4 + [[1, 2, 3]] * 3
    # the detector: frame 0; frame 5 (a track lost, same frame); then every 4 frames while 2 of 3 are
    # held: frame 9 finds the third person again, as a new one
    assert [i for i, r in enumerate(ran) if r] == [0, 5, 9]


def test_the_local_plugin_runs_in_the_cli_offline_from_a_mirror(plugin, tmp_path):
    env = posezoo_env(tmp_path, POSEZOO_PLUGINS_PATH=str(plugin["folder"]), POSEZOO_MIRROR=str(plugin["mirror"]), POSEZOO_OFFLINE="1")
    result = run_posezoo("info", "toy-people", env=env)
    assert result.returncode == 0, result.stderr
    assert "toy-top-down" in result.stdout and "toy-keypoints.onnx" in result.stdout
    cv2.imwrite(str(tmp_path / "people.png"), draw_people(PEOPLE))
    result = run_posezoo("run", "toy-people", "-i", "people.png", "--max-poses", "3", "--json", "out.jsonl", "--no-display",
                         "-s", "drawn.png", env=env, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr
    (line,) = (tmp_path / "out.jsonl").read_text().splitlines()
    poses = json.loads(line)["poses"]
    assert len(poses) == 3 and (tmp_path / "drawn.png").is_file()
    line = one_line_error(run_posezoo("run", "toy-people", "-i", "people.png", "--max-poses", "9", "--no-display", env=env, cwd=tmp_path))
    assert "at most 8" in line
    # a clip: ids stable on every frame
    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, SIZE)
    for i in range(6):
        writer.write(draw_people([(x + 5 * i, y, h) for x, y, h in PEOPLE]))
    writer.release()
    result = run_posezoo("run", "toy-people", "-v", "clip.avi", "--max-poses", "3", "--json", "clip.jsonl", "--no-display", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    frames = [json.loads(l) for l in (tmp_path / "clip.jsonl").read_text().splitlines()]
    assert len(frames) == 6 and all(sorted(p["track_id"] for p in f["poses"]) == [0, 1, 2] for f in frames)


def test_the_onnx_registry_example_fetches_from_a_loopback_server_and_runs(plugin, tmp_path):
    """docs/compose.md's ``format: onnx`` entries, fetched over HTTP (a mirror on 127.0.0.1), verified,
    used without conversion, and run by the real CLI."""
    from httpserver import MirrorServer

    env = posezoo_env(tmp_path, POSEZOO_PLUGINS_PATH=str(plugin["folder"]))
    with MirrorServer(plugin["mirror"]) as server:
        fetched = run_posezoo("fetch", "toy-people", "--mirror", server.url, env=env, cwd=tmp_path)
        assert fetched.returncode == 0, fetched.stderr
        assert sorted(r.name for r in server.requests) == ["toy-detector.onnx", "toy-keypoints.onnx"]
    cv2.imwrite(str(tmp_path / "people.png"), draw_people(PEOPLE))
    result = run_posezoo("run", "toy-people", "-i", "people.png", "--max-poses", "3", "--json", "out.jsonl", "--no-display",
                         "--offline", env=env, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    poses = json.loads((tmp_path / "out.jsonl").read_text())["poses"]
    found = np.array(sorted([p["landmarks"][0][:2], p["landmarks"][1][:2]] for p in poses))
    np.testing.assert_allclose(found, truth(PEOPLE), atol=1.5)
    assert not list((tmp_path / "home").rglob("*.onnx.onnx"))  # an ONNX file is its own model
