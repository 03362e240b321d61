"""BlazePose full body (MediaPipe HEAD): 224x224 detector + GHUM landmark model (lite/full/heavy).

Numbers from modules/pose_detection/pose_detection_cpu.pbtxt, modules/pose_landmark/
pose_detection_to_roi.pbtxt, pose_landmark_by_roi_cpu.pbtxt and python/solutions/pose_connections.py.
``BODY_NAMES`` / ``BODY_SKELETON`` are importable by other plugins (the upper-body model uses the
first 25 names and the edges with both ends < 25).
"""

from __future__ import annotations

from posezoo import hookimpl
from posezoo_plugins.mediapipe.wholebody import BLAZEPOSE_WHOLEBODY
from posezoo_plugins.mediapipe.spec import AnchorOptions, DetectorSpec, LandmarkSpec, ModelSpec, RoiRule

BODY_NAMES: tuple[str, ...] = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
    "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel", "right_heel",
    "left_foot_index", "right_foot_index",
)  # fmt: skip

BODY_SKELETON: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 2), (2, 3), (3, 7), (0, 4), (4, 5), (5, 6), (6, 8), (9, 10), (11, 12), (11, 13),
    (13, 15), (15, 17), (15, 19), (15, 21), (17, 19), (12, 14), (14, 16), (16, 18), (16, 20),
    (16, 22), (18, 20), (11, 23), (12, 24), (23, 24), (23, 25), (24, 26), (25, 27), (26, 28),
    (27, 29), (28, 30), (29, 31), (30, 32), (27, 31), (28, 32),
)  # fmt: skip

ROI = RoiRule(mode="alignment", start=0, end=1, rotation_target_deg=90.0, scale_x=1.25, scale_y=1.25, square_long=True)

SPEC = ModelSpec(
    name="blazepose-full",
    description="MediaPipe BlazePose GHUM full body, 33 keypoints (224 detector; lite/full/heavy landmarks)",
    detector=DetectorSpec(
        input_size=(224, 224),
        anchors=AnchorOptions(
            input_size=(224, 224), num_layers=5, strides=(8, 16, 32, 32, 32), min_scale=0.1484375, max_scale=0.75
        ),
        roi=ROI,
        input_range=(-1.0, 1.0),
        num_coords=12,
        box_coord_offset=0,
        keypoint_coord_offset=4,
        num_keypoints=4,
        values_per_keypoint=2,
        reverse_output_order=True,
        box_scale=(224.0, 224.0),
        score_clip=100.0,
        min_score=0.5,
        nms_iou=0.3,
        boxes_output="Identity",
        scores_output="Identity_1",
    ),
    landmark=LandmarkSpec(
        input_size=(256, 256),
        num_landmarks=39,
        num_keypoints=33,
        values_per_landmark=5,
        input_range=(0.0, 1.0),
        landmarks_output="Identity",
        flag_output="Identity_1",
        segmentation_output="Identity_2",
        heatmap_output="Identity_3",
        world_output="Identity_4",
        heatmap_kernel=7,
        heatmap_min_confidence=0.5,
        flag_threshold=0.5,
        aux_landmarks=(33, 34),
        tracking_roi=ROI,
    ),
    keypoint_names=BODY_NAMES,
    skeleton=BODY_SKELETON,
    wholebody_keypoints=BLAZEPOSE_WHOLEBODY,  # COCO-WholeBody: body 17 + big toes and heels
)


@hookimpl
def register_models(register):
    register(SPEC)
