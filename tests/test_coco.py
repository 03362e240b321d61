"""COCO keypoints: the name mapping of every family, results in COCO's format read back by pycocotools,
and `posezoo run --coco / --coco-ann / --draw-boxes / --world-plot` end to end on real weights."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from clitools import one_line_error, posezoo_env, run_posezoo
from mirror import fetched_home
from posezoo.io.coco import (
    COCO_KEYPOINTS,
    CocoResultsSink,
    assign_image_ids,
    coco_keypoints,
    coco_mapping,
    describe_mapping,
    require_coco,
)
from posezoo.io.draw import CENTRE_COLOR
from posezoo.errors import InputError
from posezoo.inference.model import Pose
from posezoo_plugins.blazepose_full import SPEC as FULL
from posezoo_plugins.blazepose_upper import SPEC as UPPER

ANN = "coco_val2017_000000000785_person_keypoints.json"
PHOTO = "coco_000000000785.jpg"
HAND_NAMES = ("wrist", "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip", "index_finger_mcp")


def _spec(names, **extra):
    return SimpleNamespace(name="test-model", keypoint_names=tuple(names), skeleton=(), **extra)


# ------------------------------------------------------------------------------------ the mapping


def test_blazepose_maps_all_17_by_name():
    mapping = coco_mapping(FULL)
    assert all(i is not None for i in mapping)
    assert [FULL.keypoint_names[i] for i in mapping] == list(COCO_KEYPOINTS)
    assert mapping[COCO_KEYPOINTS.index("left_shoulder")] == 11 and mapping[COCO_KEYPOINTS.index("right_ankle")] == 28
    assert describe_mapping(FULL)["coco_summary"] == "all 17 by name"


def test_movenet_is_coco_17_one_to_one():
    from posezoo_plugins.movenet import LIGHTNING, MULTIPOSE, THUNDER

    for spec in (LIGHTNING, THUNDER, MULTIPOSE):
        assert coco_mapping(spec) == tuple(range(17))
        assert describe_mapping(spec)["coco_summary"] == "all 17 by name"


def test_upper_body_maps_the_subset_it_has():
    mapping = coco_mapping(UPPER)
    missing = [c for c, i in zip(COCO_KEYPOINTS, mapping) if i is None]
    assert missing == ["left_knee", "right_knee", "left_ankle", "right_ankle"]
    assert mapping[COCO_KEYPOINTS.index("left_hip")] == 23  # hips, but no knees or ankles
    info = describe_mapping(UPPER)
    assert info["coco_summary"] == "13 of 17 (not: left_knee, right_knee, left_ankle, right_ankle)"
    assert info["coco_keypoints"]["left_knee"] is None and info["coco_keypoints"]["nose"] == "nose"


def test_a_hand_maps_to_none_and_says_so_in_one_line():
    spec = _spec(HAND_NAMES)
    assert coco_mapping(spec) == (None,) * 17
    assert describe_mapping(spec)["coco_summary"].startswith("none of COCO's 17")
    with pytest.raises(InputError) as err:
        require_coco("mediapipe-hands", spec)
    assert "\n" not in str(err.value) and "'mediapipe-hands' has none of COCO's 17" in str(err.value)


def test_a_spec_may_override_the_mapping():
    names = ("head", "l_sho", "r_sho", "l_hip", "r_hip")
    spec = _spec(names, coco_keypoints={"nose": "head", "left_shoulder": "l_sho", "right_shoulder": 2, "left_hip": None})
    mapping = coco_mapping(spec)
    assert mapping[0] == 0 and mapping[5] == 1 and mapping[6] == 2 and mapping[11] is None
    assert sum(i is not None for i in mapping) == 3
    assert "3 of 17" in describe_mapping(spec)["coco_summary"]
    assert coco_mapping(_spec(COCO_KEYPOINTS, coco_keypoints={})) == (None,) * 17  # {}: none, whatever the names
    from dataclasses import replace

    pairs = replace(UPPER, coco_keypoints=(("left_knee", "left_hip"),))  # a frozen spec holds pairs
    assert coco_mapping(pairs) == (None,) * 13 + (23, None, None, None)
    for bad in ({"nose": "snout"}, {"elbow": "head"}, {"nose": 9}):
        with pytest.raises(ValueError):
            coco_mapping(_spec(names, coco_keypoints=bad))


def test_keypoints_take_x_y_and_each_keypoint_confidence():
    lms = np.zeros((25, 5), np.float32)
    lms[:, 0] = np.arange(25) * 10 + 0.123
    lms[:, 1] = np.arange(25) + 0.5
    lms[:, 3] = np.linspace(0, 1, 25)  # visibility
    lms[0, 0] = np.nan
    pose = Pose(landmarks=lms, columns=("x", "y", "z", "visibility", "presence"), names=UPPER.keypoint_names,
                score=0.9, box=np.zeros(4, np.float32))  # fmt: skip
    kp = np.array(coco_keypoints(pose, coco_mapping(UPPER))).reshape(17, 3)
    assert kp[0].tolist() == [0, 0, 0]  # nose not finite: left out
    i = COCO_KEYPOINTS.index("left_hip")  # BlazePose 23
    assert kp[i].tolist() == [230.12, 23.5, round(float(lms[23, 3]), 4)]
    assert kp[13:].tolist() == [[0, 0, 0]] * 4  # no knees, no ankles
    scored = Pose(landmarks=lms[:, [0, 1, 3]], columns=("x", "y", "score"), names=UPPER.keypoint_names, score=0.9,
                  box=np.zeros(4, np.float32))  # fmt: skip
    assert np.array(coco_keypoints(scored, coco_mapping(UPPER))).reshape(17, 3)[i, 2] == kp[i, 2]


def test_image_ids_from_annotations_coco_names_or_order():
    paths = [Path("a/000000000785.jpg"), Path("b/000000001000.png")]
    assert assign_image_ids(paths)[0] == {paths[0]: 785, paths[1]: 1000}
    named = [Path("skier.jpg"), Path("000000000785.jpg")]
    ids, how = assign_image_ids(named)
    assert ids == {named[0]: 1, named[1]: 2} and "order" in how
    ids, how = assign_image_ids(named, {"skier.jpg": 42})
    assert ids == {named[0]: 42} and "annotation file" in how


def test_results_file_is_what_pycocotools_reads(tmp_path, testdata):
    from pycocotools.coco import COCO

    gt = json.loads((testdata / ANN).read_text())["annotations"][0]["keypoints"]
    lms = np.zeros((33, 5), np.float32)
    for c, i in enumerate(coco_mapping(FULL)):
        lms[i, :2] = gt[3 * c : 3 * c + 2]
        lms[i, 3] = 0.8
    pose = Pose(landmarks=lms, columns=("x", "y", "z", "visibility", "presence"), names=FULL.keypoint_names,
                score=0.75, box=np.zeros(4, np.float32))  # fmt: skip
    out = tmp_path / "results.json"
    sink = CocoResultsSink(out, coco_mapping(FULL), {Path(PHOTO): 785})
    sink.add(Path(PHOTO), [pose])
    sink.add(Path("other.jpg"), [pose])
    assert not out.exists()  # written whole, on close
    sink.close()
    assert sink.unknown == ["other.jpg"]
    coco = COCO(str(testdata / ANN))
    dt = coco.loadRes(str(out))
    (res,) = dt.loadAnns(dt.getAnnIds(imgIds=[785]))
    assert res["category_id"] == 1 and res["score"] == 0.75
    assert np.array(res["keypoints"]).reshape(17, 3)[:, :2].tolist() == np.array(gt).reshape(17, 3)[:, :2].tolist()
    assert set(np.array(res["keypoints"]).reshape(17, 3)[:, 2]) == {0.8}


# ------------------------------------------------------------------------------------ the CLI


@pytest.fixture(scope="module")
def home(shared_models, tmp_path_factory):
    """A POSEZOO_HOME holding blazepose-full (full), fetched through the CLI from a mirror."""
    return fetched_home(shared_models, tmp_path_factory.mktemp("coco"), ["blazepose-full"], link=True)


@pytest.fixture
def env(home, tmp_path):
    return posezoo_env(home, POSEZOO_OFFLINE="1", XDG_CONFIG_HOME=str(tmp_path / "config"))


@pytest.mark.slow
def test_run_coco_with_annotation_ids(env, tmp_path, testdata):
    out = tmp_path / "res.json"
    result = run_posezoo(
        "run", "blazepose-full", "-i", testdata / "images", "--coco", out, "--coco-ann", testdata / ANN,
        "--no-display", env=env, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    results = json.loads(out.read_text())
    assert {r["image_id"] for r in results} == {785}  # the other photos are not in the annotation file
    assert "3 image(s) are not in" in result.stderr and "posezoo: warning:" in result.stderr
    (r,) = results
    assert r["category_id"] == 1 and len(r["keypoints"]) == 51 and 0 < r["score"] <= 1
    kp = np.array(r["keypoints"]).reshape(17, 3)
    gt = np.array(json.loads((testdata / ANN).read_text())["annotations"][0]["keypoints"]).reshape(17, 3)
    assert np.median(np.linalg.norm(kp[:, :2] - gt[:, :2], axis=1)) < 10  # pixels, on the skier
    assert ((kp[:, 2] >= 0) & (kp[:, 2] <= 1)).all()


@pytest.mark.slow
def test_run_coco_without_annotations_numbers_images_in_order(env, tmp_path, testdata):
    out = tmp_path / "res.json"
    result = run_posezoo("run", "blazepose-full", "-i", testdata / "images", "--coco", out, "--no-display", "--max-poses", "3",
                         env=env, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "order in the run" in result.stderr
    ids = {r["image_id"] for r in json.loads(out.read_text())}
    assert ids <= {1, 2, 3, 4} and len(ids) >= 3


@pytest.mark.slow
def test_draw_boxes_and_world_plot(env, tmp_path, testdata):
    result = run_posezoo(
        "run", "blazepose-full", "-i", testdata / "images" / PHOTO, "-s", "boxed.png", "--draw-boxes", "--json", "p.jsonl",
        "--world-plot", "world.png", "--no-display", env=env, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (pose,) = json.loads((tmp_path / "p.jsonl").read_text())["poses"]
    x0, y0, x1, y1 = (int(round(v)) for v in pose["box"])
    drawn = cv2.imread(str(tmp_path / "boxed.png"))
    edge = drawn[(y0 + y1) // 2, x0].astype(int)
    assert np.abs(edge - CENTRE_COLOR).max() <= 12  # the box's left edge, in the no-track colour
    plot = cv2.imread(str(tmp_path / "world.png"))
    assert plot is not None and plot.shape == (640, 640, 3) and plot.std() > 10
    assert f"wrote world.png" in result.stderr


def test_run_coco_refusals_are_one_line(env, tmp_path, testdata):
    video = testdata / "video" / "street_5frames.mp4"
    cases = [
        (["-v", video, "--coco", "r.json"], "not for a video"),
        (["--coco-ann", testdata / ANN], "no --coco file"),
        (["--coco", "r.json", "--coco-ann", tmp_path / "nope.json"], "nope.json does not exist"),
        (["--world-plot", "w.gif"], "unknown type '.gif'"),
    ]
    for args, expected in cases:
        result = run_posezoo("run", "blazepose-full", *args, "--no-display", env=env, cwd=tmp_path)
        assert expected in one_line_error(result), (args, result.stderr)
    assert not (tmp_path / "r.json").exists()


@pytest.mark.slow
def test_a_hand_model_has_no_coco_17_but_writes_coco_wholebody_hands(env, home, tmp_path, testdata):
    """A hands model has none of COCO's 17 person keypoints (``info`` says so) but maps onto
    COCO-WholeBody's hands, so ``--coco`` writes COCO-WholeBody results: the aic photo's one hand (the
    player's left: MediaPipe's "Right" in a mirrored view) in ``lefthand_kpts``, the body all zeros."""
    env = {**env, "POSEZOO_OFFLINE": "0"}
    photo = testdata / "images" / "aic_ff945ae2e729f24eea992814639d59b3bdec8bd8.jpg"
    result = run_posezoo(
        "run", "mediapipe-hands", "-i", photo, "--coco", "r.json", "--mirror", home / "mirror", "--no-display",
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (hand,) = json.loads((tmp_path / "r.json").read_text())
    assert not any(hand["keypoints"]) and not any(hand["righthand_kpts"])
    left = np.array(hand["lefthand_kpts"], np.float32).reshape(21, 3)
    assert (left[:, 2] > 0).all() and 780 < left[:, 0].mean() < 870  # the hand at x 780..870
    info = run_posezoo("info", "mediapipe-hands", env=env)
    assert info.returncode == 0 and "coco-17:    none of COCO's 17" in info.stdout
    assert "wholebody:  42 of 133" in info.stdout


def test_info_shows_the_mapping(env):
    result = run_posezoo("info", "blazepose-upper", "--json", env=env)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["coco_keypoints"]["left_hip"] == "left_hip" and data["coco_keypoints"]["left_ankle"] is None
    text = run_posezoo("info", "blazepose-full", env=env).stdout
    assert "coco-17:    all 17 by name" in text


def test_missing_matplotlib_is_one_line_naming_the_pip_command(env, tmp_path):
    code = "import sys; sys.modules['matplotlib'] = None; from posezoo.cli import main; main(sys.argv[1:])"
    result = subprocess.run(
        [sys.executable, "-c", code, "run", "blazepose-full", "--world-plot", "w.png", "--no-display"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    line = one_line_error(result)
    assert "needs matplotlib" in line and 'pip install "posezoo[plot]"' in line
