"""Video tracking and landmark smoothing.

The filters (:class:`LowPassFilter`, :class:`OneEuroFilter`, :class:`PoseSmoother`) and the identity
tracker of boxed detections (:class:`BoxIdentities`) serve every family; :class:`Tracker` is the
two-stage family's video loop. It mirrors MediaPipe's video graph (modules/pose_landmark/pose_landmark_cpu.pbtxt with
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

from posezoo.roi import Roi, roi_from_points
from posezoo.spec import RoiRule, SmoothingSpec

DEFAULT_FPS = 30.0
MIN_OBJECT_SCALE = 1e-6  # MediaPipe's min_allowed_object_scale: below it, no smoothing
MIN_ROI_SIDE = 2.0  # pixels; a smaller tracking ROI cannot hold a pose


# ------------------------------------------------------------------------------------ filters


class LowPassFilter:
    """Exponential smoothing ``y = alpha * x + (1 - alpha) * y_prev`` over an array (MediaPipe's
    LowPassFilter); the first value passes through."""

    def __init__(self, alpha: float = 0.1):
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"low-pass alpha must be in (0, 1], got {alpha}")
        self.alpha = alpha
        self.last_raw: np.ndarray | None = None
        self.stored: np.ndarray | None = None

    def reset(self) -> None:
        self.last_raw = self.stored = None

    def apply(
        self, value: np.ndarray, alpha: float | np.ndarray | None = None, threshold: float | np.ndarray | None = None
    ) -> np.ndarray:
        """Filter ``value`` (any shape, fixed between calls); returns the filter's state (do not
        modify it).

        With a ``threshold`` the step is softened: ``y = y_prev + alpha * threshold *
        asinh((x - y_prev) / threshold)``, close to the plain step for changes well under the threshold
        and growing only logarithmically beyond it (TF.js pose-detection's keypoint filter)."""
        value = np.asarray(value, np.float64)
        a = self.alpha if alpha is None else alpha
        if self.stored is None or self.stored.shape != value.shape:
            self.stored = value.copy()
            self.last_raw = value.copy()
        elif threshold is None:
            self.stored *= 1.0 - a
            self.stored += a * value
            self.last_raw[...] = value
        else:
            self.stored += a * threshold * np.arcsinh((value - self.stored) / threshold)
            self.last_raw[...] = value
        return self.stored


class OneEuroFilter:
    """The one-euro filter (Casiez et al. 2012) over an array, as MediaPipe's OneEuroFilter.

    ``apply(value, t, value_scale)``: the sampling frequency comes from the timestamps (seconds;
    ``frequency`` until two have been seen); the speed estimate ``(x - x_prev) * value_scale * f`` is
    low-passed with ``derivate_cutoff``, and the value is low-passed with a cutoff of
    ``min_cutoff + beta * |speed|``, per element. A timestamp not after the previous one returns the
    value unfiltered (MediaPipe does the same).

    ``threshold_cutoff`` (with ``threshold_beta``): the value's step is softened by the threshold
    ``threshold_cutoff + threshold_beta * |speed|`` (:meth:`LowPassFilter.apply`), as TF.js
    pose-detection's one-euro filter does; None (the default) is the plain filter.
    """

    def __init__(
        self,
        min_cutoff: float,
        beta: float,
        derivate_cutoff: float,
        frequency: float = DEFAULT_FPS,
        threshold_cutoff: float | None = None,
        threshold_beta: float = 0.0,
    ):
        if min_cutoff <= 0 or derivate_cutoff <= 0 or frequency <= 0:
            raise ValueError("one-euro min_cutoff, derivate_cutoff and frequency must be > 0")
        if threshold_cutoff is not None and threshold_cutoff <= 0:
            raise ValueError("one-euro threshold_cutoff must be > 0 (or None for none)")
        self.min_cutoff = float(min_cutoff)
        self.beta = float(beta)
        self.derivate_cutoff = float(derivate_cutoff)
        self.threshold_cutoff = None if threshold_cutoff is None else float(threshold_cutoff)
        self.threshold_beta = float(threshold_beta)
        self.initial_frequency = float(frequency)
        self.frequency = self.initial_frequency
        self.last_time: float | None = None
        self._x = LowPassFilter(1.0)
        self._dx = LowPassFilter(1.0)

    def reset(self) -> None:
        self.frequency = self.initial_frequency
        self.last_time = None
        self._x.reset()
        self._dx.reset()

    def _alpha(self, cutoff):
        te = 1.0 / self.frequency
        tau = 1.0 / (2.0 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / te)

    def apply(self, value: np.ndarray, timestamp: float, value_scale: float = 1.0) -> np.ndarray:
        value = np.asarray(value, np.float64)
        if self.last_time is not None:
            if timestamp <= self.last_time:
                return value.copy()
            self.frequency = 1.0 / (timestamp - self.last_time)
        self.last_time = float(timestamp)
        prev = self._x.last_raw
        if prev is not None and prev.shape == value.shape:
            dvalue = (value - prev) * (value_scale * self.frequency)
        else:
            dvalue = np.zeros_like(value)
        edvalue = self._dx.apply(dvalue, self._alpha(self.derivate_cutoff))
        speed = np.abs(edvalue)
        cutoff = self.min_cutoff + self.beta * speed
        threshold = None
        if self.threshold_cutoff is not None:
            threshold = self.threshold_cutoff + self.threshold_beta * speed
        return self._x.apply(value, self._alpha(cutoff), threshold).copy()


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


# ------------------------------------------------------------------------------------ identities


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` (N, 4) with every box of ``b`` (M, 4), boxes [x0, y0, x1, y1]: (N, M).
    Boxes that do not overlap, or have no area, give 0."""
    a = np.asarray(a, np.float64).reshape(-1, 4)[:, None, :]
    b = np.asarray(b, np.float64).reshape(-1, 4)[None, :, :]
    iw = np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0])
    ih = np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1])
    inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area_a + area_b - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


@dataclass
class _Identity:
    id: int
    box: np.ndarray
    last_seen: float  # seconds


class BoxIdentities:
    """Identities of people over video frames from their boxes, for models that find every person in
    one pass (no crop to carry from frame to frame).

    ``assign(boxes, timestamp)`` takes one frame's boxes ([x0, y0, x1, y1], best detection first) and
    returns an identity per box. Greedy, as TF.js pose-detection's bounding-box tracker: each box in
    turn takes the still unmatched identity whose last box overlaps it most, when that IoU is at least
    ``min_similarity``; a box that takes none starts a new identity. An identity not seen for more than
    ``max_age`` seconds is forgotten, and only the ``max_tracks`` most recently seen are kept, so a
    person who comes back within ``max_age`` keeps their identity.
    """

    def __init__(self, *, min_similarity: float = 0.15, max_age: float = 1.0, max_tracks: int = 18):
        if not 0.0 <= min_similarity <= 1.0:
            raise ValueError(f"min_similarity must be in [0, 1], got {min_similarity}")
        if max_age <= 0 or max_tracks < 1:
            raise ValueError("max_age must be > 0 and max_tracks >= 1")
        self.min_similarity = float(min_similarity)
        self.max_age = float(max_age)
        self.max_tracks = int(max_tracks)
        self._tracks: list[_Identity] = []
        self._next_id = 0

    @property
    def ids(self) -> set[int]:
        """The identities held (seen within ``max_age``)."""
        return {t.id for t in self._tracks}

    def reset(self) -> None:
        """Forget every identity (new ones continue the numbering)."""
        self._tracks = []

    def assign(self, boxes, timestamp: float) -> list[int]:
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        timestamp = float(timestamp)
        self._tracks = [t for t in self._tracks if timestamp - t.last_seen <= self.max_age]
        held = self._tracks
        iou = box_iou(boxes, np.array([t.box for t in held])) if held and len(boxes) else None
        free = list(range(len(held)))
        ids = []
        for i, box in enumerate(boxes):
            best, best_iou = -1, -1.0
            for k in free if iou is not None else ():
                if iou[i, k] >= self.min_similarity and iou[i, k] > best_iou:
                    best, best_iou = k, iou[i, k]
            if best >= 0:
                free.remove(best)
                track = held[best]
                track.box, track.last_seen = box.copy(), timestamp
            else:
                track = _Identity(self._next_id, box.copy(), timestamp)
                self._next_id += 1
                self._tracks.append(track)
            ids.append(track.id)
        self._tracks.sort(key=lambda t: -t.last_seen)  # stable: most recently seen first
        del self._tracks[self.max_tracks :]
        return ids


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
    """Tracks poses over video frames with a :class:`posezoo.estimator.PoseEstimator` (the
    two-stage family's :class:`posezoo.model.PoseTracker`). Each person keeps a ``track_id`` while
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
