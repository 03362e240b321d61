"""blazepose-upper: the 128x128 detector (real weights) and the 27-landmark stage (a stand-in ONNX model).

The upper-body landmark weights cannot be downloaded here, so the landmark stage runs a small ONNX
model built in the test with the same signature ([1,256,256,3] in, 27 x 5 landmarks + pose flag out)
whose landmarks are known crop positions: the plugin must map them to the right image pixels.
"""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from clitools import one_line_error, posezoo_env, run_posezoo
from posezoo.convert import convert_file
from posezoo.estimator import PoseEstimator
from posezoo.roi import Roi
from posezoo_plugins.blazepose_upper import SPEC

MPII = "mpii_052475643.jpg"
rng = np.random.default_rng(7)
CROP_XY = rng.uniform(8, 248, size=(27, 2)).astype(np.float32)  # crop pixels of the 256x256 input
CROP_Z = rng.uniform(-40, 40, size=27).astype(np.float32)
VIS_LOGIT = rng.uniform(-3, 3, size=27).astype(np.float32)


def stand_in_landmark_model(path, flag: float = 0.93) -> None:
    """An ONNX model with the upper-body landmark signature and fixed, known outputs."""
    raw = np.concatenate([CROP_XY, CROP_Z[:, None], VIS_LOGIT[:, None], VIS_LOGIT[:, None] + 1], axis=1)
    consts = [
        numpy_helper.from_array(raw.reshape(1, 135), "landmark_values"),
        numpy_helper.from_array(np.array([[flag]], np.float32), "flag_value"),
        numpy_helper.from_array(np.array([0.0], np.float32), "zero"),
    ]
    nodes = [
        # depend on the input so this is a real graph, not constants: mean(input) * 0 + values
        helper.make_node("ReduceMean", ["input"], ["mean"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
        helper.make_node("Add", ["landmark_values", "nothing"], ["ld_3d"]),
        helper.make_node("Add", ["flag_value", "nothing"], ["output_poseflag"]),
    ]
    graph = helper.make_graph(
        nodes,
        "upper_body_stand_in",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 256, 256, 3])],
        [
            helper.make_tensor_value_info("ld_3d", TensorProto.FLOAT, [1, 135]),
            helper.make_tensor_value_info("output_poseflag", TensorProto.FLOAT, [1, 1]),
        ],
        consts,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


@pytest.fixture(scope="module")
def upper_files(shared_models, tmp_path_factory):
    out = tmp_path_factory.mktemp("upper")
    det = out / "detector128.onnx"
    convert_file(shared_models / "mediapipe-v0.7.12" / "pose_detection.tflite", det)
    lm = out / "landmark_stand_in.onnx"
    stand_in_landmark_model(lm)
    return {"detector": det, "landmark": lm}


@pytest.fixture(scope="module")
def estimator(upper_files):
    return PoseEstimator(SPEC, upper_files, variant="default", device="cpu")


def test_landmarks_map_back_to_image_pixels_through_a_rotated_roi(estimator):
    image = np.zeros((480, 640, 3), np.uint8)
    roi = Roi(cx=330.0, cy=210.0, w=180.0, h=180.0, rotation=math.radians(35))
    result = estimator.landmarks_in_roi(image, roi)
    assert result.flag == pytest.approx(0.93, abs=1e-6)
    assert result.landmarks.shape == (25, 5) and result.aux.shape[0] == 2
    # expected: crop (x, y) -> centred unit coords -> rotate by the ROI angle -> scale -> translate
    u = CROP_XY[:, 0] / 256 - 0.5
    v = CROP_XY[:, 1] / 256 - 0.5
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


def test_a_crop_pixel_lands_on_the_image_pixel_it_came_from(estimator):
    """The crop really is the rotated ROI: the pixel the stand-in points at is the one it saw."""
    image = np.zeros((480, 640, 3), np.uint8)
    roi = Roi(cx=330.0, cy=210.0, w=180.0, h=180.0, rotation=math.radians(-50))
    target = estimator.landmarks_in_roi(image, roi).landmarks[0, :2]
    cv2.circle(image, (int(round(target[0])), int(round(target[1]))), 3, (255, 255, 255), -1)
    from posezoo.roi import crop

    patch, _ = crop(image, roi, (256, 256))
    ys, xs = np.nonzero(patch[..., 0] > 128)
    assert abs(xs.mean() - CROP_XY[0, 0]) < 2.5 and abs(ys.mean() - CROP_XY[0, 1]) < 2.5


def test_real_128_detector_finds_the_upper_body_on_mpii(estimator, testdata):
    image = cv2.imread(str(testdata / "images" / MPII))
    detections = estimator.detect(image)
    assert detections, "the 128 detector found nobody"
    best = detections[0]
    ref = json.loads((testdata / "mediapipe_reference.json").read_text())["images"][MPII]["1"]["landmarks"]
    face_and_shoulders = np.array([ref[i][:2] for i in range(13)])  # nose .. mouth, both shoulders
    x0, y0, x1, y1 = best.box
    inside = (
        (face_and_shoulders[:, 0] >= x0)
        & (face_and_shoulders[:, 0] <= x1)
        & (face_and_shoulders[:, 1] >= y0)
        & (face_and_shoulders[:, 1] <= y1)
    )
    assert inside.all(), (best.box, face_and_shoulders[~inside])
    # the upper-body ROI (keypoints 2 -> 3) is centred near the shoulders
    roi = estimator.roi_from_detection(best)
    mid_shoulder = face_and_shoulders[11:13].mean(axis=0)
    assert np.hypot(roi.cx - mid_shoulder[0], roi.cy - mid_shoulder[1]) < 0.25 * roi.w


def test_predict_runs_the_whole_upper_body_pipeline(estimator, testdata):
    image = cv2.imread(str(testdata / "images" / MPII))
    poses = estimator.predict(image)
    assert len(poses) == 1
    assert poses[0].landmarks.shape == (25, 5) and poses[0].names == SPEC.keypoint_names
    assert poses[0].world_landmarks is None


def test_info_shows_128_detector_896_anchors_25_keypoints(tmp_path):
    result = run_posezoo("info", "blazepose-upper", env=posezoo_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "128x128 input, 896 anchors" in result.stdout
    assert "25 keypoints" in result.stdout
    data = json.loads(run_posezoo("info", "blazepose-upper", "--json", env=posezoo_env(tmp_path)).stdout)
    assert data["detector"]["anchors"] == 896 and data["landmark"]["keypoints"] == 25
    assert len(data["skeleton"]) == sum(1 for a, b in data["skeleton"] if a < 25 and b < 25)
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
