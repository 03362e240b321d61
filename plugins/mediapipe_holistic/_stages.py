"""Face Mesh and Hands stage specs that Holistic runs (TEMPORARY: to be replaced by the specs of the
``mediapipe-face-mesh`` and ``mediapipe-hands`` plugins once they land; same numbers).

Numbers from MediaPipe v0.10.14: modules/face_detection/face_detection_short_range.pbtxt and
face_detection.pbtxt (BlazeFace short range, 128x128, 896 anchors), face_landmark/face_landmark_cpu.pbtxt
and tensors_to_face_landmarks.pbtxt (468 landmarks, 192x192, the face flag a logit),
python/solutions/face_mesh_connections.py (FACEMESH_CONTOURS); hand_landmark/hand_landmark_cpu.pbtxt.
"""

from __future__ import annotations

from posezoo_plugins.mediapipe.spec import AnchorOptions, DetectorSpec, LandmarkSpec, ModelSpec, RoiRule

FACE_NAMES: tuple[str, ...] = tuple(str(i) for i in range(468))

FACE_SKELETON: tuple[tuple[int, int], ...] = (
    (0, 267), (7, 163), (10, 338), (13, 312), (14, 317), (17, 314), (21, 54), (33, 7), (33, 246), (37, 0),
    (39, 37), (40, 39), (46, 53), (52, 65), (53, 52), (54, 103), (58, 132), (61, 146), (61, 185), (63, 105),
    (65, 55), (66, 107), (67, 109), (70, 63), (78, 95), (78, 191), (80, 81), (81, 82), (82, 13), (84, 17),
    (87, 14), (88, 178), (91, 181), (93, 234), (95, 88), (103, 67), (105, 66), (109, 10), (127, 162),
    (132, 93), (136, 172), (144, 145), (145, 153), (146, 91), (148, 176), (149, 150), (150, 136), (152, 148),
    (153, 154), (154, 155), (155, 133), (157, 173), (158, 157), (159, 158), (160, 159), (161, 160),
    (162, 21), (163, 144), (172, 58), (173, 133), (176, 149), (178, 87), (181, 84), (185, 40), (191, 80),
    (234, 127), (246, 161), (249, 390), (251, 389), (263, 249), (263, 466), (267, 269), (269, 270),
    (270, 409), (276, 283), (282, 295), (283, 282), (284, 251), (288, 397), (293, 334), (295, 285),
    (296, 336), (297, 332), (300, 293), (310, 415), (311, 310), (312, 311), (314, 405), (317, 402),
    (318, 324), (321, 375), (323, 361), (324, 308), (332, 284), (334, 296), (338, 297), (356, 454),
    (361, 288), (365, 379), (373, 374), (374, 380), (375, 291), (377, 152), (378, 400), (379, 378),
    (380, 381), (381, 382), (382, 362), (384, 398), (385, 384), (386, 385), (387, 386), (388, 387),
    (389, 356), (390, 373), (397, 365), (398, 362), (400, 377), (402, 318), (405, 321), (409, 291),
    (415, 308), (454, 323), (466, 388),
)  # fmt: skip

# face_detection_short_range_common: the detection's keypoints 0 (right eye) -> 1 (left eye) level
FACE_DETECTOR = DetectorSpec(
    input_size=(128, 128),
    anchors=AnchorOptions(
        input_size=(128, 128), num_layers=4, strides=(8, 16, 16, 16), min_scale=0.1484375, max_scale=0.75,
        aspect_ratios=(1.0,), fixed_anchor_size=True, offset_x=0.5, offset_y=0.5,
    ),  # 16*16*2 + 8*8*6 = 896 anchors
    roi=RoiRule(mode="box", start=0, end=1, rotation_target_deg=0.0, scale_x=1.5, scale_y=1.5, square_long=True),
    input_range=(-1.0, 1.0),
    num_coords=16,
    num_keypoints=6,
    box_scale=(128.0, 128.0),
    min_score=0.5,
    nms_iou=0.3,
    boxes_output="regressors",
    scores_output="classificators",
)  # fmt: skip

FACE_LANDMARK = LandmarkSpec(
    input_size=(192, 192),
    num_landmarks=468,
    num_keypoints=468,
    values_per_landmark=3,
    input_range=(0.0, 1.0),
    landmarks_output="conv2d_21",
    flag_output="conv2d_31",
    flag_is_logit=True,
    flag_threshold=0.5,
)

FACE_SPEC = ModelSpec(
    name="face-mesh-stages",
    detector=FACE_DETECTOR,
    landmark=FACE_LANDMARK,
    keypoint_names=FACE_NAMES,
    skeleton=FACE_SKELETON,
)

HAND_NAMES: tuple[str, ...] = (
    "wrist",
    "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip",
    "index_finger_mcp", "index_finger_pip", "index_finger_dip", "index_finger_tip",
    "middle_finger_mcp", "middle_finger_pip", "middle_finger_dip", "middle_finger_tip",
    "ring_finger_mcp", "ring_finger_pip", "ring_finger_dip", "ring_finger_tip",
    "pinky_mcp", "pinky_pip", "pinky_dip", "pinky_tip",
)  # fmt: skip

HAND_SKELETON: tuple[tuple[int, int], ...] = (
    (0, 1), (0, 5), (9, 13), (13, 17), (5, 9), (0, 17),
    (1, 2), (2, 3), (3, 4),
    (5, 6), (6, 7), (7, 8),
    (9, 10), (10, 11), (11, 12),
    (13, 14), (14, 15), (15, 16),
    (17, 18), (18, 19), (19, 20),
)  # fmt: skip

HAND_LANDMARK = LandmarkSpec(
    input_size=(224, 224),
    num_landmarks=21,
    num_keypoints=21,
    values_per_landmark=3,
    normalize_z=0.4,
    input_range=(0.0, 1.0),
    landmarks_output="Identity",
    flag_output="Identity_1",
    flag_is_logit=False,
    flag_threshold=0.5,
    world_output="Identity_3",
)

HAND_SPEC = ModelSpec(
    name="hand-stages",
    detector=FACE_DETECTOR,  # not run: Holistic finds hands from the body pose
    landmark=HAND_LANDMARK,
    keypoint_names=HAND_NAMES,
    skeleton=HAND_SKELETON,
)


def hand_tracking_roi(landmarks):
    """hand_landmarks_to_roi (HandLandmarksToRectCalculator on the palm's 12 landmarks, then x2, shifted
    0.1 towards the fingers, squared) until the hands plugin's tracking rule lands."""
    import numpy as np

    from posezoo_plugins.mediapipe.roi import _rotated_bounds_roi, _rotation

    pts = np.asarray(landmarks, np.float64)[[0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18], :2]
    end = ((pts[4] + pts[8]) * 0.5 + pts[6]) * 0.5
    rule = RoiRule(mode="box", rotation_target_deg=90.0, scale_x=2.0, scale_y=2.0, shift_y=-0.1, square_long=True)
    return _rotated_bounds_roi(pts, _rotation(pts[0], end, rule.rotation_target), rule)
