"""`posezoo eval`: COCO keypoint AP through pycocotools' COCOeval, PCK@0.2, one table for several
models, missing images named; the same AP as COCOeval run directly on `posezoo run --coco` results."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from clitools import one_line_error, posezoo_env, run_posezoo
from mirror import fetched_home
from posezoo.io.coco import COCO_KEYPOINTS, coco_mapping
from posezoo.drivers.evaluate import coco_stats, load_eval_set, parse_model_arg, pck
from posezoo_plugins.blazepose_full import SPEC as FULL
from posezoo_plugins.blazepose_upper import SPEC as UPPER

ANN = "coco_val2017_000000000785_person_keypoints.json"
PHOTO = "coco_000000000785.jpg"


def _gt(testdata) -> dict:
    return json.loads((testdata / ANN).read_text())


def _result(keypoints, image_id=785, score=0.9) -> dict:
    return {"image_id": image_id, "category_id": 1, "keypoints": [float(v) for v in keypoints], "score": score}


def _cocoeval(ann: Path, results: Path) -> np.ndarray:
    """COCOeval run directly, as its README shows: the reference the CLI must agree with."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ann))
        e = COCOeval(gt, gt.loadRes(str(results)), "keypoints")
        e.evaluate()
        e.accumulate()
        e.summarize()
    return np.array(e.stats)


# ------------------------------------------------------------------------------------ scoring


def test_perfect_results_score_1_and_shifted_ones_less(testdata):
    evalset = load_eval_set(testdata / ANN, testdata / "images")
    gt = np.array(_gt(testdata)["annotations"][0]["keypoints"], np.float64).reshape(17, 3)
    exact = gt.copy()
    exact[:, 2] = 1
    assert coco_stats(evalset, [_result(exact.ravel())])["AP"] == pytest.approx(1.0)
    off = exact.copy()
    off[:, :2] += 12  # pixels
    stats = coco_stats(evalset, [_result(off.ravel())])
    assert 0 < stats["AP"] < 1 and stats["APm"] == -1  # the skier is "large": no medium person to score
    assert coco_stats(evalset, [])["AP"] == 0.0


def test_pck_of_the_torso(testdata):
    evalset = load_eval_set(testdata / ANN, testdata / "images")
    assert evalset.single_person_ids == [785]
    gt = np.array(_gt(testdata)["annotations"][0]["keypoints"], np.float64).reshape(17, 3)
    ls, rh = COCO_KEYPOINTS.index("left_shoulder"), COCO_KEYPOINTS.index("right_hip")
    torso = np.linalg.norm(gt[ls, :2] - gt[rh, :2])
    full = coco_mapping(FULL)
    for shift, expected in ((0.0, 1.0), (0.19, 1.0), (0.21, 0.0)):
        moved = gt.copy()
        moved[:, 0] += shift * torso
        assert pck(evalset, [_result(moved.ravel())], full) == (pytest.approx(expected), 1)
    # the upper-body model has no knees or ankles: those 4 of the 17 labelled keypoints are misses
    assert pck(evalset, [_result(gt.ravel())], coco_mapping(UPPER)) == (pytest.approx(13 / 17), 1)
    assert pck(evalset, [], full) == (0.0, 1)  # nobody found
    # the best-scored pose counts
    far = gt.copy()
    far[:, :2] += 500
    assert pck(evalset, [_result(far.ravel(), score=0.3), _result(gt.ravel(), score=0.8)], full)[0] == 1.0


def test_model_arguments_pick_variants():
    assert parse_model_arg("blazepose-full:lite", "heavy") == ("blazepose-full", "lite")
    assert parse_model_arg("blazepose-full", "heavy") == ("blazepose-full", "heavy")
    assert parse_model_arg("movenet-thunder", None) == ("movenet-thunder", None)


# ------------------------------------------------------------------------------------ the CLI


@pytest.fixture(scope="module")
def home(shared_models, tmp_path_factory):
    """A POSEZOO_HOME holding blazepose-full (full, lite) and MoveNet Thunder and Lightning, fetched
    (and converted) through the CLI from a mirror."""
    root = fetched_home(
        shared_models, tmp_path_factory.mktemp("eval"),
        ["blazepose-full", "--variant", "full"], ["blazepose-full", "--variant", "lite"],
        ["movenet-thunder"], ["movenet-lightning"], link=True,
    )  # fmt: skip
    return root


@pytest.fixture
def env(home, tmp_path):
    return posezoo_env(home, POSEZOO_OFFLINE="1", XDG_CONFIG_HOME=str(tmp_path / "config"))


@pytest.mark.slow
def test_eval_gives_the_ap_of_cocoeval_on_the_exported_results(env, tmp_path, testdata):
    """The issue's check: `posezoo eval` on COCO val2017 #785 == COCOeval run directly on `run --coco`."""
    ann, images = testdata / ANN, testdata / "images"
    exported = tmp_path / "results.json"
    run = run_posezoo("run", "blazepose-full", "-i", images / PHOTO, "--coco", exported, "--coco-ann", ann,
                      "--max-poses", "20", "--no-display", env=env, cwd=tmp_path)  # fmt: skip
    assert run.returncode == 0, run.stderr
    direct = _cocoeval(ann, exported)

    scores = tmp_path / "scores.json"
    ev = run_posezoo("eval", "blazepose-full", "--ann", ann, "--images", images, "--json", scores, env=env, cwd=tmp_path)
    assert ev.returncode == 0, ev.stderr
    (model,) = json.loads(scores.read_text())["models"]
    assert model["max_poses"] == 20 and model["variant"] == "full"
    ours = np.array([model["stats"][k] for k in ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")])
    assert ours.tolist() == direct.tolist()  # the same ten numbers, exactly
    assert direct[0] > 0.5  # and the model does find the skier
    assert f"{direct[0]:.3f}" in ev.stdout.splitlines()[3]  # the table shows it


@pytest.mark.slow
def test_eval_prints_one_table_for_several_models(env, tmp_path, testdata):
    result = run_posezoo("eval", "blazepose-full:lite", "blazepose-full", "--ann", testdata / ANN, "--images",
                         testdata / "images", env=env, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("COCO keypoints, " + ANN + ": 1 image, 1 annotated person; PCK@0.2 (torso) on the 1")
    assert lines[2].split() == ["MODEL", "VARIANT", "KPTS", "AP", "AP50", "AP75", "AR", "PCK@0.2", "POSES"]
    rows = [line.split() for line in lines[3:]]
    assert [r[:3] for r in rows] == [["blazepose-full", "lite", "17/17"], ["blazepose-full", "full", "17/17"]]
    for r in rows:
        assert all(0 <= float(v) <= 1 for v in r[3:8]) and r[8] == "1"
    assert "blazepose-full (lite)" in result.stderr and "100%" in result.stderr  # the tqdm bars


@pytest.mark.slow
def test_eval_compares_families_blazepose_and_movenet(env, tmp_path, testdata):
    """The issue's table: `posezoo eval blazepose-full movenet-thunder movenet-lightning` on #785."""
    result = run_posezoo("eval", "blazepose-full", "movenet-thunder", "movenet-lightning", "--ann", testdata / ANN,
                         "--images", testdata / "images", "--json", "s.json", env=env, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 6 and lines[2].startswith("MODEL")
    rows = [line.split() for line in lines[3:]]
    assert [r[0] for r in rows] == ["blazepose-full", "movenet-thunder", "movenet-lightning"]
    assert all(r[2] == "17/17" and r[8] == "1" for r in rows)
    models = json.loads((tmp_path / "s.json").read_text())["models"]
    assert [m["max_poses"] for m in models] == [20, 1, 1]  # single-pose MoveNet: lowered to its limit, silently
    for m in models:
        assert m["stats"]["AP50"] == pytest.approx(1.0) and m["pck"] > 0.9  # every model finds the skier


@pytest.mark.slow
def test_eval_names_the_images_it_cannot_find_and_scores_without_them(env, tmp_path, testdata):
    data = _gt(testdata)
    images = tmp_path / "images"
    images.mkdir()
    shutil.copyfile(testdata / "images" / PHOTO, images / PHOTO)
    shutil.copyfile(testdata / "images" / PHOTO, images / "skier_copy.jpg")
    extra_imgs = [
        {**data["images"][0], "id": 2, "file_name": "skier_copy.jpg"},
        {**data["images"][0], "id": 3, "file_name": "val2017/not_here.jpg"},
        {**data["images"][0], "id": 4, "file_name": "gone_too.jpg"},
    ]
    extra_anns = [{**data["annotations"][0], "id": 10 + i, "image_id": i} for i in (2, 3, 4)]
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps({**data, "images": data["images"] + extra_imgs, "annotations": data["annotations"] + extra_anns}))

    result = run_posezoo("eval", "blazepose-full:lite", "--ann", ann, "--images", images, "--json", "s.json",
                         env=env, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    warning = next(l for l in result.stderr.splitlines() if l.startswith("posezoo: warning:"))
    assert "2 of 4 images of ann.json are not in" in warning and "val2017/not_here.jpg, gone_too.jpg" in warning
    report = json.loads((tmp_path / "s.json").read_text())
    assert report["missing"] == ["val2017/not_here.jpg", "gone_too.jpg"] and report["images"] == 2
    (model,) = report["models"]
    assert model["poses"] == 2 and model["images"] == 2
    # two copies of the skier under two ids score as the one photo does, the missing ones are not misses
    single = run_posezoo("eval", "blazepose-full:lite", "--ann", testdata / ANN, "--images", testdata / "images",
                         "--json", "one.json", env=env, cwd=tmp_path)  # fmt: skip
    assert single.returncode == 0, single.stderr
    assert json.loads((tmp_path / "one.json").read_text())["models"][0]["stats"] == pytest.approx(model["stats"])


def test_eval_refusals_are_one_line_and_come_before_any_model_runs(env, tmp_path, testdata):
    ann, images = testdata / ANN, testdata / "images"
    not_json = tmp_path / "bad.json"
    not_json.write_text("{not json")
    wrong_k = tmp_path / "k.json"
    data = _gt(testdata)
    data["categories"][0]["keypoints"] = data["categories"][0]["keypoints"][:5]
    wrong_k.write_text(json.dumps(data))
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        (["no-such-model", "--ann", ann, "--images", images], "no-such-model"),
        (["blazepose-full:nope", "--ann", ann, "--images", images], "nope"),
        (["blazepose-full", "--ann", tmp_path / "none.json", "--images", images], "none.json does not exist"),
        (["blazepose-full", "--ann", not_json, "--images", images], "cannot read annotation file"),
        (["blazepose-full", "--ann", wrong_k, "--images", images], "not COCO's 17"),
        (["blazepose-full", "--ann", ann, "--images", empty], "none of the 1 images of " + ANN),
        (["blazepose-full", "--ann", ann, "--images", tmp_path / "nodir"], "does not exist"),
    ]
    for args, expected in cases:
        result = run_posezoo("eval", *args, env=env, cwd=tmp_path)
        assert expected in one_line_error(result), (args, result.stderr)


def test_missing_pycocotools_is_one_line_naming_the_pip_command(env, tmp_path, testdata):
    code = "import sys; sys.modules['pycocotools'] = None; from posezoo.cli import main; main(sys.argv[1:])"
    result = subprocess.run(
        [sys.executable, "-c", code, "eval", "blazepose-full", "--ann", testdata / ANN, "--images", testdata / "images"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    line = one_line_error(result)
    assert "needs pycocotools" in line and 'pip install "posezoo[eval]"' in line
