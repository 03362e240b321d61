"""Drawing poses on BGR images (the role of MediaPipe's ``drawing_utils.draw_landmarks``).

Skeleton lines, keypoint circles whose radius grows as the point comes nearer (more negative z),
points under the visibility threshold skipped, an optional segmentation-mask overlay and FPS text.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import cv2
import numpy as np

LINE_COLOR = (224, 224, 224)  # BGR
POINT_COLOR = (0, 138, 255)  # orange
MASK_COLOR = np.array([255, 96, 32], np.float32)


MEDIAPIPE_COLUMNS = ("x", "y", "z", "visibility", "presence")


def _columns(pose, width: int) -> tuple[str, ...]:
    """The pose's landmark columns (a posezoo.Pose names them; bare arrays of 5 are MediaPipe's)."""
    cols = getattr(pose, "columns", None)
    if cols is not None:
        return tuple(cols)
    return MEDIAPIPE_COLUMNS if width == 5 else ("x", "y") + tuple(f"c{i}" for i in range(2, width))


def _radii(landmarks: np.ndarray, z: np.ndarray | None, base: float) -> np.ndarray:
    """Circle radii: ``base``; with z, up to 2x nearer (z < 0) and down to 0.5x farther.

    z is in pixels (x's scale); it is compared with the pose's size so the effect is scale-free.
    """
    if z is None:
        return np.full(len(landmarks), max(1, int(round(base))), int)
    xy = landmarks[:, :2]
    size = max(float(np.ptp(xy[:, 0])), float(np.ptp(xy[:, 1])), 1.0)
    factor = np.clip(1.0 - 2.0 * z / size, 0.5, 2.0)
    return np.maximum(1, np.rint(base * factor)).astype(int)


def draw_poses(
    image_bgr: np.ndarray,
    poses: Iterable,
    skeleton: Sequence[tuple[int, int]],
    *,
    visibility_threshold: float = 0.5,
    mask_alpha: float = 0.5,
    fps: float | None = None,
) -> np.ndarray:
    """Return a copy of ``image_bgr`` with ``poses`` (objects with ``.landmarks`` (K, >=2) in pixels,
    ``.columns`` naming them, and optionally ``.mask`` (H, W)) drawn on it. Keypoints whose
    ``visibility`` (or ``score``) column is under ``visibility_threshold`` are skipped."""
    out = image_bgr.copy()
    h, w = out.shape[:2]
    scale = max(1.0, min(h, w) / 360.0)
    thickness = max(1, int(round(2 * scale)))
    poses = list(poses)

    masks = [m for m in (getattr(p, "mask", None) for p in poses) if m is not None and m.shape[:2] == (h, w)]
    if masks and mask_alpha > 0:  # first, so lines and points stay on top
        alpha = np.clip(np.maximum.reduce(masks), 0.0, 1.0)[..., None] * np.float32(mask_alpha)
        out[:] = (out * (1.0 - alpha) + MASK_COLOR * alpha).astype(np.uint8)

    for pose in poses:
        lms = np.asarray(pose.landmarks, np.float32)
        if len(lms) == 0:
            continue
        cols = _columns(pose, lms.shape[1])
        conf = next((lms[:, cols.index(c)] for c in ("visibility", "score") if c in cols), None)
        shown = conf >= visibility_threshold if conf is not None else np.ones(len(lms), bool)
        shown &= np.isfinite(lms[:, :2]).all(axis=1)
        pts = [tuple(p) for p in np.rint(np.nan_to_num(lms[:, :2])).astype(np.int32).tolist()]
        for a, b in skeleton:
            if shown[a] and shown[b]:
                cv2.line(out, pts[a], pts[b], LINE_COLOR, thickness, cv2.LINE_AA)
        radii = _radii(lms, lms[:, cols.index("z")] if "z" in cols else None, 3.0 * scale)
        for i in np.flatnonzero(shown):
            cv2.circle(out, pts[i], int(radii[i]), POINT_COLOR, -1, cv2.LINE_AA)

    if fps is not None:
        text = f"{fps:.1f} FPS"
        org = (int(8 * scale), int(24 * scale))
        cv2.putText(out, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, (0, 0, 0), thickness + 2, cv2.LINE_AA)
        cv2.putText(out, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return out
