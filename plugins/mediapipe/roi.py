"""Regions of interest: detection/landmarks -> rotated square ROI (the crop itself is preprocess.py's).

Mirrors MediaPipe's ROI stages: ``AlignmentPointsRectsCalculator`` (centre = start point, side =
2 * |end - start|), ``DetectionsToRectsCalculator`` (box mode and the rotation
``target - atan2(-(y1 - y0), x1 - x0)``), ``RectTransformationCalculator`` (shift in the rect's own
rotated frame, ``square_long``, scale).

Everything here works in image pixels. An ROI that is square in pixels needs no image size, so the
normalized-rect round trip MediaPipe makes is not repeated.
"""

from __future__ import annotations

import math

import numpy as np

from posezoo.inference.preprocess import Roi, crop, crop_to_image_matrix, to_tensor  # noqa: F401  (re-exported)
from posezoo_plugins.mediapipe.spec import RoiRule


def normalize_radians(angle: float) -> float:
    """Wrap an angle to [-pi, pi)."""
    return angle - 2.0 * math.pi * math.floor((angle + math.pi) / (2.0 * math.pi))


def _rotation(start: np.ndarray, end: np.ndarray, target: float) -> float:
    return normalize_radians(target - math.atan2(-(float(end[1]) - float(start[1])), float(end[0]) - float(start[0])))


def transform_roi(cx: float, cy: float, w: float, h: float, rotation: float, rule: RoiRule) -> Roi:
    """RectTransformationCalculator: shift (in the rect's rotated frame), square_long, then scale."""
    if rule.shift_x or rule.shift_y:
        c, s = math.cos(rotation), math.sin(rotation)
        dx, dy = w * rule.shift_x, h * rule.shift_y
        cx += c * dx - s * dy
        cy += s * dx + c * dy
    if rule.square_long:
        w = h = max(w, h)
    return Roi(float(cx), float(cy), float(w * rule.scale_x), float(h * rule.scale_y), float(rotation))


def roi_from_points(points: np.ndarray, rule: RoiRule, box: np.ndarray | None = None) -> Roi:
    """ROI from keypoints (K, >=2) in pixels, per ``rule``.

    ``alignment``: centre = points[start], side = 2 * |points[end] - points[start]|.
    ``box``: centre and size of ``box`` [x0, y0, x1, y1] (pixels). Without a box, the points' bounds
    in the ROI's own rotated frame (``rule.bounds == "rotated"``: MediaPipe's
    HandLandmarksToRectCalculator) or their axis-aligned bounds (``"axis"``: LandmarksToDetection).
    Both modes rotate by ``rule.rotation_target - angle(start -> end)`` (the end point: ``rule.end``, or
    the weighted sum ``rule.end_mix``), over ``rule.points`` of ``points`` when the rule names some.
    """
    pts = np.asarray(points, np.float64)[:, :2]
    if rule.points:
        pts = pts[list(rule.points)]
    start = pts[rule.start]
    if rule.end_mix:
        end = np.zeros(2)
        for i, weight in rule.end_mix:
            end = end + weight * pts[i]
    else:
        end = pts[rule.end]
    rotation = _rotation(start, end, rule.rotation_target)
    if rule.mode == "alignment":
        side = 2.0 * math.hypot(end[0] - start[0], end[1] - start[1])
        return transform_roi(start[0], start[1], side, side, rotation, rule)
    if rule.mode == "box":
        if box is None and rule.bounds == "rotated":
            return _rotated_bounds_roi(pts, rotation, rule)
        if box is None:  # the axis-aligned bounds of the points
            box = np.concatenate([pts.min(axis=0), pts.max(axis=0)])
        x0, y0, x1, y1 = (float(v) for v in box)
        return transform_roi((x0 + x1) * 0.5, (y0 + y1) * 0.5, x1 - x0, y1 - y0, rotation, rule)
    raise ValueError(f"unknown ROI mode {rule.mode!r} (expected 'alignment' or 'box')")


def _rotated_bounds_roi(pts: np.ndarray, rotation: float, rule: RoiRule) -> Roi:
    """The bounding rect of ``pts`` whose sides follow ``rotation``, then ``rule``'s transformation."""
    c, s = math.cos(rotation), math.sin(rotation)
    centre = (pts.min(axis=0) + pts.max(axis=0)) * 0.5
    d = pts - centre
    px = d[:, 0] * c + d[:, 1] * s  # the points in the rect's frame (rotated by -rotation)
    py = -d[:, 0] * s + d[:, 1] * c
    mx, my = (px.min() + px.max()) * 0.5, (py.min() + py.max()) * 0.5
    cx = centre[0] + mx * c - my * s
    cy = centre[1] + mx * s + my * c
    return transform_roi(cx, cy, float(np.ptp(px)), float(np.ptp(py)), rotation, rule)


def roi_from_detection(detection, rule: RoiRule) -> Roi:
    """ROI from a :class:`posezoo_plugins.mediapipe.detect.Detection` (pixels), MediaPipe's pose_detection_to_roi."""
    return roi_from_points(detection.keypoints, rule, detection.box)


def roi_from_landmarks(landmarks: np.ndarray, rule: RoiRule) -> Roi:
    """ROI for the next frame from landmarks in pixels (the auxiliary pair for BlazePose),
    MediaPipe's pose_landmarks_to_roi."""
    return roi_from_points(landmarks, rule)
