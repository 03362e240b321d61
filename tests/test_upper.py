"""The 128-detector models on their real weights: blazepose-upper (MediaPipe v0.7.12, 25 keypoints)
and blazepose-full-2020 (MediaPipe 0.8.2, 33): photos, a tracked clip, several people, the CLI and
the API, and a model that does not fit its plugin.

One test keeps a stand-in landmark model: an ONNX graph with the upper-body signature whose outputs
are known crop positions, to check the exact mapping back through a rotated ROI (and that the first
27 of the tensor's 31 rows are the ones read), which the real model cannot show.
"""

from __future__ import annotations

import dataclasses
import json
import math

import cv2
import numpy as np
import onnx
import pytest

from posezoo.errors import UsageError
import yaml
from onnx import TensorProto, helper, numpy_helper

import posezoo
from clitools import one_line_error, posezoo_env, run_posezoo
from conftest import REPO
from mirror import fetched_home
from videotools import read_frames
from posezoo.errors import PluginError
from posezoo_plugins.mediapipe.model import PoseEstimator
from posezoo_plugins.mediapipe.roi import Roi, crop, roi_from_landmarks
from posezoo_plugins.blazepose_full import BODY_NAMES
from posezoo_plugins.blazepose_full_2020 import SPEC as FULL2020
from posezoo_plugins.blazepose_upper import SPEC

MPII = "mpii_052475643.jpg"
AIC = "aic_ff945ae2e729f24eea992814639d59b3bdec8bd8.jpg"  # two people the 128 detector finds (0.83, 0.68)
STREET = "street_5frames.mp4"  # one walking person, 5 frames at 5 fps
MODELS = ("blazepose-upper", "blazepose-full-2020")

rng = np.random.default_rng(7)
ROWS = 31  # ld_3d is [1, 155]: 31 rows x 5 values; MediaPipe's graph reads the first 27
CROP_XY = rng.uniform(8, 248, size=(ROWS, 2)).astype(np.float32)  # crop pixels of the 256x256 input
CROP_Z = rng.uniform(-40, 40, size=ROWS).astype(np.float32)
VIS_LOGIT = rng.uniform(-3, 3, size=ROWS).astype(np.float32)


def stand_in_landmark_model(path, flag: float = 0.93) -> None:
    """An ONNX model with the real upper-body model's signature and fixed, known outputs."""
    raw = np.concatenate([CROP_XY, CROP_Z[:, None], VIS_LOGIT[:, None], VIS_LOGIT[:, None] + 1], axis=1)
    consts = [
        numpy_helper.from_array(raw.reshape(1, ROWS * 5), "landmark_values"),
        numpy_helper.from_array(np.array([[flag]], np.float32), "flag_value"),
        numpy_helper.from_array(np.array([0.0], np.float32), "zero"),
    ]
    nodes = [
        # depend on the input so this is a real graph, not constants: mean(input) * 0 + values
        helper.make_node("ReduceMean", ["input_1"], ["mean"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
        helper.make_node("Add", ["landmark_values", "nothing"], ["ld_3d"]),
        helper.make_node("Add", ["flag_value", "nothing"], ["output_poseflag"]),
    ]
    graph = helper.make_graph(
        nodes,
        "upper_body_stand_in",
        [helper.make_tensor_value_info("input_1", TensorProto.FLOAT, [1, 256, 256, 3])],
        [
            helper.make_tensor_value_info("ld_3d", TensorProto.FLOAT, [1, ROWS * 5]),
            helper.make_tensor_value_info("output_poseflag", TensorProto.FLOAT, [1, 1]),
        ],
        consts,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


@pytest.fixture(scope="module")
def upper(make_estimator) -> PoseEstimator:
    return make_estimator("default", model="blazepose-upper")


@pytest.fixture(scope="module")
def estimators(make_estimator) -> dict[str, PoseEstimator]:
    return {name: make_estimator("default", model=name) for name in MODELS}


@pytest.fixture(scope="module")
def street(testdata) -> list[np.ndarray]:
    return read_frames(testdata / "video" / STREET)


# ------------------------------------------------------------------------------------ the spec


def test_the_spec_describes_the_real_tensor(converted_models):
    """ld_3d holds 31 landmarks x 5, of which 27 are read (25 keypoints + the aux pair 25, 26)."""
    lm = SPEC.landmark
    assert (lm.num_landmarks, lm.rows, lm.values_per_landmark, lm.num_keypoints) == (27, 31, 5, 25)
    assert lm.aux_landmarks == (25, 26) and (lm.tracking_roi.start, lm.tracking_roi.end) == (0, 1)
    full = FULL2020.landmark
    assert (full.num_landmarks, full.rows, full.num_keypoints, full.aux_landmarks) == (35, 39, 33, (33, 34))
    assert SPEC.detector.roi.start == 2 and FULL2020.detector.roi.start == 0  # same detector, other keypoints
    files = {"detector": converted_models["detector128"], "landmark": converted_models["upper"]}
    upper = PoseEstimator(SPEC, files, device="cpu")
    outs = dict(zip(upper.sessions["landmark"].output_names, upper.sessions["landmark"].output_shapes))
    assert outs == {"ld_3d": [1, 155], "output_poseflag": [1, 1], "output_segmentation": [1, 128, 128, 1]}
    assert upper.features == frozenset()  # no segmentation or world output is read


def test_a_model_that_does_not_fit_its_plugin_is_refused_in_one_line(converted_models):
    """The 0.8.2 full-body model (39 rows) under the upper-body spec (31), and the other way round."""
    det = converted_models["detector128"]
    with pytest.raises(PluginError) as err:
        PoseEstimator(SPEC, {"detector": det, "landmark": converted_models["full2020"]}, device="cpu")
    assert str(err.value).splitlines()[0] == str(err.value)
    expected = "full2020.onnx: landmarks output 'ld_3d' has shape [1, 195], spec 'blazepose-upper' expects [1, 155]"
    assert expected in str(err.value)
    with pytest.raises(PluginError, match=r"upper\.onnx: landmarks output 'ld_3d' has shape \[1, 155\].*\[1, 195\]"):
        PoseEstimator(FULL2020, {"detector": det, "landmark": converted_models["upper"]}, device="cpu")
    # the 224 detector of today's full-body model is no 128 detector
    with pytest.raises(PluginError, match=r"detector\.onnx: input 'input_1' has shape \[1, 224, 224, 3\]"):
        files = {"detector": converted_models["detector"], "landmark": converted_models["upper"]}
        PoseEstimator(SPEC, files, device="cpu")


def test_a_tracking_rule_must_index_the_aux_pair():
    rule = dataclasses.replace(SPEC.landmark.tracking_roi, start=25, end=26)  # rows of the tensor, not of the pair
    with pytest.raises(ValueError, match=r"tracking_roi 25 -> 26 is outside the 2 auxiliary landmarks.*0 -> 1"):
        dataclasses.replace(SPEC.landmark, tracking_roi=rule)
    with pytest.raises(ValueError, match="sampling must be one of cpu, gpu"):
        dataclasses.replace(SPEC.landmark, sampling="metal")


# ------------------------------------------------------------------------------------ the stand-in


def test_landmarks_map_back_to_image_pixels_through_a_rotated_roi(converted_models, tmp_path):
    lm = tmp_path / "landmark_stand_in.onnx"
    stand_in_landmark_model(lm)
    estimator = PoseEstimator(SPEC, {"detector": converted_models["detector128"], "landmark": lm}, device="cpu")
    image = np.zeros((480, 640, 3), np.uint8)
    roi = Roi(cx=330.0, cy=210.0, w=180.0, h=180.0, rotation=math.radians(35))
    result = estimator.landmarks_in_roi(image, roi)
    assert result.flag == pytest.approx(0.93, abs=1e-6)
    assert result.landmarks.shape == (25, 5) and result.aux.shape == (2, 5)
    # expected: crop (x, y) -> centred unit coords -> rotate by the ROI angle -> scale -> translate;
    # rows 0..26 of the 31 (25 keypoints, then the aux pair): the last 4 rows are never read
    u = CROP_XY[:27, 0] / 256 - 0.5
    v = CROP_XY[:27, 1] / 256 - 0.5
    c, s = math.cos(roi.rotation), math.sin(roi.rotation)
    ex = (c * u - s * v) * roi.w + roi.cx
    ey = (s * u + c * v) * roi.h + roi.cy
    got = np.concatenate([result.landmarks[:, :2], result.aux[:, :2]])
    np.testing.assert_allclose(got[:, 0], ex, atol=1e-3)
    np.testing.assert_allclose(got[:, 1], ey, atol=1e-3)
    # z in the x pixel scale of the image; visibility and presence through a sigmoid
    np.testing.assert_allclose(result.landmarks[:, 2], CROP_Z[:25] / 256 * roi.w, atol=1e-3)
    np.testing.assert_allclose(result.landmarks[:, 3], 1 / (1 + np.exp(-VIS_LOGIT[:25])), atol=1e-5)
    np.testing.assert_allclose(result.landmarks[:, 4], 1 / (1 + np.exp(-(VIS_LOGIT[:25] + 1))), atol=1e-5)
    # the crop really is the rotated ROI: the pixel the stand-in points at is the one it saw
    target = result.landmarks[0, :2]
    cv2.circle(image, (int(round(target[0])), int(round(target[1]))), 3, (255, 255, 255), -1)
    patch, _ = crop(image, roi, (256, 256))
    ys, xs = np.nonzero(patch[..., 0] > 128)
    assert abs(xs.mean() - CROP_XY[0, 0]) < 2.5 and abs(ys.mean() - CROP_XY[0, 1]) < 2.5


# ------------------------------------------------------------------------------------ photos


def test_the_128_detector_finds_the_upper_body_on_mpii(upper, testdata):
    image = cv2.imread(str(testdata / "images" / MPII))
    detections = upper.detect(image)
    assert len(detections) == 1 and detections[0].score > 0.9
    best = detections[0]
    ref = json.loads((testdata / "mediapipe_web2021_reference.json").read_text())["images"][MPII]["upper"]["landmarks"]
    face_and_shoulders = np.array([ref[i][:2] for i in range(13)])  # nose .. mouth, both shoulders
    x0, y0, x1, y1 = best.box
    assert ((face_and_shoulders >= (x0, y0)) & (face_and_shoulders <= (x1, y1))).all(), best.box
    # the upper-body ROI (keypoints 2 -> 3) is centred near the shoulders, the full-body one (0 -> 1) lower
    roi = upper.roi_from_detection(best)
    mid_shoulder = face_and_shoulders[11:13].mean(axis=0)
    assert np.hypot(roi.cx - mid_shoulder[0], roi.cy - mid_shoulder[1]) < 0.25 * roi.w
    assert roi.w == pytest.approx(1.5 * 2 * np.linalg.norm(best.keypoints[3] - best.keypoints[2]), rel=1e-4)


@pytest.mark.parametrize("model", MODELS)
def test_predict_on_a_photo(estimators, model, testdata):
    estimator = estimators[model]
    k = estimator.spec.landmark.num_keypoints
    image = cv2.imread(str(testdata / "images" / MPII))
    with pytest.raises(UsageError, match="has no segmentation output"):
        estimator.predict(image, segmentation=True)
    poses = estimator.predict(image)
    assert len(poses) == 1
    p = poses[0]
    assert p.landmarks.shape == (k, 5) and p.landmarks.dtype == np.float32 and p.names == BODY_NAMES[:k]
    assert p.aux.shape == (2, 5) and p.world_landmarks is None and p.mask is None
    assert p.presence > 0.99 and p.score > 0.9
    np.testing.assert_allclose(p.box, [*p.landmarks[:, :2].min(axis=0), *p.landmarks[:, :2].max(axis=0)])
    assert (p.landmarks[:, 3:] >= 0).all() and (p.landmarks[:, 3:] <= 1).all()
    # the aux pair gives the next frame's ROI; on the same image it finds the same pose again
    rgb = estimator.to_rgb(image)
    again = estimator.landmarks_in_roi(rgb, estimator.roi_from_landmarks(p))
    assert again.flag > 0.5
    assert np.median(np.linalg.norm(again.landmarks[:, :2] - p.landmarks[:, :2], axis=1)) < 0.03 * p.roi.w
    assert estimator.predict(image, threshold=1.0) == [] and estimator.predict(np.zeros((64, 48, 3), np.uint8)) == []


@pytest.mark.parametrize("model", MODELS)
def test_several_people(estimators, model, testdata):
    """aic: the detector keeps two people (0.83, 0.68; a third scores 0.48, under 0.5)."""
    estimator = estimators[model]
    image = cv2.imread(str(testdata / "images" / AIC))
    assert [round(d.score, 2) for d in estimator.detect(image, threshold=0.4)] == [0.83, 0.68, 0.48]
    poses = estimator.predict(image, max_poses=5)
    assert len(poses) == 2 and poses[0].score > poses[1].score
    assert estimator.predict(image, max_poses=1)[0].score == poses[0].score
    noses = np.array([p.landmarks[0, :2] for p in poses])
    assert np.linalg.norm(noses[0] - noses[1]) > 100  # two different people
    for p, det in zip(poses, estimator.detect(image)):
        x0, y0, x1, y1 = det.box
        assert x0 - 20 <= p.landmarks[0, 0] <= x1 + 20 and y0 - 20 <= p.landmarks[0, 1] <= y1 + 20  # nose in its box
    # the tracker holds both, in a stable order
    tracker = estimator.tracker(max_poses=2)
    ids = [[p.track_id for p in tracker.update(image)] for _ in range(3)]
    assert ids == [[0, 1]] * 3 and tracker.detector_runs == 1


# ------------------------------------------------------------------------------------ video


@pytest.mark.parametrize("model", MODELS)
def test_a_tracked_clip_follows_the_aux_landmarks(estimators, model, street):
    """street: the detector runs on the first frame only; every next ROI comes from the (smoothed)
    auxiliary landmarks, 25 and 26 (33 and 34 for the full body), by the 1.5 alignment rule."""
    estimator = estimators[model]
    lm = estimator.spec.landmark
    tracker = estimator.tracker()
    prev = None
    for i, frame in enumerate(street):
        poses = tracker.update(frame, timestamp=i / 5)
        assert len(poses) == 1 and poses[0].track_id == 0
        pose = poses[0]
        if prev is not None:
            expected = roi_from_landmarks(prev.aux, lm.tracking_roi)
            assert (pose.roi.cx, pose.roi.cy, pose.roi.w, pose.roi.rotation) == pytest.approx(
                (expected.cx, expected.cy, expected.w, expected.rotation)
            )
            # the aux pair spans the body: start (the hip or shoulder centre) below end
            assert pose.aux[0, 1] > pose.aux[1, 1]
        # still the same person as a static run finds on that frame
        static = estimator.predict(frame, max_poses=1)[0]
        size = np.ptp(static.landmarks[:, :2], axis=0).max()
        assert np.median(np.linalg.norm(pose.landmarks[:, :2] - static.landmarks[:, :2], axis=1)) < 0.25 * size
        prev = pose
    assert tracker.detector_runs == 1 and tracker.landmark_runs == len(street) == 5


# ------------------------------------------------------------------------------------ CLI and API


@pytest.fixture(scope="module")
def home(shared_models, tmp_path_factory):
    """A POSEZOO_HOME with both 128-detector models fetched through the real CLI from a mirror."""
    return fetched_home(shared_models, tmp_path_factory.mktemp("upper_home"), *([m] for m in MODELS), link=True)


@pytest.fixture
def env(home, tmp_path):
    return posezoo_env(home, POSEZOO_OFFLINE="1", XDG_CONFIG_HOME=str(tmp_path / "config"))


@pytest.mark.parametrize("model", MODELS)
def test_cli_runs_a_photo_and_writes_json(env, tmp_path, testdata, model):
    src = testdata / "images" / MPII
    args = ("-i", src, "-s", "out.png", "--json", "out.jsonl", "--no-display")
    result = run_posezoo("run", model, *args, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "out.jsonl").read_text())
    assert record["model"] == model and record["variant"] == "default" and len(record["poses"]) == 1
    k = 25 if model == "blazepose-upper" else 33
    pose = record["poses"][0]
    assert len(pose["landmarks"]) == k and pose["columns"] == ["x", "y", "z", "visibility", "presence"]
    assert pose["world_landmarks"] is None and pose["presence"] > 0.99
    assert cv2.imread(str(tmp_path / "out.png")).shape == cv2.imread(str(src)).shape


def test_cli_tracks_a_clip(env, tmp_path, testdata):
    video = testdata / "video" / STREET
    args = ("-v", video, "-s", "out.mp4", "--json", "out.jsonl", "--no-display")
    result = run_posezoo("run", "blazepose-upper", *args, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in records] == [0, 1, 2, 3, 4]
    assert all(len(r["poses"]) == 1 and r["poses"][0]["track_id"] == 0 for r in records)
    assert len(read_frames(tmp_path / "out.mp4")) == 5


def test_cli_refuses_segmentation_and_a_misfit_model(env, home, tmp_path, testdata):
    src = testdata / "images" / MPII
    result = run_posezoo("run", "blazepose-upper", "-i", src, "--segmentation", "--no-display", env=env, cwd=tmp_path)
    line = one_line_error(result)
    assert "'blazepose-upper' has no segmentation output" in line
    # a user registry that points blazepose-upper's landmark file at the 0.8.2 full-body model
    builtin = yaml.safe_load((REPO / "registry.yaml").read_text())["models"]
    upper_entry = builtin["blazepose-upper"]
    full2020_files = builtin["blazepose-full-2020"]["variants"]["default"]["files"]
    upper_entry["variants"]["default"]["files"]["landmark"] = full2020_files["landmark"]
    registry = tmp_path / "misfit.yaml"
    registry.write_text(yaml.safe_dump({"version": 1, "models": {"blazepose-upper": upper_entry}}))
    misfit = dict(env, POSEZOO_REGISTRY=str(registry))
    result = run_posezoo("run", "blazepose-upper", "-i", src, "--no-display", env=misfit, cwd=tmp_path)
    line = one_line_error(result)
    assert result.returncode == 2
    assert "landmarks output 'ld_3d' has shape [1, 195], spec 'blazepose-upper' expects [1, 155]" in line


def test_python_api(home, testdata, monkeypatch):
    monkeypatch.setenv("POSEZOO_HOME", str(home / "home"))
    model = posezoo.load("blazepose-upper", offline=True)
    assert model.keypoint_names == BODY_NAMES[:25] and all(a < 25 and b < 25 for a, b in model.skeleton)
    image = cv2.imread(str(testdata / "images" / AIC))
    poses = model.predict(image, max_poses=2)
    assert len(poses) == 2 and all(p.landmarks.shape == (25, 5) for p in poses)
    described = model.describe()
    assert described["landmark"]["tensor_landmarks"] == 31 and described["detector"]["anchors"] == 896
    full = posezoo.load("blazepose-full-2020", offline=True)
    assert len(full.predict(image, max_poses=1)[0].landmarks) == 33


def test_info_shows_the_128_detector_and_the_tensor_rows(tmp_path):
    result = run_posezoo("info", "blazepose-upper", env=posezoo_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "128x128 input, 896 anchors" in result.stdout
    assert "25 keypoints (27 raw of 31 in the tensor)" in result.stdout and "6914704 bytes" in result.stdout
    data = json.loads(run_posezoo("info", "blazepose-upper", "--json", env=posezoo_env(tmp_path)).stdout)
    assert data["detector"]["anchors"] == 896 and data["landmark"]["keypoints"] == 25
    assert len(data["skeleton"]) == sum(1 for a, b in data["skeleton"] if a < 25 and b < 25)
    full2020 = run_posezoo("info", "blazepose-full-2020", env=posezoo_env(tmp_path)).stdout
    assert "ROI alignment 0->1 x1.5" in full2020 and "33 keypoints (35 raw of 39 in the tensor)" in full2020
    full = json.loads(run_posezoo("info", "blazepose-full", "--json", env=posezoo_env(tmp_path)).stdout)
    assert full["detector"]["input_size"] == [224, 224] and full["detector"]["anchors"] == 2254


def test_missing_upper_body_weights_say_which_file_and_how(tmp_path, shared_models):
    env = posezoo_env(tmp_path)
    fetch = run_posezoo("fetch", "blazepose-upper", "--offline", env=env)
    line = one_line_error(fetch)
    assert "pose_detection_128_v0.7.12.tflite" in line or "pose_landmark_upper_body_v0.7.12.tflite" in line
    assert "--mirror" in line
    # a mirror holding only the 128 detector: the landmark file is the one reported missing
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "pose_detection_128_v0.7.12.tflite").write_bytes(
        (shared_models / "mediapipe-v0.7.12" / "pose_detection.tflite").read_bytes()
    )
    run = run_posezoo("run", "blazepose-upper", "--mirror", mirror, "--no-display", env=env, cwd=tmp_path)
    line = one_line_error(run)
    assert "pose_landmark_upper_body_v0.7.12.tflite" in line and "mirror" in line
    offline = run_posezoo("run", "blazepose-upper", "--offline", "--no-display", env=env, cwd=tmp_path)
    line = one_line_error(offline)
    assert "pose_landmark_upper_body_v0.7.12.tflite" in line and "--mirror" in line
    assert not (tmp_path / "output.png").exists()
