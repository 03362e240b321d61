"""Landmark smoothing for video (MediaPipe's modules/pose_landmark/pose_landmark_filtering.pbtxt), on the
core's generic filters (:mod:`posezoo.inference.tracking`).

Image landmarks get a one-euro filter whose speed is measured in object scales per second (object
scale = mean of the width and height, in pixels, of the alignment rect of the raw auxiliary
landmarks), world landmarks an unscaled one-euro filter, auxiliary landmarks a slower one-euro filter
(also scaled by the object scale, MediaPipe's default), visibilities a low-pass filter.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from posezoo.inference.model import Pose, box_around
from posezoo.inference.tracking import DEFAULT_FPS, LowPassFilter, OneEuroFilter
from posezoo_plugins.mediapipe.roi import roi_from_points
from posezoo_plugins.mediapipe.spec import RoiRule, SmoothingSpec

MIN_OBJECT_SCALE = 1e-6  # MediaPipe's min_allowed_object_scale: below it, no smoothing


def bare_rule(rule: RoiRule) -> RoiRule:
    """``rule`` without shift, scale and square_long: the rect MediaPipe measures the object with."""
    return replace(rule, scale_x=1.0, scale_y=1.0, shift_x=0.0, shift_y=0.0, square_long=False)


def object_scale(points: np.ndarray, rule: RoiRule | None) -> float:
    """MediaPipe's object scale in pixels: mean of the width and height of the unscaled alignment
    rect of ``points`` (the auxiliary pair) under ``rule``, or of their bounding box without one."""
    pts = np.asarray(points, np.float64)[:, :2]
    if rule is None:
        w, h = np.ptp(pts[:, 0]), np.ptp(pts[:, 1])
        return float(w + h) * 0.5
    if rule.mode == "alignment":  # the common case, without building a Roi: side = 2 |end - start|
        d = pts[rule.end] - pts[rule.start]
        return 2.0 * math.hypot(d[0], d[1])
    roi = roi_from_points(pts, bare_rule(rule))
    return (roi.w + roi.h) * 0.5


class PoseSmoother:
    """The filters of one tracked person (pose_landmark_filtering.pbtxt).

    ``apply(landmarks, world, aux, t)`` takes raw arrays in pixels ((K, 5) x, y, z, visibility,
    presence; world (K, 3) or None; aux (A, 5) or None) and returns smoothed float32 copies.
    Presence is passed through. ``smooth(pose, t)`` does the same to a :class:`Pose` (the per-track
    filter of :class:`posezoo.inference.regions.TopDownTracker`).
    """

    def __init__(self, spec: SmoothingSpec, scale_rule: RoiRule | None, frequency: float = DEFAULT_FPS):
        self.spec = spec
        self.scale_rule = None if scale_rule is None else bare_rule(scale_rule)
        self.landmarks = OneEuroFilter(*spec.landmarks, frequency=frequency)
        self.world = OneEuroFilter(*spec.world, frequency=frequency)
        self.aux = OneEuroFilter(*spec.aux, frequency=frequency)
        self.visibility = LowPassFilter(spec.visibility_alpha)
        self.aux_visibility = LowPassFilter(spec.visibility_alpha)

    def reset(self) -> None:
        for f in (self.landmarks, self.world, self.aux, self.visibility, self.aux_visibility):
            f.reset()

    def apply(
        self, landmarks: np.ndarray, world: np.ndarray | None, aux: np.ndarray | None, timestamp: float
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        scale = object_scale(aux, self.scale_rule) if aux is not None else object_scale(landmarks, None)
        lm = landmarks.astype(np.float32, copy=True)
        out_aux = None if aux is None else aux.astype(np.float32, copy=True)
        if scale >= MIN_OBJECT_SCALE:  # else: as MediaPipe, landmarks pass unsmoothed
            inv = 1.0 / scale
            lm[:, :3] = self.landmarks.apply(landmarks[:, :3], timestamp, inv)
            if out_aux is not None:
                out_aux[:, :3] = self.aux.apply(aux[:, :3], timestamp, inv)
        if lm.shape[1] > 3:
            lm[:, 3] = self.visibility.apply(landmarks[:, 3])
            if out_aux is not None and out_aux.shape[1] > 3:
                out_aux[:, 3] = self.aux_visibility.apply(aux[:, 3])
        out_world = None
        if world is not None:
            out_world = self.world.apply(world, timestamp).astype(np.float32)
        return lm, out_world, out_aux

    def smooth(self, pose: Pose, timestamp: float) -> Pose:
        """``pose`` with its landmarks, world landmarks and auxiliary landmarks smoothed (and its box
        around the smoothed landmarks)."""
        lms, world, aux = self.apply(pose.landmarks, pose.world_landmarks, pose.aux, timestamp)
        lms = lms.astype(np.float32, copy=False)
        return replace(pose, landmarks=lms, world_landmarks=world, aux=aux, box=box_around(lms))
