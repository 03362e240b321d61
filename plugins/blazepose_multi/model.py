"""The ``blazepose-multi`` family: a multi-person keypoint model's people as the regions of BlazePose's
landmark model, composed through the core's seam (:mod:`posezoo.inference.regions`).

Nothing here decodes a model: MoveNet MultiPose runs as its own family's :class:`PoseModel`
(:class:`posezoo_plugins.movenet.MoveNet`), its poses become regions through :func:`person_region`
(:class:`posezoo.inference.regions.PoseRegions`), and the landmark model runs in each as the two-stage
family's region model (:class:`posezoo_plugins.mediapipe.regions.LandmarkRegions` of a
:class:`~posezoo_plugins.mediapipe.model.LandmarkModel`). The core's top-down pipeline and tracker do
the rest: :class:`posezoo.inference.regions.TopDownModel`.

**The region of a person** (:func:`person_region`) is the rotated square BlazePose's own detector would
give, built from the person's COCO keypoints. BlazePose's detector predicts two keypoints: the hips'
midpoint, and a point whose distance from it is the radius of a circle around the whole body and whose
direction is the body's (hips -> shoulders); the ROI rule (MediaPipe's pose_detection_to_roi) then
centres a square on the first, rotates it so the second points up and makes its side 2 x 1.25 x the
radius. Here the two keypoints come from the person:

* ``kp0`` = the midpoint of the two hips (MoveNet's estimates, whatever their scores);
* the direction = hips' midpoint -> shoulders' midpoint (straight up when they coincide);
* the radius = the larger of ``body_scale`` x the distance from ``kp0`` to the farthest keypoint
  scoring at least ``min_keypoint_score`` and ``torso_scale`` x the torso (hips' to shoulders'
  midpoint). ``body_scale`` 1.15: on the shared photos BlazePose's detector radius is 0.98-1.29 x
  (median 1.14) the farthest MoveNet keypoint, whose highest point is the eyes and ears, not the top of
  the head; ``torso_scale`` 1.5 is a floor for people seen only down to the waist (the detector's
  radius is 1.6-2.0 torsos on those photos).
* ``kp1`` = ``kp0`` + radius in that direction; the ROI is BlazePose's own rule on ``(kp0, kp1)``
  (``spec.landmarks.detector.roi``: alignment 0 -> 1, 90 degrees, x1.25, square).

A person with none of the four torso keypoints (shoulders, hips) seen gives no region.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from posezoo.inference.model import Family, Pose
from posezoo.inference.regions import PoseRegions, Region, TopDownModel, tracker_settings
from posezoo.inference.runtime import Session
from posezoo_plugins.mediapipe.model import LandmarkModel, SampledTracker, crop_sampling
from posezoo_plugins.mediapipe.regions import LandmarkRegions
from posezoo_plugins.mediapipe.roi import roi_from_points
from posezoo_plugins.mediapipe.spec import MediaPipeOptions, ModelSpec, RoiRule
from posezoo_plugins.movenet import MoveNet, MoveNetSpec

FAMILY_NAME = "blazepose-multi"
TORSO = ("left_shoulder", "right_shoulder", "left_hip", "right_hip")


@dataclass(frozen=True)
class PersonRule:
    """How a person's keypoints (COCO names) become the two keypoints BlazePose's ROI rule takes (see
    the module docstring)."""

    min_keypoint_score: float = 0.2
    body_scale: float = 1.15
    torso_scale: float = 1.5


def person_region(pose: Pose, rule: PersonRule, roi_rule: RoiRule) -> Region | None:
    """The rotated square region of one person (a :class:`Pose` with COCO-named keypoints and a score
    column), or None when none of its torso keypoints is seen."""
    names = pose.names
    xy = pose.landmarks[:, :2].astype(np.float64)
    scores = pose.keypoint_scores
    idx = [names.index(n) for n in TORSO]
    if not (scores[idx] >= rule.min_keypoint_score).any():
        return None
    shoulders = (xy[idx[0]] + xy[idx[1]]) * 0.5
    hips = (xy[idx[2]] + xy[idx[3]]) * 0.5
    up = shoulders - hips
    torso = math.hypot(*up)
    direction = up / torso if torso > 0 else np.array([0.0, -1.0])
    seen = scores >= rule.min_keypoint_score
    reach = float(np.linalg.norm(xy[seen] - hips, axis=1).max()) if seen.any() else 0.0
    radius = max(rule.body_scale * reach, rule.torso_scale * torso)
    if not radius > 0:
        return None
    points = np.stack([hips, hips + radius * direction])
    roi = roi_from_points(points, roi_rule)
    return Region(roi, score=pose.score, keypoints=pose.landmarks, names=names, box=pose.box)


@dataclass(frozen=True)
class PeopleLandmarksSpec:
    """A model of the ``blazepose-multi`` family: ``people`` (a multi-person MoveNet spec: file role
    ``detector``) finds the people, ``landmarks`` (a two-stage spec whose landmark model is file role
    ``landmark``; its detector part is not run) gives each their keypoints, ``rule`` joins them."""

    family: ClassVar[str] = FAMILY_NAME
    roles: ClassVar[tuple[str, ...]] = ("detector", "landmark")

    name: str
    people: MoveNetSpec
    landmarks: ModelSpec
    rule: PersonRule = PersonRule()
    description: str = ""
    plugin: str = ""  # filled in by the plugin manager

    def __post_init__(self) -> None:
        if not self.people.multipose:
            raise ValueError(f"model spec {self.name!r}: the people model must be a multi-person one")
        missing = [n for n in TORSO if n not in self.people.keypoint_names]
        if missing:
            raise ValueError(f"model spec {self.name!r}: the people model has no {missing[0]!r} keypoint")

    @property
    def keypoint_names(self) -> tuple[str, ...]:
        return self.landmarks.keypoint_names

    @property
    def skeleton(self) -> tuple[tuple[int, int], ...]:
        return self.landmarks.skeleton

    @property
    def features(self) -> frozenset[str]:
        return self.landmarks.features

    @property
    def max_poses(self) -> int:
        return self.people.max_poses

    @property
    def coco_keypoints(self):
        return self.landmarks.coco_keypoints

    def describe(self) -> dict:
        lm, r = self.landmarks.landmark, self.rule
        roi = self.landmarks.detector.roi
        return {
            "people": self.people.describe(),
            "landmark": self.landmarks.describe()["landmark"],
            "rule": {"min_keypoint_score": r.min_keypoint_score, "body_scale": r.body_scale, "torso_scale": r.torso_scale},
            "summary": [
                f"people: {self.people.name} (up to {self.people.max_poses}, {len(self.people.keypoint_names)} keypoints)",
                f"region: hips' midpoint, hips -> shoulders up, radius max({r.body_scale} x farthest seen keypoint, "
                f"{r.torso_scale} x torso), side 2 x {roi.scale_x} x radius",
                f"landmark: {lm.input_size[1]}x{lm.input_size[0]} input, {lm.num_keypoints} keypoints in each region",
            ],
        }


class PeopleLandmarks(TopDownModel):
    """Runs a :class:`PeopleLandmarksSpec` on ``{"detector": people ONNX, "landmark": landmark ONNX}``:
    the people model's poses as regions (:func:`person_region`), the landmark model in each. Options:
    the two-stage family's (segmentation, and the tracker's redetect_every, overlap, fps)."""

    family = FAMILY_NAME
    options_type = MediaPipeOptions

    def __init__(self, spec: PeopleLandmarksSpec, files: dict[str, Path], *, variant: str | None = None, device: str = "auto"):
        files = self.require_files(spec, files, spec.roles)
        self.people = MoveNet(spec.people, {"model": files["detector"]}, device=device)
        self.landmark = LandmarkModel(spec.landmarks, Session(files["landmark"], device, role="landmark"))
        roi_rule = spec.landmarks.detector.roi
        super().__init__(
            spec,
            PoseRegions(self.people, lambda pose: person_region(pose, spec.rule, roi_rule)),
            LandmarkRegions(self.landmark),
            sessions={"detector": self.people.sessions["model"], "landmark": self.landmark.session},
            variant=variant,
        )

    def _predict(self, image_bgr, *, max_poses, threshold, options: MediaPipeOptions):
        with crop_sampling((self.landmark.stage,), options.sampling):  # the landmark crops'; MoveNet samples as TF.js
            return super()._predict(image_bgr, max_poses=max_poses, threshold=threshold, options=options)

    def _tracker(self, *, max_poses, threshold, smooth, options: MediaPipeOptions):
        return SampledTracker(
            self.detector,
            self.region_model,
            stages=(self.landmark.stage,),
            sampling=options.sampling,
            max_poses=max_poses,
            threshold=threshold,
            smooth=smooth,
            options=options,
            to_rgb=self.to_rgb,
            **tracker_settings(options),
        )


FAMILY = Family(
    name=FAMILY_NAME,
    spec_type=PeopleLandmarksSpec,
    roles=PeopleLandmarksSpec.roles,
    build=PeopleLandmarks.from_files,
    options=MediaPipeOptions,
    description="a multi-person model's people as rotated regions -> BlazePose's landmark model in each",
)
