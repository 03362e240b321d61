"""One result, named parts: whole-body poses in JSON Lines, Parquet, COCO-WholeBody results and
`posezoo eval` on a COCO-WholeBody file.

Real data: MediaPipe's own holistic results (../shared/testdata/mediapipe_wholebody_reference.json:
body 33, left and right hand 21, face 468, each null when not found) wrapped in Poses the way a
whole-body model gives them (one pose, parts body / left_hand / right_hand / face, the rows of a part
not found NaN), and COCO-WholeBody's ground truth of the COCO skier (#785)."""

from __future__ import annotations

import dataclasses

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from clitools import posezoo_env, run_posezoo
from posezoo.drivers.evaluate import load_eval_set, table, wholebody_stats
from posezoo.errors import InputError
from posezoo.inference.model import Pose, box_around
from posezoo.io.coco import COCO_KEYPOINTS, CocoResultsSink
from posezoo.io.parquet import PoseRows, write_table
from posezoo.io.sinks import JsonlSink, pose_record
from posezoo.io.wholebody import (
    GROUP_SLICES,
    WHOLEBODY_KEYPOINTS,
    coco_format,
    describe_wholebody,
    require_wholebody,
    wholebody_mapping,
    wholebody_result,
)
from posezoo_plugins.blazepose_full import BODY_NAMES, SPEC as FULL
from posezoo_plugins.mediapipe.wholebody import (
    BLAZEPOSE_WHOLEBODY,
    FACE_68,
    HANDS_WHOLEBODY,
    HOLISTIC_WHOLEBODY,
)

REFERENCE = "mediapipe_wholebody_reference.json"
GT = "coco_wholebody_000000000785.json"
SKIER = "coco_000000000785.jpg"
COLUMNS = ("x", "y", "z", "visibility")
HAND = 21
PART_KEYS = ("keypoints", "foot_kpts", "face_kpts", "lefthand_kpts", "righthand_kpts")


def _holistic_spec(face: int = 468):
    """A whole-body model's spec as data: its keypoints, parts and COCO-WholeBody mapping."""
    names = (
        BODY_NAMES
        + tuple(f"left_hand_{i}" for i in range(HAND))
        + tuple(f"right_hand_{i}" for i in range(HAND))
        + tuple(f"face_{i}" for i in range(face))
    )
    b, lh, rh = 33, 33 + HAND, 33 + 2 * HAND
    return SimpleNamespace(
        name="a-whole-body-model", family="test", keypoint_names=names, skeleton=(),
        parts=(("body", 0, b), ("left_hand", b, lh), ("right_hand", lh, rh), ("face", rh, rh + face)),
        wholebody_keypoints=HOLISTIC_WHOLEBODY,
    )  # fmt: skip


def _holistic_pose(found: dict, face: int = 468) -> Pose:
    """One whole-body pose from MediaPipe's holistic result (``found``: pose, left_hand, right_hand,
    face lists, each None when not found)."""
    rows, parts, start = [], {}, 0
    for part, key, count in (("body", "pose", 33), ("left_hand", "left_hand", HAND), ("right_hand", "right_hand", HAND), ("face", "face", face)):
        got = found[key]
        block = np.full((count, 4), np.nan, np.float32)
        if got is not None:
            arr = np.asarray(got, np.float32)
            block[:, : arr.shape[1]] = arr
            if arr.shape[1] == 3:
                block[:, 3] = 1.0
        rows.append(block)
        parts[part] = (start, start + count) if got is not None else None
        start += count
    landmarks = np.concatenate(rows)
    spec = _holistic_spec(face)
    return Pose(landmarks=landmarks, columns=COLUMNS, names=spec.keypoint_names, score=0.97,
                box=box_around(landmarks[np.isfinite(landmarks[:, 0])]), parts=parts)  # fmt: skip


@pytest.fixture(scope="module")
def reference(testdata) -> dict:
    return json.loads((testdata / REFERENCE).read_text())["images"]


@pytest.fixture(scope="module")
def gt(testdata) -> dict:
    return json.loads((testdata / GT).read_text())


@pytest.fixture
def images(testdata, tmp_path) -> Path:
    """The skier under the name the COCO-WholeBody file gives it."""
    folder = tmp_path / "images"
    folder.mkdir()
    shutil.copy(testdata / "images" / SKIER, folder / "000000000785.jpg")
    return folder


def _strict_json(text: str):
    def refuse(name):
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


# ------------------------------------------------------------------------------------ JSON Lines


def test_json_lines_carry_parts_labels_and_no_nan(reference, tmp_path):
    skier = reference[SKIER]["holistic_refine0"]  # body and face found, no hand
    pose = _holistic_pose(skier)
    hand = Pose(landmarks=np.asarray(reference["aflw_image22568.jpg"]["hands"][0]["landmarks"], np.float32),
                columns=("x", "y", "z"), names=tuple(f"h{i}" for i in range(HAND)), score=0.9, box=np.zeros(4, np.float32),
                parts={"right_hand": (0, HAND)}, label="right", label_score=0.93)  # fmt: skip
    body_only = Pose(landmarks=pose.landmarks[:33].copy(), columns=COLUMNS, names=BODY_NAMES, score=0.9, box=pose.box)
    path = tmp_path / "out.jsonl"
    sink = JsonlSink(path)
    sink.write(pose_record("skier.jpg", 0, np.zeros((425, 640, 3), np.uint8), "m", "v", [pose, hand, body_only]))
    sink.close()
    (line,) = path.read_text().splitlines()
    assert "NaN" not in line
    whole, one_hand, plain = _strict_json(line)["poses"]

    assert set(whole["parts"]) == {"body", "left_hand", "right_hand", "face"}
    assert whole["parts"]["left_hand"] is None and whole["parts"]["right_hand"] is None
    assert len(whole["landmarks"]) == 33 + 2 * HAND + 468  # every keypoint keeps its row
    assert whole["landmarks"][33 : 33 + 2 * HAND] == [None] * (2 * HAND)  # not found: null rows
    assert whole["parts"]["body"] == whole["landmarks"][:33]
    assert whole["parts"]["face"] == whole["landmarks"][33 + 2 * HAND :]
    assert len(whole["parts"]["face"]) == 468 and all(len(r) == 4 for r in whole["parts"]["face"])
    assert whole["parts"]["face"][1][:2] == pytest.approx(skier["face"][1][:2], abs=1e-3)
    assert whole["label"] is None and whole["label_score"] is None
    assert whole["columns"] == list(COLUMNS)

    assert one_hand["parts"] == {"right_hand": one_hand["landmarks"]} and len(one_hand["landmarks"]) == HAND
    assert one_hand["label"] == "right" and one_hand["label_score"] == pytest.approx(0.93)
    assert plain["parts"] == {"body": plain["landmarks"]}


def test_json_keeps_finite_values_and_nulls_only_what_is_not(tmp_path):
    lm = np.array([[1.0, 2.0, 3.0], [4.0, np.inf, 6.0], [np.nan] * 3], np.float32)
    pose = Pose(landmarks=lm, columns=("x", "y", "z"), names=("a", "b", "c"), score=float("nan"), box=np.zeros(4),
                world_landmarks=np.array([[0.1, np.nan, 0.3]] * 3, np.float32))  # fmt: skip
    record = pose_record("x", 0, np.zeros((2, 2, 3), np.uint8), "m", "v", [pose])
    text = json.dumps(record, allow_nan=False)  # raises on any NaN left
    (p,) = _strict_json(text)["poses"]
    assert p["landmarks"] == [[1.0, 2.0, 3.0], [4.0, None, 6.0], None] and p["score"] is None
    assert p["world_landmarks"][0] == [0.1, None, 0.3]


# ------------------------------------------------------------------------------------ Parquet


def test_parquet_rows_carry_part_ranges_and_labels(reference, tmp_path):
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    poses = [_holistic_pose(reference["panoptic_ex2_2.flv_000040_l.jpg"]["holistic_refine0"]),  # all four parts
             _holistic_pose(reference[SKIER]["holistic_refine0"])]  # no hands  # fmt: skip
    poses.append(Pose(landmarks=poses[0].landmarks[33:54].copy(), columns=COLUMNS, names=tuple("h" * HAND), score=0.8,
                      box=np.zeros(4), parts={"left_hand": (0, HAND)}, label="left", label_score=0.8))  # fmt: skip
    rows = PoseRows("m", "v")
    rows.add("/data/a.jpg", 0, 0.0, (400, 300), poses)
    write_table(rows.table(), str(tmp_path / "p.parquet"))
    table = pq.read_table(tmp_path / "p.parquet")
    back = table.to_pylist()
    assert dict(back[0]["parts"]) == {"body": [0, 33], "left_hand": [33, 54], "right_hand": [54, 75], "face": [75, 543]}
    assert dict(back[1]["parts"])["left_hand"] is None and dict(back[1]["parts"])["face"] == [75, 543]
    assert dict(back[2]["parts"]) == {"left_hand": [0, HAND]}
    assert [r["label"] for r in back] == [None, None, "left"] and back[2]["label_score"] == pytest.approx(0.8)
    # a part's rows are keypoints[start:stop]; NaN stays NaN in Parquet
    kp = np.array(back[0]["keypoints"], np.float32)
    assert np.array_equal(kp[75:543], poses[0].landmarks[75:543])
    assert np.isnan(np.array(back[1]["keypoints"], np.float32)[33:75]).all()
    assert pc.map_lookup(table["parts"], "left_hand", "first").to_pylist() == [[33, 54], None, [0, HAND]]
    df = table.to_pandas()  # pandas: a map cell is a list of (key, value) pairs
    assert dict(df["parts"][1])["left_hand"] is None and list(dict(df["parts"][0])["face"]) == [75, 543]


# ------------------------------------------------------------------------------------ mapping data


def test_blazepose_mapping_names_the_right_rows():
    expected = {c: c for c in COCO_KEYPOINTS} | {
        "left_big_toe": "left_foot_index", "right_big_toe": "right_foot_index",
        "left_heel": "left_heel", "right_heel": "right_heel",
    }  # fmt: skip
    assert {wb: BODY_NAMES[row] for wb, (part, row) in BLAZEPOSE_WHOLEBODY} == expected
    assert all(part == "body" for _, (part, _) in BLAZEPOSE_WHOLEBODY)
    mapping = wholebody_mapping(SimpleNamespace(name="b", keypoint_names=BODY_NAMES, wholebody_keypoints=BLAZEPOSE_WHOLEBODY))
    assert mapping.count("body") == 17 and mapping.count("foot") == 4 and mapping.count() == 21
    missing = [n for n, s in zip(WHOLEBODY_KEYPOINTS[GROUP_SLICES["foot"]], mapping.sources[GROUP_SLICES["foot"]]) if s is None]
    assert missing == ["left_small_toe", "right_small_toe"]


def test_hand_and_face_mappings():
    assert [wb for wb, _ in HANDS_WHOLEBODY] == list(WHOLEBODY_KEYPOINTS[GROUP_SLICES["left_hand"]]) + list(
        WHOLEBODY_KEYPOINTS[GROUP_SLICES["right_hand"]]
    )
    assert [src for _, src in HANDS_WHOLEBODY[:HAND]] == [("left_hand", i) for i in range(HAND)]  # same order
    assert len(FACE_68) == 68 and len(set(FACE_68)) == 68 and max(FACE_68) < 468
    # the table is symmetric: each point's mirror (iBUG 68) is its vertex's mirror (the mesh's own pairs)
    assert FACE_68[8] == 152 and FACE_68[0] == 127 and FACE_68[16] == 356  # chin, the two ends of the jaw line
    assert (FACE_68[36], FACE_68[39], FACE_68[42], FACE_68[45]) == (33, 133, 362, 263)  # the eye corners
    assert (FACE_68[48], FACE_68[54], FACE_68[51], FACE_68[57]) == (61, 291, 0, 17)  # the mouth


def test_face_mapping_lands_on_the_ground_truth_face(reference, gt):
    """MediaPipe's face mesh of the skier, through the table, against COCO-WholeBody's 68 face points:
    within 10 % of the eye-corner distance on average (measured: 6.4 %), each region on its own."""
    face = np.asarray(reference[SKIER]["holistic_refine0"]["face"], np.float64)[:, :2]
    truth = np.asarray(gt["annotations"][0]["face_kpts"], np.float64).reshape(68, 3)[:, :2]
    ours = face[list(FACE_68)]
    iod = np.linalg.norm(truth[36] - truth[45])
    err = np.linalg.norm(ours - truth, axis=1) / iod
    assert err.mean() < 0.10, err.mean()
    for name, rows in (("jaw", slice(0, 17)), ("brows", slice(17, 27)), ("nose", slice(27, 36)),
                       ("eyes", slice(36, 48)), ("mouth", slice(48, 68))):  # fmt: skip
        assert err[rows].mean() < 0.15, (name, err[rows].mean())


def test_a_spec_without_a_mapping_maps_coco_17_and_bad_mappings_are_refused():
    bare = dataclasses.replace(FULL, wholebody_keypoints=None)
    mapping = wholebody_mapping(bare)
    assert mapping.count() == 17 and not mapping.beyond_body
    assert describe_wholebody(bare)["wholebody_summary"] == "17 of 133 (body 17/17)"
    assert describe_wholebody(FULL)["wholebody_summary"] == "21 of 133 (body 17/17, foot 4/6)"  # blazepose-full's feet
    assert describe_wholebody(_holistic_spec())["wholebody_summary"] == (
        "131 of 133 (body 17/17, foot 4/6, face 68/68, left_hand 21/21, right_hand 21/21)"
    )
    for bad in ((("left_toe", "nose"),), (("nose", "snout"),), (("nose", 99),), (("nose", ("body", -1)),), ("nose",)):
        spec = SimpleNamespace(name="bad", keypoint_names=BODY_NAMES, wholebody_keypoints=bad)
        with pytest.raises(ValueError):
            wholebody_mapping(spec)
        with pytest.raises(InputError):
            coco_format("bad", spec)
    short_face = _holistic_spec()
    short_face.parts = short_face.parts[:3] + (("face", 75, 75 + 400),)  # the table reaches vertex 460
    with pytest.raises(ValueError, match="part 'face', which has 400"):
        wholebody_mapping(short_face)
    hands_only = SimpleNamespace(name="h", keypoint_names=tuple(f"h{i}" for i in range(HAND)), wholebody_keypoints=())
    with pytest.raises(InputError, match="none of COCO-WholeBody's 133"):
        require_wholebody("h", hands_only)


# ------------------------------------------------------------------------------------ COCO-WholeBody results


def test_coco_wholebody_results_of_real_holistic_poses(reference, gt, tmp_path):
    from pycocotools.coco import COCO

    spec = _holistic_spec()
    mapping, records, kind = coco_format(spec.name, spec)
    assert kind == "COCO-WholeBody"
    path = tmp_path / "wb.json"
    sink = CocoResultsSink(path, mapping, {Path(SKIER): 785}, records=records, kind=kind)
    sink.add(Path(SKIER), [_holistic_pose(reference[SKIER]["holistic_refine0"])])
    sink.close()
    (res,) = json.loads(path.read_text())
    assert [len(res[k]) for k in PART_KEYS] == [51, 18, 204, 63, 63]
    assert res["face_valid"] and res["foot_valid"] and not res["lefthand_valid"] and not res["righthand_valid"]
    assert res["lefthand_kpts"] == [0.0] * 63 and res["lefthand_box"] == [0.0] * 4
    truth = gt["annotations"][0]
    # the feet: BlazePose's foot_index / heel near the labelled big toe / heel (within 20 px on a 350 px person)
    ours, lab = np.array(res["foot_kpts"]).reshape(6, 3), np.array(truth["foot_kpts"]).reshape(6, 3)
    for k in (0, 2, 3, 5):
        assert np.linalg.norm(ours[k, :2] - lab[k, :2]) < 20 and ours[k, 2] > 0
    assert ours[1].tolist() == [0, 0, 0] and ours[4].tolist() == [0, 0, 0]  # no small toe
    fx, fy, fw, fh = res["face_box"]
    tx, ty, tw, th = truth["face_box"]
    assert abs(fx - tx) < 8 and abs(fy - ty) < 8 and abs(fw - tw) < 10 and abs(fh - th) < 10
    # pycocotools reads the file as COCO keypoint results (its `keypoints` are the body's 17)
    coco = COCO()
    coco.dataset = gt
    coco.createIndex()
    assert len(coco.loadRes(str(path)).anns) == 1


def test_a_hand_model_pose_fills_its_own_hand():
    spec = SimpleNamespace(name="hand", keypoint_names=tuple(f"h{i}" for i in range(HAND)), wholebody_keypoints=HANDS_WHOLEBODY)
    lm = np.column_stack([np.arange(HAND) + 10.0, np.arange(HAND) + 20.0, np.ones(HAND)]).astype(np.float32)
    mapping, records, kind = coco_format("hand", spec)
    for side, filled, empty in (("right", "righthand_kpts", "lefthand_kpts"), ("left", "lefthand_kpts", "righthand_kpts")):
        pose = Pose(landmarks=lm, columns=("x", "y", "score"), names=spec.keypoint_names, score=0.9, box=np.zeros(4),
                    parts={f"{side}_hand": (0, HAND)}, label=side)  # fmt: skip
        (res,) = records(1, [pose], mapping, 1)
        assert np.array(res[filled]).reshape(HAND, 3)[:, :2].tolist() == lm[:, :2].tolist()  # the same order
        assert res[empty] == [0.0] * 63 and res["keypoints"] == [0.0] * 51
        assert res[f"{side}hand_valid"] and res[f"{side}hand_box"] == [10.0, 20.0, 20.0, 20.0]


# ------------------------------------------------------------------------------------ eval


def _results_from_truth(gt: dict, noise: float = 0.0, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for ann in gt["annotations"]:
        rec = {"image_id": ann["image_id"], "category_id": 1, "score": 0.9}
        for key in PART_KEYS:
            kps = np.array(ann[key], np.float64).reshape(-1, 3)
            labelled = kps[:, 2] > 0
            kps[labelled, :2] += rng.normal(0, noise, (labelled.sum(), 2)) if noise else 0
            kps[:, 2] = labelled
            rec[key] = kps.ravel().tolist()
        out.append(rec)
    return out


def test_eval_of_the_truth_is_1_per_part_and_of_a_perturbed_truth_less(testdata, gt, images):
    evalset = load_eval_set(testdata / GT, images)
    assert evalset.wholebody
    perfect = wholebody_stats(evalset, _results_from_truth(gt))
    assert {g: s["AP"] for g, s in perfect.items()} == pytest.approx({
        "body": 1.0, "foot": 1.0, "face": 1.0, "left_hand": -1.0, "right_hand": 1.0, "wholebody": 1.0,
    })  # the skier's left hand is not labelled: nothing to score  # fmt: skip
    noisy = wholebody_stats(evalset, _results_from_truth(gt, noise=3.0))
    # 3 px of noise: the face and hands (small sigmas on a small face / hand) lose more than the body
    assert noisy["body"]["AP"] > noisy["face"]["AP"] and noisy["body"]["AP"] > noisy["right_hand"]["AP"]
    assert all(0 <= noisy[g]["AP"] < 1 for g in ("face", "right_hand", "wholebody"))
    assert wholebody_stats(evalset, [])["body"]["AP"] == 0.0


def test_eval_of_real_holistic_results(testdata, reference, images):
    evalset = load_eval_set(testdata / GT, images)
    spec = _holistic_spec()
    mapping = wholebody_mapping(spec)
    results = [wholebody_result(785, _holistic_pose(reference[SKIER]["holistic_refine0"]), mapping)]
    stats = wholebody_stats(evalset, results)
    ap = {g: round(s["AP"], 3) for g, s in stats.items()}
    print(ap)  # measured: body 0.9, foot 0.3 (no small toes: 2 of 6 missed), face 1.0, right hand 0, whole-body 0.6
    assert ap["body"] >= 0.7 and ap["foot"] >= 0.2 and ap["face"] >= 0.7, ap
    assert ap["right_hand"] == 0.0 and ap["left_hand"] == -1.0  # labelled, not found; not labelled
    assert 0 < ap["wholebody"] < ap["body"], ap


# ------------------------------------------------------------------------------------ end to end


@pytest.mark.slow
def test_eval_cli_on_a_coco_wholebody_file_scores_each_part(shared_models, testdata, images, tmp_path):
    """A body model on COCO-WholeBody: its 17 keypoints scored per part (the feet, face and hands it
    lacks score 0, the unlabelled left hand -), through the real CLI."""
    from mirror import fetched_home

    home = fetched_home(shared_models, tmp_path / "home", ["blazepose-full", "--variant", "full"], link=True)
    env = posezoo_env(home, POSEZOO_OFFLINE="1", XDG_CONFIG_HOME=str(tmp_path / "config"))
    scores = tmp_path / "scores.json"
    ev = run_posezoo("eval", "blazepose-full", "--ann", testdata / GT, "--images", images, "--json", scores, env=env, cwd=tmp_path)
    assert ev.returncode == 0, ev.stderr
    lines = ev.stdout.splitlines()
    assert lines[0].startswith(f"COCO-WholeBody keypoints, {GT}: 1 image, 1 annotated person; AP per part")
    assert lines[2].split() == ["MODEL", "VARIANT", "KPTS", "WHOLE", "BODY", "FOOT", "FACE", "LHAND", "RHAND", "AR", "PCK@0.2", "POSES"]
    row = lines[3].split()
    assert row[:3] == ["blazepose-full", "full", "21/133"] and row[7] == "-"  # no left hand labelled
    report = json.loads(scores.read_text())
    (model,) = report["models"]
    assert report["wholebody"] and model["keypoints"] == 21  # body 17 + big toes and heels
    parts = {g: s["AP"] for g, s in model["parts"].items()}
    assert parts["body"] > 0.5 and parts["face"] == parts["right_hand"] == 0.0 and parts["left_hand"] == -1
    assert 0.0 <= parts["foot"] < 1.0  # the feet found, the small toes missing
    assert model["stats"] == model["parts"]["wholebody"] and parts["wholebody"] < parts["body"]


def _registered(name: str) -> bool:
    from posezoo.errors import PosezooError
    from posezoo.zoo.resolve import get_zoo

    try:
        get_zoo().resolve(name)
    except PosezooError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.skipif(not _registered("mediapipe-holistic"), reason="the whole-body model mediapipe-holistic is not registered")
def test_eval_and_run_of_the_whole_body_model_end_to_end(shared_models, testdata, images, tmp_path):
    from mirror import fetched_home

    home = fetched_home(shared_models, tmp_path / "home", ["mediapipe-holistic"], link=True)
    env = posezoo_env(home, POSEZOO_OFFLINE="1", XDG_CONFIG_HOME=str(tmp_path / "config"))
    scores = tmp_path / "scores.json"
    ev = run_posezoo("eval", "mediapipe-holistic", "--ann", testdata / GT, "--images", images, "--json", scores, env=env, cwd=tmp_path)
    assert ev.returncode == 0, ev.stderr
    assert ev.stdout.splitlines()[2].split()[:9] == ["MODEL", "VARIANT", "KPTS", "WHOLE", "BODY", "FOOT", "FACE", "LHAND", "RHAND"]
    (model,) = json.loads(scores.read_text())["models"]
    assert model["parts"]["body"]["AP"] > 0.5 and model["parts"]["face"]["AP"] > 0.2 and model["parts"]["left_hand"]["AP"] == -1
    out = tmp_path / "out.jsonl"
    run = run_posezoo("run", "mediapipe-holistic", "-i", images / "000000000785.jpg", "--json", out, "--coco",
                      tmp_path / "wb.json", "--no-display", env=env, cwd=tmp_path)  # fmt: skip
    assert run.returncode == 0, run.stderr
    (pose,) = _strict_json(out.read_text())["poses"]
    assert set(pose["parts"]) == {"body", "left_hand", "right_hand", "face"} and pose["parts"]["face"] is not None
    (res,) = json.loads((tmp_path / "wb.json").read_text())
    assert res["face_valid"] and len(res["face_kpts"]) == 204
