"""The SSD keypoint detector stage: letterbox, decode, weighted NMS, letterbox removal.

Mirrors MediaPipe's detector graph (modules/pose_detection/pose_detection_cpu.pbtxt):
``ImageToTensorCalculator`` with keep_aspect_ratio and a zero border (the whole image letterboxed to
the square input), ``TensorsToDetectionsCalculator`` (anchor-relative box and keypoint decode, score
clip + sigmoid + threshold), ``NonMaxSuppressionCalculator`` (WEIGHTED, IoU) and
``DetectionLetterboxRemovalCalculator``. Output detections are in image pixels.

A detector also runs inside a rotated region of the image (:meth:`DetectorStage.preprocess_roi`,
:meth:`DetectorStage.postprocess_roi`), as MediaPipe's face detector does in Holistic
(face_detection.pbtxt with an ROI: ``ImageToTensorCalculator`` on the ROI with keep_aspect_ratio and
a zero border, then ``DetectionProjectionCalculator`` back to the image).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from posezoo_plugins.mediapipe.anchors import generate_anchors
from posezoo.inference.numeric import sigmoid
from posezoo.inference.preprocess import Roi, crop, crop_to_image_matrix, letterbox_roi, to_tensor  # noqa: F401  (letterbox_roi re-exported)
from posezoo.inference.warp import BORDER_CONSTANT
from posezoo.inference.tracking import box_iou
from posezoo_plugins.mediapipe.spec import DetectorSpec


@dataclass
class Detection:
    """One detection in image pixels: ``box`` [x0, y0, x1, y1], ``keypoints`` (K, 2), ``score``."""

    box: np.ndarray
    keypoints: np.ndarray
    score: float


def decode_raw(raw: np.ndarray, anchors: np.ndarray, spec: DetectorSpec) -> tuple[np.ndarray, np.ndarray]:
    """Raw regressors (N, num_coords) -> boxes (N, 4) [x0, y0, x1, y1] and keypoints (N, K, 2),
    normalized to the detector input."""
    in_h, in_w = spec.input_size
    x_scale, y_scale = spec.box_scale if spec.box_scale is not None else (float(in_w), float(in_h))
    b = raw[:, spec.box_coord_offset : spec.box_coord_offset + 4]
    ix, iy = (0, 1) if spec.reverse_output_order else (1, 0)
    ax, ay, aw, ah = anchors[:, 0], anchors[:, 1], anchors[:, 2], anchors[:, 3]
    xc = b[:, ix] / x_scale * aw + ax
    yc = b[:, iy] / y_scale * ah + ay
    w = b[:, 2 + ix] / x_scale * aw
    h = b[:, 2 + iy] / y_scale * ah
    boxes = np.stack([xc - w * 0.5, yc - h * 0.5, xc + w * 0.5, yc + h * 0.5], axis=1)
    k, v = spec.num_keypoints, spec.values_per_keypoint
    kp = raw[:, spec.keypoint_coord_offset : spec.keypoint_coord_offset + k * v].reshape(-1, k, v)
    kps = np.empty((raw.shape[0], k, 2), np.float32)
    kps[..., 0] = kp[..., ix] / x_scale * aw[:, None] + ax[:, None]
    kps[..., 1] = kp[..., iy] / y_scale * ah[:, None] + ay[:, None]
    return boxes, kps


def scores_from_logits(raw: np.ndarray, clip: float) -> np.ndarray:
    """Clip raw scores to +-clip, then sigmoid."""
    return sigmoid(np.clip(raw, -clip, clip))


def weighted_nms(
    boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, iou_threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MediaPipe's WEIGHTED non-max suppression.

    Repeatedly take the best remaining detection; every remaining one (itself included) whose IoU
    with it (:func:`posezoo.inference.tracking.box_iou`) is > ``iou_threshold`` is merged: the output
    keeps the best score, and box corners and keypoints become the score-weighted mean over the merged
    ones. Returns (boxes, keypoints, scores) sorted by score, descending.
    """
    order = np.argsort(-scores, kind="stable")
    boxes, keypoints, scores = boxes[order], keypoints[order], scores[order]
    out_b, out_k, out_s = [], [], []
    remaining = np.arange(len(scores))
    while remaining.size:
        best = remaining[0]
        merge = box_iou(boxes[best], boxes[remaining])[0] > iou_threshold
        cand = remaining[merge]
        if cand.size:
            wts = scores[cand].astype(np.float64)
            total = wts.sum()
            out_b.append((boxes[cand] * wts[:, None]).sum(axis=0) / total)
            out_k.append((keypoints[cand] * wts[:, None, None]).sum(axis=0) / total)
        else:  # a degenerate (zero-area) box overlaps nothing, not even itself
            out_b.append(boxes[best])
            out_k.append(keypoints[best])
        out_s.append(scores[best])
        if not cand.size:
            break  # as MediaPipe: stop when an iteration removes nothing
        remaining = remaining[~merge]
    k_shape = (-1,) + keypoints.shape[1:]
    return (
        np.asarray(out_b, np.float32).reshape(-1, 4),
        np.asarray(out_k, np.float32).reshape(k_shape),
        np.asarray(out_s, np.float32),
    )


def remove_letterbox(boxes: np.ndarray, keypoints: np.ndarray, padding: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates normalized to the padded square -> normalized to the image.
    ``padding`` = (left, top, right, bottom) fractions."""
    left, top, right, bottom = padding
    sx, sy = 1.0 - left - right, 1.0 - top - bottom
    offset = np.array([left, top], np.float32)
    scale = np.array([sx, sy], np.float32)
    b = ((boxes.reshape(-1, 2, 2) - offset) / scale).reshape(boxes.shape)
    return b, (keypoints - offset) / scale


def pad_roi(roi: Roi, aspect: float) -> Roi:
    """``roi`` grown on one side (about its centre) to the height / width ratio ``aspect``, as
    ImageToTensorCalculator's keep_aspect_ratio pads a region to its tensor's shape."""
    if roi.w <= 0 or roi.h <= 0 or math.isclose(roi.h / roi.w, aspect):
        return roi
    if roi.h / roi.w > aspect:
        return Roi(roi.cx, roi.cy, roi.h / aspect, roi.h, roi.rotation)
    return Roi(roi.cx, roi.cy, roi.w, roi.w * aspect, roi.rotation)


class DetectorStage:
    """Pre- and post-processing around a detector model; the caller runs the model in between.

    Holds the anchors and reusable input buffers, so a video loop allocates nothing large per frame.
    """

    def __init__(self, spec: DetectorSpec):
        self.spec = spec
        self.anchors = generate_anchors(spec.anchors)
        h, w = spec.input_size
        self._pixels = np.empty((h, w, 3), np.uint8)
        self._tensor = np.empty((1, h, w, 3), np.float32)
        self.pixel_centers = spec.sampling == "gpu"  # the spec's sampling; the `sampling` option overrides it per call

    def preprocess(self, image_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Letterbox ``image_rgb`` (uint8, H x W x 3) into the input tensor (a reused buffer).
        Returns (tensor, padding)."""
        h, w = self.spec.input_size
        roi, padding = letterbox_roi(image_rgb.shape[1], image_rgb.shape[0], h, w)
        crop(image_rgb, roi, (h, w), border=BORDER_CONSTANT, out=self._pixels, pixel_centers=self.pixel_centers)
        return to_tensor(self._pixels, self.spec.input_range, self._tensor), padding

    def preprocess_roi(self, image_rgb: np.ndarray, roi: Roi) -> tuple[np.ndarray, Roi]:
        """Crop the rotated ``roi`` of ``image_rgb`` into the input tensor (zero border), the ROI first
        grown on its short side to the input's aspect ratio (keep_aspect_ratio). Returns (tensor, the
        ROI cropped)."""
        h, w = self.spec.input_size
        roi = pad_roi(roi, h / w)
        crop(image_rgb, roi, (h, w), border=BORDER_CONSTANT, out=self._pixels, pixel_centers=self.pixel_centers)
        return to_tensor(self._pixels, self.spec.input_range, self._tensor), roi

    def postprocess_roi(
        self, raw_boxes: np.ndarray, raw_scores: np.ndarray, roi: Roi, min_score: float | None = None
    ) -> list[Detection]:
        """Decode the outputs of a run on :meth:`preprocess_roi`'s crop of ``roi`` to detections in image
        pixels, best first: keypoints through the ROI, boxes the bounds of their projected corners
        (DetectionProjectionCalculator)."""
        decoded = self._decode(raw_boxes, raw_scores, min_score)
        if decoded is None:
            return []
        boxes, kps, scores = decoded
        m = crop_to_image_matrix(roi, (1, 1))  # normalized crop -> image pixels
        kps = (kps @ m[:, :2].T + m[:, 2]).astype(np.float32)
        corners = boxes[:, [[0, 1], [2, 1], [2, 3], [0, 3]]] @ m[:, :2].T + m[:, 2]  # (N, 4, 2)
        boxes = np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1).astype(np.float32)
        return [Detection(boxes[i], kps[i], float(scores[i])) for i in range(len(scores))]

    def _decode(self, raw_boxes, raw_scores, min_score):
        """Scores, threshold, decoding and weighted NMS: (boxes, keypoints, scores) normalized to the
        input, best first, or None when nothing scores over the threshold."""
        spec = self.spec
        thr = spec.min_score if min_score is None else min_score
        scores = scores_from_logits(np.asarray(raw_scores, np.float32).reshape(-1), spec.score_clip)
        keep = np.flatnonzero(scores >= thr)
        if keep.size == 0:
            return None
        raw = np.asarray(raw_boxes, np.float32).reshape(-1, spec.num_coords)[keep]
        boxes, kps = decode_raw(raw, self.anchors[keep], spec)
        return weighted_nms(boxes, kps, scores[keep], spec.nms_iou)

    def postprocess(
        self,
        raw_boxes: np.ndarray,
        raw_scores: np.ndarray,
        padding: np.ndarray,
        image_size: tuple[int, int],
        min_score: float | None = None,
    ) -> list[Detection]:
        """Decode model outputs to detections in pixels of an image of ``image_size`` = (w, h),
        best first."""
        decoded = self._decode(raw_boxes, raw_scores, min_score)
        if decoded is None:
            return []
        boxes, kps, scores = decoded
        boxes, kps = remove_letterbox(boxes, kps, padding)
        w, h = image_size
        scale = np.array([w, h], np.float32)
        boxes = (boxes.reshape(-1, 2, 2) * scale).reshape(-1, 4)
        kps = kps * scale
        return [Detection(boxes[i], kps[i], float(scores[i])) for i in range(len(scores))]
