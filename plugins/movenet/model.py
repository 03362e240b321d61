"""The MoveNet family's model: one onnxruntime session, TF.js pose-detection's pre- and post-processing.

Single-person models (Lightning, Thunder) see a square crop of the image, cut with TensorFlow's
``crop_and_resize`` (posezoo.inference.preprocess) and cast to int32: for a photo, the centred square on the
image's short side; in video, the crop follows the person (:mod:`posezoo_plugins.movenet.crop`). The
multi-person model sees the whole image resized with TensorFlow's ``resize_bilinear`` to
``input_size`` on its long side, zero-padded to multiples of 32. Keypoints come out normalized to the
model input and are mapped back to image pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from posezoo.errors import InputError, UsageError
from posezoo.inference.model import Family, FrameClock, Pose, PoseModel, box_around, option
from posezoo.inference.preprocess import SampleGrid, crop_and_resize_grid, crop_and_resize_warp, resize_bilinear_grid, to_rgb
from posezoo.inference.runtime import Session
from posezoo.inference.tracking import DEFAULT_FPS, BoxIdentities, LowPassFilter, OneEuroFilter
from posezoo_plugins.movenet.crop import Crop, initial_crop, next_crop
from posezoo_plugins.movenet.spec import MoveNetSpec

COLUMNS = ("x", "y", "score")  # of Pose.landmarks: pixels, then the keypoint's score


def _js_round(x: float) -> int:
    """JavaScript's Math.round (halves up), which the reference uses for the resized size."""
    return int(math.floor(x + 0.5))


class Detection:
    """One person as the model saw it: ``keypoints`` (K, 3) x, y normalized to the image and score;
    ``score``; ``box`` (x0, y0, x1, y1) normalized, or None (single-person models give none)."""

    __slots__ = ("keypoints", "score", "box")

    def __init__(self, keypoints: np.ndarray, score: float, box: np.ndarray | None = None):
        self.keypoints = keypoints
        self.score = score
        self.box = box


@dataclass(frozen=True)
class MoveNetOptions:
    """MoveNet's options (video only)."""

    exact_crop: bool | None = option(None, help="video: cut crops with TensorFlow's kernel (True) or OpenCV's warp (False); default: the spec's video_crop")
    fps: float = option(DEFAULT_FPS, help="video: frames per second assumed when updates carry no timestamp")


class MoveNet(PoseModel):
    """Runs a :class:`MoveNetSpec` on its ONNX file ``{"model": path}``.

    The session's input and output are checked against the spec on construction (:class:`PluginError`
    naming the file and what differs). Input buffers are reused from call to call: one model serves one
    thread. ``input_size`` of a multi-person model may be changed (a multiple of 32).
    """

    family = "movenet"
    options_type = MoveNetOptions

    def __init__(self, spec: MoveNetSpec, files: dict[str, Path], *, variant: str | None = None, device: str = "auto"):
        path = self.require_files(spec, files, MoveNetSpec.roles)["model"]
        session = Session(path, device, role="model")
        super().__init__(spec, {"model": session}, variant=variant)
        self._session = session
        self._out = self._check_session()
        self._input_size = spec.input_size
        self._tensor: np.ndarray | None = None  # int32 model input, reused while its shape holds
        self._resize: tuple[tuple, SampleGrid, tuple[int, int, int, int]] | None = None  # multi-person
        self._crop_grid: tuple[tuple, SampleGrid] | None = None  # single-person: the last crop's grid

    def _check_session(self) -> int:
        s, spec = self._session, self.spec
        side = None if spec.multipose else spec.input_size
        s.check_input((1, side, side, 3), spec=spec.name, dtype="tensor(int32)")
        k = len(spec.keypoint_names)
        expected = (1, spec.max_poses, spec.output_width) if spec.multipose else (1, 1, k, 3)
        return s.check_output(spec.output, "keypoints", expected, spec=spec.name)

    # -- options -----------------------------------------------------------------------------------

    @property
    def input_size(self) -> int:
        """Single-person: the input side. Multi-person: the long side the image is resized to."""
        return self._input_size

    @input_size.setter
    def input_size(self, value: int) -> None:
        d = self.spec.size_divisor
        if not self.spec.multipose:
            raise InputError(f"model {self.name!r} has a fixed {self.spec.input_size}x{self.spec.input_size} input")
        if isinstance(value, bool) or not isinstance(value, int) or value < d or value % d:
            raise InputError(f"input size {value!r} for {self.name!r} is not a positive multiple of {d}", f"use e.g. {d * 8}")
        self._input_size = value
        self._resize = None

    # -- stages ------------------------------------------------------------------------------------

    def _input(self, shape: tuple[int, ...]) -> np.ndarray:
        if self._tensor is None or self._tensor.shape != shape:
            self._tensor = np.zeros(shape, np.int32)
        return self._tensor

    @staticmethod
    def _fill(tensor: np.ndarray, grid: SampleGrid, image_bgr: np.ndarray, height: int, width: int) -> None:
        """Resample ``image_bgr`` on ``grid`` into ``tensor[0, :height, :width]``: RGB, truncated toward
        zero to int32 as TensorFlow casts."""
        grid.sample(image_bgr, out=tensor[0, :height, :width], swap_rb=True)

    @staticmethod
    def _bgr(image: np.ndarray) -> np.ndarray:
        """A checked 3-channel BGR image (gray and BGRA converted; anything else is an InputError)."""
        if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3:
            if min(image.shape[:2]) >= 1:
                return image
        rgb = to_rgb(image)  # raises InputError for what is not an image
        return np.ascontiguousarray(rgb[:, :, ::-1])

    def detect_in_crop(self, image_bgr: np.ndarray, crop: Crop, *, exact: bool = True) -> Detection:
        """Single-person: the model on ``crop`` (ymin, xmin, ymax, xmax, normalized) of a BGR image,
        cut by TensorFlow's ``crop_and_resize`` (``exact``) or OpenCV's quicker warp (see
        :attr:`MoveNetSpec.video_crop`)."""
        h, w = image_bgr.shape[:2]
        side = self.spec.input_size
        with self.clock("preprocess"):
            tensor = self._input((1, side, side, 3))
            if exact:
                key = (tuple(crop), h, w)
                if self._crop_grid is None or self._crop_grid[0] != key:  # photos and static video reuse it
                    self._crop_grid = (key, crop_and_resize_grid(crop, (h, w), (side, side)))
                self._fill(tensor, self._crop_grid[1], image_bgr, side, side)
            else:
                crop_and_resize_warp(image_bgr, crop, (side, side), out=tensor[0], swap_rb=True)
        raw = self._session.run_reused(tensor)[self._out]
        with self.clock("decode"):
            values = np.asarray(raw, np.float64).reshape(-1, 3)  # (K, 3): y, x, score in the crop
            ymin, xmin, ymax, xmax = crop
            kps = np.empty_like(values)
            kps[:, 0] = xmin + values[:, 1] * (xmax - xmin)
            kps[:, 1] = ymin + values[:, 0] * (ymax - ymin)
            kps[:, 2] = values[:, 2]
            scores = values[:, 2]
            valid = scores > self.spec.min_keypoint_score
            score = float(scores[valid].sum() / valid.sum()) if valid.any() else 0.0
        return Detection(kps, score)

    def _resize_plan(self, h: int, w: int) -> tuple[SampleGrid, tuple[int, int, int, int]]:
        """The resize grid and (resized h, w, padded h, w) of a multi-person input for an h x w image."""
        key = (h, w, self._input_size)
        if self._resize is None or self._resize[0] != key:
            s, d = self._input_size, self.spec.size_divisor
            if w > h:
                rw, rh = s, _js_round(s * h / w)
                pw, ph = rw, math.ceil(rh / d) * d
            else:
                rh, rw = s, _js_round(s * w / h)
                ph, pw = rh, math.ceil(rw / d) * d
            rh, rw = max(1, rh), max(1, rw)
            ph, pw = max(d, ph), max(d, pw)
            self._resize = (key, resize_bilinear_grid((h, w), (rh, rw)), (rh, rw, ph, pw))
        return self._resize[1], self._resize[2]

    def detect_all(self, image_bgr: np.ndarray, *, threshold: float | None = None) -> list[Detection]:
        """Multi-person: every person scoring at least ``threshold`` (default: the spec's), best first."""
        h, w = image_bgr.shape[:2]
        with self.clock("preprocess"):
            grid, (rh, rw, ph, pw) = self._resize_plan(h, w)
            tensor = self._input((1, ph, pw, 3))
            self._fill(tensor, grid, image_bgr, rh, rw)
            tensor[0, rh:] = 0  # zero padding (the buffer may hold an image of another size)
            tensor[0, :rh, rw:] = 0
        raw = self._session.run_reused(tensor)[self._out]
        with self.clock("decode"):
            thr = self.spec.min_pose_score if threshold is None else threshold
            k = len(self.spec.keypoint_names)
            rows = np.asarray(raw, np.float64).reshape(-1, self.spec.output_width)
            sy, sx = ph / rh, pw / rw  # padded-input fractions -> image fractions
            found = []
            for row in rows[np.argsort(-rows[:, -1], kind="stable")]:
                score = float(row[-1])
                if score < thr:
                    continue
                values = row[: k * 3].reshape(k, 3)
                kps = np.empty_like(values)
                kps[:, 0] = values[:, 1] * sx
                kps[:, 1] = values[:, 0] * sy
                kps[:, 2] = values[:, 2]
                ymin, xmin, ymax, xmax = row[k * 3 : k * 3 + 4]
                found.append(Detection(kps, score, np.array([xmin * sx, ymin * sy, xmax * sx, ymax * sy])))
        return found

    def make_pose(self, det: Detection, width: int, height: int, track_id: int | None = None) -> Pose:
        """A :class:`Pose` in image pixels. Its box: the model's (multi-person), else the box around the
        keypoints scoring above ``min_keypoint_score`` (all keypoints when none does)."""
        scale = np.array([width, height], np.float64)
        lms = np.empty((len(det.keypoints), 3), np.float32)
        lms[:, :2] = det.keypoints[:, :2] * scale
        lms[:, 2] = det.keypoints[:, 2]
        if det.box is not None:
            box = (det.box.reshape(2, 2) * scale).reshape(4).astype(np.float32)
        else:
            sure = lms[:, 2] > self.spec.min_keypoint_score
            box = box_around(lms[sure] if sure.any() else lms)
        return Pose(
            landmarks=lms,
            columns=COLUMNS,
            names=self.spec.keypoint_names,
            score=det.score,
            box=box,
            presence=det.score,
            track_id=track_id,
        )

    # -- the model interface -----------------------------------------------------------------------

    def _predict(self, image_bgr: np.ndarray, *, max_poses: int | None, threshold: float | None, options: "MoveNetOptions") -> list[Pose]:
        """Poses on a BGR image, best first; ``threshold``: the person score to keep one (default: the
        spec's ``min_pose_score``). Single-person models look at the centred square on the image's short
        side (TF.js pose-detection's first crop)."""
        image = self._bgr(image_bgr)
        h, w = image.shape[:2]
        if self.spec.multipose:
            detections = self.detect_all(image, threshold=threshold)[:max_poses]
        else:
            det = self.detect_in_crop(image, initial_crop(w, h, first=True))
            thr = self.spec.min_pose_score if threshold is None else threshold
            detections = [det] if det.score >= thr else []
        return [self.make_pose(d, w, h) for d in detections]

    def _tracker(self, *, max_poses: int, threshold: float | None, smooth: bool, options: "MoveNetOptions"):
        """A video tracker: the crop follows the person (single-person models), or identities follow
        people's boxes (multi-person); keypoints are one-euro filtered unless ``smooth`` is False.
        ``exact_crop``: cut a single-person model's crops with TensorFlow's kernel (True) or OpenCV's
        quicker warp (False); default: the spec's ``video_crop``. Multi-person models do not crop."""
        if not (options.fps > 0) or not math.isfinite(options.fps):
            raise UsageError(f"fps must be a finite number > 0, got {options.fps}", "e.g. --option fps=30")
        if self.spec.multipose:
            return MultiPoseTracker(self, max_poses=max_poses, threshold=threshold, smooth=smooth, fps=options.fps)
        return CropTracker(self, threshold=threshold, smooth=smooth, fps=options.fps, exact_crop=options.exact_crop)


class _Smoothing:
    """Per-person keypoint filters of a tracker (None when smoothing is off)."""

    def __init__(self, model: MoveNet, fps: float):
        self.spec = model.spec.smoothing
        self.fps = fps

    def new(self) -> OneEuroFilter:
        s = self.spec
        return OneEuroFilter(
            s.min_cutoff, s.beta, s.derivate_cutoff, frequency=self.fps,
            threshold_cutoff=s.threshold_cutoff, threshold_beta=s.threshold_beta,
        )  # fmt: skip


class _VideoTracker:
    """What both trackers share: the model, smoothing settings, frame and model-run counts, and the
    start of every ``update`` (the frame checked, the timestamp defaulted)."""

    def __init__(self, model: MoveNet, *, smooth: bool, fps: float):
        self.model = model
        self.fps = float(fps)
        self.smooth = smooth
        self._smoothing = _Smoothing(model, fps)
        self._clock = FrameClock(self.fps)
        self.frames = 0
        self.model_runs = 0

    def _next_frame(self, frame_bgr: np.ndarray, timestamp: float | None) -> tuple[np.ndarray, float]:
        """The checked BGR image of this frame and its timestamp (default: frame count / fps)."""
        image = self.model._bgr(frame_bgr)
        timestamp = self._clock.next(timestamp, self.frames)
        self.frames += 1
        return image, timestamp


class CropTracker(_VideoTracker):
    """Single-person video (TF.js pose-detection's MoveNet loop): each frame runs the model on the crop
    found from the previous frame's keypoints (smoothed first), low-passed; the first frame, and the one
    after the person was lost (score under the threshold), use the centred square. Crops are cut as
    ``exact_crop`` says (see :attr:`MoveNetSpec.video_crop`).

    ``update(frame_bgr, timestamp=None) -> list[Pose]`` (timestamp in seconds, default frame count /
    fps); ``reset()``; ``crop``: the crop the next frame will use (None: the centred square).
    """

    def __init__(
        self,
        model: MoveNet,
        *,
        threshold: float | None = None,
        smooth: bool = True,
        fps: float = DEFAULT_FPS,
        exact_crop: bool | None = None,
    ):
        super().__init__(model, smooth=smooth, fps=fps)
        self.threshold = model.spec.min_pose_score if threshold is None else threshold
        self.exact_crop = model.spec.video_crop == "exact" if exact_crop is None else bool(exact_crop)
        self._keypoints = self._smoothing.new() if smooth else None
        self._crop_filter = LowPassFilter(model.spec.crop.alpha)
        self.crop: Crop | None = None
        self._size: tuple[int, int] | None = None

    def reset(self) -> None:
        """Forget the crop, the filters and the last timestamp (a new video may follow): the next frame
        starts from the centred square."""
        self._clock.reset()
        self._forget()

    def _forget(self) -> None:
        """Forget the crop and the filters (the person is lost, or the frame size changed)."""
        self.crop = None
        self._crop_filter.reset()
        if self._keypoints is not None:
            self._keypoints.reset()

    def update(self, frame_bgr: np.ndarray, timestamp: float | None = None) -> list[Pose]:
        model = self.model
        image, timestamp = self._next_frame(frame_bgr, timestamp)
        h, w = image.shape[:2]
        if self._size != (w, h):  # another video size: crops of the old one mean nothing here
            self._forget()
            self._size = (w, h)
        if self.crop is None:
            self.crop = initial_crop(w, h, first=True)
        self.model_runs += 1
        det = model.detect_in_crop(image, self.crop, exact=self.exact_crop)
        if det.score < self.threshold:
            self._forget()
            return []
        if self._keypoints is not None:
            det.keypoints[:, :2] = self._keypoints.apply(det.keypoints[:, :2], timestamp)
        crop = next_crop(det.keypoints, w, h, model.spec.crop)
        self.crop = tuple(float(v) for v in self._crop_filter.apply(np.array(crop)))
        return [model.make_pose(det, w, h)]


class MultiPoseTracker(_VideoTracker):
    """Multi-person video: the model runs on every whole frame; people keep an identity
    (``Pose.track_id``) through :class:`posezoo.inference.tracking.BoxIdentities` and their own keypoint filters.
    Poses come in identity order: people seen before first, in the same order every frame."""

    def __init__(
        self,
        model: MoveNet,
        *,
        max_poses: int,
        threshold: float | None = None,
        smooth: bool = True,
        fps: float = DEFAULT_FPS,
    ):
        super().__init__(model, smooth=smooth, fps=fps)
        self.max_poses = max_poses
        self.threshold = threshold
        rule = model.spec.identities
        self.identities = BoxIdentities(
            min_similarity=rule.min_similarity, max_age=rule.max_age, max_tracks=rule.max_tracks
        )
        self._filters: dict[int, OneEuroFilter] = {}

    def reset(self) -> None:
        """Forget every identity and filter."""
        self.identities.reset()
        self._filters.clear()
        self._clock.reset()

    def update(self, frame_bgr: np.ndarray, timestamp: float | None = None) -> list[Pose]:
        model = self.model
        image, timestamp = self._next_frame(frame_bgr, timestamp)
        h, w = image.shape[:2]
        self.model_runs += 1
        detections = model.detect_all(image, threshold=self.threshold)[: self.max_poses]
        ids = self.identities.assign([d.box for d in detections], timestamp)
        if self.smooth:
            for det, pid in zip(detections, ids):
                filt = self._filters.get(pid)
                if filt is None:
                    filt = self._filters[pid] = self._smoothing.new()
                det.keypoints[:, :2] = filt.apply(det.keypoints[:, :2], timestamp)
            held = self.identities.ids
            for pid in [p for p in self._filters if p not in held]:
                del self._filters[pid]
        order = sorted(range(len(detections)), key=lambda i: ids[i])
        return [model.make_pose(detections[i], w, h, ids[i]) for i in order]


FAMILY = Family(
    name="movenet",
    spec_type=MoveNetSpec,
    roles=MoveNetSpec.roles,
    build=MoveNet.from_files,
    options=MoveNetOptions,
    description="single-stage COCO-17 keypoint models on int32 RGB: a tracked crop (one person) or the whole image (several)",
)
