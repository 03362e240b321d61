"""BlazePose full body of December 2020 (MediaPipe 0.8.1 / 0.8.2): the 128x128 detector of the
upper-body model + a 33-keypoint landmark model (before the GHUM models of 0.8.4+).

The same graph as the upper-body model with ``upper_body_only`` false (mediapipe 0.8.2:
modules/pose_landmark/pose_detection_to_roi.pbtxt: detector keypoints 0 -> 1, scale 1.5;
pose_landmark_by_roi_cpu.pbtxt: 35 landmarks = 33 + 2 auxiliary, input [0, 1], flag threshold 0.5;
pose_landmarks_to_roi.pbtxt: the tracking ROI from auxiliary landmarks 33 -> 34, scale 1.5). The
model's ``ld_3d`` holds 39 landmarks x 5 values, of which the graph reads the first 35; its
``output_segmentation`` is unused. No heatmap, world landmarks or segmentation.
"""

from __future__ import annotations

from dataclasses import replace

from posezoo import hookimpl
from posezoo_plugins.mediapipe.spec import LandmarkSpec, ModelSpec
from posezoo_plugins.blazepose_full import BODY_NAMES, BODY_SKELETON
from posezoo_plugins.blazepose_upper import DETECTOR_128

FULL_ROI = replace(DETECTOR_128.roi, start=0, end=1)

SPEC = ModelSpec(
    name="blazepose-full-2020",
    description="MediaPipe BlazePose full body of Dec 2020 (0.8.2), 33 keypoints, 128x128 detector",
    detector=replace(DETECTOR_128, roi=FULL_ROI),
    landmark=LandmarkSpec(
        input_size=(256, 256),
        num_landmarks=35,
        num_keypoints=33,
        values_per_landmark=5,
        tensor_landmarks=39,  # ld_3d is [1, 195] = 39 x 5; the graph reads the first 35
        input_range=(0.0, 1.0),
        landmarks_output="ld_3d",
        flag_output="output_poseflag",
        aux_landmarks=(33, 34),
        tracking_roi=FULL_ROI,  # over the aux pair: landmark 33 -> 34
    ),
    keypoint_names=BODY_NAMES,
    skeleton=BODY_SKELETON,
)


@hookimpl
def register_models(register):
    register(SPEC)
