"""``-`` as an output path: ``--json -`` writes JSON to standard output (posezoo's own lines, the progress
bar and the eval table go to stderr, so stdout parses as JSON), and every output that standard output
cannot take refuses ``-`` as a one-line usage error (exit 2) before anything runs. Real CLI runs in
subprocesses, real weights from a loopback mirror of ../shared.
"""

from __future__ import annotations

import json
import shutil

import pytest

from clitools import one_line_error, posezoo_env, run_posezoo
from mirror import fetched_home

VIDEO = "street_5frames.mp4"
ANN = "coco_val2017_000000000785_person_keypoints.json"


@pytest.fixture(scope="module")
def env(shared_models, tmp_path_factory):
    root = fetched_home(shared_models, tmp_path_factory.mktemp("stdout"), ("blazepose-full", "--variant", "lite"))
    return posezoo_env(root, POSEZOO_OFFLINE="1")


def json_lines(text: str) -> list[dict]:
    lines = text.splitlines()
    assert lines and all(line.strip() for line in lines), text[:500]
    return [json.loads(line) for line in lines]  # (any stray text would fail here)


def test_json_dash_writes_json_lines_to_stdout_for_a_video(env, testdata, tmp_path):
    result = run_posezoo("run", "blazepose-full", "--variant", "lite", "-v", testdata / "video" / VIDEO, "--json", "-",
                         "--no-display", env=env, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    records = json_lines(result.stdout)
    assert [r["frame"] for r in records] == [0, 1, 2, 3, 4]
    assert all(r["model"] == "blazepose-full" and r["variant"] == "lite" for r in records)
    assert "posezoo: running blazepose-full (lite)" in result.stderr  # the messages went to stderr
    assert list(tmp_path.iterdir()) == []  # no file named "-", no temporary


def test_json_dash_with_an_image_and_a_saved_copy(env, testdata, tmp_path):
    photo = testdata / "images" / "coco_000000000785.jpg"
    result = run_posezoo("run", "blazepose-full", "--variant", "lite", "-i", photo, "--json", "-", "-s", "a.png",
                         "--no-display", env=env, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    (record,) = json_lines(result.stdout)
    assert record["source"] == str(photo) and len(record["poses"]) == 1
    assert "wrote a.png" in result.stderr and sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_json_dash_with_several_inputs_on_a_pool_keeps_input_order(env, testdata, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    names = sorted(p.name for p in (testdata / "images").iterdir())
    for name in names:
        shutil.copyfile(testdata / "images" / name, photos / name)
    result = run_posezoo("run", "blazepose-full", "--variant", "lite", "-i", photos, "--json", "-", "--jobs", "2",
                         env=env, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    records = json_lines(result.stdout)
    assert [r["source"].rsplit("/", 1)[-1] for r in records] == names
    assert "JSON Lines to standard output" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]


@pytest.mark.slow
def test_eval_json_dash_prints_the_scores_on_stdout_and_the_table_on_stderr(env, testdata, tmp_path):
    pytest.importorskip("pycocotools", reason="posezoo[eval] is not installed (the test extra installs it)")
    result = run_posezoo("eval", "blazepose-full:lite", "--ann", testdata / ANN, "--images", testdata / "images",
                         "--json", "-", env=env, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    (model,) = report["models"]
    assert model["variant"] == "lite" and 0 <= model["stats"]["AP"] <= 1
    assert "AP50" in result.stderr and f"{model['stats']['AP']:.3f}" in result.stderr  # the table
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "args, flag",
    [
        (["run", "blazepose-full", "-i", "x.jpg", "-s", "-"], "-s"),
        (["run", "blazepose-full", "-v", "x.mp4", "-s", "-"], "-s"),
        (["run", "blazepose-full", "-i", "x.jpg", "--world-plot", "-"], "--world-plot"),
        (["run", "blazepose-full", "-i", "x.jpg", "--coco", "-"], "--coco"),
        (["batch", "blazepose-full", "x.jpg", "--out", "-"], "--out"),
        (["convert", "x.tflite", "-o", "-"], "-o"),
        (["cache", "export", "-"], "DEST"),
    ],
)
def test_dash_where_stdout_makes_no_sense_is_a_usage_error(args, flag, tmp_path):
    result = run_posezoo(*args, env=posezoo_env(tmp_path), cwd=tmp_path)
    line = one_line_error(result)
    assert result.returncode == 2 and f"{flag} -:" in line and "cannot go to standard output" in line, line
    assert result.stdout == "" and sorted(p.name for p in tmp_path.iterdir() if p.name != "config") == []
