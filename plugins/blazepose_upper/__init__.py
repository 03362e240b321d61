"""BlazePose upper body (MediaPipe v0.7.12, 2020): 128x128 detector + 25-keypoint landmark model.

Only numbers differ from the full-body plugin; every stage is the core's shared code. Numbers from
mediapipe v0.7.12 (the same at 0.8.2): modules/pose_detection/pose_detection_cpu.pbtxt (4 layers,
strides 8/16/16/16, 896 anchors, scale 128), modules/pose_landmark/pose_detection_to_roi.pbtxt
(upper body: keypoints 2 -> 3, scale 1.5) and pose_landmark_by_roi_cpu.pbtxt (27 landmarks = 25 +
2 auxiliary, input [0, 1], flag threshold 0.5). The model's ``ld_3d`` output holds 31 landmarks x 5
values; TensorsToLandmarksCalculator reads the first 27 of them. Its third output,
``output_segmentation`` [1,128,128,1], is not used by MediaPipe's graph, nor here.

``DETECTOR_128`` is importable by other plugins: the 2020 full-body model (blazepose-full-2020) runs
with the same detector and another ROI rule.
"""

from __future__ import annotations

from dataclasses import replace

from posezoo import hookimpl
from posezoo_plugins.mediapipe.spec import AnchorOptions, DetectorSpec, LandmarkSpec, ModelSpec, RoiRule
from posezoo_plugins.blazepose_full import BODY_NAMES, BODY_SKELETON

NUM_KEYPOINTS = 25
UPPER_NAMES = BODY_NAMES[:NUM_KEYPOINTS]
UPPER_SKELETON = tuple((a, b) for a, b in BODY_SKELETON if a < NUM_KEYPOINTS and b < NUM_KEYPOINTS)

UPPER_ROI = RoiRule(mode="alignment", start=2, end=3, rotation_target_deg=90.0, scale_x=1.5, scale_y=1.5)

DETECTOR_128 = DetectorSpec(
    input_size=(128, 128),
    anchors=AnchorOptions(
        input_size=(128, 128), num_layers=4, strides=(8, 16, 16, 16), min_scale=0.1484375, max_scale=0.75
    ),
    roi=UPPER_ROI,
    input_range=(-1.0, 1.0),
    num_coords=12,  # box + 4 keypoints: 0 -> 1 full body, 2 -> 3 upper body
    num_keypoints=4,
    box_scale=(128.0, 128.0),
    boxes_output="regressors",
    scores_output="classificators",
)

SPEC = ModelSpec(
    name="blazepose-upper",
    description="MediaPipe BlazePose upper body (v0.7.12), 25 keypoints, 128x128 detector",
    detector=DETECTOR_128,
    landmark=LandmarkSpec(
        input_size=(256, 256),
        num_landmarks=27,
        num_keypoints=NUM_KEYPOINTS,
        values_per_landmark=5,
        tensor_landmarks=31,  # ld_3d is [1, 155] = 31 x 5; the graph reads the first 27
        input_range=(0.0, 1.0),
        landmarks_output="ld_3d",
        flag_output="output_poseflag",
        aux_landmarks=(25, 26),
        tracking_roi=replace(UPPER_ROI, start=0, end=1),  # over the aux pair: landmark 25 -> 26
    ),
    keypoint_names=UPPER_NAMES,
    skeleton=UPPER_SKELETON,
)


@hookimpl
def register_models(register):
    register(SPEC)
