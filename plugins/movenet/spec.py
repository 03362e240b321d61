"""The MoveNet family's model spec: plain, frozen data (nothing here runs a model).

Numbers from TF.js pose-detection 2 (its MoveNet detector and constants), the reference pipeline the
plugin reproduces.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from posezoo.io.coco import COCO_KEYPOINTS

COCO_NAMES: tuple[str, ...] = COCO_KEYPOINTS  # COCO's 17 keypoint names, the core's (posezoo.io.coco)

# the edges TF.js pose-detection draws for MoveNet (COCO's own 19 are posezoo.io.coco.COCO_SKELETON)
COCO_SKELETON: tuple[tuple[int, int], ...] = (
    (0, 1), (0, 2), (1, 3), (2, 4), (5, 6), (5, 7), (5, 11), (6, 8), (6, 12), (7, 9), (8, 10),
    (11, 12), (11, 13), (12, 14), (13, 15), (14, 16),
)  # fmt: skip


@dataclass(frozen=True)
class CropRule:
    """How a single-person model's next crop follows the person (video).

    The crop is a square (in pixels) centred on the hips' midpoint. Its half side is the largest of
    ``torso_scale`` x the farthest torso joint (shoulders, hips) from the centre, in x or in y, and
    ``body_scale`` x the farthest keypoint scoring at least ``min_keypoint_score``; it never reaches
    farther from the centre than the farthest image border. When the torso is not seen (no hip or no
    shoulder above ``min_keypoint_score``), or the square would be wider than the image's long side,
    the crop falls back to the whole image padded to a square. Crops are low-passed with ``alpha``.
    """

    min_keypoint_score: float = 0.2
    torso_scale: float = 1.9
    body_scale: float = 1.2
    alpha: float = 0.9


@dataclass(frozen=True)
class KeypointSmoothing:
    """One-euro filter on the keypoints (normalized image coordinates, no object scale), with the
    step softened by ``threshold_cutoff + threshold_beta * |speed|``; see posezoo.inference.tracking.OneEuroFilter."""

    min_cutoff: float = 2.5
    beta: float = 300.0
    derivate_cutoff: float = 2.5
    threshold_cutoff: float = 0.5
    threshold_beta: float = 5.0


@dataclass(frozen=True)
class IdentityRule:
    """Multi-person video: identities from box IoU (posezoo.inference.tracking.BoxIdentities)."""

    min_similarity: float = 0.15
    max_age: float = 1.0  # seconds
    max_tracks: int = 18


VIDEO_CROPS = ("fast", "exact")


@dataclass(frozen=True)
class MoveNetSpec:
    """A MoveNet model: one TF.js graph model (file role ``model``) taking int32 RGB pixels.

    ``multipose`` False: a single-person model whose square input (``input_size`` pixels) is a crop of
    the image, tracked from frame to frame (:class:`CropRule`); it outputs [1, 1, K, 3] (y, x, score)
    normalized to the crop. True: a multi-person model taking the whole image resized to
    ``input_size`` on its long side and padded to multiples of ``size_divisor``; it outputs
    [1, max_poses, K * 3 + 5]: per person K (y, x, score), then the box (ymin, xmin, ymax, xmax) and
    the person's score, normalized to the padded input.

    ``video_crop`` (single-person): how a tracked video frame's crop is sampled. ``"fast"``: OpenCV's
    fixed-point bilinear warp (:func:`posezoo.inference.preprocess.crop_and_resize_warp`), about 0.7 ms a frame
    quicker at 192x192, keypoints within a pixel of the exact crop's; ``"exact"``: TensorFlow's
    ``crop_and_resize``, as photos always are.
    """

    family: ClassVar[str] = "movenet"
    roles: ClassVar[tuple[str, ...]] = ("model",)

    name: str
    multipose: bool
    input_size: int
    description: str = ""
    keypoint_names: tuple[str, ...] = COCO_NAMES
    skeleton: tuple[tuple[int, int], ...] = COCO_SKELETON
    max_poses: int = 1  # people per image (the model's instances for multipose)
    min_pose_score: float = 0.25  # a person is reported from this score on
    min_keypoint_score: float = 0.2  # single-person score: mean of the keypoint scores above this
    size_divisor: int = 32
    output: str | int = 0  # the output's name or index
    crop: CropRule = field(default_factory=CropRule)
    smoothing: KeypointSmoothing = field(default_factory=KeypointSmoothing)
    identities: IdentityRule = field(default_factory=IdentityRule)
    video_crop: str = "fast"  # "fast" or "exact": see above
    plugin: str = ""  # filled in by the plugin manager

    def __post_init__(self) -> None:
        if self.input_size < 1 or self.max_poses < 1:
            raise ValueError(f"model spec {self.name!r}: input_size and max_poses must be positive")
        if self.multipose and self.input_size % self.size_divisor:
            raise ValueError(
                f"model spec {self.name!r}: input_size {self.input_size} is not a multiple of {self.size_divisor}"
            )
        if self.video_crop not in VIDEO_CROPS:
            raise ValueError(
                f"model spec {self.name!r}: video_crop must be one of {', '.join(VIDEO_CROPS)}, not {self.video_crop!r}"
            )
        if not self.multipose and self.max_poses != 1:
            raise ValueError(f"model spec {self.name!r}: a single-person model finds max_poses=1")
        k = len(self.keypoint_names)
        for a, b in self.skeleton:
            if not (0 <= a < k and 0 <= b < k):
                raise ValueError(f"model spec {self.name!r}: skeleton edge ({a}, {b}) is outside 0..{k - 1}")

    @property
    def output_width(self) -> int:
        """Values per person in the output: K x (y, x, score), plus box and score when multi-person."""
        return len(self.keypoint_names) * 3 + (5 if self.multipose else 0)

    def describe(self) -> dict:
        """What ``posezoo info`` shows (plain data; no weights needed)."""
        s, k = self.smoothing, len(self.keypoint_names)
        if self.multipose:
            ident = self.identities
            summary = [
                f"input: whole image resized to {self.input_size} px on its long side, padded to multiples "
                f"of {self.size_divisor}, int32 RGB",
                f"output: up to {self.max_poses} people, each {k} keypoints (y, x, score), a box and a score "
                f"(kept from {self.min_pose_score})",
                f"video: identities by box IoU >= {ident.min_similarity} (kept {ident.max_age:g} s), "
                f"keypoints one-euro filtered (min_cutoff {s.min_cutoff:g}, beta {s.beta:g})",
            ]
        else:
            c = self.crop
            summary = [
                f"input: {self.input_size}x{self.input_size} int32 RGB crop of the image (TF crop_and_resize)",
                f"output: 1 person, {k} keypoints (y, x, score); person score = mean keypoint score above "
                f"{self.min_keypoint_score} (kept from {self.min_pose_score})",
                "crop: image centre square; in video from the last keypoints (hips centre, torso "
                f"x{c.torso_scale:g}, body x{c.body_scale:g}, low-pass {c.alpha:g})",
                f"video: keypoints one-euro filtered (min_cutoff {s.min_cutoff:g}, beta {s.beta:g}); "
                + ("crops by OpenCV's warp (fast)" if self.video_crop == "fast" else "crops by TF crop_and_resize (exact)"),
            ]
        return {
            "multipose": self.multipose,
            "input": {
                "size": self.input_size,
                "dtype": "int32",
                "channels": "RGB",
                "size_divisor": self.size_divisor if self.multipose else None,
            },
            "max_poses": self.max_poses,
            "min_pose_score": self.min_pose_score,
            "min_keypoint_score": self.min_keypoint_score,
            "crop": None if self.multipose else vars(self.crop).copy(),
            "video_crop": None if self.multipose else self.video_crop,
            "smoothing": vars(self.smoothing).copy(),
            "identities": vars(self.identities).copy() if self.multipose else None,
            "summary": summary,
        }
