"""The two-stage family (``"mediapipe"``): detector -> rotated ROI -> landmark model, on onnxruntime.

Each stage is a model of its own: :class:`SsdDetector` (the SSD detector with keypoints and its ROI
rule) and :class:`LandmarkModel` (the landmark model on a rotated crop). :class:`PoseEstimator`, the
:class:`posezoo.inference.model.PoseModel` of every :class:`posezoo_plugins.mediapipe.spec.ModelSpec`
(MediaPipe BlazePose full body and upper body, Hands, ...), is the core's generic top-down pipeline
(:class:`posezoo.inference.regions.TopDownModel`) on the two, joined through the composition seam
(:mod:`posezoo_plugins.mediapipe.regions`). A landmark model alone runs inside regions any other
detector gives.

Mirrors MediaPipe's static-image pose graph (modules/pose_landmark/pose_landmark_cpu.pbtxt with
static_image_mode): every image goes through the detector; each kept detection becomes a rotated ROI
(pose_detection_to_roi) and the landmark model runs on its crop (pose_landmark_by_roi). MediaPipe
keeps only the best detection; here every kept detection gets landmarks, up to ``max_poses``.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from posezoo.inference.model import Family, Pose, box_around
from posezoo.inference.regions import Region, TopDownModel, TopDownTracker, overlaps
from posezoo.inference.runtime import Session
from posezoo.inference.timing import NO_CLOCK, StageClock
from posezoo_plugins.mediapipe.detect import Detection, DetectorStage
from posezoo_plugins.mediapipe.landmarks import LandmarkResult, LandmarkStage
from posezoo_plugins.mediapipe.regions import DetectorRegions, LandmarkRegions
from posezoo_plugins.mediapipe.roi import Roi, roi_from_detection, roi_from_landmarks
from posezoo_plugins.mediapipe.spec import LandmarkSpec, MediaPipeOptions, ModelSpec
from posezoo_plugins.mediapipe.track import Tracker

__all__ = ["FAMILY", "LANDMARK_COLUMNS", "LandmarkModel", "MediaPipeOptions", "Pose", "PoseEstimator", "SsdDetector"]

LANDMARK_COLUMNS = ("x", "y", "z", "visibility", "presence")  # of Pose.landmarks, in pixels (z: x's scale)


def make_pose(spec: ModelSpec, result: LandmarkResult, score: float, track_id: int | None = None) -> Pose:
    """A :class:`Pose` from one landmark-model run (pixels), named by ``spec``'s keypoints."""
    lms = result.landmarks
    parts = None
    if spec.label_part and result.label is not None:
        parts = {spec.label_part.format(label=result.label): (0, len(lms))}
    elif spec.parts:
        parts = {name: (a, b) for name, a, b in spec.parts}
    return Pose(
        landmarks=lms.astype(np.float32, copy=False),
        columns=LANDMARK_COLUMNS,
        names=spec.keypoint_names,
        score=float(score),
        box=box_around(lms),
        presence=float(result.flag),
        world_landmarks=result.world,
        roi=result.roi,
        mask=result.mask,
        aux=result.aux,
        track_id=track_id,
        parts=parts,
        label=result.label,
        label_score=result.label_score,
    )


def next_roi(spec: ModelSpec, result: LandmarkResult | Pose) -> Roi:
    """Next frame's ROI from the auxiliary landmarks (or all landmarks when there are none), by the
    landmark spec's tracking rule (or the detector's)."""
    rule = spec.landmark.tracking_roi or spec.detector.roi
    points = result.aux if result.aux is not None else result.landmarks
    return roi_from_landmarks(points, rule)


def associate(regions: list[Region], overlap: float) -> list[Region]:
    """MediaPipe's AssociationNormRectCalculator on one list: each region in turn drops the ones kept
    before it whose square it overlaps by more than ``overlap`` (:func:`posezoo.inference.regions.overlaps`)
    and is appended after the rest."""
    kept: list[Region] = []
    for region in regions:
        kept = [k for k in kept if not overlaps(k, [region], overlap)]
        kept.append(region)
    return kept


@contextmanager
def crop_sampling(stages, sampling: str | None) -> Iterator[None]:
    """Crops of ``stages`` (a DetectorStage / LandmarkStage each) sampled as ``sampling`` meanwhile:
    ``"cpu"`` (MediaPipe's OpenCV path), ``"gpu"`` (its GL path: pixel centres); None: each spec's own."""
    if sampling is None:
        yield
        return
    stages = list(stages)
    saved = [s.pixel_centers for s in stages]
    for s in stages:
        s.pixel_centers = sampling == "gpu"
    try:
        yield
    finally:
        for s, value in zip(stages, saved):
            s.pixel_centers = value


class SampledTracker(TopDownTracker):
    """The core's top-down tracker with the landmark crops sampled as the ``sampling`` option says
    (:func:`crop_sampling` over ``stages`` around every update): the tracker of a model composed
    from this family's landmark stages."""

    def __init__(self, *args, stages, sampling, **kw):
        super().__init__(*args, **kw)
        self._stages, self._sampling = stages, sampling

    def update(self, frame_bgr, timestamp=None):
        with crop_sampling(self._stages, self._sampling):
            return super().update(frame_bgr, timestamp)


class _Stage:
    """A stage on one onnxruntime session, timed into ``clock`` (stages) and the session's clock."""

    session: Session
    clock: StageClock = NO_CLOCK

    @contextmanager
    def timed(self, clock: StageClock) -> Iterator[StageClock]:
        saved = self.clock, self.session.clock
        self.clock = self.session.clock = clock
        try:
            yield clock
        finally:
            self.clock, self.session.clock = saved


class SsdDetector(_Stage):
    """The SSD detector with keypoints of a :class:`ModelSpec` on its session: detections in pixels,
    and the ROI each becomes. Checked against the spec on construction (:class:`PluginError`)."""

    def __init__(self, spec: ModelSpec, session: Session):
        self.spec = spec
        self.session = session
        self.stage = DetectorStage(spec.detector)
        d, name = spec.detector, spec.name
        session.check_input((1, d.input_size[0], d.input_size[1], 3), spec=name)
        n = len(self.stage.anchors)
        self._outputs = (
            session.check_output(d.boxes_output, "boxes", (1, n, d.num_coords), spec=name),
            session.check_output(d.scores_output, "scores", (1, n, 1), spec=name),
        )

    def detect_rgb(self, image_rgb: np.ndarray, *, threshold: float | None = None) -> list[Detection]:
        """Detections (pixels, best first) on an RGB image; ``threshold`` overrides the spec's min_score."""
        with self.clock("preprocess"):
            tensor, padding = self.stage.preprocess(image_rgb)
        outs = self.session.run_reused(tensor)  # overwritten next run: postprocess copies what it keeps
        bi, si = self._outputs
        size = (image_rgb.shape[1], image_rgb.shape[0])
        with self.clock("decode"):
            return self.stage.postprocess(outs[bi], outs[si], padding, size, threshold)

    def detect_in_roi(self, image_rgb: np.ndarray, roi: Roi, *, threshold: float | None = None) -> list[Detection]:
        """Detections (pixels, best first) inside the rotated ``roi`` of an RGB image (the detector run on
        that crop, zero border, detections projected back to the image)."""
        with self.clock("preprocess"):
            tensor, cropped = self.stage.preprocess_roi(image_rgb, roi)
        outs = self.session.run_reused(tensor)
        bi, si = self._outputs
        with self.clock("decode"):
            return self.stage.postprocess_roi(outs[bi], outs[si], cropped, threshold)

    def roi_from_detection(self, detection: Detection) -> Roi:
        return roi_from_detection(detection, self.spec.detector.roi)


class LandmarkModel(_Stage):
    """The landmark model of a :class:`ModelSpec` on its session: landmarks, world landmarks, mask and
    pose flag in a rotated ROI. Checked against the spec on construction (:class:`PluginError`). Runs
    without the spec's detector: :class:`LandmarkRegions` of it is a region model for any detector.
    ``landmark``: another landmark spec to run instead of ``spec.landmark`` (a model that only refines
    a region, such as Holistic's hand recrop model; ``make_pose`` and ``roi_from_landmarks`` then do not
    apply)."""

    def __init__(self, spec: ModelSpec, session: Session, *, landmark: LandmarkSpec | None = None):
        self.spec = spec
        self.session = session
        lm = spec.landmark if landmark is None else landmark
        self.stage = LandmarkStage(lm)
        s, name = session, spec.name
        s.check_input((1, lm.input_size[0], lm.input_size[1], 3), spec=name)
        out = {"landmarks": s.check_output(lm.landmarks_output, "landmarks", (1, lm.rows * lm.values_per_landmark), spec=name, flat=True)}
        wanted = (
            ("flag", lm.flag_output, (1, 1), True),
            ("world", lm.world_output, (1, lm.rows * 3), True),
            ("heatmap", lm.heatmap_output, (1, None, None, lm.rows), False),
            ("segmentation", lm.segmentation_output, (1, None, None, 1), False),
            ("label", lm.label_output, (1, 1), True),
        )
        for key, output, shape, flat in wanted:
            if output is not None:
                out[key] = s.check_output(output, key, shape, spec=name, flat=flat)
        self._refinements = tuple(
            s.check_output(r.output, "refinement", (1, len(r.rows) * r.values_per_landmark), spec=name, flat=True)
            for r in lm.refinements
        )
        self._outputs = out

    def landmarks_in_roi(self, image_rgb: np.ndarray, roi: Roi, *, segmentation: bool = False) -> LandmarkResult:
        """Run the landmark model on ``roi`` of an RGB image; the caller judges ``result.flag``."""
        with self.clock("preprocess"):
            tensor = self.stage.preprocess(image_rgb, roi)
        idx = self._outputs
        # no mask asked for: the model runs without its segmentation branch (the same other outputs)
        skip = (idx["segmentation"],) if "segmentation" in idx and not segmentation else ()
        outs = self.session.run_reused(tensor, skip)  # overwritten next run: decode copies what it keeps
        with self.clock("decode"):
            return self._decode(roi, outs, (image_rgb.shape[1], image_rgb.shape[0]), segmentation)

    def _decode(self, roi: Roi, outs: Sequence[np.ndarray | None], size: tuple[int, int], segmentation: bool) -> LandmarkResult:
        """One crop's landmark result from the model's outputs (``outs`` in output order)."""
        idx = self._outputs
        pick = lambda key: outs[idx[key]] if key in idx else None  # noqa: E731
        return self.stage.decode(
            roi,
            outs[idx["landmarks"]],
            flag=self.stage.flag(pick("flag")),
            heatmap=pick("heatmap"),
            world=pick("world"),
            segmentation=pick("segmentation") if segmentation else None,
            image_size=size,
            label=pick("label"),
            refinements=[outs[i] for i in self._refinements],
        )

    def landmarks_in_rois(self, image_rgb: np.ndarray, rois: Sequence[Roi], *, segmentation: bool = False) -> list[LandmarkResult]:
        """:meth:`landmarks_in_roi` in each of ``rois``, the crops run as one batch
        (:meth:`posezoo.inference.runtime.Session.run_batch`: the same results as one run each)."""
        if len(rois) < 2:
            return [self.landmarks_in_roi(image_rgb, roi, segmentation=segmentation) for roi in rois]
        with self.clock("preprocess"):
            h, w = self.stage.spec.input_size
            tensor = np.empty((len(rois), h, w, 3), np.float32)
            for i, roi in enumerate(rois):
                self.stage.preprocess(image_rgb, roi, out=tensor[i : i + 1])
        outs = self.session.run_batch(tensor)
        size = (image_rgb.shape[1], image_rgb.shape[0])
        with self.clock("decode"):
            return [self._decode(roi, [o[i : i + 1] for o in outs], size, segmentation) for i, roi in enumerate(rois)]

    def make_pose(self, result: LandmarkResult, score: float, track_id: int | None = None) -> Pose:
        return make_pose(self.spec, result, score, track_id)

    def roi_from_landmarks(self, result: LandmarkResult | Pose) -> Roi:
        return next_roi(self.spec, result)


class PoseEstimator(TopDownModel):
    """Runs a :class:`ModelSpec` on its two ONNX files ``{"detector": path, "landmark": path}``.

    The models are checked against the spec on construction (:class:`PluginError` naming the file
    and what differs). Input buffers (RGB frame, detector and landmark tensors) are reused from call
    to call, so one estimator serves one thread; ``to_rgb``'s result is valid until the next call.

    ``predict`` is the core's top-down pipeline on :class:`DetectorRegions` of :attr:`ssd` and
    :class:`LandmarkRegions` of :attr:`landmark`; ``tracker`` gives a
    :class:`posezoo_plugins.mediapipe.track.Tracker`. The stage methods (``detect``, ``detect_rgb``,
    ``roi_from_detection``, ``landmarks_in_roi``, ``make_pose``, ``roi_from_landmarks``) are the two
    stages'.
    """

    family = "mediapipe"
    options_type = MediaPipeOptions

    def __init__(self, spec: ModelSpec, files: dict[str, Path], *, variant: str | None = None, device: str = "auto"):
        files = self.require_files(spec, files, ModelSpec.roles)
        sessions = {role: Session(files[role], device, role=role) for role in ModelSpec.roles}
        self.ssd = SsdDetector(spec, sessions["detector"])
        self.landmark = LandmarkModel(spec, sessions["landmark"])
        super().__init__(spec, DetectorRegions(self.ssd), LandmarkRegions(self.landmark), sessions=sessions, variant=variant)

    # -- stages ----------------------------------------------------------------------------------

    def detect_rgb(self, image_rgb: np.ndarray, *, threshold: float | None = None) -> list[Detection]:
        """Detections (pixels, best first) on an RGB image."""
        return self.ssd.detect_rgb(image_rgb, threshold=threshold)

    def detect(self, image_bgr: np.ndarray, *, threshold: float | None = None) -> list[Detection]:
        """Detections (pixels, best first) on a BGR image; ``threshold`` overrides the spec's min_score."""
        return self.detect_rgb(self.to_rgb(image_bgr), threshold=threshold)

    def roi_from_detection(self, detection: Detection) -> Roi:
        return roi_from_detection(detection, self.spec.detector.roi)

    def roi_from_landmarks(self, result: LandmarkResult | Pose) -> Roi:
        """Next frame's ROI from the auxiliary landmarks (or all landmarks when there are none)."""
        return next_roi(self.spec, result)

    def landmarks_in_roi(self, image_rgb: np.ndarray, roi: Roi, *, segmentation: bool = False) -> LandmarkResult:
        """Run the landmark model on ``roi`` of an RGB image; the caller judges ``result.flag``."""
        return self.landmark.landmarks_in_roi(image_rgb, roi, segmentation=segmentation)

    def landmarks_in_rois(self, image_rgb: np.ndarray, rois, *, segmentation: bool = False) -> list[LandmarkResult]:
        """The landmark model in each of ``rois``, run as one batch (the same results as one run each)."""
        return self.landmark.landmarks_in_rois(image_rgb, rois, segmentation=segmentation)

    def make_pose(self, result: LandmarkResult, score: float, track_id: int | None = None) -> Pose:
        return make_pose(self.spec, result, score, track_id)

    # -- the model interface -----------------------------------------------------------------------
    # _predict is the top-down pipeline's: every kept detection (up to ``max_poses``) gets landmarks;
    # ``threshold``, when given, is the person-score threshold of both stages (the detector's min_score
    # and the landmark model's pose-flag threshold); ``options.sampling`` the crops' sampling.

    @property
    def crop_stages(self) -> tuple:
        """The stages whose crops the ``sampling`` option sets."""
        return (self.ssd.stage, self.landmark.stage)

    def _predict(self, image_bgr: np.ndarray, *, max_poses: int | None, threshold: float | None, options: MediaPipeOptions) -> list[Pose]:
        with crop_sampling(self.crop_stages, options.sampling):
            overlap = self.spec.detector.region_overlap
            if overlap is None:
                return super()._predict(image_bgr, max_poses=max_poses, threshold=threshold, options=options)
            frame = self.frame(image_bgr)
            regions = self.detector.find_regions(frame, threshold=threshold)
            regions = associate(regions[:max_poses] if max_poses is not None else regions, overlap)
            if not regions:
                return []
            poses = self.region_model.predict_regions(frame, regions, threshold=threshold, options=options)
            return [p for p in poses if p is not None]

    def _tracker(self, *, max_poses: int, threshold: float | None, smooth: bool, options: MediaPipeOptions):
        """A video :class:`posezoo_plugins.mediapipe.track.Tracker` on this estimator: the detector runs
        only when no pose is held; landmarks are smoothed."""
        return Tracker(
            self,
            max_poses=max_poses,
            threshold=threshold,
            segmentation=options.segmentation,
            smooth=smooth,
            redetect_every=options.redetect_every,
            overlap=options.overlap,
            fps=options.fps,
            sampling=options.sampling,
        )


FAMILY = Family(
    name="mediapipe",
    spec_type=ModelSpec,
    roles=ModelSpec.roles,
    build=PoseEstimator.from_files,
    options=MediaPipeOptions,
    description="SSD detector with keypoints -> rotated crop -> landmark model (MediaPipe BlazePose, Hands)",
)
