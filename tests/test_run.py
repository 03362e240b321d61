"""`posezoo run` end to end: real CLI, real weights fetched from a local mirror, real files written and read back."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

from clitools import one_line_error, posezoo_env, run_posezoo
from videotools import read_frames
from mirror import fetched_home

VIDEO = "street_5frames.mp4"


@pytest.fixture(scope="module")
def home(shared_models, tmp_path_factory):
    """A POSEZOO_HOME holding blazepose-full lite + full, fetched through the real CLI from a mirror."""
    root = fetched_home(
        shared_models, tmp_path_factory.mktemp("run"), *(("blazepose-full", "--variant", v) for v in ("full", "lite"))
    )
    return root


@pytest.fixture
def env(home, tmp_path):
    return posezoo_env(home, POSEZOO_OFFLINE="1", XDG_CONFIG_HOME=str(tmp_path / "config"))


def test_no_input_runs_the_bundled_sample_and_writes_output_png(env, tmp_path):
    result = run_posezoo("run", "blazepose-full", env=env, cwd=tmp_path, script=True)
    assert result.returncode == 0, result.stderr
    assert "bundled sample" in result.stderr and "no display found" in result.stderr
    assert "CPUExecutionProvider" in result.stderr
    out = cv2.imread(str(tmp_path / "output.png"))
    assert out is not None and out.shape == (425, 640, 3)


def test_video_writes_a_playable_video_and_one_json_line_per_frame(env, tmp_path, testdata):
    video = testdata / "video" / VIDEO
    result = run_posezoo(
        "run", "blazepose-full", "-v", video, "-s", "out.mp4", "--no-display", "--json", "out.jsonl",
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    frames = read_frames(tmp_path / "out.mp4")
    src = cv2.VideoCapture(str(video))
    size = (int(src.get(cv2.CAP_PROP_FRAME_HEIGHT)), int(src.get(cv2.CAP_PROP_FRAME_WIDTH)))
    assert len(frames) == 5 and frames[0].shape[:2] == size
    records = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in records] == [0, 1, 2, 3, 4]
    for r in records:
        assert set(r) == {"source", "frame", "width", "height", "model", "variant", "poses"}
        assert (r["height"], r["width"]) == size and r["model"] == "blazepose-full" and r["variant"] == "full"
    poses = [p for r in records for p in r["poses"]]
    assert poses, "nobody found in the street clip"
    for p in poses:
        assert len(p["landmarks"]) == 33 and all(len(row) == 5 for row in p["landmarks"])
        assert len(p["world_landmarks"]) == 33 and all(len(row) == 3 for row in p["world_landmarks"])
        assert len(p["box"]) == 4 and 0 <= p["score"] <= 1 and 0 <= p["presence"] <= 1


def test_static_video_run_also_works(env, tmp_path, testdata):
    result = run_posezoo(
        "run", "blazepose-full", "-v", testdata / "video" / VIDEO, "--static", "--no-display", "--json", "s.jsonl",
        "--variant", "lite", env=env, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = (tmp_path / "s.jsonl").read_text().splitlines()
    assert len(lines) == 5 and json.loads(lines[0])["variant"] == "lite"


def test_folder_gives_one_line_per_image_and_an_annotated_copy_each(env, tmp_path, testdata):
    folder = tmp_path / "photos"
    shutil.copytree(testdata / "images", folder)
    (folder / "notes.txt").write_text("not an image")  # not an image type: ignored in a folder
    result = run_posezoo(
        "run", "blazepose-full", "-i", folder, "--json", "all.jsonl", "-s", "annotated", "--no-display",
        "--max-poses", "2", env=env, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in (tmp_path / "all.jsonl").read_text().splitlines()]
    images = sorted(p.name for p in (testdata / "images").iterdir())
    assert sorted(r["source"].split("/")[-1] for r in records) == images
    assert all(1 <= len(r["poses"]) <= 2 for r in records)
    written = sorted(p.name for p in (tmp_path / "annotated").iterdir())
    assert written == sorted(n.rsplit(".", 1)[0] + ".png" for n in images)
    for name in written:
        assert cv2.imread(str(tmp_path / "annotated" / name)) is not None


def test_annotated_image_differs_from_the_input_where_the_skeleton_is(env, tmp_path, testdata):
    src = testdata / "images" / "coco_000000000785.jpg"
    result = run_posezoo("run", "blazepose-full", "-i", src, "-s", "a.png", "--json", "a.jsonl", "--no-display", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    drawn = cv2.imread(str(tmp_path / "a.png")).astype(int)
    original = cv2.imread(str(src)).astype(int)
    pose = json.loads((tmp_path / "a.jsonl").read_text())["poses"][0]
    x, y = (int(round(v)) for v in pose["landmarks"][0][:2])  # the nose gets a keypoint circle
    assert np.abs(drawn[y - 2 : y + 3, x - 2 : x + 3] - original[y - 2 : y + 3, x - 2 : x + 3]).sum() > 0
    assert (np.abs(drawn - original).sum(axis=2) > 0).mean() < 0.2  # only the overlay changed


def test_python_api_load_predict_detect(home, testdata, monkeypatch):
    import posezoo

    monkeypatch.setenv("POSEZOO_HOME", str(home / "home"))
    model = posezoo.load("blazepose-full", variant="full", offline=True)
    image = cv2.imread(str(testdata / "images" / "coco_000000000785.jpg"))
    poses = model.predict(image)
    assert len(poses) == 1
    pose = poses[0]
    assert pose.landmarks.dtype == np.float32 and pose.landmarks.shape == (33, 5)
    assert pose.world_landmarks.shape == (33, 3) and len(pose.names) == 33 and pose.names[0] == "nose"
    assert 0.5 <= pose.score <= 1 and 0.5 <= pose.presence <= 1
    x0, y0, x1, y1 = pose.box
    assert 0 <= x0 < x1 <= image.shape[1] + 50 and 0 <= y0 < y1 <= image.shape[0] + 50
    detections = model.detect(image)
    assert detections and detections[0].keypoints.shape == (4, 2) and 0.5 <= detections[0].score <= 1


def test_python_api_load_enters_the_variant_once(home, monkeypatch):
    import posezoo
    from posezoo.supply.registry import ModelEntry

    monkeypatch.setenv("POSEZOO_HOME", str(home / "home"))
    calls = []
    real = ModelEntry.variant
    monkeypatch.setattr(ModelEntry, "variant", lambda self, name=None: calls.append(name) or real(self, name))
    model = posezoo.load("blazepose-full", variant="lite", offline=True)
    assert calls == ["lite"] and model.variant == "lite"  # resolved once: fetch, convert and build take the variant
    from posezoo.zoo.resolve import get_zoo

    assert model.capabilities == get_zoo().resolve("blazepose-full").capabilities  # what was checked up front


# ------------------------------------------------------------------------------------------ bad input


def test_missing_image_file(env, tmp_path):
    line = one_line_error(run_posezoo("run", "blazepose-full", "-i", "nope.jpg", "--no-display", env=env, cwd=tmp_path))
    assert "nope.jpg" in line and "does not exist" in line


def test_non_image_file(env, tmp_path):
    (tmp_path / "fake.jpg").write_text("this is text, not a JPEG")
    result = run_posezoo("run", "blazepose-full", "-i", "fake.jpg", "--no-display", env=env, cwd=tmp_path)
    line = one_line_error(result)
    assert "fake.jpg" in line and "not an image" in line


def test_unopenable_camera_index(env, tmp_path):
    line = one_line_error(run_posezoo("run", "blazepose-full", "-v", "7", "--no-display", env=env, cwd=tmp_path))
    assert "camera 7" in line and "webcam" in line


def test_missing_video_file(env, tmp_path):
    line = one_line_error(run_posezoo("run", "blazepose-full", "-v", "gone.mp4", "--no-display", env=env, cwd=tmp_path))
    assert "gone.mp4" in line


def test_unknown_model(env, tmp_path):
    result = run_posezoo("run", "blazepose-fulll", "--no-display", env=env, cwd=tmp_path)
    line = one_line_error(result)
    assert result.returncode == 2 and "unknown model 'blazepose-fulll'" in line and "blazepose-full" in line


def test_unknown_variant(env, tmp_path):
    result = run_posezoo("run", "blazepose-full", "--variant", "huge", "--no-display", env=env, cwd=tmp_path)
    line = one_line_error(result)
    assert result.returncode == 2 and "'huge'" in line and "lite, full, heavy" in line


def test_unwritable_output_folder(env, tmp_path, testdata):
    src = testdata / "images" / "mpii_052475643.jpg"
    result = run_posezoo("run", "blazepose-full", "-i", src, "-s", "no/such/dir/out.png", "--no-display", env=env, cwd=tmp_path)
    line = one_line_error(result)
    assert "no/such/dir" in line
