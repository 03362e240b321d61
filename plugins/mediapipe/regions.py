"""The two stages as the core's composition seam sees them (:mod:`posezoo.inference.regions`).

:class:`DetectorRegions`: the SSD detector with keypoints as a region detector (each detection becomes
a rotated square by the spec's ROI rule, MediaPipe's pose_detection_to_roi). :class:`LandmarkRegions`:
the landmark model as a region model (the crop of each region, landmarks mapped back to the image, the
pose flag as its presence test; the next frame's region from the auxiliary landmarks,
pose_landmarks_to_roi; MediaPipe's landmark filters per track).

Both wrap *stages*: an object with the family's stage methods, ``detect_rgb`` and
``roi_from_detection`` for the detector; ``spec``, ``landmarks_in_roi``, ``make_pose`` and
``roi_from_landmarks`` for the landmark model (and, when it has it, ``landmarks_in_rois``: several
regions in one batched run) (:class:`posezoo_plugins.mediapipe.model.SsdDetector`,
:class:`~posezoo_plugins.mediapipe.model.LandmarkModel`, or a whole
:class:`~posezoo_plugins.mediapipe.model.PoseEstimator`).
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Sequence

from posezoo.inference.model import Pose
from posezoo.inference.regions import Frame, Region, RegionDetector, RegionModel
from posezoo.inference.timing import StageClock
from posezoo_plugins.mediapipe.smoothing import PoseSmoother


def _timed(stages: Any, clock: StageClock):
    timed = getattr(stages, "timed", None)
    return timed(clock) if callable(timed) else nullcontext(clock)


class DetectorRegions(RegionDetector):
    """The detector of ``stages`` as a region detector: one region per detection, best first, carrying
    the detection's score, keypoints and box."""

    def __init__(self, stages: Any):
        self.stages = stages

    def find_regions(self, frame: Frame, *, threshold: float | None = None) -> list[Region]:
        s = self.stages
        return [
            Region(s.roi_from_detection(d), score=d.score, keypoints=d.keypoints, box=d.box)
            for d in s.detect_rgb(frame.rgb, threshold=threshold)
        ]

    def timed(self, clock: StageClock):
        return _timed(self.stages, clock)


class LandmarkRegions(RegionModel):
    """The landmark model of ``stages`` as a region model. A region's pose is kept when the model's pose
    flag is at least ``threshold`` (None: the spec's ``flag_threshold``); its score is the region's;
    ``options.segmentation`` asks for the mask."""

    def __init__(self, stages: Any):
        self.stages = stages

    @property
    def spec(self):
        return self.stages.spec

    def predict_regions(
        self, frame: Frame, regions: Sequence[Region], *, threshold: float | None = None, options: Any = None
    ) -> list[Pose | None]:
        s = self.stages
        flag_threshold = s.spec.landmark.flag_threshold if threshold is None else threshold
        segmentation = bool(getattr(options, "segmentation", False))
        rois = [region.roi for region in regions]
        batched = getattr(s, "landmarks_in_rois", None)  # several regions in one run, where the stages can
        if callable(batched) and len(rois) > 1:
            results = batched(frame.rgb, rois, segmentation=segmentation)
        else:
            results = [s.landmarks_in_roi(frame.rgb, roi, segmentation=segmentation) for roi in rois]
        return [
            s.make_pose(result, region.score, region.track_id) if result.flag >= flag_threshold else None
            for result, region in zip(results, regions)
        ]

    def next_region(self, pose: Pose) -> Region:
        """The next frame's region from the (smoothed) auxiliary landmarks, with the pose's score."""
        return Region(self.stages.roi_from_landmarks(pose), score=pose.score)

    def new_smoother(self, fps: float) -> PoseSmoother:
        spec = self.stages.spec
        rule = spec.landmark.tracking_roi or spec.detector.roi
        scale_rule = rule if spec.landmark.aux_landmarks is not None else None
        return PoseSmoother(spec.smoothing, scale_rule, frequency=fps)

    def timed(self, clock: StageClock):
        return _timed(self.stages, clock)
