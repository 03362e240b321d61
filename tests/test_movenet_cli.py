"""The MoveNet models through the real CLI: fetched from a mirror built from ../shared/models (TF.js
model.json + weight shard, git-blob-sha1 digests), converted, run on photos and videos, described,
benched; bad options are one-line errors."""

from __future__ import annotations

import json

import cv2
import pytest

from clitools import one_line_error, posezoo_env, run_posezoo
from mirror import build_mirror
from posezoo.drivers.bench import write_clip
from posezoo.supply.registry import build_registry

MODELS = ("movenet-lightning", "movenet-thunder", "movenet-multipose")
AIC = "aic_ff945ae2e729f24eea992814639d59b3bdec8bd8.jpg"  # three people


@pytest.fixture(scope="module")
def home(shared_models, tmp_path_factory):
    """A POSEZOO_HOME holding the three models, fetched and converted through the CLI from a mirror."""
    root = tmp_path_factory.mktemp("movenet-cli")
    registry = build_registry(user_files=[])
    files = [f for name in MODELS for f in registry.model(name).files()]
    mirrored = build_mirror(shared_models, root / "mirror", files)
    assert sorted(mirrored) == sorted(f.name for f in files)  # json + bin of each
    env = posezoo_env(root)
    for name in MODELS:
        result = run_posezoo("fetch", name, "--mirror", root / "mirror", env=env)
        assert result.returncode == 0, result.stderr
    return root


@pytest.fixture
def env(home, tmp_path):
    return posezoo_env(home, POSEZOO_OFFLINE="1", XDG_CONFIG_HOME=str(tmp_path / "config"))


@pytest.mark.parametrize("name", MODELS)
def test_run_on_a_photo_writes_json_and_png(env, tmp_path, testdata, name):
    image = testdata / "images" / AIC
    more = ["--max-poses", "6"] if name == "movenet-multipose" else []
    result = run_posezoo("run", name, "-i", image, "--json", "out.jsonl", "-s", "out.png", "--no-display", *more,
                         env=env, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(records) == 1 and records[0]["model"] == name and records[0]["variant"] == "default"
    poses = records[0]["poses"]
    assert len(poses) == (3 if name == "movenet-multipose" else 1)
    for p in poses:
        assert p["columns"] == ["x", "y", "score"] and len(p["landmarks"]) == 17
        assert all(len(row) == 3 and 0 <= row[2] <= 1 for row in p["landmarks"])
        assert len(p["box"]) == 4 and 0.25 <= p["score"] <= 1
    drawn = cv2.imread(str(tmp_path / "out.png"))
    original = cv2.imread(str(image))
    assert drawn is not None and drawn.shape == original.shape and (drawn != original).any()


def test_run_multipose_on_a_video_gives_identities(env, tmp_path, testdata):
    result = run_posezoo("run", "movenet-multipose", "-v", testdata / "video" / "street_5frames.mp4", "--max-poses", "6",
                         "--json", "v.jsonl", "-s", "v.mp4", "--no-display", env=env, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in (tmp_path / "v.jsonl").read_text().splitlines()]
    assert len(records) == 5
    ids = [[p["track_id"] for p in r["poses"]] for r in records]
    assert all(i is not None for frame in ids for i in frame) and set(ids[0]) & set(ids[-1])


def test_list_info_and_plugins(env, tmp_path):
    listed = run_posezoo("list", env=env, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    for name in MODELS:
        assert name in listed.stdout
    info = run_posezoo("info", "movenet-multipose", env=env, cwd=tmp_path)
    assert info.returncode == 0, info.stderr
    out = info.stdout
    assert "family:     movenet" in out and "plugin:     movenet" in out
    assert "input:      whole image resized to 256 px on its long side" in out
    assert "up to 6 people" in out and "identities by box IoU" in out
    assert "keypoints:  nose, left_eye" in out and "model: movenet-multipose.json [tfjs" in out
    assert "shard:  movenet-multipose.bin (9448838 bytes, git-blob-sha1:cfb871ace8d090b14752477593d3649246eab9e4)" in out
    plugins = run_posezoo("plugins", env=env, cwd=tmp_path)
    assert "movenet" in plugins.stdout and "movenet-lightning, movenet-thunder, movenet-multipose" in plugins.stdout


def test_bench_lightning_on_a_clip(env, tmp_path, coco_photo):
    clip = write_clip(tmp_path / "clip.avi", coco_photo, 12)
    result = run_posezoo("bench", "movenet-lightning", "-v", clip, "--frames", "4", "--warmup", "1", "--json",
                         env=env, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["model"] == "movenet-lightning" and report["frame_size"] == [640, 480]
    assert report["stages"] == ["read", "preprocess", "model", "decode", "other", "draw"]
    tracking = report["modes"]["tracking"]
    assert tracking["runs"] == {"model": 4} and tracking["ratio"] > 0 and tracking["poses_per_frame"] == 1


@pytest.mark.parametrize(
    "args, says",
    [
        (("movenet-multipose", "--max-poses", "7"), "finds at most 6 pose(s) per image, 7 asked for"),
        (("movenet-lightning", "--max-poses", "2"), "finds at most 1 pose(s) per image, 2 asked for"),
        (("movenet-thunder", "--segmentation"), "has no segmentation output"),
    ],
)
def test_options_the_model_cannot_honour_are_one_line_errors(env, tmp_path, testdata, args, says):
    result = run_posezoo("run", *args, "-i", testdata / "images" / AIC, "--no-display", "--json", "x.jsonl",
                         env=env, cwd=tmp_path)  # fmt: skip
    assert says in one_line_error(result)
    assert result.returncode == 2  # UsageError: refused before anything is read
    assert not (tmp_path / "x.jsonl").exists()
