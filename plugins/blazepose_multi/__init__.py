"""``blazepose-multi``: several people with BlazePose's 33 keypoints, z, visibility, world landmarks
and masks: MoveNet MultiPose finds up to 6 people, each becomes the rotated square BlazePose's own
detector would draw (:func:`posezoo_plugins.blazepose_multi.model.person_region`), and the BlazePose
GHUM landmark model (lite, full or heavy) runs in each. Video: the core's top-down tracker (MultiPose
runs on the first frame, when a person is lost and every 15 frames while fewer than ``--max-poses``
are held; each person's next region comes from their own landmarks), with MediaPipe's landmark
filters and a track id per person.

A composition of two families through the core's seam and plain data: no decoding code of its own.
"""

from __future__ import annotations

from posezoo import hookimpl
from posezoo_plugins.blazepose_full import SPEC as BLAZEPOSE_FULL
from posezoo_plugins.blazepose_multi.model import FAMILY, PeopleLandmarks, PeopleLandmarksSpec, PersonRule, person_region
from posezoo_plugins.movenet import MULTIPOSE

__all__ = ["FAMILY", "PeopleLandmarks", "PeopleLandmarksSpec", "PersonRule", "SPEC", "person_region"]

SPEC = PeopleLandmarksSpec(
    name="blazepose-multi",
    description="up to 6 people with BlazePose's 33 keypoints: MoveNet MultiPose's people as regions "
    "for the BlazePose GHUM landmark model (lite/full/heavy)",
    people=MULTIPOSE,
    landmarks=BLAZEPOSE_FULL,
)


@hookimpl
def register_families(register):
    register(FAMILY)


@hookimpl
def register_models(register):
    register(SPEC)
