"""Crop regions of the single-person models: the first crop, and the next one from the keypoints.

A crop region is ``(ymin, xmin, ymax, xmax)`` normalized to the image (it may reach outside it: the
model then sees zeros there), the box order of ``tf.image.crop_and_resize``. The rules are TF.js
pose-detection's MoveNet ones (its initCropRegion and determineNextCropRegion), with the numbers in
:class:`posezoo_plugins.movenet.spec.CropRule`.
"""

from __future__ import annotations

import numpy as np

from posezoo_plugins.movenet.spec import COCO_NAMES, CropRule

LEFT_SHOULDER, RIGHT_SHOULDER = COCO_NAMES.index("left_shoulder"), COCO_NAMES.index("right_shoulder")
LEFT_HIP, RIGHT_HIP = COCO_NAMES.index("left_hip"), COCO_NAMES.index("right_hip")
TORSO = (LEFT_SHOULDER, RIGHT_SHOULDER, LEFT_HIP, RIGHT_HIP)

Crop = tuple[float, float, float, float]


def initial_crop(width: int, height: int, *, first: bool = True) -> Crop:
    """The crop without a person to follow.

    ``first``: the centred square on the image's short side (the best guess for a first frame or a
    single photo: most pixels, most detail). Otherwise (the person's torso was not seen): the whole
    image, padded to a square on its long side.
    """
    w, h = float(width), float(height)
    if first == (w > h):  # full height, as wide as high: centred on x
        ymin, xmin, box_h, box_w = 0.0, (w / 2 - h / 2) / w, 1.0, h / w
    else:  # full width, as high as wide: centred on y
        ymin, xmin, box_h, box_w = (h / 2 - w / 2) / h, 0.0, w / h, 1.0
    return (ymin, xmin, ymin + box_h, xmin + box_w)


def torso_visible(scores: np.ndarray, rule: CropRule) -> bool:
    """A hip and a shoulder score above the rule's keypoint score."""
    t = rule.min_keypoint_score
    return bool((scores[LEFT_HIP] > t or scores[RIGHT_HIP] > t) and (scores[LEFT_SHOULDER] > t or scores[RIGHT_SHOULDER] > t))


def next_crop(keypoints: np.ndarray, width: int, height: int, rule: CropRule) -> Crop:
    """The crop for the next frame from this frame's ``keypoints`` (K, 3): x, y normalized to the image,
    score (COCO order). See :class:`CropRule`."""
    w, h = float(width), float(height)
    kps = keypoints.tolist()  # 17 points: plain floats are quicker than numpy here
    if not torso_visible(keypoints[:, 2], rule):
        return initial_crop(width, height, first=False)
    cx = (kps[LEFT_HIP][0] * w + kps[RIGHT_HIP][0] * w) / 2.0
    cy = (kps[LEFT_HIP][1] * h + kps[RIGHT_HIP][1] * h) / 2.0
    torso_x = max(abs(cx - kps[i][0] * w) for i in TORSO)
    torso_y = max(abs(cy - kps[i][1] * h) for i in TORSO)
    body_x = body_y = 0.0
    for x, y, score in kps:
        if score >= rule.min_keypoint_score:
            body_x = max(body_x, abs(cx - x * w))
            body_y = max(body_y, abs(cy - y * h))
    half = max(torso_x * rule.torso_scale, torso_y * rule.torso_scale, body_y * rule.body_scale, body_x * rule.body_scale)
    half = min(half, max(cx, w - cx, cy, h - cy))
    if half > max(w, h) / 2.0:
        return initial_crop(width, height, first=False)
    top, left = cy - half, cx - half
    return (top / h, left / w, (top + 2.0 * half) / h, (left + 2.0 * half) / w)
