"""Composition: models that find regions, models that predict inside regions they are given, and the
top-down pipeline and tracker that join any two of them.

Many pose models are two stages: something finds where to look (a person detector, a palm detector, a
pose model's people, the hands of a body pose), and a keypoint model runs inside each place found. Here
the two stages meet through plain data, so any finder pairs with any keypoint model:

* :class:`Region`: a place in an image, a rotated rectangle in pixels (:class:`Roi`; rotation 0 is a
  box) with what the finder knew: its score, keypoints and their names, its own box, a track id.
* :class:`Frame`: one image as both stages see it (BGR as given, RGB converted once on first use).
* :class:`RegionDetector`: ``find_regions(frame, threshold=) -> [Region]``, best first.
* :class:`RegionModel`: ``predict_regions(frame, regions, threshold=, options=) -> [Pose | None]``
  (one entry per region; None where the model finds no pose), ``next_region(pose)`` (where to look on
  the next video frame) and ``new_smoother(fps)`` (a per-track filter, or None).
* :class:`PoseRegions`: any :class:`PoseModel`'s poses as regions, through a rule ``pose -> Region``.
* :func:`predict_top_down` and :class:`TopDownModel`: detector + region model = a :class:`PoseModel`.
* :class:`TopDownTracker`: the video loop: the detector runs on the first frame, when a track is lost,
  and every ``redetect_every`` frames while fewer than ``max_poses`` are held; otherwise each track's
  region comes from its last pose. Tracks keep their id; a region that overlaps a held one (IoU of
  their :meth:`Region.square` > ``overlap``) is the same person.

Nothing here names a family: MediaPipe's two-stage models run through these (their SSD detector is a
region detector, their landmark model a region model), and a plugin composes others without a core edit.
"""

from __future__ import annotations

import math
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator, Protocol, Sequence

import numpy as np

from posezoo.inference.model import FrameClock, Pose, PoseModel, check_image, option
from posezoo.inference.preprocess import RgbBuffer, Roi, to_rgb
from posezoo.inference.timing import StageClock
from posezoo.inference.tracking import DEFAULT_FPS, box_iou

MIN_REGION_SIDE = 2.0  # pixels; a smaller region cannot hold a pose (the tracker drops the track)


# ------------------------------------------------------------------------------------ data


@dataclass(frozen=True, eq=False)
class Region:
    """A place in an image where a keypoint model should look, with what the finder knew.

    ``roi``: the rotated rectangle in image pixels (centre, size, rotation; rotation 0 is a plain box).
    ``score``: the finder's confidence. ``keypoints``: (K, >=2) float32 pixels (x, y, then e.g. a
    score) the finder saw, named by ``names``. ``box``: the finder's own axis-aligned box [x0, y0, x1,
    y1] in pixels, when it has one. ``track_id``: the person's identity while a tracker follows it.
    """

    roi: Roi
    score: float = 1.0
    keypoints: np.ndarray | None = None
    names: tuple[str, ...] = ()
    box: np.ndarray | None = None
    track_id: int | None = None

    @classmethod
    def from_box(cls, box: Sequence[float], **kw: Any) -> "Region":
        """An unrotated region covering ``box`` [x0, y0, x1, y1] (pixels), which it keeps as ``box``."""
        x0, y0, x1, y1 = (float(v) for v in box)
        kw.setdefault("box", np.array([x0, y0, x1, y1], np.float32))
        return cls(Roi((x0 + x1) * 0.5, (y0 + y1) * 0.5, x1 - x0, y1 - y0, 0.0), **kw)

    def square(self) -> np.ndarray:
        """[x0, y0, x1, y1] of the axis-aligned square on the region's long side around its centre (the
        same for every rotation): what the trackers' overlap test compares."""
        r = max(self.roi.w, self.roi.h) * 0.5
        return np.array([self.roi.cx - r, self.roi.cy - r, self.roi.cx + r, self.roi.cy + r])

    def bounds(self) -> np.ndarray:
        """[x0, y0, x1, y1] around the rotated rectangle's four corners."""
        corners = self.roi.corners()
        return np.concatenate([corners.min(axis=0), corners.max(axis=0)])

    def keypoint(self, name: str) -> np.ndarray | None:
        """The finder's keypoint called ``name`` (its row), or None."""
        if self.keypoints is None or name not in self.names:
            return None
        return self.keypoints[self.names.index(name)]

    def is_usable(self) -> bool:
        """A finite centre and both sides of at least :data:`MIN_REGION_SIDE` pixels."""
        roi = self.roi
        return min(roi.w, roi.h) >= MIN_REGION_SIDE and math.isfinite(roi.cx + roi.cy)


def square_iou(a: Sequence[Region], b: Sequence[Region]) -> np.ndarray:
    """(N, M) IoU of the :meth:`Region.square` of every region of ``a`` with every one of ``b``
    (:func:`posezoo.inference.tracking.box_iou`): the one overlap test of the trackers."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    return box_iou(np.array([r.square() for r in a]), np.array([r.square() for r in b]))


def overlaps(region: Region, others: Sequence[Region], threshold: float) -> bool:
    """Whether ``region`` overlaps any of ``others`` by more than ``threshold`` (:func:`square_iou`)."""
    return bool(others) and bool((square_iou([region], others) > threshold).any())


class Frame:
    """One image as the stages of a composed model see it: ``bgr`` (the caller's array, checked),
    ``rgb`` (converted on first use, once for every stage), ``size`` (width, height) and, in video, the
    ``timestamp`` in seconds. ``to_rgb``: the conversion (default: a new RGB array; a model passes its
    reused buffer)."""

    __slots__ = ("bgr", "timestamp", "_rgb", "_to_rgb")

    def __init__(self, bgr: np.ndarray, *, timestamp: float | None = None, to_rgb: Callable[[np.ndarray], np.ndarray] | None = None):
        self.bgr = bgr
        self.timestamp = timestamp
        self._rgb: np.ndarray | None = None
        self._to_rgb = to_rgb

    @classmethod
    def of(cls, image: "np.ndarray | Frame") -> "Frame":
        """``image`` as a frame (a frame is returned as is; an array is checked)."""
        return image if isinstance(image, Frame) else cls(check_image(image))

    @property
    def rgb(self) -> np.ndarray:
        if self._rgb is None:
            self._rgb = (self._to_rgb or to_rgb)(self.bgr)
        return self._rgb

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.bgr.shape[1], self.bgr.shape[0]


# ------------------------------------------------------------------------------------ interfaces


class Smoother(Protocol):
    """A per-track filter: ``smooth(pose, timestamp) -> pose`` (a new pose, or the same one changed)."""

    def smooth(self, pose: Pose, timestamp: float) -> Pose: ...


class RegionDetector:
    """Finds regions (people, hands, faces, ...) in an image. Subclass it, or duck-type it: only
    :meth:`find_regions` is needed."""

    def find_regions(self, frame: Frame, *, threshold: float | None = None) -> list[Region]:
        """Regions in ``frame``, best first; ``threshold``: the finder's score threshold in [0, 1] (None:
        its default)."""
        raise NotImplementedError


class RegionModel:
    """A keypoint model that predicts inside regions it is given. Subclass it, or duck-type it:
    :meth:`predict_regions` is needed; the other two have defaults."""

    def predict_regions(
        self, frame: Frame, regions: Sequence[Region], *, threshold: float | None = None, options: Any = None
    ) -> list[Pose | None]:
        """One entry per region, in order: the pose found in it (image pixels), or None where the model
        finds none (its presence under ``threshold``, None: its default). ``options``: the composed
        model's options object; a region model reads the options it knows by name (e.g. ``segmentation``)."""
        raise NotImplementedError

    def next_region(self, pose: Pose) -> Region | None:
        """Where to look for this person on the next video frame (None: nowhere; the detector must find
        them again). Default: the square of 1.25 x the long side of the pose's box, around its centre."""
        x0, y0, x1, y1 = (float(v) for v in pose.box)
        side = 1.25 * max(x1 - x0, y1 - y0)
        return Region(Roi((x0 + x1) * 0.5, (y0 + y1) * 0.5, side, side), score=pose.score)

    def new_smoother(self, fps: float) -> Smoother | None:
        """A new filter for one track (None: poses are not smoothed). Default: None."""
        return None


def _timed_parts(clock: StageClock, parts: Sequence[Any]) -> ExitStack:
    """Enter ``part.timed(clock)`` for every part that has it (a model, a region stage)."""
    stack = ExitStack()
    for part in parts:
        timed = getattr(part, "timed", None)
        if callable(timed):
            stack.enter_context(timed(clock))
    return stack


class PoseRegions(RegionDetector):
    """Any :class:`PoseModel` as a region detector: each pose it finds becomes a region through ``rule``
    (``pose -> Region``, or None to skip the pose), e.g. a multi-person keypoint model's people as the
    crops of another keypoint model. ``max_poses`` is passed to the model's ``predict``, ``options`` too
    (its own options, as keywords)."""

    def __init__(self, model: PoseModel, rule: Callable[[Pose], Region | None], *, max_poses: int | None = None, options: dict | None = None):
        self.model = model
        self.rule = rule
        self.max_poses = max_poses
        self.options = dict(options or {})

    def find_regions(self, frame: Frame, *, threshold: float | None = None) -> list[Region]:
        poses = self.model.predict(frame.bgr, max_poses=self.max_poses, threshold=threshold, **self.options)
        return [r for r in map(self.rule, poses) if r is not None]

    def timed(self, clock: StageClock):
        return self.model.timed(clock)


# ------------------------------------------------------------------------------------ the pipeline


def predict_top_down(
    detector: RegionDetector,
    model: RegionModel,
    frame: Frame,
    *,
    max_poses: int | None = None,
    threshold: float | None = None,
    options: Any = None,
) -> list[Pose]:
    """Poses in ``frame``: the detector's regions (best first, at most ``max_poses``), the region model
    in each; a region where the model finds no pose gives none. ``threshold`` goes to both stages."""
    regions = detector.find_regions(frame, threshold=threshold)
    if max_poses is not None:
        regions = regions[:max_poses]
    if not regions:
        return []
    poses = model.predict_regions(frame, regions, threshold=threshold, options=options)
    return [p for p in poses if p is not None]


@dataclass(frozen=True)
class TopDownOptions:
    """The options of a top-down model (a family may bring its own type with more fields; the tracker
    reads ``redetect_every``, ``overlap`` and ``fps`` by name)."""

    redetect_every: int = option(15, help="video, several people: run the detector every N frames while fewer are held")
    overlap: float = option(0.5, help="video: a detection whose region overlaps a held one this much is the same person")
    fps: float = option(DEFAULT_FPS, help="video: frames per second assumed when updates carry no timestamp")


class TopDownModel(PoseModel):
    """A :class:`PoseModel` from a region detector and a region model: ``predict`` runs
    :func:`predict_top_down`, ``tracker`` a :class:`TopDownTracker`. ``sessions``: the onnxruntime
    sessions of both stages by this model's file roles (what ``posezoo info`` and the bench show; each
    session reports its runs under that role); a part with a ``timed(clock)`` context manager is timed
    along with the model."""

    options_type = TopDownOptions

    def __init__(
        self,
        spec: Any,
        detector: RegionDetector,
        model: RegionModel,
        *,
        sessions: dict | None = None,
        variant: str | None = None,
        capabilities=None,
    ):
        super().__init__(spec, sessions or {}, variant=variant, capabilities=capabilities)
        for role, session in self.sessions.items():
            session.role = role  # a part's session (opened by another model) times itself as this model's role
        self.detector = detector
        self.region_model = model
        self._rgb = RgbBuffer()

    def to_rgb(self, image_bgr: np.ndarray) -> np.ndarray:
        """BGR (or gray, or BGRA) -> RGB into a buffer reused while the frame size holds."""
        with self.clock("preprocess"):
            return self._rgb(image_bgr)

    def frame(self, image_bgr: np.ndarray, timestamp: float | None = None) -> Frame:
        """A :class:`Frame` of a checked image whose RGB comes from this model's buffer."""
        return Frame(image_bgr, timestamp=timestamp, to_rgb=self.to_rgb)

    def _predict(self, image_bgr: np.ndarray, *, max_poses: int | None, threshold: float | None, options: Any) -> list[Pose]:
        return predict_top_down(
            self.detector, self.region_model, self.frame(image_bgr), max_poses=max_poses, threshold=threshold, options=options
        )

    def _tracker(self, *, max_poses: int, threshold: float | None, smooth: bool, options: Any) -> "TopDownTracker":
        return TopDownTracker(
            self.detector,
            self.region_model,
            max_poses=max_poses,
            threshold=threshold,
            smooth=smooth,
            options=options,
            to_rgb=self.to_rgb,
            **tracker_settings(options),
        )

    @contextmanager
    def timed(self, clock: StageClock) -> Iterator[StageClock]:
        with super().timed(clock), _timed_parts(clock, (self.detector, self.region_model)):
            yield clock


def tracker_settings(options: Any) -> dict:
    """``redetect_every``, ``overlap`` and ``fps`` from an options object (:class:`TopDownOptions`'
    defaults for what it lacks)."""
    defaults = TopDownOptions()
    return {k: getattr(options, k, getattr(defaults, k)) for k in ("redetect_every", "overlap", "fps")}


# ------------------------------------------------------------------------------------ the tracker


@dataclass
class Track:
    """One person followed by a :class:`TopDownTracker`: the region to run on the next frame, the
    person's id and filter."""

    region: Region
    id: int
    smoother: Smoother | None = field(default=None, repr=False)


class TopDownTracker:
    """Tracks poses over video frames with a region detector and a region model (a
    :class:`posezoo.inference.model.PoseTracker`: ``update(frame_bgr, timestamp)``, ``reset()``).

    Each frame: the model runs in every held track's region. The detector runs when no one is held,
    when a track was lost this frame (the model found no pose in its region; on the same frame, so a
    cut costs no empty frame), and every ``redetect_every`` frames while fewer than ``max_poses`` are
    held. Its regions are tried best first until the free slots are filled, with one spare try (a false
    best region does not cost the frame); a region overlapping a held one (:func:`overlaps`, IoU of their
    squares > ``overlap``) is the same person and is skipped. Each pose is then smoothed by its track's
    filter (:meth:`RegionModel.new_smoother`, unless ``smooth`` is False), and its track's next region
    comes from the smoothed pose (:meth:`RegionModel.next_region`); when two tracks converge on one
    person the older stays, and a track whose next region is unusable (:meth:`Region.is_usable`) ends
    (the detector finds the person again).

    Poses come in track order (people held from earlier frames first, in the same order every frame;
    new ones after them, best region first), each with its ``track_id``: stable while the person is
    held, new when a person is found again after being lost. ``detector_runs`` and ``region_runs``
    count model runs; ``frames`` counts updates; ``tracked`` is how many are held for the next frame.
    """

    def __init__(
        self,
        detector: RegionDetector,
        model: RegionModel,
        *,
        max_poses: int = 1,
        threshold: float | None = None,
        options: Any = None,
        smooth: bool = True,
        redetect_every: int = 15,
        overlap: float = 0.5,
        fps: float = DEFAULT_FPS,
        to_rgb: Callable[[np.ndarray], np.ndarray] | None = None,
    ):
        if max_poses < 1:
            raise ValueError(f"max_poses must be >= 1, got {max_poses}")
        if not fps > 0 or not math.isfinite(fps):
            raise ValueError(f"fps must be a finite number > 0, got {fps}")
        self.detector = detector
        self.model = model
        self.max_poses = int(max_poses)
        self.threshold = threshold
        self.options = options
        self.smooth = smooth
        self.redetect_every = max(1, int(redetect_every))
        self.overlap = overlap
        self.fps = float(fps)
        self._clock = FrameClock(self.fps)
        self._to_rgb = to_rgb or RgbBuffer()
        self._tracks: list[Track] = []
        self._next_id = 0
        self._last_detect = -1
        self.frames = 0
        self.detector_runs = 0
        self.region_runs = 0

    @property
    def tracked(self) -> int:
        """How many people are held for the next frame."""
        return len(self._tracks)

    @property
    def tracks(self) -> tuple[Track, ...]:
        return tuple(self._tracks)

    def reset(self) -> None:
        """Forget every track and filter; the next update runs the detector. Counters are kept."""
        self._tracks = []
        self._last_detect = -1
        self._clock.reset()

    def _run(self, frame: Frame, regions: Sequence[Region]) -> list[Pose | None]:
        self.region_runs += len(regions)
        return self.model.predict_regions(frame, regions, threshold=self.threshold, options=self.options)

    def _new_track(self, region: Region) -> Track:
        smoother = self.model.new_smoother(self.fps) if self.smooth else None
        track = Track(replace(region, track_id=self._next_id), self._next_id, smoother)
        self._next_id += 1
        return track

    def update(self, frame_bgr: np.ndarray, timestamp: float | None = None) -> list[Pose]:
        """Poses on the next video frame (BGR), in track order; ``timestamp`` in seconds (default:
        the frame count / fps)."""
        image = check_image(frame_bgr)
        timestamp = self._clock.next(timestamp, self.frames)
        frame = Frame(image, timestamp=timestamp, to_rgb=self._to_rgb)
        index = self.frames
        self.frames += 1

        kept: list[tuple[Track, Pose]] = []
        lost = False
        if self._tracks:
            for track, pose in zip(self._tracks, self._run(frame, [t.region for t in self._tracks])):
                if pose is None:
                    lost = True
                else:
                    kept.append((track, pose))

        due = len(kept) < self.max_poses and index - self._last_detect >= self.redetect_every
        if lost or not kept or due:
            self.detector_runs += 1
            self._last_detect = index
            tries = self.max_poses - len(kept) + 1  # one spare try when the model finds no pose
            for region in self.detector.find_regions(frame, threshold=self.threshold):
                if len(kept) >= self.max_poses or tries <= 0:
                    break
                if overlaps(region, [t.region for t, _ in kept], self.overlap):
                    continue
                tries -= 1
                pose = self._run(frame, [region])[0]
                if pose is not None:
                    kept.append((self._new_track(region), pose))

        poses: list[Pose] = []
        tracks: list[Track] = []
        for track, pose in kept:  # held tracks first, in their order; then new ones, best first
            if track.smoother is not None:
                pose = track.smoother.smooth(pose, timestamp)
            pose.track_id = track.id
            nxt = self.model.next_region(pose)
            if nxt is not None and overlaps(nxt, [t.region for t in tracks], self.overlap):
                continue  # converged on a person already held (by an older track): drop it
            poses.append(pose)
            if nxt is not None and nxt.is_usable():
                track.region = replace(nxt, track_id=track.id)
                tracks.append(track)
            # else: no usable region holds the pose; the detector finds this person again
        self._tracks = tracks
        return poses


__all__ = [
    "Frame",
    "MIN_REGION_SIDE",
    "PoseRegions",
    "Region",
    "RegionDetector",
    "RegionModel",
    "Smoother",
    "TopDownModel",
    "TopDownOptions",
    "TopDownTracker",
    "Track",
    "overlaps",
    "predict_top_down",
    "square_iou",
    "tracker_settings",
]
