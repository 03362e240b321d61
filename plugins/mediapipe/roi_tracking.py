"""Whether a part followed over video keeps last frame's region: MediaPipe's RoiTrackingCalculator
(modules/holistic_landmark/calculators/roi_tracking_calculator.cc), as Holistic's hand_tracking.pbtxt
and face_tracking.pbtxt use it.

Each frame a fresh *recrop* region of the part is found (for Holistic: from the body pose, refined by
the hand recrop model or the face detector). The region from last frame's landmarks of the part is
kept while the two agree (:class:`RoiTrackingRule`: rotation, translation and size within bounds, and
every landmark of last frame inside the recrop region, grown or shrunk by a margin); otherwise the
recrop region is used. Everything is in image pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from posezoo.inference.preprocess import Roi


@dataclass(frozen=True)
class RoiTrackingRule:
    """RoiTrackingCalculator's rect and landmarks requirements.

    Last frame's region is kept while it differs from the recrop region by at most ``rotation_deg``
    degrees, ``translation`` (fractions of the recrop region's width and height, along its own axes) and
    ``scale`` (the same fractions, for width and height), and every landmark of last frame lies inside the
    recrop region scaled by ``1 + recrop_margin`` (negative: shrunk).
    """

    rotation_deg: float
    translation: float
    scale: float
    recrop_margin: float


def _upright(roi: Roi, points: np.ndarray) -> np.ndarray:
    """``points`` (N, 2) pixels turned by ``-roi.rotation`` about the image origin (as the calculator
    turns both rects and the landmarks, so the recrop rect's edges are parallel to the axes)."""
    c, s = math.cos(-roi.rotation), math.sin(-roi.rotation)
    p = np.asarray(points, np.float64)
    return np.stack([p[:, 0] * c - p[:, 1] * s, p[:, 0] * s + p[:, 1] * c], axis=1)


def keeps_tracking(prev_landmarks: np.ndarray, prev_roi: Roi, recrop_roi: Roi, rule: RoiTrackingRule) -> bool:
    """Whether ``prev_roi`` (last frame's region, from ``prev_landmarks`` (N, >=2) pixels) still holds the
    part, given this frame's ``recrop_roi``: the calculator's rect requirements (rotation, translation,
    size) and landmarks requirements (last frame's landmarks inside the recrop rect with its margin)."""
    (px, py), (rx, ry) = _upright(recrop_roi, np.array([[prev_roi.cx, prev_roi.cy], [recrop_roi.cx, recrop_roi.cy]]))
    diff = math.degrees(prev_roi.rotation) - math.degrees(recrop_roi.rotation)
    if diff > 180.0:
        diff -= 360.0
    if diff < -180.0:
        diff += 360.0
    if abs(diff) > rule.rotation_deg:
        return False
    if abs(px - rx) > recrop_roi.w * rule.translation or abs(py - ry) > recrop_roi.h * rule.translation:
        return False
    if abs(prev_roi.w - recrop_roi.w) > recrop_roi.w * rule.scale or abs(prev_roi.h - recrop_roi.h) > recrop_roi.h * rule.scale:
        return False
    half_w = recrop_roi.w * (1.0 + rule.recrop_margin) * 0.5
    half_h = recrop_roi.h * (1.0 + rule.recrop_margin) * 0.5
    lm = _upright(recrop_roi, np.asarray(prev_landmarks, np.float64)[:, :2])
    inside = (rx - half_w < lm[:, 0]) & (lm[:, 0] < rx + half_w) & (ry - half_h < lm[:, 1]) & (lm[:, 1] < ry + half_h)
    return bool(inside.all())


def tracking_roi(prev_landmarks: np.ndarray | None, prev_roi: Roi | None, recrop_roi: Roi, rule: RoiTrackingRule) -> Roi:
    """The region to run the part's landmark model in this frame: last frame's (``prev_roi``, from
    ``prev_landmarks``) while :func:`keeps_tracking`, else the recrop region; the recrop region when the
    part was not found last frame (``prev_landmarks`` None)."""
    if prev_landmarks is None or prev_roi is None:
        return recrop_roi
    return prev_roi if keeps_tracking(prev_landmarks, prev_roi, recrop_roi, rule) else recrop_roi
