"""The landmark stage: crop tensor in, landmarks in image pixels out.

Mirrors MediaPipe's modules/pose_landmark/tensors_to_pose_landmarks_and_segmentation.pbtxt and
pose_landmark_by_roi_cpu.pbtxt: ``TensorsToLandmarksCalculator`` (crop pixels -> normalized,
sigmoid visibility/presence, z / input width / normalize_z), ``ThresholdingCalculator`` on the pose
flag, ``RefineLandmarksFromHeatmapCalculator``, ``LandmarkProjectionCalculator`` (back to the image
through the ROI), ``WorldLandmarkProjectionCalculator`` (world landmarks rotated by the ROI angle)
and the segmentation branch (sigmoid, then ``WarpAffineCalculator`` with the inverse crop
transform, zero border).

Generic over :class:`posezoo_plugins.mediapipe.spec.LandmarkSpec`: 5 values per landmark (x, y, z, visibility,
presence) or 3 (x, y, z; visibility and presence are then 1.0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from posezoo.inference.numeric import sigmoid  # noqa: F401  (re-exported)
from posezoo.inference.preprocess import Roi, crop, crop_to_image_matrix, to_tensor
from posezoo_plugins.mediapipe.spec import LandmarkSpec


def decode_landmarks(raw: np.ndarray, spec: LandmarkSpec, refinements: Sequence[np.ndarray] = ()) -> np.ndarray:
    """Raw landmark tensor (crop pixels) -> float32 (N, 5) [x, y, z, visibility, presence] with
    x, y, z normalized to the crop (z on the x scale, divided by ``normalize_z``). ``refinements``: the
    raw outputs of ``spec.refinements``, in order, merged as MediaPipe's LandmarksRefinementCalculator
    does (N is then ``spec.total_landmarks``)."""
    n, v = spec.num_landmarks, spec.values_per_landmark
    raw = np.asarray(raw, np.float32).reshape(spec.rows, v)[:n]  # as TensorsToLandmarks: the first n rows
    in_h, in_w = spec.input_size
    out = np.ones((n, 5), np.float32)
    out[:, 0] = raw[:, 0] / in_w
    out[:, 1] = raw[:, 1] / in_h
    if v >= 3:
        out[:, 2] = raw[:, 2] / in_w / spec.normalize_z
    else:
        out[:, 2] = 0.0
    if v >= 4:
        out[:, 3] = sigmoid(raw[:, 3])
    if v >= 5:
        out[:, 4] = sigmoid(raw[:, 4])
    if spec.refinements:
        out = _refine(out, spec, refinements)
    return out


def _refine(out: np.ndarray, spec: LandmarkSpec, raws: Sequence[np.ndarray]) -> np.ndarray:
    """The refinement outputs' points into their rows (x, y; z by each refinement's rule)."""
    if len(raws) != len(spec.refinements):
        raise ValueError(f"{len(spec.refinements)} refinement outputs expected, {len(raws)} given")
    total = spec.total_landmarks
    if total > len(out):
        more = np.ones((total - len(out), 5), np.float32)
        more[:, 2] = 0.0
        out = np.concatenate([out, more])
    in_h, in_w = spec.input_size
    for ref, raw in zip(spec.refinements, raws):
        pts = np.asarray(raw, np.float32).reshape(-1, ref.values_per_landmark)[: len(ref.rows)]
        rows = list(ref.rows)
        out[rows, 0] = pts[:, 0] / in_w
        out[rows, 1] = pts[:, 1] / in_h
        if ref.z == "copy":
            out[rows, 2] = pts[:, 2] / in_w / spec.normalize_z
        elif ref.z == "average":  # MediaPipe's GetZAverage: a float sum in order, then one division
            total_z = np.float32(0.0)
            for i in ref.z_rows:
                total_z = np.float32(total_z + out[i, 2])
            out[rows, 2] = np.float32(total_z / np.float32(len(ref.z_rows)))
    return out


def refine_from_heatmap(landmarks: np.ndarray, heatmap: np.ndarray, kernel: int, min_confidence: float) -> np.ndarray:
    """RefineLandmarksFromHeatmapCalculator on normalized landmarks (N, >=2), in place; returns them.

    ``heatmap``: logits (H, W, N) (a leading batch of 1 is accepted). For each landmark, cell
    (c, r) = (int(x * W), int(y * H)) (truncated toward zero); over the kernel window clipped to
    the map, conf = sigmoid(heatmap); if max conf >= ``min_confidence`` the point becomes the
    confidence-weighted mean of the integer cell indices, divided by W and H. Like MediaPipe, a
    landmark is skipped when its column is outside the map or its row is negative; a row past the
    bottom still refines over whatever part of the window lies inside (MediaPipe checks the column
    twice and the row's upper bound never).
    """
    hm = np.asarray(heatmap, np.float32)
    if hm.ndim == 4:
        hm = hm[0]
    hm_h, hm_w, n = hm.shape
    if n != landmarks.shape[0]:
        raise ValueError(f"heatmap has {n} channels for {landmarks.shape[0]} landmarks")
    col = np.trunc(landmarks[:, 0] * hm_w).astype(np.int64)
    row = np.trunc(landmarks[:, 1] * hm_h).astype(np.int64)
    ok = (col >= 0) & (col < hm_w) & (row >= 0) & (col < hm_h)  # sic: MediaPipe's bounds check
    half = (kernel - 1) // 2
    offs = np.arange(-half, half + 1)
    rows = row[:, None] + offs  # (N, k)
    cols = col[:, None] + offs
    row_ok = (rows >= 0) & (rows < hm_h) & ok[:, None]
    col_ok = (cols >= 0) & (cols < hm_w)
    # one flat gather of the (N, k, k) windows (clipped indices; outside cells zeroed below)
    flat = (np.clip(rows, 0, hm_h - 1)[:, :, None] * hm_w + np.clip(cols, 0, hm_w - 1)[:, None, :]) * n
    flat += np.arange(n)[:, None, None]
    conf = sigmoid(hm.reshape(-1).take(flat))  # (N, k, k)
    conf *= row_ok[:, :, None] & col_ok[:, None, :]
    total = conf.sum(axis=(1, 2))
    refine = (conf.max(axis=(1, 2)) >= min_confidence) & (total > 0)
    if refine.any():
        safe = np.where(total > 0, total, 1.0)
        x = (conf * cols[:, None, :]).sum(axis=(1, 2)) / hm_w / safe
        y = (conf * rows[:, :, None]).sum(axis=(1, 2)) / hm_h / safe
        landmarks[refine, 0] = x[refine]
        landmarks[refine, 1] = y[refine]
    return landmarks


def project_landmarks(landmarks: np.ndarray, roi: Roi) -> np.ndarray:
    """Normalized crop landmarks (N, 5) -> image pixels (N, 5) [x_px, y_px, z_px, vis, presence].

    x, y go through the ROI (rotation about its centre, scaled by its size); z is scaled by the ROI
    width in pixels, the same pixel scale as x.
    """
    fwd = crop_to_image_matrix(roi, (1, 1))
    out = landmarks.copy()
    out[:, :2] = landmarks[:, :2] @ fwd[:, :2].T + fwd[:, 2]
    out[:, 2] = landmarks[:, 2] * roi.w
    return out


def world_landmarks(raw: np.ndarray, count: int, rotation: float) -> np.ndarray:
    """Raw world tensor (M x 3 values) -> float32 (count, 3), rotated by the ROI angle in x-y."""
    w = np.asarray(raw, np.float32).reshape(-1, 3)[:count]
    c, s = np.cos(rotation), np.sin(rotation)
    out = w.copy()
    out[:, 0] = c * w[:, 0] - s * w[:, 1]
    out[:, 1] = s * w[:, 0] + c * w[:, 1]
    return out


def mask_to_image(logits: np.ndarray, roi: Roi, image_size: tuple[int, int]) -> np.ndarray:
    """Segmentation logits (1, h, w, 1) over the crop -> float32 (H, W) probabilities over the image
    (``image_size`` = (width, height)); zero outside the ROI."""
    seg = np.asarray(logits, np.float32)
    seg = seg.reshape(seg.shape[-3], seg.shape[-2]) if seg.ndim >= 3 else seg
    prob = sigmoid(seg).astype(np.float32)
    fwd = crop_to_image_matrix(roi, prob.shape)
    import cv2  # (on first use: `posezoo list` and --help load this plugin without OpenCV)

    return cv2.warpAffine(prob, fwd, image_size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


@dataclass
class LandmarkResult:
    """Decoded output of one landmark-model run on one ROI (pixels).

    ``landmarks`` (K, 5) body keypoints, ``aux`` (A, 5) auxiliary ones or None, ``world`` (K, 3) or
    None, ``flag`` the pose/hand presence probability, ``mask`` (H, W) or None; ``label`` and
    ``label_score`` the spec's binary classification (e.g. handedness), when it has one.
    """

    landmarks: np.ndarray
    aux: np.ndarray | None
    world: np.ndarray | None
    flag: float
    mask: np.ndarray | None
    roi: Roi
    label: str | None = None
    label_score: float | None = None


class LandmarkStage:
    """Pre- and post-processing around a landmark model; the caller runs the model in between.
    Holds reusable input buffers."""

    def __init__(self, spec: LandmarkSpec):
        self.spec = spec
        h, w = spec.input_size
        self._pixels = np.empty((h, w, 3), np.uint8)
        self._tensor = np.empty((1, h, w, 3), np.float32)
        self.pixel_centers = spec.sampling == "gpu"  # the spec's sampling; the `sampling` option overrides it per call

    def preprocess(self, image_rgb: np.ndarray, roi: Roi, out: np.ndarray | None = None) -> np.ndarray:
        """Crop ``roi`` (border replicate) into the reused input tensor (or into ``out``, (1, h, w, 3)
        float32: one item of a batch)."""
        crop(image_rgb, roi, self.spec.input_size, out=self._pixels, pixel_centers=self.pixel_centers)
        return to_tensor(self._pixels, self.spec.input_range, self._tensor if out is None else out)

    def flag(self, raw_flag: np.ndarray | None) -> float:
        if raw_flag is None:
            return 1.0
        f = float(np.asarray(raw_flag).reshape(-1)[0])
        return float(sigmoid(f)) if self.spec.flag_is_logit else f

    def label(self, raw_label: np.ndarray | None) -> tuple[str | None, float | None]:
        """(label, score) of a binary classification output (TensorsToClassificationCalculator with
        binary_classification and top_k 1): ``labels[0]`` scores s, ``labels[1]`` 1 - s; the higher
        wins (``labels[0]`` on a tie)."""
        if raw_label is None or not self.spec.labels:
            return None, None
        s = float(np.asarray(raw_label, np.float32).reshape(-1)[0])
        first, second = self.spec.labels[0], self.spec.labels[1]
        return (first, s) if s >= 1.0 - s else (second, float(np.float32(1.0 - s)))

    def decode(
        self,
        roi: Roi,
        raw_landmarks: np.ndarray,
        *,
        flag: float = 1.0,
        heatmap: np.ndarray | None = None,
        world: np.ndarray | None = None,
        segmentation: np.ndarray | None = None,
        image_size: tuple[int, int] | None = None,
        label: np.ndarray | None = None,
        refinements: Sequence[np.ndarray] = (),
    ) -> LandmarkResult:
        """Decode one run's outputs (already picked out by the caller) into image pixels.
        ``segmentation`` is only warped when ``image_size`` (w, h) is given; ``refinements``: the raw
        outputs of the spec's refinements, in order."""
        spec = self.spec
        norm = decode_landmarks(raw_landmarks, spec, refinements)
        if heatmap is not None:
            hm = np.asarray(heatmap)
            hm = hm[..., : len(norm)] if hm.shape[-1] > len(norm) else hm  # channels beyond the rows read
            refine_from_heatmap(norm, hm, spec.heatmap_kernel, spec.heatmap_min_confidence)
        px = project_landmarks(norm, roi)
        k = spec.num_keypoints
        aux = px[list(spec.aux_landmarks)] if spec.aux_landmarks is not None else None
        wl = None
        if world is not None:
            wl = world_landmarks(world, k, roi.rotation)
        mask = None
        if segmentation is not None and image_size is not None:
            mask = mask_to_image(segmentation, roi, image_size)
        return LandmarkResult(px[:k], aux, wl, flag, mask, roi, *self.label(label))
