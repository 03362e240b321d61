"""The ``mediapipe-holistic`` family: one person's body (BlazePose), both hands and the face, as MediaPipe's
Holistic graph builds them (modules/holistic_landmark/holistic_landmark_cpu.pbtxt, v0.10.14), composed
on the core's seam (:mod:`posezoo.inference.regions`).

The body is the two-stage family's own pair: the SSD pose detector as a region detector
(:class:`posezoo_plugins.mediapipe.regions.DetectorRegions`) and the GHUM landmark model as a region
model (:class:`~posezoo_plugins.mediapipe.regions.LandmarkRegions`). :class:`HolisticRegions` is the
region model of the whole person: the body's landmark model in the region it is given, then, from that
body pose, the regions of the hands and the face and their landmark models in them. Nothing here decodes
a model; every stage is the two-stage family's (:mod:`posezoo_plugins.mediapipe`).

**Hands** (hand_landmarks_left_and_right_cpu.pbtxt, hand_landmarks_from_pose_cpu.pbtxt). For each side,
the body's wrist, pinky and index landmarks (15, 17, 19 for the left; 16, 18, 20 for the right: the
person's own left and right). Skipped when the wrist's visibility is not over ``wrist_visibility``
(0.1; hand_visibility_from_hand_landmarks_from_pose). Otherwise the middle finger is estimated as
(2 index + pinky) / 3, and the region centred on it, 2 x its distance to the wrist, turned so that wrist
-> middle points up (HandDetectionsFromPoseToRectsCalculator), shifted 0.1 towards the fingers, squared
and x2.7 (hand_landmarks_from_pose_to_recrop_roi). The hand recrop model (256x256) gives two points in
that crop; their alignment region (centre the first, side twice the distance, the second pointing
down), shifted 0.1, is the *recrop* region (hand_recrop_by_roi_cpu). The hand landmark model (224x224)
runs in it; the hand is found when its flag is over 0.5.

**Face** (face_landmarks_from_pose_cpu.pbtxt). The bounds of the body's 11 face landmarks (0-10),
turned so that right eye (5) -> left eye (2) is level, squared, x3 (face_landmarks_from_pose_to_recrop_roi);
BlazeFace (short range, 128x128) runs in that region (face_detection_short_range_by_roi_cpu: zero border,
detections projected back); the best face's six keypoints give the recrop region (their bounds,
right eye -> left eye level, shifted 0.1 up, squared, x2: face_detection_front_detections_to_roi).
No face detected: no face. The face landmark model (192x192, 468 landmarks) runs in it; found when
its flag (a logit) is over 0.5.

**Video** (hand_tracking.pbtxt, face_tracking.pbtxt). The body is tracked as BlazePose is (the next
region from its smoothed auxiliary landmarks, MediaPipe's landmark filters on the body rows). A hand
or face found on the last frame has a region from its landmarks (hand_landmarks_to_roi: the palm's
rotated bounds x2, shifted 0.1; face_landmarks_to_roi: the bounds of the 468 landmarks, eye corners
33 -> 263 level, x1.5); it is kept while it agrees with this frame's recrop region
(RoiTrackingCalculator: hands within 40 degrees, 0.2 of the size in translation, 0.4 in scale, last
frame's landmarks inside the recrop region shrunk by 0.1; the face within 15 degrees, 0.1, 0.3 and
0.2), otherwise the recrop region is used. Last frame's landmarks travel with the person's region
(:attr:`Region.keypoints`). The hands and face are found from the smoothed body, as MediaPipe's video
graph finds them from its filtered pose landmarks (:class:`HolisticTracker` hands each held person's
body filter to the region model); hands and face are not smoothed themselves (MediaPipe smooths only
the body).

**Output.** One :class:`Pose` per person: rows = the body's 33 landmarks, the left hand's 21, the right
hand's 21 and the face's 468 (478 with the face model with attention, the ``*-refined`` variants); ``parts`` {"body": (0, 33), "left_hand": (33, 54), "right_hand": (54, 75),
"face": (75, 543)}, a part not found None and its rows NaN. Columns x, y, z, visibility, presence
(pixels; z on x's scale): the body's as BlazePose gives them; for a hand or the face, visibility and
presence are that part's presence score (its landmark model's flag: those models give no per-landmark
visibility). World landmarks: the body's, NaN for the other rows.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from posezoo.inference.model import Family, Pose
from posezoo.inference.regions import Frame, Region, RegionModel, TopDownModel, tracker_settings
from posezoo.inference.runtime import Session, session_threads
from posezoo.inference.timing import StageClock
from posezoo_plugins.mediapipe.landmarks import LandmarkResult
from posezoo_plugins.mediapipe.model import LANDMARK_COLUMNS, LandmarkModel, SampledTracker, SsdDetector, crop_sampling
from posezoo_plugins.mediapipe.regions import DetectorRegions, LandmarkRegions
from posezoo_plugins.mediapipe.roi import Roi, roi_from_points
from posezoo_plugins.mediapipe.roi_tracking import RoiTrackingRule, tracking_roi
from posezoo_plugins.mediapipe.smoothing import PoseSmoother
from posezoo_plugins.mediapipe.spec import LandmarkSpec, MediaPipeOptions, ModelSpec, RoiRule

FAMILY_NAME = "mediapipe-holistic"
HANDS = ("left_hand", "right_hand")


@dataclass(frozen=True)
class HolisticRules:
    """How the body pose gives the hands' and the face's regions (the module docstring; numbers from
    MediaPipe's holistic_landmark graphs)."""

    wrist_visibility: float = 0.1  # a hand is looked for when its wrist's visibility is over this
    # the body's (wrist, pinky, index) rows per hand, the person's left first
    hand_rows: tuple[tuple[int, int, int], tuple[int, int, int]] = ((15, 17, 19), (16, 18, 20))
    face_rows: tuple[int, int] = (0, 11)  # the body's face landmarks (nose .. mouth)
    # applied to (estimated middle finger, wrist): centred on the first, turned so wrist -> middle is up
    hand_from_pose: RoiRule = RoiRule(mode="alignment", start=0, end=1, rotation_target_deg=-90.0,
                                      scale_x=2.7, scale_y=2.7, shift_y=-0.1, square_long=True)
    hand_recrop: RoiRule = RoiRule(mode="alignment", start=0, end=1, rotation_target_deg=-90.0, shift_y=-0.1, square_long=True)
    hand_tracking: RoiTrackingRule = RoiTrackingRule(rotation_deg=40.0, translation=0.2, scale=0.4, recrop_margin=-0.1)
    hand_min_flag: float = 0.5
    # the bounds of the body's face rows, right eye (5) -> left eye (2) level
    face_from_pose: RoiRule = RoiRule(mode="box", bounds="axis", start=5, end=2, rotation_target_deg=0.0,
                                      scale_x=3.0, scale_y=3.0, square_long=True)
    # the bounds of the face detection's 6 keypoints (USE_KEYPOINTS), right eye (0) -> left eye (1) level
    face_from_detection: RoiRule = RoiRule(mode="box", bounds="axis", start=0, end=1, rotation_target_deg=0.0,
                                           scale_x=2.0, scale_y=2.0, shift_y=-0.1, square_long=True)
    face_tracking: RoiTrackingRule = RoiTrackingRule(rotation_deg=15.0, translation=0.1, scale=0.3, recrop_margin=-0.2)
    face_min_flag: float = 0.5


# hand_recrop.tflite: 256x256 in [0, 1], two points (x, y in crop pixels), no flag
HAND_RECROP = LandmarkSpec(
    input_size=(256, 256), num_landmarks=2, num_keypoints=2, values_per_landmark=2, input_range=(0.0, 1.0),
    landmarks_output="output_crop", flag_output=None,
)


REFINED = "-refined"  # the registry variants whose face model is the one with attention


def _prefixed(part: str, name: str) -> str:
    """``part.name``, without the part model's own ``part_`` prefix (``face_12`` -> ``face.12``)."""
    return f"{part}.{name.removeprefix(part + '_')}"


def _offset(edges: Sequence[tuple[int, int]], by: int) -> tuple[tuple[int, int], ...]:
    return tuple((a + by, b + by) for a, b in edges)


@dataclass(frozen=True)
class HolisticSpec:
    """A model of the ``mediapipe-holistic`` family: ``body`` (a two-stage spec: the pose detector, file
    role ``detector``, and its landmark model, ``landmark``), ``hand`` (its landmark stage: role
    ``hand_landmark``), ``recrop`` (the hand recrop model: ``hand_recrop``), ``face`` (its detector, run
    inside the region from the body: ``face_detector``, and its landmark stage: ``face_landmark``)."""

    family: ClassVar[str] = FAMILY_NAME
    roles: ClassVar[tuple[str, ...]] = ("detector", "landmark", "hand_recrop", "hand_landmark", "face_detector", "face_landmark")

    name: str
    body: ModelSpec
    hand: ModelSpec
    face: ModelSpec
    recrop: LandmarkSpec = HAND_RECROP
    rules: HolisticRules = HolisticRules()
    description: str = ""
    plugin: str = ""  # filled in by the plugin manager
    layout: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        nb, nh, nf = len(self.body.keypoint_names), len(self.hand.keypoint_names), len(self.face.keypoint_names)
        rows = {"body": (0, nb), "left_hand": (nb, nb + nh), "right_hand": (nb + nh, nb + 2 * nh), "face": (nb + 2 * nh, nb + 2 * nh + nf)}
        object.__setattr__(self, "layout", rows)

    @property
    def parts(self) -> tuple[tuple[str, int, int], ...]:
        return tuple((name, a, b) for name, (a, b) in self.layout.items())

    @property
    def keypoint_names(self) -> tuple[str, ...]:
        """The body's names as BlazePose gives them (``nose``, ``left_wrist``, ...); then each hand's and the
        face's own names after ``left_hand.``, ``right_hand.`` and ``face.`` (the face model's ``face_``
        dropped: ``face.0`` .. ``face.467``, refined also ``face.right_iris_center`` ...)."""
        return (
            tuple(self.body.keypoint_names)
            + tuple(_prefixed("left_hand", n) for n in self.hand.keypoint_names)
            + tuple(_prefixed("right_hand", n) for n in self.hand.keypoint_names)
            + tuple(_prefixed("face", n) for n in self.face.keypoint_names)
        )

    @property
    def mesh(self) -> tuple[tuple[int, int], ...]:
        """The face's surface mesh (its tesselation), in this pose's rows (``Capabilities.mesh``)."""
        return _offset(getattr(self.face, "mesh", ()), self.layout["face"][0])

    def for_variant(self, variant: str) -> "HolisticSpec":
        """The spec of registry variant ``variant``: ``*-refined`` runs the face model with attention (the
        face spec's ``refined`` variant: 478 landmarks, MediaPipe's refine_face_landmarks=True)."""
        if variant.endswith(REFINED) and hasattr(self.face, "for_variant"):
            return replace(self, face=self.face.for_variant("refined"))
        return self

    @property
    def skeleton(self) -> tuple[tuple[int, int], ...]:
        lay = self.layout
        return (
            tuple(self.body.skeleton)
            + _offset(self.hand.skeleton, lay["left_hand"][0])
            + _offset(self.hand.skeleton, lay["right_hand"][0])
            + _offset(self.face.skeleton, lay["face"][0])
        )

    @property
    def features(self) -> frozenset[str]:
        return self.body.features

    @property
    def coco_keypoints(self):
        return self.body.coco_keypoints

    @property
    def wholebody_keypoints(self) -> tuple:
        """COCO-WholeBody: the body's, the hands' and the face's tables together (each row names its
        part, so they hold in this layout as in the single-part models)."""
        return tuple(
            pair for spec in (self.body, self.hand, self.face) for pair in (getattr(spec, "wholebody_keypoints", None) or ())
        )

    max_poses: ClassVar[int | None] = None  # every detection may become a person

    def describe(self) -> dict:
        lm, hand, face = self.body.landmark, self.hand.landmark, self.face.landmark
        det = self.face.detector
        return {
            "body": self.body.describe(),
            "parts": {name: list(rows) for name, rows in self.layout.items()},
            "summary": [
                f"body: {self.body.name}'s detector and {lm.input_size[1]}x{lm.input_size[0]} landmark model, "
                f"{lm.num_keypoints} keypoints",
                f"hands: from the body's wrist, pinky and index (wrist visibility > {self.rules.wrist_visibility}), "
                f"recrop model {self.recrop.input_size[1]}x{self.recrop.input_size[0]}, "
                f"hand landmarks {hand.input_size[1]}x{hand.input_size[0]}, {hand.num_keypoints} each",
                f"face: from the body's face landmarks, face detector {det.input_size[1]}x{det.input_size[0]} in that "
                f"region, face landmarks {face.input_size[1]}x{face.input_size[0]}, {face.num_keypoints}",
            ],
        }


def _finite_box(landmarks: np.ndarray) -> np.ndarray:
    """[x0, y0, x1, y1] around the rows of ``landmarks`` that are not NaN."""
    xy = landmarks[:, :2]
    xy = xy[np.isfinite(xy).all(axis=1)]
    return np.concatenate([xy.min(axis=0), xy.max(axis=0)]).astype(np.float32)


class HolisticRegions(RegionModel):
    """The whole person in a body region: the body's landmark model there, then the hands and the face
    in the regions the body pose gives (and, in video, the regions last frame's hands and face give:
    the person's :attr:`Region.keypoints`). A region's person is found when the body is (its pose flag
    at least ``threshold``, None: the body spec's)."""

    def __init__(self, spec: HolisticSpec, body: LandmarkModel, recrop: LandmarkModel, hand: LandmarkModel,
                 face_detector: SsdDetector, face: LandmarkModel):
        self.spec = spec
        self.body = LandmarkRegions(body)
        self.recrop, self.hand, self.face_detector, self.face = recrop, hand, face_detector, face
        self.stages = (body, recrop, hand, face_detector, face)
        self.rules = spec.rules
        self.layout = spec.layout
        self.names = spec.keypoint_names
        # model runs and regions kept from last frame, by part stage: what the video path costs
        self.counts = Counter()
        # the filters of the people a tracker holds, by track id (HolisticTracker sets them each frame)
        self.smoothers: dict[int, BodySmoother] = {}
        self._face_worker: ThreadPoolExecutor | None = None

    # -- parts

    def hand_region(self, frame: Frame, rows: np.ndarray) -> Roi | None:
        """The recrop region of a hand from the body's (wrist, pinky, index) rows, or None when the wrist
        is not visible enough."""
        rules = self.rules
        if not rows[0, 3] > rules.wrist_visibility:
            return None
        wrist, pinky, index = rows[:, :2].astype(np.float64)
        middle = (2.0 * index + pinky) / 3.0
        roi = roi_from_points(np.stack([middle, wrist]), rules.hand_from_pose)
        self.counts["hand_recrop"] += 1
        points = self.recrop.landmarks_in_roi(frame.rgb, roi).landmarks
        return roi_from_points(points, rules.hand_recrop)

    def face_region(self, frame: Frame, rows: np.ndarray) -> Roi | None:
        """The recrop region of the face from the body's face rows (the face detector inside the region
        they give), or None when the detector finds no face there."""
        rules = self.rules
        roi = roi_from_points(rows, rules.face_from_pose)
        self.counts["face_detector"] += 1
        faces = self.face_detector.detect_in_roi(frame.rgb, roi)
        if not faces:
            return None
        return roi_from_points(faces[0].keypoints, rules.face_from_detection)

    def _previous(self, region: Region, part: str) -> np.ndarray | None:
        """Last frame's landmarks of ``part`` carried by ``region`` (pixels), or None."""
        if region.keypoints is None or tuple(region.names) != self.names:
            return None
        a, b = self.layout[part]
        rows = region.keypoints[a:b]
        return None if not np.isfinite(rows[:, :2]).all() else rows

    def hand_roi(self, frame: Frame, rows: np.ndarray, previous: np.ndarray | None) -> Roi | None:
        """Where the hand landmark model looks for a hand: the recrop region of the body's (wrist, pinky,
        index) ``rows``, or the region of last frame's landmarks ``previous`` while it agrees with it;
        None when the wrist is not visible enough."""
        return self._kept_roi("hand", self.hand_region(frame, rows), previous)

    def _kept_roi(self, part: str, recrop: Roi | None, previous: np.ndarray | None) -> Roi | None:
        """``recrop`` (the region from this frame's body), or the region of last frame's ``part``
        (``"hand"`` or ``"face"``) landmarks ``previous`` while the two agree (RoiTrackingCalculator)."""
        if recrop is None or previous is None:
            return recrop
        stage, rule = (self.spec.hand, self.rules.hand_tracking) if part == "hand" else (self.spec.face, self.rules.face_tracking)
        prev_roi = roi_from_points(previous, stage.landmark.tracking_roi)
        roi = tracking_roi(previous, prev_roi, recrop, rule)
        self.counts[f"{part}_kept"] += roi is prev_roi
        return roi

    def hands_in(self, frame: Frame, rois: Sequence[Roi | None]) -> list[LandmarkResult | None]:
        """The hand landmark model in each region of ``rois`` (one batched run for both hands); None where
        there is no region or the hand's flag is not over ``hand_min_flag``."""
        wanted = [roi for roi in rois if roi is not None]
        self.counts["hand_landmark"] += len(wanted)
        found = iter(self.hand.landmarks_in_rois(frame.rgb, wanted))
        results = [next(found) if roi is not None else None for roi in rois]
        return [r if r is not None and r.flag > self.rules.hand_min_flag else None for r in results]

    def face_in(self, frame: Frame, rows: np.ndarray, previous: np.ndarray | None) -> LandmarkResult | None:
        """The face: the landmark model in the region from the body's face ``rows`` (or last frame's,
        :meth:`_kept_roi`); None when there is none or the face's flag is not over ``face_min_flag``."""
        roi = self._kept_roi("face", self.face_region(frame, rows), previous)
        if roi is None:
            return None
        self.counts["face_landmark"] += 1
        result = self.face.landmarks_in_roi(frame.rgb, roi)
        return result if result.flag > self.rules.face_min_flag else None

    def _worker(self) -> ThreadPoolExecutor | None:
        """The thread the face branch runs on beside the hands' (the two share nothing: their own
        sessions, crop buffers and regions; onnxruntime and OpenCV let go of the GIL while they work), or
        None to run it in turn: one core (or ``$POSEZOO_THREADS`` 1: a worker of a pool), or a stage
        clock timing the stages (the bench's per-stage table adds up only in turn)."""
        if self.face.clock.enabled or session_threads() < 2:
            return None
        if self._face_worker is None:
            self._face_worker = ThreadPoolExecutor(1, thread_name_prefix="posezoo-face")
        return self._face_worker

    # -- the seam

    def whole_body(self, frame: Frame, body: Pose, region: Region) -> Pose:
        """The person of ``body`` with hands and face (one :class:`Pose`, the module docstring's layout)."""
        lay, k = self.layout, len(self.names)
        landmarks = np.full((k, len(LANDMARK_COLUMNS)), np.nan, np.float32)
        a, b = lay["body"]
        landmarks[a:b] = body.landmarks
        parts: dict[str, tuple[int, int] | None] = {"body": (a, b)}
        found: dict[str, LandmarkResult | None] = {}
        f0, f1 = self.rules.face_rows
        face_args = (frame, body.landmarks[f0:f1], self._previous(region, "face"))
        worker = self._worker()
        face = worker.submit(self.face_in, *face_args) if worker is not None else None  # beside the hands
        rois = [self.hand_roi(frame, body.landmarks[list(rows)], self._previous(region, side)) for side, rows in zip(HANDS, self.rules.hand_rows)]
        found.update(zip(HANDS, self.hands_in(frame, rois)))
        found["face"] = face.result() if face is not None else self.face_in(*face_args)
        for part, result in found.items():
            if result is None:
                parts[part] = None
                continue
            a, b = lay[part]
            rows = landmarks[a:b]
            rows[:, :3] = result.landmarks[:, :3]
            rows[:, 3:] = result.flag
            parts[part] = (a, b)
        world = None
        if body.world_landmarks is not None:
            world = np.full((k, 3), np.nan, np.float32)
            world[: len(body.world_landmarks)] = body.world_landmarks
        return replace(body, landmarks=landmarks, names=self.names, world_landmarks=world, box=_finite_box(landmarks), parts=parts)

    def predict_regions(self, frame: Frame, regions: Sequence[Region], *, threshold: float | None = None, options: Any = None) -> list[Pose | None]:
        """The body in each region, then its hands and face. A region of a person a tracker holds (its
        ``track_id`` among :attr:`smoothers`) has the body smoothed first, as MediaPipe's video graph
        finds hands and face from the filtered pose landmarks."""
        bodies = self.body.predict_regions(frame, regions, threshold=threshold, options=options)
        out: list[Pose | None] = []
        for body, region in zip(bodies, regions):
            if body is None:
                out.append(None)
                continue
            smoother = self.smoothers.get(region.track_id) if region.track_id is not None else None
            if smoother is not None and frame.timestamp is not None:
                body = smoother.smooth(body, frame.timestamp)
            out.append(self.whole_body(frame, body, region))
        return out

    def next_region(self, pose: Pose) -> Region:
        """The body's next region (from its smoothed auxiliary landmarks), carrying this frame's whole-body
        landmarks: the hands' and face's tracking regions on the next frame come from them."""
        nxt = self.body.next_region(pose)
        return replace(nxt, keypoints=pose.landmarks, names=pose.names)

    def new_smoother(self, fps: float) -> "BodySmoother":
        return BodySmoother(self.body.new_smoother(fps), self.layout["body"])

    def timed(self, clock: StageClock):
        from contextlib import ExitStack

        stack = ExitStack()
        for stage in self.stages:
            stack.enter_context(stage.timed(clock))
        return stack


class BodySmoother:
    """MediaPipe's landmark filters on the body rows of a whole-body pose (and its world and auxiliary
    landmarks); hands and face pass unchanged, as in MediaPipe's Holistic."""

    def __init__(self, body: PoseSmoother, rows: tuple[int, int]):
        self.body, self.rows = body, rows
        self.last: float | None = None  # the timestamp of the last pose smoothed

    def smooth(self, pose: Pose, timestamp: float) -> Pose:
        """``pose`` with its body rows smoothed; a pose this filter already smoothed at ``timestamp``
        (the region model smooths the body before the hands and face are found) passes as it is."""
        if self.last == timestamp:
            return pose
        self.last = timestamp
        a, b = self.rows
        world = None if pose.world_landmarks is None else pose.world_landmarks[a:b]
        lms, world_s, aux = self.body.apply(pose.landmarks[a:b], world, pose.aux, timestamp)
        landmarks = pose.landmarks.copy()
        landmarks[a:b] = lms
        out_world = None
        if world_s is not None:
            out_world = pose.world_landmarks.copy()
            out_world[a:b] = world_s
        return replace(pose, landmarks=landmarks, world_landmarks=out_world, aux=aux, box=_finite_box(landmarks))


class Holistic(TopDownModel):
    """Runs a :class:`HolisticSpec` on its six ONNX files (by role). ``predict``: every kept detection (up
    to ``max_poses``) becomes a person with body, hands and face; ``tracker``: the core's top-down
    tracker, each person's hands and face tracked from their last landmarks. Options: the two-stage
    family's (segmentation: the body's mask; sampling: every crop's)."""

    family = FAMILY_NAME
    options_type = MediaPipeOptions

    def __init__(self, spec: HolisticSpec, files: dict[str, Path], *, variant: str | None = None, device: str = "auto"):
        files = self.require_files(spec, files, spec.roles)
        sessions = {role: Session(files[role], device, role=role) for role in spec.roles}
        self.ssd = SsdDetector(spec.body, sessions["detector"])
        self.body = LandmarkModel(spec.body, sessions["landmark"])
        self.recrop = LandmarkModel(spec.hand, sessions["hand_recrop"], landmark=spec.recrop)
        self.hand = LandmarkModel(spec.hand, sessions["hand_landmark"])
        self.face_detector = SsdDetector(spec.face, sessions["face_detector"])
        self.face = LandmarkModel(spec.face, sessions["face_landmark"])
        regions = HolisticRegions(spec, self.body, self.recrop, self.hand, self.face_detector, self.face)
        super().__init__(spec, DetectorRegions(self.ssd), regions, sessions=sessions, variant=variant)

    @property
    def crop_stages(self) -> tuple:
        """The stages whose crops the ``sampling`` option sets."""
        return tuple(s.stage for s in (self.ssd, self.body, self.recrop, self.hand, self.face_detector, self.face))

    def _predict(self, image_bgr, *, max_poses, threshold, options: MediaPipeOptions):
        with crop_sampling(self.crop_stages, options.sampling):
            return super()._predict(image_bgr, max_poses=max_poses, threshold=threshold, options=options)

    def _tracker(self, *, max_poses, threshold, smooth, options: MediaPipeOptions):
        return HolisticTracker(
            self.detector, self.region_model, stages=self.crop_stages, sampling=options.sampling,
            max_poses=max_poses, threshold=threshold, smooth=smooth, options=options, to_rgb=self.to_rgb,
            **tracker_settings(options),
        )


class HolisticTracker(SampledTracker):
    """The core's top-down tracker, the crops sampled as the ``sampling`` option says, and each held
    person's body filter handed to the region model before it runs (:attr:`HolisticRegions.smoothers`),
    so the hands and the face come from the smoothed body (a person's first frame passes unfiltered, as
    the filters' first sample does)."""

    def _run(self, frame, regions):
        self.model.smoothers = {t.id: t.smoother for t in self._tracks if t.smoother is not None}
        return super()._run(frame, regions)


FAMILY = Family(
    name=FAMILY_NAME,
    spec_type=HolisticSpec,
    roles=HolisticSpec.roles,
    build=Holistic.from_files,
    options=MediaPipeOptions,
    description="BlazePose's body -> hand regions (recrop model) and face region (face detector) -> hand and face landmarks",
)
