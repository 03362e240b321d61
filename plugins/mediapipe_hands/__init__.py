"""MediaPipe Hands (``mediapipe-hands``): palm detector (192x192) -> 21 hand landmarks (224x224).

A model of the two-stage family ``mediapipe``: data only. Variants ``lite`` and ``full`` are MediaPipe's
Hands ``model_complexity`` 0 and 1 (palm_detection_lite + hand_landmark_lite, palm_detection_full +
hand_landmark_full). Numbers from MediaPipe v0.10.14's graphs: modules/palm_detection/
palm_detection_cpu.pbtxt, hand_landmark/palm_detection_detection_to_roi.pbtxt, hand_landmark_cpu.pbtxt,
hand_landmark_landmarks_to_roi.pbtxt (+ calculators/hand_landmarks_to_rect_calculator.cc),
hand_landmark_tracking_cpu.pbtxt and python/solutions/hands_connections.py.

Importable by other plugins (Holistic reuses them): ``HAND_NAMES``, ``HAND_SKELETON``, ``PALM_ROI``,
``HAND_TRACKING_ROI``, ``PALM_DETECTOR`` (the detector stage), ``HAND_LANDMARK`` (the landmark stage),
``HANDEDNESS_LABELS`` and ``hand_spec(name, ...)``.

**Handedness.** The landmark model's handedness output is one probability s; MediaPipe labels it
"Left" (s) or "Right" (1 - s) assuming a mirrored (selfie) image, so on an ordinary photo its "Left" is
the person's right hand. posezoo reports the hand as it is on the person in the image it is given:
``Pose.label`` "right" with score s, or "left" with 1 - s (MediaPipe's label swapped), and
``Pose.parts`` ``{"right_hand": (0, 21)}`` / ``{"left_hand": (0, 21)}``. For a mirrored (selfie) view,
swap the label. (MediaPipe Holistic's left/right are the person's too, so the two agree.)
"""

from __future__ import annotations

from dataclasses import replace

from posezoo import hookimpl
from posezoo_plugins.mediapipe.spec import AnchorOptions, DetectorSpec, LandmarkSpec, ModelSpec, RoiRule

MODEL = "mediapipe-hands"

HAND_NAMES: tuple[str, ...] = (
    "wrist",
    "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip",
    "index_finger_mcp", "index_finger_pip", "index_finger_dip", "index_finger_tip",
    "middle_finger_mcp", "middle_finger_pip", "middle_finger_dip", "middle_finger_tip",
    "ring_finger_mcp", "ring_finger_pip", "ring_finger_dip", "ring_finger_tip",
    "pinky_mcp", "pinky_pip", "pinky_dip", "pinky_tip",
)  # fmt: skip

# hands_connections.py: palm, thumb, index, middle, ring, pinky
HAND_SKELETON: tuple[tuple[int, int], ...] = (
    (0, 1), (0, 5), (9, 13), (13, 17), (5, 9), (0, 17),
    (1, 2), (2, 3), (3, 4),
    (5, 6), (6, 7), (7, 8),
    (9, 10), (10, 11), (11, 12),
    (13, 14), (14, 15), (15, 16),
    (17, 18), (18, 19), (19, 20),
)  # fmt: skip

# palm_detection_detection_to_roi: the detection box, rotated so that palm keypoint 0 (wrist) -> 2
# (middle finger MCP) points up, shifted half its height towards the fingers, squared on its long
# side, x2.6.
PALM_ROI = RoiRule(
    mode="box", start=0, end=2, rotation_target_deg=90.0, scale_x=2.6, scale_y=2.6, shift_y=-0.5, square_long=True
)

# hand_landmark_landmarks_to_roi: the bounds (in the rect's own rotated frame) of the more stable
# landmarks (wrist, thumb CMC..IP, and each finger's MCP and PIP), rotated so that the wrist -> the
# mean of the middle MCP and of the index and ring MCPs' mean points up (HandLandmarksToRect's
# "PIP" joints are the MCPs of this subset), shifted 0.1 towards the fingers, squared, x2.0.
HAND_TRACKING_ROI = RoiRule(
    mode="box",
    points=(0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18),
    start=0,
    end=6,
    end_mix=((4, 0.25), (8, 0.25), (6, 0.5)),  # ((index MCP + ring MCP) / 2 + middle MCP) / 2
    bounds="rotated",
    rotation_target_deg=90.0,
    scale_x=2.0,
    scale_y=2.0,
    shift_y=-0.1,
    square_long=True,
)

# palm_detection_cpu.pbtxt (the same for palm_detection_lite and _full)
PALM_DETECTOR = DetectorSpec(
    input_size=(192, 192),
    anchors=AnchorOptions(
        input_size=(192, 192), num_layers=4, strides=(8, 16, 16, 16), min_scale=0.1484375, max_scale=0.75,
        aspect_ratios=(1.0,), fixed_anchor_size=True, offset_x=0.5, offset_y=0.5,
    ),  # 24*24*2 + 12*12*6 = 2016 anchors
    roi=PALM_ROI,
    input_range=(0.0, 1.0),
    num_coords=18,  # box + 7 keypoints, x first
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
    region_overlap=0.5,  # hand_landmark_tracking_cpu.pbtxt: AssociationNormRectCalculator, min_similarity_threshold
)  # fmt: skip

# "Right" scores s, "Left" 1 - s when the labels are read as the person's hands in an unmirrored image
# (MediaPipe's handedness.txt reads them the other way round, "Left" = s, for a mirrored one)
HANDEDNESS_LABELS: tuple[str, str] = ("right", "left")

# hand_landmark_cpu.pbtxt (the same for hand_landmark_lite and _full)
HAND_LANDMARK = LandmarkSpec(
    input_size=(224, 224),
    num_landmarks=21,
    num_keypoints=21,
    values_per_landmark=3,  # x, y, z: visibility and presence are reported as 1.0
    normalize_z=0.4,  # TensorsToLandmarks: z / 224 / 0.4
    input_range=(0.0, 1.0),
    landmarks_output="Identity",
    flag_output="Identity_1",
    flag_is_logit=False,  # the hand flag is already a probability
    flag_threshold=0.5,
    label_output="Identity_2",  # handedness, a probability
    labels=HANDEDNESS_LABELS,
    world_output="Identity_3",
    tracking_roi=HAND_TRACKING_ROI,
)


def hand_spec(name: str = MODEL, *, description: str = "", **changes) -> ModelSpec:
    """A hands model spec (palm detector + hand landmarks) named ``name``; ``changes`` replace fields
    of the :class:`ModelSpec` (e.g. ``detector=replace(PALM_DETECTOR, min_score=0.6)``)."""
    spec = ModelSpec(
        name=name,
        description=description or "MediaPipe Hands: palm detector (192x192) + 21 hand landmarks (224x224), handedness",
        detector=PALM_DETECTOR,
        landmark=HAND_LANDMARK,
        keypoint_names=HAND_NAMES,
        skeleton=HAND_SKELETON,
        label_part="{label}_hand",
    )
    return replace(spec, **changes) if changes else spec


SPEC = hand_spec()


@hookimpl
def register_models(register):
    register(SPEC)
