"""The two-stage family ``mediapipe``: SSD detector with keypoints -> rotated crop -> landmark model.

Registered through the same ``register_families`` hook any plugin uses. Its stages: ``anchors``,
``detect`` (the detector's pre- and post-processing), ``roi`` (detections and landmarks -> rotated
ROIs), ``landmarks`` (the landmark model's), ``smoothing`` (MediaPipe's landmark filters); ``model``
runs them on onnxruntime as two models (``SsdDetector``, ``LandmarkModel``) joined by the core's
top-down pipeline through ``regions`` (the seam's region detector and region model), and ``track`` is
the core's top-down tracker on them. A model of this family is pure data: a
:class:`posezoo_plugins.mediapipe.spec.ModelSpec` plus registry entries (blazepose-full,
blazepose-upper, mediapipe-hands, mediapipe-face-mesh, and third-party ones); its landmark model alone runs in
regions another model gives (blazepose-multi).
"""

from __future__ import annotations

from posezoo import hookimpl
from posezoo_plugins.mediapipe.model import FAMILY


@hookimpl
def register_families(register):
    register(FAMILY)
