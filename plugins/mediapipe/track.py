"""Video tracking and landmark smoothing.

The two-stage family's video loop (:class:`Tracker`) and its landmark smoother (:class:`PoseSmoother`),
on the core's generic filters (:mod:`posezoo.inference.tracking`). It mirrors MediaPipe's video graph (modules/pose_landmark/pose_landmark_cpu.pbtxt with
``static_image_mode`` off):

* The detector runs only when no ROI is held (first frame, or the pose flag fell under the
  threshold). Otherwise the landmark model runs on the ROI taken from the previous frame's
  **smoothed auxiliary landmarks** (pose_landmarks_to_roi.pbtxt: the same alignment, rotation,
  scale and square_long rule as from a detection).
* Landmarks are smoothed (pose_landmark_filtering.pbtxt): image landmarks with a one-euro filter
  whose speed is measured in object scales per second (object scale = mean of the width and height,
  in pixels, of the alignment rect of the raw auxiliary landmarks), world landmarks with an unscaled
  one-euro filter, auxiliary landmarks with a slower one-euro filter (also scaled by the object
  scale, MediaPipe's default), visibilities with a low-pass filter. Filters reset when a track is
  lost.

Two choices differ from MediaPipe's single-person graph:

* When the tracked ROI loses the pose, the detector runs on **the same frame** (MediaPipe waits for
  the next one), so a scene cut to another person costs no empty frame.
* Several people (``max_poses > 1``): one ROI per tracked person. The detector runs when no one is
  held, when any track was lost this frame, and otherwise every ``redetect_every`` frames while
  fewer than ``max_poses`` are held (to pick up people who walk in). A detection whose ROI overlaps
  a held track's ROI (IoU of their bounding squares > ``overlap``) is the same person and is
  skipped; when two tracks converge on one person the older one stays. Poses come in track order
  (people held from earlier frames first, in the same order every frame; new ones after them, best
  detection first), so ``poses[i]`` stays the same person while tracked. With ``max_poses == 1``
  this reduces to MediaPipe's rule.
* When the detector runs, its detections are tried best first until the free slots are filled,
  with one spare try: MediaPipe tries only the best one, so a false best detection costs it the
  frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from posezoo.inference.tracking import DEFAULT_FPS, LowPassFilter, OneEuroFilter
from posezoo_plugins.mediapipe.roi import Roi, roi_from_points
from posezoo_plugins.mediapipe.spec import RoiRule, SmoothingSpec

MIN_OBJECT_SCALE = 1e-6  # MediaPipe's min_allowed_object_scale: below it, no smoothing
MIN_ROI_SIDE = 2.0  # pixels; a smaller tracking ROI cannot hold a pose


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
    Presence is passed through.
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


# ------------------------------------------------------------------------------------ tracker


def _square_iou(a: Roi, b: Roi) -> float:
    """IoU of the axis-aligned bounding squares of two ROIs (cheap 'same person' test)."""
    ra, rb = max(a.w, a.h) * 0.5, max(b.w, b.h) * 0.5
    ix = min(a.cx + ra, b.cx + rb) - max(a.cx - ra, b.cx - rb)
    iy = min(a.cy + ra, b.cy + rb) - max(a.cy - ra, b.cy - rb)
    if ix <= 0 or iy <= 0:
        return 0.0
    inter = ix * iy
    return inter / (4 * ra * ra + 4 * rb * rb - inter)


@dataclass
class _Track:
    roi: Roi  # the ROI to run on the next frame
    score: float  # the detector's score when the track started
    smoother: PoseSmoother | None
    id: int = 0  # the person's identity (Pose.track_id), new for every track


class Tracker:
    """Tracks poses over video frames with a :class:`posezoo_plugins.mediapipe.model.PoseEstimator` (the
    two-stage family's :class:`posezoo.inference.model.PoseTracker`). Each person keeps a ``track_id`` while
    held; a person found again after being lost gets a new one.

    ``update(frame_bgr, timestamp=None) -> list[Pose]``; ``timestamp`` in seconds (default: the frame
    count at ``fps``). ``reset()`` forgets every track (the next update runs the detector).
    ``detector_runs`` and ``landmark_runs`` count model runs; ``frames`` counts updates.
    """

    def __init__(
        self,
        estimator,
        *,
        max_poses: int = 1,
        threshold: float | None = None,
        segmentation: bool = False,
        smooth: bool = True,
        redetect_every: int = 15,
        overlap: float = 0.5,
        fps: float = DEFAULT_FPS,
    ):
        if max_poses < 1:
            raise ValueError(f"max_poses must be >= 1, got {max_poses}")
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.estimator = estimator
        spec = estimator.spec
        self.max_poses = int(max_poses)
        self.threshold = threshold
        self.flag_threshold = spec.landmark.flag_threshold if threshold is None else threshold
        self.segmentation = segmentation
        self.smooth = smooth
        self.redetect_every = max(1, int(redetect_every))
        self.overlap = overlap
        self.fps = float(fps)
        self._rule = spec.landmark.tracking_roi or spec.detector.roi
        self._scale_rule = self._rule if spec.landmark.aux_landmarks is not None else None
        self._tracks: list[_Track] = []
        self._next_id = 0
        self.frames = 0
        self.detector_runs = 0
        self.landmark_runs = 0
        self._last_detect = -1

    @property
    def tracked(self) -> int:
        """How many people are held for the next frame."""
        return len(self._tracks)

    def reset(self) -> None:
        """Forget every track and filter; the next update runs the detector. Counters are kept."""
        self._tracks = []
        self._last_detect = -1

    def _landmarks(self, rgb: np.ndarray, roi: Roi):
        self.landmark_runs += 1
        return self.estimator.landmarks_in_roi(rgb, roi, segmentation=self.segmentation)

    def _new_smoother(self) -> PoseSmoother | None:
        if not self.smooth:
            return None
        return PoseSmoother(self.estimator.spec.smoothing, self._scale_rule, frequency=self.fps)

    def update(self, frame_bgr: np.ndarray, timestamp: float | None = None) -> list:
        """Poses on the next video frame (BGR), in track order (see the module docstring)."""
        est = self.estimator
        rgb = est.to_rgb(frame_bgr)
        if timestamp is None:
            timestamp = self.frames / self.fps
        timestamp = float(timestamp)
        frame = self.frames
        self.frames += 1

        kept: list[tuple[_Track, object]] = []
        lost = False
        for track in self._tracks:
            result = self._landmarks(rgb, track.roi)
            if result.flag >= self.flag_threshold:
                kept.append((track, result))
            else:
                lost = True

        due = len(kept) < self.max_poses and frame - self._last_detect >= self.redetect_every
        if lost or not kept or due:
            self.detector_runs += 1
            self._last_detect = frame
            tries = self.max_poses - len(kept) + 1  # one spare try when a detection's flag fails
            for det in est.detect_rgb(rgb, threshold=self.threshold):
                if len(kept) >= self.max_poses or tries <= 0:
                    break
                roi = est.roi_from_detection(det)
                if any(_square_iou(roi, t.roi) > self.overlap for t, _ in kept):
                    continue
                tries -= 1
                result = self._landmarks(rgb, roi)
                if result.flag >= self.flag_threshold:
                    kept.append((_Track(roi, det.score, self._new_smoother(), self._next_id), result))
                    self._next_id += 1

        poses = []
        tracks: list[_Track] = []
        for track, result in kept:  # held tracks first, in their order; then new ones, best first
            if track.smoother is not None:
                lms, world, aux = track.smoother.apply(result.landmarks, result.world, result.aux, timestamp)
                result.landmarks, result.world, result.aux = lms, world, aux
            pose = est.make_pose(result, track.score, track.id)
            next_roi = est.roi_from_landmarks(pose)
            if any(_square_iou(next_roi, t.roi) > self.overlap for t in tracks):
                continue  # converged on a person already held (by an older track): drop it
            poses.append(pose)
            if min(next_roi.w, next_roi.h) >= MIN_ROI_SIDE and math.isfinite(next_roi.cx + next_roi.cy):
                track.roi = next_roi
                tracks.append(track)
            # else: a degenerate ROI cannot hold the pose; the detector finds this person again
        self._tracks = tracks
        return poses
