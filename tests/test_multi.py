"""blazepose-multi: MoveNet MultiPose's people as regions for the BlazePose landmark model, composed
through the core's seam. The region rule on drawn poses; then real weights (the shared MultiPose TF.js
files and the BlazePose landmark models, converted here) on the shared photos and clips: people found
against both parents, 33 keypoints with world landmarks and masks, quality against MediaPipe's output
and COCO's ground truth, the max-poses limit, stable track ids; and the CLI from a mirror."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from clitools import one_line_error, posezoo_env, run_posezoo
from mirror import fetched_home
from videotools import read_frames
from posezoo.errors import UsageError
from posezoo.inference.model import Pose
from posezoo.io.coco import COCO_KEYPOINTS
from posezoo_plugins.blazepose_full import BODY_NAMES
from posezoo_plugins.blazepose_full import SPEC as FULL
from posezoo_plugins.blazepose_multi import SPEC, PeopleLandmarks, PersonRule, person_region
from posezoo_plugins.movenet import MULTIPOSE, MoveNet

PHOTOS = {  # photo -> people in the foreground (what MultiPose finds)
    "aic_ff945ae2e729f24eea992814639d59b3bdec8bd8.jpg": 3,
    "coco_000000000785.jpg": 1,
    "h36m_S1_Directions_1.54138969_000001.jpg": 1,
    "mpii_052475643.jpg": 2,
}
COMPLEXITY = {"lite": "0", "full": "1", "heavy": "2"}
SIGMAS = np.array([0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89]) / 10.0
ROI = FULL.detector.roi


# ------------------------------------------------------------------------------------ the rule


def coco_pose(points: dict, score: float = 0.6, default_score: float = 0.9) -> Pose:
    """A COCO-17 pose from {name: (x, y[, score])}; unnamed keypoints sit on the hips, unseen."""
    lms = np.zeros((17, 3), np.float32)
    hips = np.mean([points["left_hip"][:2], points["right_hip"][:2]], axis=0)
    for i, name in enumerate(COCO_KEYPOINTS):
        p = points.get(name)
        lms[i] = (*hips, 0.0) if p is None else (p[0], p[1], p[2] if len(p) > 2 else default_score)
    return Pose(landmarks=lms, columns=("x", "y", "score"), names=COCO_KEYPOINTS, score=score, box=np.zeros(4, np.float32))


UPRIGHT = {"left_hip": (110, 300), "right_hip": (90, 300), "left_shoulder": (115, 200), "right_shoulder": (85, 200),
           "nose": (100, 150), "left_ankle": (105, 480), "right_ankle": (95, 480)}  # fmt: skip


def test_an_upright_person_gets_an_unrotated_square_on_the_hips_sized_by_the_body():
    region = person_region(coco_pose(UPRIGHT), PersonRule(), ROI)
    roi = region.roi
    assert (roi.cx, roi.cy) == pytest.approx((100, 300)) and roi.rotation == pytest.approx(0.0, abs=1e-9)
    reach = math.hypot(5, 180)  # the ankles are the farthest keypoints from the hips' midpoint
    assert roi.w == roi.h == pytest.approx(2 * 1.25 * 1.15 * reach)
    assert region.score == 0.6 and region.names == COCO_KEYPOINTS and region.keypoints.shape == (17, 3)


def test_the_rotation_turns_hips_to_shoulders_up_and_the_torso_is_a_floor():
    lying = {k: (300 + (300 - y), 100 + (x - 100), *rest) for k, (x, y, *rest) in UPRIGHT.items()}  # turned 90 degrees
    roi = person_region(coco_pose(lying), PersonRule(), ROI).roi
    assert abs(roi.rotation) == pytest.approx(math.pi / 2)
    # the shoulders go up the crop: the crop's "up" axis, turned by the rotation, points hips -> shoulders
    up = np.array([math.sin(roi.rotation), -math.cos(roi.rotation)])
    np.testing.assert_allclose(up, [1.0, 0.0], atol=1e-9)
    # only the torso seen (legs and head unseen): the radius is 1.5 torsos, not 1.15 x the shoulders' reach
    torso_only = {k: v if "hip" in k or "shoulder" in k else (*v[:2], 0.05) for k, v in UPRIGHT.items()}
    roi = person_region(coco_pose(torso_only), PersonRule(), ROI).roi
    assert roi.w == pytest.approx(2 * 1.25 * 1.5 * 100)
    # no torso keypoint seen: no region
    faint = {k: (*v[:2], 0.1) for k, v in UPRIGHT.items()}
    assert person_region(coco_pose(faint), PersonRule(), ROI) is None


# ------------------------------------------------------------------------------------ real weights


@pytest.fixture(scope="module")
def multipose_onnx(shared_models, tmp_path_factory):
    from posezoo.supply.convert import convert_tfjs_file

    path = tmp_path_factory.mktemp("multi") / "movenet-multipose.onnx"
    convert_tfjs_file(shared_models / "human-models" / "movenet-multipose.json", path)
    return path


@pytest.fixture(scope="module")
def models(multipose_onnx, converted_models):
    """blazepose-multi by variant, built on first use."""
    cache = {}

    def get(variant: str) -> PeopleLandmarks:
        if variant not in cache:
            files = {"detector": multipose_onnx, "landmark": converted_models[variant]}
            cache[variant] = PeopleLandmarks(SPEC, files, variant=variant, device="cpu")
        return cache[variant]

    return get


@pytest.fixture(scope="module")
def multipose(multipose_onnx):
    return MoveNet(MULTIPOSE, {"model": multipose_onnx}, variant="default", device="cpu")


def image(testdata, name):
    return cv2.imread(str(testdata / "images" / name))


def test_every_person_multipose_finds_gets_33_keypoints_world_landmarks_and_a_mask(models, multipose, testdata):
    model = models("full")
    assert model.family == "blazepose-multi" and set(model.sessions) == {"detector", "landmark"}
    assert all(s.role == role for role, s in model.sessions.items())  # MultiPose's session times itself as "detector"
    for name, count in PHOTOS.items():
        img = image(testdata, name)
        people = multipose.predict(img, max_poses=6)
        poses = model.predict(img, max_poses=6, segmentation=True)
        assert len(people) == len(poses) == count, name
        for pose, person in zip(poses, people):
            assert pose.names == BODY_NAMES and pose.columns == ("x", "y", "z", "visibility", "presence")
            assert pose.landmarks.shape == (33, 5) and pose.world_landmarks.shape == (33, 3) and pose.aux.shape == (2, 5)
            assert pose.mask.shape == img.shape[:2] and pose.landmarks.dtype == np.float32
            assert pose.score == pytest.approx(person.score) and pose.presence >= 0.5
            # the same person: BlazePose's hips sit on MultiPose's, within a tenth of the crop
            hips = pose.landmarks[23:25, :2].mean(axis=0)
            their = person.landmarks[11:13, :2].mean(axis=0)
            assert np.linalg.norm(hips - their) < 0.1 * pose.roi.w, name
            inside = pose.mask[int(hips[1]), int(hips[0])]
            assert inside > 0.5, name


def test_it_finds_the_people_blazeposes_own_detector_misses(models, make_estimator, testdata):
    own = make_estimator("full")
    for name in ("aic_ff945ae2e729f24eea992814639d59b3bdec8bd8.jpg", "mpii_052475643.jpg"):
        img = image(testdata, name)
        assert len(models("full").predict(img, max_poses=6)) == PHOTOS[name] > len(own.predict(img, max_poses=6))


def closest(poses, want):
    cols = [BODY_NAMES.index(n) for n in COCO_KEYPOINTS]
    return min(poses, key=lambda p: np.linalg.norm(p.landmarks[cols, :2] - want[cols, :2], axis=1).mean())


@pytest.mark.parametrize("variant", sorted(COMPLEXITY))
def test_keypoints_near_mediapipes_own_output(variant, models, testdata):
    """MediaPipe's output (the person it found) comes from its detector's crop; the landmark model
    moves with the crop (BlazePose itself, in the crop its own tracker takes next, is 0.6-1.2 % away),
    so the bar is 2 % of the diagonal (tests/test_parity.py holds the same crop to 1 %)."""
    reference = json.loads((testdata / "mediapipe_reference.json").read_text())["images"]
    rows = []
    for name, by_model in sorted(reference.items()):
        ref = by_model[COMPLEXITY[variant]]
        want = np.asarray(ref["landmarks"], np.float64)
        pose = closest(models(variant).predict(image(testdata, name), max_poses=6), want)
        seen = want[:, 3] > 0.5
        diag = float(np.hypot(*np.ptp(want[seen, :2], axis=0)))
        pct = 100.0 * np.linalg.norm(pose.landmarks[seen, :2] - want[seen, :2], axis=1).mean() / diag
        world = float(np.abs(pose.world_landmarks - np.asarray(ref["world"])).mean())
        rows.append(f"{variant:5s} {name[:40]:40s} {pct:.3f}% of diag {diag:6.1f} | world {world * 1000:.1f}mm")
        assert pct < 2.0 and world < 0.05, rows[-1]
    print("\n" + "\n".join(rows))


@pytest.mark.parametrize("variant", sorted(COMPLEXITY))
def test_the_skier_against_cocos_ground_truth(variant, models, testdata):
    ann = json.loads((testdata / "coco_val2017_000000000785_person_keypoints.json").read_text())["annotations"][0]
    gt = np.asarray(ann["keypoints"], np.float64).reshape(17, 3)
    (pose,) = models(variant).predict(image(testdata, "coco_000000000785.jpg"), max_poses=6)
    got = pose.landmarks[[BODY_NAMES.index(n) for n in COCO_KEYPOINTS], :2]
    d2 = ((got - gt[:, :2]) ** 2).sum(axis=1)
    oks = float(np.exp(-d2 / (2 * ann["area"] * (2 * SIGMAS) ** 2))[gt[:, 2] > 0].mean())
    print(f"\n{variant}: OKS {oks:.3f}, mean {np.sqrt(d2).mean():.1f} px")
    assert oks > 0.8


def test_capabilities_up_to_six_people_with_world_and_segmentation(models):
    model = models("lite")
    caps = model.capabilities
    assert caps.max_poses == 6 and caps.features == {"segmentation", "world"} and caps.keypoint_names == BODY_NAMES
    blank = np.zeros((120, 160, 3), np.uint8)
    with pytest.raises(UsageError, match="at most 6"):
        model.predict(blank, max_poses=7)
    with pytest.raises(UsageError, match="at most 6"):
        model.tracker(max_poses=7)
    with pytest.raises(UsageError, match="no option"):
        model.predict(blank, exact_crop=True)
    assert model.predict(blank, max_poses=6) == []


def video(testdata, name):
    return read_frames(testdata / "video" / name)


def test_track_ids_hold_over_the_clips(models, testdata):
    soccer = video(testdata, "soccer_5frames.mp4")
    frames = soccer + soccer[-2:0:-1] + soccer  # forward, back, forward: no cut
    tracker = models("lite").tracker(max_poses=6)
    ids = [sorted(p.track_id for p in tracker.update(f, timestamp=i / 30)) for i, f in enumerate(frames)]
    assert ids == [[0, 1]] * len(frames)  # the two players MultiPose finds on the first frame, held throughout
    assert tracker.detector_runs == 1 + (len(frames) - 1) // 15  # first frame, then every 15 (fewer than 6 held)
    # the street: one person on the first frame, a second one MultiPose finds from the next frame on,
    # picked up by the redetection (every frame here) and held with her id
    street = models("full").tracker(max_poses=2, redetect_every=1)
    ids = [[p.track_id for p in street.update(f)] for f in video(testdata, "street_5frames.mp4")]
    assert ids == [[0]] + [[0, 1]] * 4 and street.detector_runs == 2


def test_the_cli_runs_it_from_a_mirror_and_shares_the_parents_files(shared_models, testdata, tmp_path_factory):
    root = fetched_home(shared_models, tmp_path_factory.mktemp("multi-cli"), ["blazepose-multi", "--variant", "lite"])
    env = posezoo_env(root, POSEZOO_OFFLINE="1")
    work = root / "work"
    work.mkdir()
    photo = testdata / "images" / "mpii_052475643.jpg"
    result = run_posezoo("run", "blazepose-multi", "--variant", "lite", "-i", photo, "--max-poses", "6", "--segmentation",
                         "--json", "out.jsonl", "-s", "out.png", "--no-display", env=env, cwd=work)  # fmt: skip
    assert result.returncode == 0, result.stderr
    (line,) = (work / "out.jsonl").read_text().splitlines()
    poses = json.loads(line)["poses"]
    assert len(poses) == 2 and (work / "out.png").is_file()
    line = one_line_error(run_posezoo("run", "blazepose-multi", "--variant", "lite", "-i", photo, "--max-poses", "7", "--no-display", env=env, cwd=work))
    assert "at most 6" in line
    # the files are the parents' own: movenet-multipose runs offline on what blazepose-multi fetched
    result = run_posezoo("run", "movenet-multipose", "-i", photo, "--max-poses", "6", "--json", "mn.jsonl", "--no-display", env=env, cwd=work)
    assert result.returncode == 0, result.stderr
    assert len(json.loads((work / "mn.jsonl").read_text())["poses"]) == 2
