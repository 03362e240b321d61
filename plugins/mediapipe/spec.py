"""Specs of the two-stage family (family ``"mediapipe"``): SSD detector -> rotated crop -> landmarks.

A plugin of this family is mostly data. It fills a :class:`ModelSpec` (detector + landmark stages,
keypoint names, skeleton, ROI rules) and the shared stages (anchors, detect, roi, landmarks, track,
draw) do the rest: MediaPipe's BlazePose (full body, upper body) and Hands are such models. Nothing
here runs a model; everything here is plain, frozen data. (Other families bring their own spec type;
see :mod:`posezoo.inference.model`.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import ClassVar

from posezoo.inference.model import feature_option, option
from posezoo.inference.tracking import DEFAULT_FPS
from posezoo_plugins.mediapipe.anchors import AnchorOptions, generate_anchors

__all__ = [
    "AnchorOptions",
    "DetectorSpec",
    "LandmarkSpec",
    "MediaPipeOptions",
    "ModelSpec",
    "Refinement",
    "RoiRule",
    "SmoothingSpec",
]


@dataclass(frozen=True)
class RoiRule:
    """How a detection (or the tracked auxiliary landmarks) becomes a rotated square crop.

    ``mode="alignment"``: centre = keypoint ``start``, side = 2 * |end - start| (pixels).
    ``mode="box"``: centre and size from the detection box.
    In both modes the rotation is ``target - angle(start -> end)``; then the rect is shifted by
    ``shift_x/shift_y`` (fractions of its size, in its own rotated frame), scaled by
    ``scale_x/scale_y`` and, with ``square_long``, made square on its long side.

    From landmarks (no detection box), ``mode="box"`` bounds the points: ``bounds="rotated"`` in the
    rect's own rotated frame (MediaPipe's HandLandmarksToRectCalculator), ``bounds="axis"`` the
    axis-aligned box (LandmarksToDetectionCalculator, then DetectionsToRects: Face Mesh). ``points``:
    the rows the rule reads (() = all; ``start``, ``end`` and ``end_mix`` then index into them);
    ``end_mix``: the rotation's end point as a weighted sum of points ((index, weight), ...) instead of
    ``end`` (Hands: wrist -> the mean of the middle MCP and of the index and ring MCPs' mean).
    """

    mode: str = "alignment"
    start: int = 0
    end: int = 1
    rotation_target_deg: float = 90.0
    scale_x: float = 1.0
    scale_y: float = 1.0
    shift_x: float = 0.0
    shift_y: float = 0.0
    square_long: bool = True
    points: tuple[int, ...] = ()
    end_mix: tuple[tuple[int, float], ...] = ()
    bounds: str = "rotated"

    def __post_init__(self) -> None:
        if self.bounds not in ("rotated", "axis"):
            raise ValueError(f"ROI rule: bounds must be 'rotated' or 'axis', not {self.bounds!r}")

    @property
    def rotation_target(self) -> float:
        return math.radians(self.rotation_target_deg)

    def indices(self) -> tuple[int, ...]:
        """The indices the rule reads (into ``points`` when given): start, end or the end mix."""
        return (self.start, *(i for i, _ in self.end_mix)) if self.end_mix else (self.start, self.end)

    def check(self, what: str, available: int, kind: str = "points") -> None:
        """ValueError unless the rule's indices fit ``available`` points (called ``kind``)."""
        rows = self.points or tuple(range(available))
        if not all(0 <= i < available for i in rows):
            raise ValueError(f"{what} points {self.points} are outside the {available} {kind} it is applied to")
        if not all(0 <= i < len(rows) for i in self.indices()):
            end = f"{self.end}" if not self.end_mix else f"mix {[i for i, _ in self.end_mix]}"
            what_in = kind if not self.points else "points it reads"
            raise ValueError(f"{what} {self.start} -> {end} is outside the {len(rows)} {what_in} it is applied to")


SAMPLINGS = ("cpu", "gpu")


def _check_sampling(what: str, sampling: str) -> None:
    if sampling not in SAMPLINGS:
        raise ValueError(f"{what}: sampling must be one of {', '.join(SAMPLINGS)}, not {sampling!r}")


@dataclass(frozen=True, kw_only=True)
class DetectorSpec:
    """An SSD detector with keypoints (BlazePose, BlazePalm).

    What differs between detectors has no default (input size and range, anchors, the ROI rule, the
    number of coordinates and keypoints per anchor); the rest defaults to the layout MediaPipe's
    TensorsToDetectionsCalculator uses for all of them (box first, then x, y per keypoint).
    """

    input_size: tuple[int, int]  # (height, width)
    anchors: AnchorOptions
    roi: RoiRule
    input_range: tuple[float, float]  # pixel values 0..255 are scaled to this range
    num_coords: int  # values per anchor in the boxes output
    num_keypoints: int
    box_coord_offset: int = 0
    keypoint_coord_offset: int = 4
    values_per_keypoint: int = 2
    reverse_output_order: bool = True  # x before y
    box_scale: tuple[float, float] | None = None  # (x_scale, y_scale, = w, h scales); None -> input w, h
    score_clip: float = 100.0
    min_score: float = 0.5
    nms_iou: float = 0.3
    boxes_output: str | int = 0  # output name or index of [1, N, num_coords]
    scores_output: str | int = 1  # output name or index of [1, N, 1]
    sampling: str = "cpu"  # "cpu": MediaPipe's OpenCV crop; "gpu": its GL one (pixel centres; see preprocess.crop)
    # still images: of the best max_poses crops, one whose square overlaps a later one's by more than this
    # (IoU) is the same object and gives way to it (MediaPipe's AssociationNormRectCalculator of Hands and
    # Face Mesh, min_similarity_threshold); None: every crop is kept (BlazePose)
    region_overlap: float | None = None

    def __post_init__(self) -> None:
        _check_sampling("detector spec", self.sampling)


@dataclass(frozen=True)
class Refinement:
    """One more landmark output whose points replace (or add) rows of the landmarks, as MediaPipe's
    LandmarksRefinementCalculator does (Face Mesh with attention: lips, eyes, irises).

    ``rows``: the rows its points go to, in order (rows past the main output's are added).
    ``values_per_landmark``: 2 (x, y) or 3 (x, y, z), decoded as the main output is. ``z``: ``"none"``
    keeps the row's z (0 for an added row), ``"copy"`` takes the output's own z, ``"average"`` gives every
    point the mean z of rows ``z_rows`` (after the refinements before it).
    """

    output: str | int
    rows: tuple[int, ...]
    values_per_landmark: int = 2
    z: str = "none"
    z_rows: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.z not in ("none", "copy", "average"):
            raise ValueError(f"refinement {self.output!r}: z must be none, copy or average, not {self.z!r}")
        if self.z == "average" and not self.z_rows:
            raise ValueError(f"refinement {self.output!r}: z 'average' needs z_rows")
        if self.z == "copy" and self.values_per_landmark < 3:
            raise ValueError(f"refinement {self.output!r}: z 'copy' needs 3 values per landmark")


@dataclass(frozen=True)
class LandmarkSpec:
    """A landmark model run on the rotated crop."""

    input_size: tuple[int, int]  # (height, width)
    num_landmarks: int  # rows read from the landmark tensor (keypoints + auxiliary)
    num_keypoints: int  # the ones reported (body)
    values_per_landmark: int = 5  # x, y, z, visibility, presence (3 for hands: x, y, z)
    tensor_landmarks: int | None = None  # rows the tensor holds, when more than are read (None: num_landmarks)
    normalize_z: float = 1.0  # z is divided by the input width and then by this (TensorsToLandmarks)
    input_range: tuple[float, float] = (0.0, 1.0)
    landmarks_output: str | int = 0
    flag_output: str | int | None = 1
    world_output: str | int | None = None
    segmentation_output: str | int | None = None
    heatmap_output: str | int | None = None
    heatmap_kernel: int = 7
    heatmap_min_confidence: float = 0.5
    flag_threshold: float = 0.5
    flag_is_logit: bool = False  # True: apply sigmoid to the flag output
    aux_landmarks: tuple[int, int] | None = None  # (start, end) rows used for the next frame's ROI
    # ROI rule for the next frame (None: the detector's), applied to the 2 aux landmarks when there are
    # some (its start/end then index that pair: 0 -> 1), else to the num_keypoints landmarks
    tracking_roi: RoiRule | None = None
    sampling: str = "cpu"  # "cpu": MediaPipe's OpenCV crop; "gpu": its GL one (pixel centres; see preprocess.crop)
    # a binary classification output (e.g. Hands' handedness), one probability s, as MediaPipe's
    # TensorsToClassificationCalculator with binary_classification reads it: labels[0] scores s,
    # labels[1] scores 1 - s, the higher one is the pose's label (Pose.label, Pose.label_score)
    label_output: str | int | None = None
    labels: tuple[str, ...] = ()
    # more landmark outputs merged into the main one's rows, in order (LandmarksRefinementCalculator)
    refinements: tuple[Refinement, ...] = ()

    @property
    def rows(self) -> int:
        """Rows of the raw landmark tensor (``tensor_landmarks`` or ``num_landmarks``)."""
        return self.tensor_landmarks or self.num_landmarks

    @property
    def total_landmarks(self) -> int:
        """Rows of the decoded landmarks: the main output's ``num_landmarks`` and any rows the
        refinements add."""
        return max([self.num_landmarks] + [max(r.rows) + 1 for r in self.refinements if r.rows])

    def __post_init__(self) -> None:
        _check_sampling("landmark spec", self.sampling)
        if self.num_keypoints > self.total_landmarks:
            raise ValueError(f"landmark spec: {self.num_keypoints} keypoints but {self.total_landmarks} landmark rows")
        for ref in self.refinements:
            if not all(0 <= i < self.total_landmarks for i in ref.rows + ref.z_rows):
                raise ValueError(f"landmark spec: refinement {ref.output!r} names a row outside 0..{self.total_landmarks - 1}")
        if self.aux_landmarks is not None and not all(0 <= i < self.num_landmarks for i in self.aux_landmarks):
            raise ValueError(
                f"landmark spec: aux_landmarks {self.aux_landmarks} are outside the {self.num_landmarks} rows read"
            )
        rule = self.tracking_roi
        points = 2 if self.aux_landmarks is not None else self.num_keypoints
        if rule is not None:
            aux = self.aux_landmarks is not None
            try:
                rule.check("landmark spec: tracking_roi", points, "auxiliary landmarks" if aux else "keypoints")
            except ValueError as exc:
                raise ValueError(f"{exc} (use 0 -> 1)" if aux else str(exc)) from None
        if self.label_output is not None and len(self.labels) != 2:
            raise ValueError("landmark spec: a label_output needs its two labels (score s -> labels[0], 1 - s -> labels[1])")
        if self.tensor_landmarks is not None and self.tensor_landmarks < self.num_landmarks:
            raise ValueError(
                f"landmark spec: tensor_landmarks ({self.tensor_landmarks}) is less than num_landmarks "
                f"({self.num_landmarks}), the rows to read"
            )


@dataclass(frozen=True)
class MediaPipeOptions:
    """The two-stage family's options (typed; ``posezoo info`` lists them)."""

    segmentation: bool = feature_option(feature="segmentation", help="also compute the segmentation mask")
    redetect_every: int = option(15, help="video, several people: run the detector every N frames while fewer are held")
    overlap: float = option(0.5, help="video: a detection whose crop overlaps a held one this much is the same person")
    fps: float = option(DEFAULT_FPS, help="video: frames per second assumed when updates carry no timestamp")
    sampling: str | None = option(
        None,
        choices=SAMPLINGS,
        help="crop sampling: cpu (MediaPipe's OpenCV path) or gpu (its GL path: pixel centres); default: the model's",
    )


@dataclass(frozen=True)
class SmoothingSpec:
    """One-euro / low-pass parameters for video (MediaPipe pose_landmark_filtering)."""

    landmarks: tuple[float, float, float] = (0.05, 80.0, 1.0)  # min_cutoff, beta, derivate_cutoff
    world: tuple[float, float, float] = (0.1, 40.0, 1.0)
    aux: tuple[float, float, float] = (0.01, 10.0, 1.0)
    visibility_alpha: float = 0.1


@dataclass(frozen=True)
class ModelSpec:
    """Everything the two-stage family needs to run one model of the zoo, apart from the weight files.

    The registry gives each variant's files by role: ``detector`` and ``landmark`` for this family.
    """

    family: ClassVar[str] = "mediapipe"
    roles: ClassVar[tuple[str, ...]] = ("detector", "landmark")

    name: str
    detector: DetectorSpec
    landmark: LandmarkSpec
    keypoint_names: tuple[str, ...]
    skeleton: tuple[tuple[int, int], ...]
    description: str = ""
    smoothing: SmoothingSpec = field(default_factory=SmoothingSpec)
    # which keypoints are COCO's 17: ((coco name, keypoint name), ...); None: by name (posezoo.io.coco)
    coco_keypoints: tuple[tuple[str, str], ...] | None = None
    # the keypoint groups of every pose: ((part, start, stop), ...) (Capabilities.parts, Pose.parts); () = body
    parts: tuple[tuple[str, int, int], ...] = ()
    # a pose's one part named after its label (e.g. "{label}_hand": left_hand / right_hand), all its rows
    label_part: str = ""
    # a surface mesh over the keypoints: edges (a, b) (Capabilities.mesh; drawn on request)
    mesh: tuple[tuple[int, int], ...] = ()
    # variants that differ in more than their files (e.g. more keypoints): (variant name, its spec), ...;
    # the zoo resolves a variant to its spec through for_variant (the others: this spec)
    variant_specs: tuple[tuple[str, "ModelSpec"], ...] = ()
    plugin: str = ""  # filled in by the plugin manager

    def for_variant(self, variant: str) -> "ModelSpec":
        """The spec of registry variant ``variant``: its own from ``variant_specs``, else this one (with
        this spec's ``plugin``)."""
        for name, spec in self.variant_specs:
            if name == variant:
                return replace(spec, plugin=self.plugin) if spec.plugin != self.plugin else spec
        return self

    def __post_init__(self) -> None:
        k = len(self.keypoint_names)
        if k != self.landmark.num_keypoints:
            raise ValueError(
                f"model spec {self.name!r}: {k} keypoint names but the landmark model reports "
                f"{self.landmark.num_keypoints}"
            )
        for what, edges in (("skeleton", self.skeleton), ("mesh", self.mesh)):
            for a, b in edges:
                if not (0 <= a < k and 0 <= b < k):
                    raise ValueError(f"model spec {self.name!r}: {what} edge ({a}, {b}) is outside 0..{k - 1}")
        for part, a, b in self.parts:
            if not 0 <= a < b <= k:
                raise ValueError(f"model spec {self.name!r}: part {part!r} rows {a}..{b} are outside 0..{k}")
        for variant, spec in self.variant_specs:
            if not isinstance(spec, ModelSpec) or spec.name != self.name:
                raise ValueError(f"model spec {self.name!r}: variant {variant!r} must be a ModelSpec named {self.name!r}")

    max_poses: ClassVar[int | None] = None  # every detection may become a pose

    @property
    def features(self) -> frozenset[str]:
        """The optional outputs this model's landmark spec reads: ``segmentation``, ``world``."""
        lm = self.landmark
        return frozenset(f for f, out in (("segmentation", lm.segmentation_output), ("world", lm.world_output)) if out is not None)

    def describe(self) -> dict:
        """The stages, for ``posezoo info`` (plain data; no weights needed)."""
        det, lm = self.detector, self.landmark
        roi = det.roi
        return {
            "detector": {
                "input_size": list(det.input_size),
                "input_range": list(det.input_range),
                "anchors": int(len(generate_anchors(det.anchors))),
                "keypoints": det.num_keypoints,
                "roi": {"mode": roi.mode, "start": roi.start, "end": roi.end, "scale": roi.scale_x},
            },
            "landmark": {
                "input_size": list(lm.input_size),
                "input_range": list(lm.input_range),
                "keypoints": lm.num_keypoints,
                "raw_landmarks": lm.num_landmarks,
                "tensor_landmarks": lm.rows,
            },
            "summary": [
                f"detector: {det.input_size[1]}x{det.input_size[0]} input, "
                f"{len(generate_anchors(det.anchors))} anchors, {det.num_keypoints} keypoints, "
                f"ROI {roi.mode} {roi.start}->{roi.end} x{roi.scale_x}",
                f"landmark: {lm.input_size[1]}x{lm.input_size[0]} input, {lm.num_keypoints} keypoints "
                f"({lm.num_landmarks} raw"
                + (f" of {lm.rows} in the tensor)" if lm.rows != lm.num_landmarks else ")"),
            ],
        }
