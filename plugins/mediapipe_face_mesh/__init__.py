"""MediaPipe Face Mesh (``mediapipe-face-mesh``): BlazeFace short range (128x128) -> 468 face landmarks (192x192).

A model of the two-stage family ``mediapipe``: data only. Numbers from MediaPipe v0.10.14's graphs:
modules/face_detection/face_detection_short_range.pbtxt and face_detection.pbtxt (the detector),
face_landmark/face_detection_front_detection_to_roi.pbtxt (detection -> crop), face_landmark_cpu.pbtxt
and tensors_to_face_landmarks.pbtxt (the landmark model), face_landmark_landmarks_to_roi.pbtxt (the
next video frame's crop) and face_landmark_front_cpu.pbtxt (the whole graph);
python/solutions/face_mesh_connections.py for the contours and the tesselation (:mod:`.topology`).

Variants: ``base`` (face_landmark, 468 points; FaceMesh ``refine_landmarks=False``) and ``refined``
(face_landmark_with_attention, 478: the irises added, lips and eyes refined; ``refine_landmarks=True``);
the variant's spec comes from ``SPEC.for_variant``.

Keypoints are ``face_0`` .. ``face_467`` (MediaPipe numbers the mesh's vertices and names none of them)
and, refined, ``right_iris_center``, ``right_iris_1..4``, ``left_iris_center``, ``left_iris_1..4``;
the skeleton is MediaPipe's FACEMESH_CONTOURS (lips, eyes, eyebrows, face oval; refined: and the irises), and the whole
tesselation is the spec's ``mesh`` (``Capabilities.mesh``; drawn with ``--mesh``). Each pose has one
part, ``face`` (all its rows).

Importable by other plugins: ``FACE_NAMES``, ``FACE_CONTOURS``, ``FACE_DETECTOR``, ``FACE_ROI``,
``FACE_LANDMARK``, ``FACE_TRACKING_ROI``, ``face_spec(...)``.
"""

from __future__ import annotations

from dataclasses import replace

from posezoo import hookimpl
from posezoo_plugins.mediapipe.spec import AnchorOptions, DetectorSpec, LandmarkSpec, ModelSpec, Refinement, RoiRule
from posezoo_plugins.mediapipe_face_mesh import topology

MODEL = "mediapipe-face-mesh"

FACE_NAMES: tuple[str, ...] = tuple(f"face_{i}" for i in range(468))

# FACEMESH_CONTOURS: lips, left eye, left eyebrow, right eye, right eyebrow, face oval
FACE_CONTOURS: tuple[tuple[int, int], ...] = (
    topology.LIPS + topology.LEFT_EYE + topology.LEFT_EYEBROW + topology.RIGHT_EYE + topology.RIGHT_EYEBROW
    + topology.FACE_OVAL
)  # fmt: skip

# face_detection_front_detection_to_roi: the detection box, rotated so that the eyes (keypoints 0 -> 1)
# are level, squared on its long side, x1.5
FACE_ROI = RoiRule(mode="box", start=0, end=1, rotation_target_deg=0.0, scale_x=1.5, scale_y=1.5, square_long=True)

# face_landmark_landmarks_to_roi: the axis-aligned box of all landmarks (LandmarksToDetection), rotated so
# that the eye corners 33 -> 263 are level, squared, x1.5
FACE_TRACKING_ROI = RoiRule(
    mode="box", start=33, end=263, bounds="axis", rotation_target_deg=0.0, scale_x=1.5, scale_y=1.5, square_long=True
)

# BlazeFace short range (face_detection_short_range.pbtxt, face_detection.pbtxt): 128x128 in [-1, 1],
# 896 anchors, box + 6 keypoints (eyes, nose tip, mouth, ear tragions), x first
FACE_DETECTOR = DetectorSpec(
    input_size=(128, 128),
    anchors=AnchorOptions(
        input_size=(128, 128), num_layers=4, strides=(8, 16, 16, 16), min_scale=0.1484375, max_scale=0.75,
        aspect_ratios=(1.0,), fixed_anchor_size=True, offset_x=0.5, offset_y=0.5, interpolated_scale_aspect_ratio=1.0,
    ),  # 16*16*2 + 8*8*6 = 896 anchors
    roi=FACE_ROI,
    input_range=(-1.0, 1.0),
    num_coords=16,
    box_coord_offset=0,
    keypoint_coord_offset=4,
    num_keypoints=6,
    values_per_keypoint=2,
    reverse_output_order=True,
    box_scale=(128.0, 128.0),
    score_clip=100.0,
    min_score=0.5,
    nms_iou=0.3,
    boxes_output="regressors",
    scores_output="classificators",
    region_overlap=0.5,  # face_landmark_front_cpu.pbtxt: AssociationNormRectCalculator, min_similarity_threshold
)  # fmt: skip

# face_landmark_cpu.pbtxt, tensors_to_face_landmarks.pbtxt: 192x192 in [0, 1], 468 x, y, z (z / 192), the
# face flag a logit (TensorsToFloats with a sigmoid), threshold 0.5
FACE_LANDMARK = LandmarkSpec(
    input_size=(192, 192),
    num_landmarks=468,
    num_keypoints=468,
    values_per_landmark=3,
    normalize_z=1.0,
    input_range=(0.0, 1.0),
    landmarks_output="conv2d_21",
    flag_output="conv2d_31",
    flag_is_logit=True,
    flag_threshold=0.5,
    tracking_roi=FACE_TRACKING_ROI,
)


# the attention model (face_landmark_with_attention, tensors_to_face_landmarks_with_attention.pbtxt): the
# same 468-point mesh, refined by its lips (80 points), eyes (71 each) and irises (5 each, new rows
# 468..477, their z the mean z of their eye's contour); its CUSTOM operators are converted by posezoo
IRIS_NAMES: tuple[str, ...] = tuple(
    f"{side}_iris_{p}" for side in ("right", "left") for p in ("center", "1", "2", "3", "4")
)  # 468..472 around the right eye's contour (33, 133, ...), 473..477 the left's (263, 362, ...)

FACE_LANDMARK_ATTENTION = replace(
    FACE_LANDMARK,
    landmarks_output="output_mesh_identity",
    flag_output="conv_faceflag",
    refinements=(
        Refinement("output_lips", topology.REFINE_LIPS),
        Refinement("output_left_eye", topology.REFINE_EYE_A),
        Refinement("output_right_eye", topology.REFINE_EYE_B),
        Refinement("output_left_iris", topology.REFINE_IRIS_A, z="average", z_rows=topology.REFINE_IRIS_A_Z_AVERAGE),
        Refinement("output_right_iris", topology.REFINE_IRIS_B, z="average", z_rows=topology.REFINE_IRIS_B_Z_AVERAGE),
    ),
    num_keypoints=478,
)


def face_spec(name: str = MODEL, *, description: str = "", **changes) -> ModelSpec:
    """A face mesh model spec named ``name``; ``changes`` replace fields of the :class:`ModelSpec`."""
    spec = ModelSpec(
        name=name,
        description=description or "MediaPipe Face Mesh: BlazeFace short range (128x128) + 468 face landmarks (192x192)",
        detector=FACE_DETECTOR,
        landmark=FACE_LANDMARK,
        keypoint_names=FACE_NAMES,
        skeleton=FACE_CONTOURS,
        parts=(("face", 0, 468),),
        mesh=topology.TESSELATION,
    )
    return replace(spec, **changes) if changes else spec


REFINED_SPEC = face_spec(
    description="MediaPipe Face Mesh with attention: 478 face landmarks (468 + irises), refined lips and eyes",
    landmark=FACE_LANDMARK_ATTENTION,
    keypoint_names=FACE_NAMES + IRIS_NAMES,
    skeleton=FACE_CONTOURS + topology.LEFT_IRIS + topology.RIGHT_IRIS,
    parts=(("face", 0, 478),),
)

SPEC = face_spec(variant_specs=(("refined", REFINED_SPEC),))


@hookimpl
def register_models(register):
    register(SPEC)
