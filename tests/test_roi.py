"""ROI rules (alignment / box, rotation, square_long, shift) and the rotated crop."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from posezoo_plugins.mediapipe.detect import Detection
from posezoo_plugins.mediapipe.landmarks import project_landmarks
from posezoo_plugins.mediapipe.roi import Roi, crop, normalize_radians, roi_from_detection, roi_from_landmarks, roi_from_points
from posezoo_plugins.mediapipe.spec import RoiRule

POSE_RULE = RoiRule(mode="alignment", start=0, end=1, scale_x=1.25, scale_y=1.25)


def _det(kp0, kp1, box=(0, 0, 1, 1)) -> Detection:
    kps = np.array([kp0, kp1, (0, 0), (0, 0)], np.float32)
    return Detection(np.array(box, np.float32), kps, 0.9)


@pytest.mark.parametrize(
    ("kp1", "rotation"),
    [
        ((100, 100), 0.0),  # end straight above the start: upright
        ((200, 200), math.pi / 2),  # to the right: rotated a quarter turn clockwise
        ((0, 200), -math.pi / 2),
        ((100, 300), -math.pi),  # below: upside down, wrapped into [-pi, pi)
        ((200, 100), math.pi / 4),
    ],
)
def test_alignment_roi_from_detection(kp1, rotation):
    roi = roi_from_detection(_det((100, 200), kp1), POSE_RULE)
    side = 2 * math.hypot(kp1[0] - 100, kp1[1] - 200) * 1.25
    assert (roi.cx, roi.cy) == (100, 200)
    assert roi.w == pytest.approx(side) and roi.h == pytest.approx(side)
    assert roi.rotation == pytest.approx(rotation)


def test_box_mode_square_long_and_shift():
    rule = RoiRule(mode="box", start=0, end=1, scale_x=2.0, scale_y=2.0, shift_y=-0.5, square_long=True)
    # palm-style: box 100 x 50 centred at (150, 125); keypoints give an upright rotation
    roi = roi_from_detection(_det((150, 140), (150, 100), box=(100, 100, 200, 150)), rule)
    assert roi.rotation == pytest.approx(0.0)
    assert (roi.w, roi.h) == (200.0, 200.0)  # square on the long side (100), then x2
    assert (roi.cx, roi.cy) == pytest.approx((150.0, 125.0 - 25.0))  # shifted up by half its height
    # the shift happens in the rect's own frame: turned a quarter clockwise, its "up" is the image's +x
    roi = roi_from_detection(_det((150, 140), (190, 140), box=(100, 100, 200, 150)), rule)
    assert roi.rotation == pytest.approx(math.pi / 2)
    assert (roi.cx, roi.cy) == pytest.approx((150.0 + 25.0, 125.0))

    no_square = RoiRule(mode="box", scale_x=1.0, scale_y=1.0, square_long=False)
    roi = roi_from_points(np.array([[0, 0], [0, -1.0]]), no_square, box=np.array([0, 0, 100, 50]))
    assert (roi.w, roi.h) == (100.0, 50.0)


def test_box_mode_from_points_bounds_them_in_the_rotated_frame():
    """Box mode without a box (hand tracking): the bounds follow the rect's rotation."""
    rule = RoiRule(mode="box", start=0, end=1, scale_x=1.0, scale_y=1.0, square_long=False)
    # a 40 x 10 bar along the image diagonal; start -> end runs along it, so the rect turns with it
    along = np.array([1.0, 1.0]) / math.sqrt(2.0)
    across = np.array([-1.0, 1.0]) / math.sqrt(2.0)
    centre = np.array([100.0, 50.0])
    pts = np.array([centre + a * along + b * across for a in (-20, 20) for b in (-5, 5)])
    pts = np.vstack([centre - 20 * along, centre + 20 * along, pts])  # rows 0, 1: start, end
    roi = roi_from_points(pts, rule)
    assert roi.rotation == pytest.approx(math.radians(90 + 45))
    assert (roi.cx, roi.cy) == pytest.approx(tuple(centre))
    assert (roi.w, roi.h) == pytest.approx((10.0, 40.0))  # along start -> end: 40 (not a 35 x 35 box)
    # upright points: the same as the axis-aligned bounds
    upright = roi_from_points(np.array([[10.0, 40.0], [10.0, 0.0], [0.0, 20.0], [30.0, 20.0]]), rule)
    assert upright.rotation == pytest.approx(0.0)
    assert (upright.cx, upright.cy, upright.w, upright.h) == pytest.approx((15.0, 20.0, 30.0, 40.0))


def test_roi_from_landmarks_uses_the_rule_rows():
    lms = np.zeros((35, 5), np.float32)
    lms[33, :2] = (50, 60)
    lms[34, :2] = (50, 20)
    roi = roi_from_landmarks(lms, RoiRule(start=33, end=34, scale_x=1.25, scale_y=1.25))
    assert (roi.cx, roi.cy, roi.w, roi.rotation) == pytest.approx((50, 60, 100, 0))


def test_normalize_radians():
    assert normalize_radians(math.pi) == pytest.approx(-math.pi)
    assert normalize_radians(3 * math.pi / 2) == pytest.approx(-math.pi / 2)
    assert normalize_radians(-math.pi) == pytest.approx(-math.pi)
    assert normalize_radians(0.25) == pytest.approx(0.25)


def test_corners_in_boxpoints_order():
    roi = Roi(120.0, 80.0, 60.0, 40.0, 0.3)
    expect = cv2.boxPoints(((roi.cx, roi.cy), (roi.w, roi.h), math.degrees(roi.rotation)))
    np.testing.assert_allclose(roi.corners(), expect, atol=1e-3)


def test_crop_maps_corners_to_corners():
    roi = Roi(50.0, 40.0, 20.0, 20.0, 0.0)
    _, m = crop(np.zeros((80, 100, 3), np.uint8), roi, (10, 10))
    pts = np.array([[40.0, 30.0, 1.0], [60.0, 50.0, 1.0]]) @ m.T  # ROI corners -> crop corners
    np.testing.assert_allclose(pts, [[0, 0], [10, 10]], atol=1e-9)


def test_crop_then_project_round_trips_on_a_rotated_roi():
    h, w = 240, 320
    image = np.zeros((h, w, 3), np.uint8)
    target = (181.0, 97.0)
    cv2.circle(image, (int(target[0]), int(target[1])), 3, (255, 255, 255), -1)
    roi = Roi(160.0, 120.0, 150.0, 150.0, math.radians(35.0))
    size = (256, 256)
    patch, m = crop(image, roi, size)
    # the matrix takes the image point to the crop point
    q = m @ np.array([*target, 1.0])
    # the blob shows up there in the crop (centroid; the crop magnifies 256/150)
    ys, xs = np.nonzero(patch[..., 0] > 127)
    np.testing.assert_allclose([xs.mean() + 0.5, ys.mean() + 0.5], q, atol=1.0)
    # and projecting the normalized crop point lands back on the same image pixel
    lm = np.array([[q[0] / size[1], q[1] / size[0], 0.0, 1.0, 1.0]], np.float32)
    back = project_landmarks(lm, roi)
    np.testing.assert_allclose(back[0, :2], target, atol=1e-3)


def test_crop_samples_like_mediapipe_cpu_or_gpu():
    """A 10x shrink of a horizontal ramp (value = pixel column): MediaPipe's OpenCV path reads crop
    pixel i at image column 10 i; its GL path at the centre of the output pixel, 10 i + 4.5."""
    ramp = np.tile(np.arange(100, dtype=np.float32), (20, 1))
    roi = Roi(50.0, 10.0, 100.0, 20.0, 0.0)
    cpu, _ = crop(ramp, roi, (2, 10))
    gpu, m = crop(ramp, roi, (2, 10), pixel_centers=True)
    np.testing.assert_allclose(cpu[0], 10 * np.arange(10), atol=1e-4)
    np.testing.assert_allclose(gpu[0], 10 * np.arange(10) + 4.5, atol=1e-4)
    # the returned matrix still takes image pixels to crop indices: column 54.5 is crop pixel 5
    np.testing.assert_allclose(m @ [54.5, 9.5, 1.0], [5.0, 0.5], atol=1e-9)


def test_crop_border_replicates_and_reuses_out():
    image = np.full((20, 20, 3), 7, np.uint8)
    out = np.empty((8, 8, 3), np.uint8)
    patch, _ = crop(image, Roi(0.0, 0.0, 40.0, 40.0, 0.5), (8, 8), out=out)
    assert patch is out or np.shares_memory(patch, out)
    assert np.all(patch == 7)


def test_unknown_mode():
    with pytest.raises(ValueError, match="unknown ROI mode"):
        roi_from_points(np.zeros((2, 2)), RoiRule(mode="circle"))
