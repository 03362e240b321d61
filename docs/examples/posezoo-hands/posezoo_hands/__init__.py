"""MediaPipe Hands as a posezoo plugin: palm detector + hand landmark model, 21 keypoints per hand.

Written only against posezoo's public plugin API: ``posezoo.hookimpl`` and the dataclasses of
``posezoo_plugins.mediapipe.spec``. Everything that runs (letterbox, anchors, decoding, weighted NMS, the rotated crop,
landmark projection, tracking, drawing) is posezoo's shared code; this module is numbers.

Numbers from MediaPipe's graphs (mediapipe/modules/palm_detection/palm_detection_cpu.pbtxt,
hand_landmark/palm_detection_detection_to_roi.pbtxt, hand_landmark_cpu.pbtxt,
hand_landmark_landmarks_to_roi.pbtxt, python/solutions/hands_connections.py), checked against the
files' inputs and outputs:

- palm_detection_full.tflite: input ``input_1`` [1,192,192,3] with values in [0, 1] (unlike the pose
  detector's [-1, 1]: fed [-1, 1], it scores every anchor 1.0 on photos); outputs ``Identity`` [1,2016,18] (box + 7 keypoints, x
  first) and ``Identity_1`` [1,2016,1] score logits.
- hand_landmark_full.tflite: input ``input_1`` [1,224,224,3] in [0, 1]; outputs ``Identity`` [1,63]
  (21 x, y, z in crop pixels), ``Identity_1`` [1,1] hand presence (already a probability),
  ``Identity_2`` [1,1] handedness (not used), ``Identity_3`` [1,63] world landmarks (metres).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from posezoo import hookimpl
from posezoo_plugins.mediapipe.spec import AnchorOptions, DetectorSpec, LandmarkSpec, ModelSpec, RoiRule

__version__ = "0.1.0"

MODEL = "mediapipe-hands"
__posezoo_plugin__ = "mediapipe-hands"  # its entry-point name, also when run from this folder (POSEZOO_PLUGINS_PATH)

HAND_NAMES: tuple[str, ...] = (
    "wrist",
    "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip",
    "index_finger_mcp", "index_finger_pip", "index_finger_dip", "index_finger_tip",
    "middle_finger_mcp", "middle_finger_pip", "middle_finger_dip", "middle_finger_tip",
    "ring_finger_mcp", "ring_finger_pip", "ring_finger_dip", "ring_finger_tip",
    "pinky_mcp", "pinky_pip", "pinky_dip", "pinky_tip",
)  # fmt: skip

HAND_SKELETON: tuple[tuple[int, int], ...] = (
    (0, 1), (0, 5), (9, 13), (13, 17), (5, 9), (0, 17),  # palm
    (1, 2), (2, 3), (3, 4),  # thumb
    (5, 6), (6, 7), (7, 8),  # index finger
    (9, 10), (10, 11), (11, 12),  # middle finger
    (13, 14), (14, 15), (15, 16),  # ring finger
    (17, 18), (18, 19), (19, 20),  # pinky
)  # fmt: skip

# palm_detection_detection_to_roi: the detection box, rotated so that wrist (keypoint 0) -> middle
# finger MCP (keypoint 2) points up, moved half its height towards the fingers, squared, x2.6.
PALM_ROI = RoiRule(
    mode="box", start=0, end=2, rotation_target_deg=90.0, scale_x=2.6, scale_y=2.6, shift_y=-0.5, square_long=True
)

# hand_landmark_landmarks_to_roi: from the previous frame's landmarks (video): the landmarks' bounds,
# rotated so that wrist (0) -> middle finger MCP (9) points up, moved 0.1 towards the fingers, x2.0.
TRACKING_ROI = RoiRule(
    mode="box", start=0, end=9, rotation_target_deg=90.0, scale_x=2.0, scale_y=2.0, shift_y=-0.1, square_long=True
)

SPEC = ModelSpec(
    name=MODEL,
    description="MediaPipe Hands: 192x192 palm detector + 21-keypoint hand landmark model",
    detector=DetectorSpec(
        input_size=(192, 192),
        anchors=AnchorOptions(
            input_size=(192, 192),
            num_layers=4,
            strides=(8, 16, 16, 16),
            min_scale=0.1484375,
            max_scale=0.75,
            aspect_ratios=(1.0,),
            fixed_anchor_size=True,
            offset_x=0.5,
            offset_y=0.5,
        ),  # 24*24*2 + 12*12*6 = 2016 anchors
        roi=PALM_ROI,
        input_range=(0.0, 1.0),
        num_coords=18,
        box_coord_offset=0,
        keypoint_coord_offset=4,
        num_keypoints=7,
        values_per_keypoint=2,
        reverse_output_order=True,
        box_scale=(192.0, 192.0),
        score_clip=100.0,
        min_score=0.5,
        nms_iou=0.3,
        boxes_output="Identity",
        scores_output="Identity_1",
    ),
    landmark=LandmarkSpec(
        input_size=(224, 224),
        num_landmarks=21,
        num_keypoints=21,
        values_per_landmark=3,  # x, y, z: visibility and presence are reported as 1.0
        normalize_z=0.4,  # hand_landmark_cpu.pbtxt: z / 224 / 0.4
        input_range=(0.0, 1.0),
        landmarks_output="Identity",
        flag_output="Identity_1",
        flag_is_logit=False,  # the hand flag is already a probability
        flag_threshold=0.5,
        world_output="Identity_3",
        tracking_roi=TRACKING_ROI,
    ),
    keypoint_names=HAND_NAMES,
    skeleton=HAND_SKELETON,
)


@hookimpl
def register_models(register):
    register(SPEC)


@hookimpl
def registry_entries():
    """The model's registry entry: a YAML file shipped inside this package."""
    return Path(str(resources.files(__name__).joinpath("registry.yaml")))
