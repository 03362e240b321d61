"""``mediapipe-holistic``: one person's body (BlazePose GHUM, 33 keypoints), both hands (21 each) and face
(468) as one pose, as MediaPipe's Holistic builds them: the hands' regions from the body's wrist, pinky
and index landmarks refined by the hand recrop model, the face's from the body's face landmarks refined
by the face detector; in video, hands and face followed from their last landmarks
(:mod:`posezoo_plugins.mediapipe_holistic.model`).

A composition on the core's seam: the two-stage family's stages (pose detector, landmark models, face
detector in a region), the hands' and the face's stages, names and skeletons those of
``mediapipe-hands`` and ``mediapipe-face-mesh``; no decoding code of its own. Variants: ``lite``,
``full`` (default) and ``heavy`` (the body landmark model: MediaPipe's model_complexity 0, 1, 2), and
``lite-refined``, ``full-refined``, ``heavy-refined`` with the face model with attention (478 face
landmarks: MediaPipe's refine_face_landmarks=True).
"""

from __future__ import annotations

from posezoo import hookimpl
from posezoo_plugins.blazepose_full import SPEC as BLAZEPOSE_FULL
from posezoo_plugins.mediapipe_face_mesh import SPEC as FACE_MESH
from posezoo_plugins.mediapipe_hands import SPEC as HANDS
from posezoo_plugins.mediapipe_holistic.model import FAMILY, Holistic, HolisticRegions, HolisticRules, HolisticSpec

__all__ = ["FAMILY", "Holistic", "HolisticRegions", "HolisticRules", "HolisticSpec", "SPEC"]

SPEC = HolisticSpec(
    name="mediapipe-holistic",
    description="MediaPipe Holistic: one person's body (33), hands (2 x 21) and face (468) as one pose",
    body=BLAZEPOSE_FULL,
    hand=HANDS,
    face=FACE_MESH,
)


@hookimpl
def register_families(register):
    register(FAMILY)


@hookimpl
def register_models(register):
    register(SPEC)
