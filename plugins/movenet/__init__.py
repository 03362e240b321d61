"""The MoveNet family (``movenet``): Google's single-stage COCO-17 keypoint models, as a plugin.

Everything MoveNet-specific lives here: the spec type (:mod:`.spec`), the crop rules of the
single-person models (:mod:`.crop`) and the :class:`posezoo.inference.model.PoseModel` with its video trackers
(:mod:`.model`). The core gives the rest: the registry entries with their TF.js weight shards (the
root registry.yaml), fetch and verify, TF.js -> ONNX conversion, TensorFlow-style resampling
(posezoo.inference.preprocess), the filters and box identities (posezoo.inference.tracking), drawing and the CLI.

Models: ``movenet-lightning`` (192x192) and ``movenet-thunder`` (256x256), one person each, on a crop
that follows the person; ``movenet-multipose`` (the whole image, 256 px on its long side by default),
up to 6 people with boxes. The pipeline follows TF.js pose-detection 2's MoveNet detector.
"""

from __future__ import annotations

from posezoo import hookimpl
from posezoo_plugins.movenet.model import FAMILY, MoveNet
from posezoo_plugins.movenet.spec import COCO_NAMES, COCO_SKELETON, CropRule, IdentityRule, KeypointSmoothing, MoveNetSpec

__all__ = [
    "COCO_NAMES",
    "COCO_SKELETON",
    "CropRule",
    "FAMILY",
    "IdentityRule",
    "KeypointSmoothing",
    "LIGHTNING",
    "MULTIPOSE",
    "MoveNet",
    "MoveNetSpec",
    "THUNDER",
]

LIGHTNING = MoveNetSpec(
    name="movenet-lightning",
    description="MoveNet SinglePose Lightning v4: one person, 17 COCO keypoints, 192x192 crop",
    multipose=False,
    input_size=192,
)

THUNDER = MoveNetSpec(
    name="movenet-thunder",
    description="MoveNet SinglePose Thunder v4: one person, 17 COCO keypoints, 256x256 crop",
    multipose=False,
    input_size=256,
)

MULTIPOSE = MoveNetSpec(
    name="movenet-multipose",
    description="MoveNet MultiPose Lightning v1: up to 6 people with boxes, 17 COCO keypoints each",
    multipose=True,
    input_size=256,
    max_poses=6,
)


@hookimpl
def register_families(register):
    register(FAMILY)


@hookimpl
def register_models(register):
    for spec in (LIGHTNING, THUNDER, MULTIPOSE):
        register(spec)
