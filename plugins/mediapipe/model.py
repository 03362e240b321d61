"""The two-stage family (``"mediapipe"``): detector -> rotated ROI -> landmark model, on onnxruntime.

:class:`PoseEstimator` is the :class:`posezoo.inference.model.PoseModel` of every :class:`posezoo_plugins.mediapipe.spec.ModelSpec`
(MediaPipe BlazePose full body and upper body, Hands, ...); the built-in plugin ``blazepose``
registers it as the family. Mirrors MediaPipe's static-image pose graph (modules/pose_landmark/pose_landmark_cpu.pbtxt with
static_image_mode): every image goes through the detector; each kept detection becomes a rotated ROI
(pose_detection_to_roi) and the landmark model runs on its crop (pose_landmark_by_roi). MediaPipe
keeps only the best detection; here every kept detection gets landmarks, up to ``max_poses``.

The stages are separate methods so that a tracker can call
``detect -> roi_from_detection -> landmarks_in_roi -> roi_from_landmarks``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from posezoo_plugins.mediapipe.detect import Detection, DetectorStage
from posezoo_plugins.mediapipe.landmarks import LandmarkResult, LandmarkStage
from posezoo.inference.model import Family, Pose, PoseModel, box_around, feature_option, option
from posezoo.inference.tracking import DEFAULT_FPS
from posezoo.inference.preprocess import RgbBuffer
from posezoo_plugins.mediapipe.roi import Roi, roi_from_detection, roi_from_landmarks
from posezoo.inference.runtime import Session
from posezoo_plugins.mediapipe.spec import ModelSpec

LANDMARK_COLUMNS = ("x", "y", "z", "visibility", "presence")  # of Pose.landmarks, in pixels (z: x's scale)


@dataclass(frozen=True)
class MediaPipeOptions:
    """The two-stage family's options."""

    segmentation: bool = feature_option(feature="segmentation", help="also compute the segmentation mask")
    redetect_every: int = option(15, help="video, several people: run the detector every N frames while fewer are held")
    overlap: float = option(0.5, help="video: a detection whose crop overlaps a held one this much is the same person")
    fps: float = option(DEFAULT_FPS, help="video: frames per second assumed when updates carry no timestamp")


class PoseEstimator(PoseModel):
    """Runs a :class:`ModelSpec` on its two ONNX files ``{"detector": path, "landmark": path}``.

    The models are checked against the spec on construction (:class:`PluginError` naming the file
    and what differs). Input buffers (RGB frame, detector and landmark tensors) are reused from call
    to call, so one estimator serves one thread; ``to_rgb``'s result is valid until the next call.
    """

    family = "mediapipe"
    options_type = MediaPipeOptions

    def __init__(self, spec: ModelSpec, files: dict[str, Path], *, variant: str | None = None, device: str = "auto"):
        files = self.require_files(spec, files, ModelSpec.roles)
        sessions = {role: Session(files[role], device, role=role) for role in ModelSpec.roles}
        super().__init__(spec, sessions, variant=variant)
        self._det, self._lm = sessions["detector"], sessions["landmark"]
        self._det_stage = DetectorStage(spec.detector)
        self._lm_stage = LandmarkStage(spec.landmark)
        self._det_out = self._check_detector()
        self._lm_out = self._check_landmark()
        self._rgb = RgbBuffer()

    # -- construction checks ---------------------------------------------------------------------

    def _check_detector(self) -> tuple[int, int]:
        d, name = self.spec.detector, self.spec.name
        self._det.check_input((1, d.input_size[0], d.input_size[1], 3), spec=name)
        n = len(self._det_stage.anchors)
        boxes = self._det.check_output(d.boxes_output, "boxes", (1, n, d.num_coords), spec=name)
        scores = self._det.check_output(d.scores_output, "scores", (1, n, 1), spec=name)
        return boxes, scores

    def _check_landmark(self) -> dict[str, int]:
        lm, s, name = self.spec.landmark, self._lm, self.spec.name
        s.check_input((1, lm.input_size[0], lm.input_size[1], 3), spec=name)
        out = {"landmarks": s.check_output(lm.landmarks_output, "landmarks", (1, lm.rows * lm.values_per_landmark), spec=name, flat=True)}
        wanted = (
            ("flag", lm.flag_output, (1, 1), True),
            ("world", lm.world_output, (1, lm.rows * 3), True),
            ("heatmap", lm.heatmap_output, (1, None, None, lm.rows), False),
            ("segmentation", lm.segmentation_output, (1, None, None, 1), False),
        )
        for key, output, shape, flat in wanted:
            if output is not None:
                out[key] = s.check_output(output, key, shape, spec=name, flat=flat)
        return out

    # -- stages ----------------------------------------------------------------------------------

    def to_rgb(self, image_bgr: np.ndarray) -> np.ndarray:
        """BGR (or gray, or BGRA) uint8 -> RGB, into a buffer reused while the frame size holds."""
        with self.clock("preprocess"):
            return self._rgb(image_bgr)

    def detect_rgb(self, image_rgb: np.ndarray, *, threshold: float | None = None) -> list[Detection]:
        """Detections (pixels, best first) on an RGB image."""
        with self.clock("preprocess"):
            tensor, padding = self._det_stage.preprocess(image_rgb)
        outs = self._det.run_reused(tensor)  # overwritten next run: postprocess copies what it keeps
        bi, si = self._det_out
        size = (image_rgb.shape[1], image_rgb.shape[0])
        with self.clock("decode"):
            return self._det_stage.postprocess(outs[bi], outs[si], padding, size, threshold)

    def detect(self, image_bgr: np.ndarray, *, threshold: float | None = None) -> list[Detection]:
        """Detections (pixels, best first) on a BGR image; ``threshold`` overrides the spec's min_score."""
        return self.detect_rgb(self.to_rgb(image_bgr), threshold=threshold)

    def roi_from_detection(self, detection: Detection) -> Roi:
        return roi_from_detection(detection, self.spec.detector.roi)

    def roi_from_landmarks(self, result: LandmarkResult | Pose) -> Roi:
        """Next frame's ROI from the auxiliary landmarks (or all landmarks when there are none)."""
        lm = self.spec.landmark
        rule = lm.tracking_roi or self.spec.detector.roi
        points = result.aux if result.aux is not None else result.landmarks
        return roi_from_landmarks(points, rule)

    def landmarks_in_roi(self, image_rgb: np.ndarray, roi: Roi, *, segmentation: bool = False) -> LandmarkResult:
        """Run the landmark model on ``roi`` of an RGB image; the caller judges ``result.flag``."""
        with self.clock("preprocess"):
            tensor = self._lm_stage.preprocess(image_rgb, roi)
        outs = self._lm.run_reused(tensor)  # overwritten next run: decode copies what it keeps
        idx = self._lm_out
        pick = lambda key: outs[idx[key]] if key in idx else None  # noqa: E731
        size = (image_rgb.shape[1], image_rgb.shape[0])
        with self.clock("decode"):
            return self._lm_stage.decode(
                roi,
                outs[idx["landmarks"]],
                flag=self._lm_stage.flag(pick("flag")),
                heatmap=pick("heatmap"),
                world=pick("world"),
                segmentation=pick("segmentation") if segmentation else None,
                image_size=size,
            )

    def make_pose(self, result: LandmarkResult, score: float, track_id: int | None = None) -> Pose:
        lms = result.landmarks
        return Pose(
            landmarks=lms.astype(np.float32, copy=False),
            columns=LANDMARK_COLUMNS,
            names=self.spec.keypoint_names,
            score=float(score),
            box=box_around(lms),
            presence=float(result.flag),
            world_landmarks=result.world,
            roi=result.roi,
            mask=result.mask,
            aux=result.aux,
            track_id=track_id,
        )

    def _predict(self, image_bgr: np.ndarray, *, max_poses: int | None, threshold: float | None, options: MediaPipeOptions) -> list[Pose]:
        """Poses on a BGR image, best detection first.

        Every kept detection (up to ``max_poses``) gets landmarks. ``threshold``, when given, is the
        person-score threshold of both stages: it replaces the detector's min_score and the landmark
        model's pose-flag (presence) threshold.
        """
        segmentation = options.segmentation
        rgb = self.to_rgb(image_bgr)
        detections = self.detect_rgb(rgb, threshold=threshold)
        if max_poses is not None:
            detections = detections[:max_poses]
        flag_thr = self.spec.landmark.flag_threshold if threshold is None else threshold
        poses = []
        for det in detections:
            result = self.landmarks_in_roi(rgb, self.roi_from_detection(det), segmentation=segmentation)
            if result.flag >= flag_thr:
                poses.append(self.make_pose(result, det.score))
        return poses

    def _tracker(self, *, max_poses: int, threshold: float | None, smooth: bool, options: MediaPipeOptions):
        """A video :class:`posezoo_plugins.mediapipe.track.Tracker` on this estimator: the detector runs
        only when no pose is held; landmarks are smoothed."""
        from posezoo_plugins.mediapipe.track import Tracker

        return Tracker(
            self,
            max_poses=max_poses,
            threshold=threshold,
            segmentation=options.segmentation,
            smooth=smooth,
            redetect_every=options.redetect_every,
            overlap=options.overlap,
            fps=options.fps,
        )


FAMILY = Family(
    name="mediapipe",
    spec_type=ModelSpec,
    roles=ModelSpec.roles,
    build=PoseEstimator.from_files,
    options=MediaPipeOptions,
    description="SSD detector with keypoints -> rotated crop -> landmark model (MediaPipe BlazePose, Hands)",
)
