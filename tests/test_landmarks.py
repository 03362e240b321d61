"""Landmark decode: normalization, activations, heatmap refinement, projection, world, mask."""

from __future__ import annotations

import math

import numpy as np
import pytest

from posezoo_plugins.mediapipe.landmarks import (
    LandmarkStage,
    decode_landmarks,
    mask_to_image,
    project_landmarks,
    refine_from_heatmap,
    sigmoid,
    world_landmarks,
)
from posezoo_plugins.mediapipe.roi import Roi
from posezoo_plugins.mediapipe.spec import LandmarkSpec


def test_decode_five_values():
    spec = LandmarkSpec(input_size=(256, 256), num_landmarks=2, num_keypoints=2)
    raw = np.array([[128, 64, -32, 0, 100], [0, 256, 256, -100, 2]], np.float32)
    out = decode_landmarks(raw.reshape(1, -1), spec)
    np.testing.assert_allclose(out[:, :3], [[0.5, 0.25, -0.125], [0, 1, 1]])
    np.testing.assert_allclose(out[:, 3:], [[0.5, 1.0], [0.0, sigmoid(2.0)]], atol=1e-6)


def test_decode_three_values_gives_full_visibility():
    spec = LandmarkSpec(input_size=(224, 224), num_landmarks=21, num_keypoints=21, values_per_landmark=3, normalize_z=0.5)
    raw = np.tile(np.array([112, 56, 22.4], np.float32), 21)
    out = decode_landmarks(raw, spec)
    assert out.shape == (21, 5)
    np.testing.assert_allclose(out[0], [0.5, 0.25, 0.2, 1.0, 1.0], rtol=1e-6)


def _expected_refinement(hm, col, row, ch, k=7):
    half = k // 2
    r0, r1 = max(0, row - half), min(hm.shape[0], row + half + 1)
    c0, c1 = max(0, col - half), min(hm.shape[1], col + half + 1)
    conf = 1 / (1 + np.exp(-hm[r0:r1, c0:c1, ch].astype(np.float64)))
    rr, cc = np.mgrid[r0:r1, c0:c1]
    return (conf * cc).sum() / conf.sum() / hm.shape[1], (conf * rr).sum() / conf.sum() / hm.shape[0]


def test_heatmap_refinement_synthetic():
    hm = np.full((1, 64, 64, 4), -8.0, np.float32)
    hm[0, 33, 34, 0] = 8.0  # a confident peak near landmark 0's cell (32, 32)
    hm[0, 10, 10, 1] = 0.0  # landmark 1: max confidence 0.5 -> refined (>= 0.5)
    hm[0, 50, 50, 2] = -0.1  # landmark 2: max confidence < 0.5 -> untouched
    lms = np.array(
        [[0.5, 0.5, 0, 1, 1], [10.9 / 64, 10.2 / 64, 0, 1, 1], [50.5 / 64, 50.5 / 64, 0, 1, 1], [-0.2, 0.5, 0, 1, 1]],
        np.float32,
    )
    before = lms.copy()
    out = refine_from_heatmap(lms, hm, 7, 0.5)
    assert out is lms
    np.testing.assert_allclose(out[0, :2], _expected_refinement(hm[0], 32, 32, 0), rtol=1e-5)
    np.testing.assert_allclose(out[0, :2], [34 / 64, 33 / 64], atol=0.1 / 64)  # pulled onto the peak (34, 33)
    np.testing.assert_allclose(out[1, :2], _expected_refinement(hm[0], 10, 10, 1), rtol=1e-5)
    np.testing.assert_array_equal(out[2], before[2])  # not confident enough
    np.testing.assert_array_equal(out[3], before[3])  # outside the map
    np.testing.assert_array_equal(out[:, 2:], before[:, 2:])  # z, visibility, presence never refined


def test_heatmap_refinement_edges_like_mediapipe():
    hm = np.full((64, 64, 3), -8.0, np.float32)
    hm[63, 0, 0] = hm[62, 1, 1] = hm[0, 2, 2] = 8.0
    lms = np.array([[0.001, 0.999, 0, 1, 1], [0.02, 1.02, 0, 1, 1], [-0.01, 0.0, 0, 1, 1]], np.float32)
    refine_from_heatmap(lms, hm, 7, 0.5)
    # window clipped at the corner (zero border)
    np.testing.assert_allclose(lms[0, :2], _expected_refinement(hm, 0, 63, 0), rtol=1e-5)
    # a row just past the bottom still refines over the rows inside (MediaPipe never checks it)
    np.testing.assert_allclose(lms[1, :2], _expected_refinement(hm, 1, 65, 1), rtol=1e-5)
    # x slightly negative truncates to column 0 and is refined
    np.testing.assert_allclose(lms[2, :2], _expected_refinement(hm, 0, 0, 2), rtol=1e-5)


def test_project_rotated_and_z_scale():
    roi = Roi(100.0, 200.0, 80.0, 80.0, math.pi / 2)
    lms = np.array([[0.75, 0.5, -0.1, 0.9, 0.8], [0.5, 0.5, 0.0, 1, 1], [0.0, 0.0, 0.0, 1, 1]], np.float32)
    out = project_landmarks(lms, roi)
    np.testing.assert_allclose(out[0], [100.0, 220.0, -8.0, 0.9, 0.8], atol=1e-4)  # +x in the crop = +y here
    np.testing.assert_allclose(out[1, :2], [100.0, 200.0], atol=1e-4)
    np.testing.assert_allclose(out[2, :2], [140.0, 160.0], atol=1e-4)  # crop's top-left corner


def test_world_landmarks_rotate_in_xy():
    raw = np.arange(39 * 3, dtype=np.float32)
    raw[:3] = [1.0, 0.0, 0.5]
    out = world_landmarks(raw, 33, math.pi / 2)
    assert out.shape == (33, 3)
    np.testing.assert_allclose(out[0], [0.0, 1.0, 0.5], atol=1e-6)


def test_mask_back_into_the_image():
    roi = Roi(50.0, 40.0, 40.0, 40.0, 0.0)
    logits = np.full((1, 256, 256, 1), 10.0, np.float32)
    mask = mask_to_image(logits, roi, (100, 80))
    assert mask.shape == (80, 100) and mask.dtype == np.float32
    assert mask[40, 50] == pytest.approx(1.0, abs=1e-4)
    assert mask[5, 5] == 0.0 and mask[40, 95] == 0.0  # zero outside the ROI


def test_stage_decode_generic_three_values():
    spec = LandmarkSpec(input_size=(224, 224), num_landmarks=21, num_keypoints=21, values_per_landmark=3)
    stage = LandmarkStage(spec)
    roi = Roi(100.0, 100.0, 50.0, 50.0, 0.0)
    res = stage.decode(roi, np.full((1, 63), 112.0, np.float32), flag=0.9)
    assert res.landmarks.shape == (21, 5) and res.aux is None and res.world is None and res.mask is None
    np.testing.assert_allclose(res.landmarks[0], [100, 100, 25, 1, 1], atol=1e-4)
    assert stage.preprocess(np.zeros((50, 60, 3), np.uint8), roi).shape == (1, 224, 224, 3)
