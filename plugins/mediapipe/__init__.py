"""The two-stage family ``blazepose``: SSD detector with keypoints -> rotated crop -> landmark model.

Registered through the same ``register_families`` hook any plugin uses. Its stages are the core's
shared ones (posezoo_plugins.mediapipe.anchors, detect, roi, landmarks, track; run by posezoo_plugins.mediapipe.model.PoseEstimator),
so a model of this family is pure data: a :class:`posezoo_plugins.mediapipe.spec.ModelSpec` plus registry entries
(blazepose-full, blazepose-upper, and third-party ones such as MediaPipe Hands).
"""

from __future__ import annotations

from posezoo import hookimpl
from posezoo_plugins.mediapipe.model import FAMILY


@hookimpl
def register_families(register):
    register(FAMILY)
