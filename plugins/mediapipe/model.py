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

from math import prod
from pathlib import Path

import numpy as np

from posezoo_plugins.mediapipe.detect import Detection, DetectorStage
from posezoo.errors import PluginError
from posezoo_plugins.mediapipe.landmarks import LandmarkResult, LandmarkStage
from posezoo.inference.model import Family, Pose, PoseModel, box_around
from posezoo.inference.preprocess import RgbBuffer
from posezoo_plugins.mediapipe.roi import Roi, roi_from_detection, roi_from_landmarks
from posezoo.inference.runtime import Session
from posezoo_plugins.mediapipe.spec import ModelSpec

LANDMARK_COLUMNS = ("x", "y", "z", "visibility", "presence")  # of Pose.landmarks, in pixels (z: x's scale)


def _shape_fits(actual: list, expected: tuple) -> bool:
    return len(actual) == len(expected) and all(a is None or e is None or a == e for a, e in zip(actual, expected))


def _fmt(shape) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


class PoseEstimator(PoseModel):
    """Runs a :class:`ModelSpec` on its two ONNX files ``{"detector": path, "landmark": path}``.

    The models are checked against the spec on construction (:class:`PluginError` naming the file
    and what differs). Input buffers (RGB frame, detector and landmark tensors) are reused from call
    to call, so one estimator serves one thread; ``to_rgb``'s result is valid until the next call.
    """

    family = "mediapipe"
    features = frozenset({"segmentation", "world"})  # what the family can do; each model: the outputs its spec reads

    def __init__(self, spec: ModelSpec, files: dict[str, Path], *, variant: str | None = None, device: str = "auto"):
        for role in ModelSpec.roles:
            if role not in files:
                raise PluginError(f"model {spec.name!r}: no {role} file given (have: {', '.join(files) or 'none'})")
            if not Path(files[role]).is_file():
                raise PluginError(f"model {spec.name!r}: {role} file {files[role]} does not exist")
        sessions = {role: Session(files[role], device, role=role) for role in ModelSpec.roles}
        super().__init__(spec, sessions, variant=variant)
        lm = spec.landmark
        self.features = frozenset(
            f for f, out in (("segmentation", lm.segmentation_output), ("world", lm.world_output)) if out is not None
        )
        self._det, self._lm = sessions["detector"], sessions["landmark"]
        self._det_stage = DetectorStage(spec.detector)
        self._lm_stage = LandmarkStage(spec.landmark)
        self._det_out = self._check_detector()
        self._lm_out = self._check_landmark()
        self._rgb = RgbBuffer()

    @classmethod
    def from_files(cls, spec: ModelSpec, files: dict[str, Path], *, variant: str | None = None, device: str = "auto"):
        """The family's factory (see :data:`FAMILY`)."""
        return cls(spec, files, variant=variant, device=device)

    # -- construction checks ---------------------------------------------------------------------

    def _output(self, sess: Session, key: str | int, what: str) -> int:
        try:
            return sess.output_index(key)
        except KeyError:
            raise PluginError(
                f"model {sess.path.name}: no {what} output {key!r} (outputs: {', '.join(sess.output_names)})"
            ) from None

    def _expect(self, sess: Session, idx: int, expected: tuple, what: str, *, flat: bool = False) -> None:
        actual = sess.output_shapes[idx]
        ok = (None in actual or prod(actual) == prod(expected)) if flat else _shape_fits(actual, expected)
        if not ok:
            raise PluginError(
                f"model {sess.path.name}: {what} output {sess.output_names[idx]!r} has shape {_fmt(actual)}, "
                f"spec {self.spec.name!r} expects {_fmt(expected)}"
            )

    def _check_input(self, sess: Session, size: tuple[int, int]) -> None:
        expected = (1, size[0], size[1], 3)
        if not _shape_fits(sess.input_shape, expected):
            raise PluginError(
                f"model {sess.path.name}: input {sess.input_name!r} has shape {_fmt(sess.input_shape)}, "
                f"spec {self.spec.name!r} expects {_fmt(expected)}"
            )

    def _check_detector(self) -> tuple[int, int]:
        d = self.spec.detector
        self._check_input(self._det, d.input_size)
        n = len(self._det_stage.anchors)
        boxes = self._output(self._det, d.boxes_output, "boxes")
        scores = self._output(self._det, d.scores_output, "scores")
        self._expect(self._det, boxes, (1, n, d.num_coords), "boxes")
        self._expect(self._det, scores, (1, n, 1), "scores")
        return boxes, scores

    def _check_landmark(self) -> dict[str, int]:
        lm = self.spec.landmark
        s = self._lm
        self._check_input(s, lm.input_size)
        out = {"landmarks": self._output(s, lm.landmarks_output, "landmarks")}
        self._expect(s, out["landmarks"], (1, lm.rows * lm.values_per_landmark), "landmarks", flat=True)
        if lm.flag_output is not None:
            out["flag"] = self._output(s, lm.flag_output, "flag")
            self._expect(s, out["flag"], (1, 1), "flag", flat=True)
        if lm.world_output is not None:
            out["world"] = self._output(s, lm.world_output, "world")
            self._expect(s, out["world"], (1, lm.rows * 3), "world", flat=True)
        if lm.heatmap_output is not None:
            out["heatmap"] = self._output(s, lm.heatmap_output, "heatmap")
            self._expect(s, out["heatmap"], (1, None, None, lm.rows), "heatmap")
        if lm.segmentation_output is not None:
            out["segmentation"] = self._output(s, lm.segmentation_output, "segmentation")
            self._expect(s, out["segmentation"], (1, None, None, 1), "segmentation")
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

    def predict(
        self,
        image_bgr: np.ndarray,
        *,
        max_poses: int | None = None,
        threshold: float | None = None,
        segmentation: bool = False,
    ) -> list[Pose]:
        """Poses on a BGR image, best detection first.

        Every kept detection (up to ``max_poses``) gets landmarks. ``threshold``, when given, is the
        person-score threshold of both stages: it replaces the detector's min_score and the landmark
        model's pose-flag (presence) threshold.
        """
        rgb = self.to_rgb(image_bgr)
        detections = self.detect_rgb(rgb, threshold=threshold)
        if max_poses is not None:
            detections = detections[: max(0, max_poses)]
        flag_thr = self.spec.landmark.flag_threshold if threshold is None else threshold
        poses = []
        for det in detections:
            result = self.landmarks_in_roi(rgb, self.roi_from_detection(det), segmentation=segmentation)
            if result.flag >= flag_thr:
                poses.append(self.make_pose(result, det.score))
        return poses

    def tracker(
        self,
        *,
        max_poses: int = 1,
        threshold: float | None = None,
        segmentation: bool = False,
        smooth: bool = True,
        **options,
    ):
        """A video :class:`posezoo_plugins.mediapipe.track.Tracker` on this estimator: ``.update(frame_bgr, timestamp=s)``
        -> poses, ``.reset()``. The detector runs only when no pose is held; landmarks are smoothed."""
        from posezoo_plugins.mediapipe.track import Tracker

        return Tracker(
            self, max_poses=max_poses, threshold=threshold, segmentation=segmentation, smooth=smooth, **options
        )


FAMILY = Family(
    name="mediapipe",
    spec_type=ModelSpec,
    roles=ModelSpec.roles,
    build=PoseEstimator.from_files,
    description="SSD detector with keypoints -> rotated crop -> landmark model (MediaPipe BlazePose, Hands)",
)
