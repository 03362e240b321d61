"""Parity with MediaPipe on real photos, on onnxruntime with the converted weights; estimator checks.

The measure (per image): the mean distance between our landmarks and MediaPipe 0.10.14's, over the
landmarks MediaPipe saw (visibility > 0.5), as a percentage of the diagonal of MediaPipe's box around
those landmarks. Each photo and variant has its bound: what posezoo measures there (:data:`MEASURED`,
the same with every OpenCV since the crops are posezoo's own sampling, posezoo.inference.warp) plus
:data:`MARGIN`. So a release of any dependency (onnxruntime, numpy, OpenCV's JPEG decoder, the
converter's onnx) that moves our landmarks on these photos by more than a fifth of a pixel or so fails
here; docs/models.md documents the bounds. z and world landmarks are held to looser bars of their own.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from posezoo.errors import InputError, PluginError, UsageError
from posezoo_plugins.mediapipe.model import Pose, PoseEstimator
from posezoo.inference.runtime import Session, available_device
from posezoo_plugins.blazepose_full import SPEC

VARIANTS = {"lite": "0", "full": "1", "heavy": "2"}  # our variant -> the reference's model_complexity

# % of the diagonal, per variant and photo (benchmarks/parity_photos.py; onnxruntime 1.32, numpy 2.4,
# OpenCV 5.1 and 4.14 alike). Before the crops had a sampling of their own, OpenCV 5.1 put full at
# 0.262 / 0.165 / 0.166 / 0.167 and heavy at 0.231 / 0.149 / 0.131 / 0.057: over these bounds.
MEASURED = {
    "full": {"aic": 0.145, "coco": 0.143, "h36m": 0.105, "mpii": 0.150},
    "lite": {"aic": 0.433, "coco": 0.239, "h36m": 0.184, "mpii": 0.445},
    "heavy": {"aic": 0.137, "coco": 0.113, "h36m": 0.076, "mpii": 0.043},
}
MARGIN = 0.05  # percentage points: 0.15 - 0.25 px on these photos


@pytest.fixture(scope="module")
def reference(testdata: Path) -> dict:
    return json.loads((testdata / "mediapipe_reference.json").read_text())["images"]


@pytest.fixture(scope="module", params=["full", "lite"])
def estimator(request, make_estimator) -> PoseEstimator:
    return make_estimator(request.param)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_parity_with_mediapipe(variant: str, make_estimator, reference: dict, testdata: Path):
    estimator = make_estimator(variant)
    rows, failures = [], []
    for name, by_model in sorted(reference.items()):
        ref = by_model[VARIANTS[estimator.variant]]
        image = cv2.imread(str(testdata / "images" / name))
        poses = estimator.predict(image, max_poses=1)
        assert poses, f"{estimator.variant}: no pose on {name}"
        pose = poses[0]
        want = np.asarray(ref["landmarks"], np.float64)
        seen = want[:, 3] > 0.5
        diag = float(np.hypot(*np.ptp(want[seen, :2], axis=0)))
        dist = np.linalg.norm(pose.landmarks[seen, :2] - want[seen, :2], axis=1)
        pct = 100.0 * dist.mean() / diag
        z_pct = 100.0 * np.abs(pose.landmarks[seen, 2] - want[seen, 2]).mean() / diag
        world = np.abs(pose.world_landmarks - np.asarray(ref["world"])).mean()
        vis = np.abs(pose.landmarks[:, 3] - want[:, 3]).max()
        bound = MEASURED[estimator.variant][name.split("_")[0]] + MARGIN
        rows.append(
            f"{estimator.variant:4s} {name[:40]:40s} mean {dist.mean():5.2f}px = {pct:.3f}% of diag {diag:6.1f}"
            f" (bound {bound:.3f}) | max {dist.max():5.1f}px | z {z_pct:.2f}% | world {world * 1000:.1f}mm"
            f" | vis {vis:.3f}"
        )
        if pct > bound or z_pct > 5.0 or world > 0.01 or vis > 0.1:
            failures.append(rows[-1])
    print("\n" + "\n".join(rows))
    assert sorted(MEASURED[estimator.variant]) == sorted(n.split("_")[0] for n in reference), "a photo without a bound"
    assert not failures, "over the bound:\n" + "\n".join(failures)


def test_pose_fields(estimator: PoseEstimator, testdata: Path):
    image = cv2.imread(str(testdata / "images" / "coco_000000000785.jpg"))
    poses = estimator.predict(image, segmentation=True)
    assert estimator.provider == "CPUExecutionProvider" and estimator.spec is SPEC
    assert len(poses) >= 1
    p: Pose = poses[0]
    assert p.landmarks.shape == (33, 5) and p.landmarks.dtype == np.float32
    assert p.world_landmarks.shape == (33, 3) and p.world_landmarks.dtype == np.float32
    assert p.aux.shape == (2, 5) and p.names == SPEC.keypoint_names
    assert 0.5 <= p.presence <= 1.0 and 0.5 <= p.score <= 1.0
    np.testing.assert_allclose(p.box[:2], p.landmarks[:, :2].min(axis=0))
    assert p.mask.shape == image.shape[:2] and p.mask.dtype == np.float32
    # the mask covers the person: high at the hips, low in a corner far from the ROI
    hips = p.landmarks[23:25, :2].mean(axis=0).astype(int)
    assert p.mask[hips[1], hips[0]] > 0.5 and p.mask[0, 0] < 0.1
    # a detection's hip keypoint sits near the landmarks' hip centre; ROI side = 1.25 * 2 * |kp1 - kp0|
    det = estimator.detect(image)[0]
    assert np.linalg.norm(det.keypoints[0] - hips) < 0.05 * p.roi.w
    assert p.roi.w == pytest.approx(2.5 * np.linalg.norm(det.keypoints[1] - det.keypoints[0]), rel=1e-4)
    # the tracking path: aux landmarks give the next ROI, and it finds the same pose again
    rgb = estimator.to_rgb(image)
    again = estimator.landmarks_in_roi(rgb, estimator.roi_from_landmarks(p))
    assert again.flag > 0.5
    assert np.abs(again.landmarks[:, :2] - p.landmarks[:, :2]).mean() < 0.02 * p.roi.w
    # thresholds: a flag threshold above 1 drops every pose; no pose without a detection
    assert estimator.predict(image, threshold=1.0) == []
    with pytest.raises(UsageError, match=r"threshold must be in \[0, 1\]"):
        estimator.predict(image, threshold=1.01)
    assert estimator.predict(np.zeros((64, 48, 3), np.uint8)) == []
    assert estimator.predict(image, max_poses=0) == []


def test_bad_images(estimator: PoseEstimator):
    with pytest.raises(InputError):
        estimator.predict(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(InputError):
        estimator.predict(np.zeros((10, 10, 2), np.uint8))
    gray = estimator.predict(np.zeros((40, 30), np.uint8))
    assert gray == []


def test_spec_mismatch_is_a_plugin_error(converted_models):
    swapped = {"detector": converted_models["full"], "landmark": converted_models["detector"]}
    with pytest.raises(PluginError, match=r"full\.onnx.*input .*\[1, 256, 256, 3\].*\[1, 224, 224, 3\]"):
        PoseEstimator(SPEC, swapped, device="cpu")
    with pytest.raises(PluginError, match="no landmark file"):
        PoseEstimator(SPEC, {"detector": converted_models["detector"]}, device="cpu")
    renamed = dataclasses.replace(SPEC, landmark=dataclasses.replace(SPEC.landmark, heatmap_output="heatmap"))
    files = {"detector": converted_models["detector"], "landmark": converted_models["lite"]}
    with pytest.raises(PluginError, match=r"lite\.onnx: no heatmap output 'heatmap'"):
        PoseEstimator(renamed, files, device="cpu")
    wrong_count = dataclasses.replace(SPEC, landmark=dataclasses.replace(SPEC.landmark, num_landmarks=35, heatmap_output=None))
    with pytest.raises(PluginError, match=r"lite\.onnx: landmarks output 'Identity' has shape \[1, 195\]"):
        PoseEstimator(wrong_count, files, device="cpu")


def test_runtime_devices(converted_models):
    assert available_device("cpu") == ["CPUExecutionProvider"]
    assert available_device("auto")[-1] == "CPUExecutionProvider"
    with pytest.raises(UsageError, match="unknown device"):
        available_device("tpu")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(UsageError, match="'cuda' is not available"):
            available_device("cuda")
    s = Session(converted_models["detector"], "cpu")
    assert s.provider == "CPUExecutionProvider" and s.input_shape == [1, 224, 224, 3]
    assert s.output_index("Identity_1") == 1 and s.output_index(0) == 0
    with pytest.raises(KeyError):
        s.output_index("nope")
    outs = s.run(np.zeros((1, 224, 224, 3), np.float32))
    assert [o.shape for o in outs] == [(1, 2254, 12), (1, 2254, 1)]


def test_unloadable_model_is_a_plugin_error(tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(PluginError, match="broken.onnx"):
        Session(bad, "cpu")
