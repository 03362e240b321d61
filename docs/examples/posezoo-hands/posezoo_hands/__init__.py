"""``hands-lite-landmarks`` as a posezoo plugin: MediaPipe's full palm detector with its lite hand landmark
model, a pairing MediaPipe does not ship (its Hands pairs lite with lite and full with full; posezoo's
built-in ``mediapipe-hands`` has both).

Written only against posezoo's public plugin API: ``posezoo.hookimpl`` and the built-in hands model's
data (``posezoo_plugins.mediapipe_hands``: keypoint names, skeleton, the palm detector's and the
landmark model's stage specs, handedness). Everything that runs (letterbox, anchors, decoding,
weighted NMS, the rotated crop, landmark projection, handedness, tracking, drawing) is posezoo's
shared code of the family ``mediapipe``; this module is a name, a description and a registry file.
The two files have the same inputs and outputs as the built-in variants' (palm_detection_full:
``input_1`` [1,192,192,3] in [0, 1] -> ``Identity`` [1,2016,18], ``Identity_1`` [1,2016,1];
hand_landmark_lite: ``input_1`` [1,224,224,3] -> ``Identity`` [1,63], ``Identity_1`` hand flag,
``Identity_2`` handedness, ``Identity_3`` [1,63] world landmarks), so the built-in spec fits both.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from posezoo import hookimpl
from posezoo_plugins.mediapipe_hands import hand_spec

__version__ = "0.2.0"

MODEL = "hands-lite-landmarks"
__posezoo_plugin__ = "hands-lite-landmarks"  # its entry-point name, also when run from this folder (POSEZOO_PLUGINS_PATH)

SPEC = hand_spec(MODEL, description="MediaPipe Hands: the full palm detector + the lite 21-keypoint hand landmark model")


@hookimpl
def register_models(register):
    register(SPEC)


@hookimpl
def registry_entries():
    """The model's registry entry: a YAML file shipped inside this package."""
    return Path(str(resources.files(__name__).joinpath("registry.yaml")))
