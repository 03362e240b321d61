"""Generic video tracking pieces every family may use: the low-pass and one-euro filters, box IoU, and
identities for people found in one pass (:class:`BoxIdentities`).

A family's own video loop (crops carried between frames, which model runs when) lives in the family;
these are its building blocks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DEFAULT_FPS = 30.0


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


# ------------------------------------------------------------------------------------ identities


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` (N, 4) with every box of ``b`` (M, 4), boxes [x0, y0, x1, y1]: (N, M),
    in float64. Boxes that do not overlap, or have no area, give 0. The core's one IoU: box identities,
    the top-down trackers' overlap test (:func:`posezoo.inference.regions.square_iou`) and families'
    non-max suppression use it."""
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
