"""Drawing poses on BGR images, one style for every family.

- The person's left side (keypoints named ``left_*`` / ``*_left``) is orange, the right side blue,
  the rest (nose, mid-line; every keypoint of a family without left/right names) white. An edge
  takes its ends' side when both are on one side.
- Lines and points have a dark outline, so they read on snow as on asphalt.
- Sizes follow the image (:func:`base_radius`); where the family has a ``z`` column a point grows
  as it comes nearer (more negative z) and shrinks as it goes away; a point is never wider than
  its distance to the nearest other point allows, so face points stay apart instead of merging.
- Points whose ``visibility`` (or ``score``) column is under the threshold are not drawn, nor their edges.
- Optional: boxes with the pose's score and track id, a segmentation-mask overlay, FPS text.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import cv2
import numpy as np

# BGR colours (Okabe-Ito orange and sky blue: told apart with every common colour-vision deficiency)
LEFT_COLOR = (0, 159, 230)
RIGHT_COLOR = (233, 180, 86)
CENTRE_COLOR = (245, 245, 245)
OUTLINE_COLOR = (20, 20, 20)
SIDE_COLORS = (CENTRE_COLOR, LEFT_COLOR, RIGHT_COLOR)  # indexed by side(): 0 centre, 1 left, 2 right
MASK_COLOR = np.array([255, 96, 32], np.float32)
MESH_COLOR = (200, 200, 200)  # a surface mesh's thin lines
# boxes: one colour per track id (Okabe-Ito yellow, bluish green, reddish purple, vermillion, blue)
TRACK_COLORS = ((66, 228, 240), (115, 158, 0), (167, 121, 204), (0, 94, 213), (178, 114, 0))

XYZ_COLUMNS = ("x", "y", "z", "visibility", "presence")
CENTRE, LEFT, RIGHT = 0, 1, 2


def side(name: str) -> int:
    """LEFT for ``left_wrist`` / ``mouth_left`` (a ``left`` word in the name), RIGHT likewise, else CENTRE."""
    words = set(str(name).lower().replace("-", "_").replace(" ", "_").split("_"))
    if "left" in words and "right" not in words:
        return LEFT
    if "right" in words and "left" not in words:
        return RIGHT
    return CENTRE


def sides(names: Sequence[str] | None, count: int) -> np.ndarray:
    """(count,) sides of the keypoints (all CENTRE when there are no names)."""
    if not names or len(names) != count:
        return np.zeros(count, np.int8)
    return np.array([side(n) for n in names], np.int8)


def base_radius(height: int, width: int) -> float:
    """A keypoint's radius in pixels for an image of this size (2.5 px up to 250 lines, 10.8 at 1080)."""
    return max(2.5, min(height, width) / 100.0)


def _columns(pose, width: int) -> tuple[str, ...]:
    """The pose's landmark columns (a posezoo.Pose names them; bare arrays of 5 are MediaPipe's)."""
    cols = getattr(pose, "columns", None)
    if cols is not None:
        return tuple(cols)
    return XYZ_COLUMNS if width == 5 else ("x", "y") + tuple(f"c{i}" for i in range(2, width))


def _radii(landmarks: np.ndarray, z: np.ndarray | None, base: float) -> np.ndarray:
    """Circle radii (float): ``base``; with z, up to 2x nearer (z < 0) and down to 0.5x farther.

    z is in pixels (x's scale); it is compared with the pose's size so the effect is scale-free.
    """
    if z is None:
        return np.full(len(landmarks), base, np.float32)
    xy = landmarks[:, :2]
    xy = xy[np.isfinite(xy).all(axis=1)]  # a part not found (Pose.parts) has NaN rows
    size = max(float(np.ptp(xy[:, 0])), float(np.ptp(xy[:, 1])), 1.0) if len(xy) else 1.0
    factor = np.clip(1.0 - 2.0 * np.nan_to_num(z) / size, 0.5, 2.0)
    return (base * factor).astype(np.float32)


def _spaced(radii: np.ndarray, xy: np.ndarray, shown: np.ndarray, smallest: float) -> np.ndarray:
    """Radii at least ``smallest`` (a point stays wider than the lines through it) but no larger than
    0.45 x the distance to the nearest other shown point (and 1.5 px), so that close points (a face)
    keep a gap between their fills."""
    idx = np.flatnonzero(shown)
    out = np.maximum(radii, smallest)
    if len(idx) < 2:
        return out
    p = xy[idx].astype(np.float64)
    d = np.sqrt(((p[:, None, :] - p[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    out[idx] = np.minimum(out[idx], np.maximum(1.5, 0.45 * d.min(axis=1)))
    return out


def _circle(out: np.ndarray, centre: np.ndarray, radius: float, color, outline: int) -> None:
    # sub-pixel centre and radius (`shift` fraction bits): small points stay round and apart
    shift = 3
    c = tuple(int(v) for v in np.rint(np.asarray(centre, np.float64) * (1 << shift)))
    r = max(1, int(round(radius * (1 << shift))))
    cv2.circle(out, c, r + (outline << shift), OUTLINE_COLOR, -1, cv2.LINE_AA, shift)
    cv2.circle(out, c, r, color, -1, cv2.LINE_AA, shift)


def _label(out: np.ndarray, text: str, org: tuple[int, int], color, scale: float) -> None:
    """Text in a filled box whose bottom-left corner is ``org`` (moved inside the image)."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    fs = 0.45 * scale
    thick = max(1, int(round(scale)))
    (tw, th), base = cv2.getTextSize(text, font, fs, thick)
    pad = max(2, int(round(2 * scale)))
    h, w = out.shape[:2]
    x = int(min(max(org[0], 0), max(w - tw - 2 * pad, 0)))
    y = int(min(max(org[1], th + base + 2 * pad), h))
    cv2.rectangle(out, (x, y - th - base - 2 * pad), (x + tw + 2 * pad, y), color, -1)
    cv2.rectangle(out, (x, y - th - base - 2 * pad), (x + tw + 2 * pad, y), OUTLINE_COLOR, 1)
    cv2.putText(out, text, (x + pad, y - base - pad), font, fs, OUTLINE_COLOR, thick, cv2.LINE_AA)


def _draw_box(out: np.ndarray, pose, thickness: int, scale: float) -> None:
    box = np.asarray(getattr(pose, "box", None) if getattr(pose, "box", None) is not None else [], np.float64)
    if box.shape != (4,) or not np.isfinite(box).all():
        return
    track = getattr(pose, "track_id", None)
    color = TRACK_COLORS[track % len(TRACK_COLORS)] if track is not None else CENTRE_COLOR
    p0 = tuple(int(v) for v in np.rint(box[:2]))
    p1 = tuple(int(v) for v in np.rint(box[2:]))
    cv2.rectangle(out, p0, p1, OUTLINE_COLOR, thickness + 2)  # axis-aligned: crisp without anti-aliasing
    cv2.rectangle(out, p0, p1, color, thickness)
    score = getattr(pose, "score", None)
    parts = ([f"#{track}"] if track is not None else []) + ([f"{float(score):.2f}"] if score is not None else [])
    if parts:
        _label(out, " ".join(parts), (p0[0] - thickness, p0[1] - thickness), color, scale)


def draw_poses(
    image_bgr: np.ndarray,
    poses: Iterable,
    skeleton: Sequence[tuple[int, int]],
    *,
    names: Sequence[str] | None = None,
    visibility_threshold: float = 0.5,
    mask_alpha: float = 0.5,
    fps: float | None = None,
    boxes: bool = False,
    mesh: Sequence[tuple[int, int]] = (),
) -> np.ndarray:
    """Return a copy of ``image_bgr`` with ``poses`` drawn on it.

    A pose is an object with ``.landmarks`` (K, >=2) in pixels, ``.columns`` naming them, and
    optionally ``.names`` (keypoint names, for the left/right colours; else ``names``), ``.mask``
    (H, W), and for ``boxes`` ``.box``, ``.score`` and ``.track_id``. Keypoints whose
    ``visibility`` (or ``score``) column is under ``visibility_threshold`` are skipped. ``mesh``: edges
    of a surface mesh over the keypoints (``Capabilities.mesh``, e.g. a face's tesselation), drawn as
    thin lines under the skeleton.
    """
    out = image_bgr.copy()
    h, w = out.shape[:2]
    radius = base_radius(h, w)
    scale = max(1.0, min(h, w) / 360.0)
    thickness = max(1, int(round(radius / 2)))
    outline = max(1, int(round(radius / 5)))
    smallest = thickness / 2 + 1.0  # with its outline, a point is wider than a line's outline
    poses = list(poses)

    masks = [m for m in (getattr(p, "mask", None) for p in poses) if m is not None and m.shape[:2] == (h, w)]
    if masks and mask_alpha > 0:  # first, so lines and points stay on top
        alpha = np.clip(np.maximum.reduce(masks), 0.0, 1.0)[..., None] * np.float32(mask_alpha)
        out[:] = (out * (1.0 - alpha) + MASK_COLOR * alpha).astype(np.uint8)

    for pose in poses:
        if boxes:
            _draw_box(out, pose, thickness, scale)
        lms = np.asarray(pose.landmarks, np.float32)
        if len(lms) == 0:
            continue
        cols = _columns(pose, lms.shape[1])
        conf = next((lms[:, cols.index(c)] for c in ("visibility", "score") if c in cols), None)
        shown = conf >= visibility_threshold if conf is not None else np.ones(len(lms), bool)
        shown &= np.isfinite(lms[:, :2]).all(axis=1)
        pts = [tuple(p) for p in np.rint(np.nan_to_num(lms[:, :2])).astype(np.int32).tolist()]
        side_of = sides(getattr(pose, "names", None) or names, len(lms))
        if len(mesh):
            mesh_lines = [np.array([pts[a], pts[b]], np.int32) for a, b in mesh if a < len(pts) and b < len(pts) and shown[a] and shown[b]]
            cv2.polylines(out, mesh_lines, False, MESH_COLOR, 1, cv2.LINE_AA)
        edges = [(a, b) for a, b in skeleton if shown[a] and shown[b]]
        for a, b in edges:  # outlines under every line, so crossings stay clean
            cv2.line(out, pts[a], pts[b], OUTLINE_COLOR, thickness + 2 * outline, cv2.LINE_AA)
        for a, b in edges:
            color = SIDE_COLORS[side_of[a]] if side_of[a] == side_of[b] else CENTRE_COLOR
            cv2.line(out, pts[a], pts[b], color, thickness, cv2.LINE_AA)
        z = lms[:, cols.index("z")] if "z" in cols else None
        radii = _spaced(_radii(lms, z, radius), lms[:, :2], shown, smallest)
        for i in np.flatnonzero(shown):
            _circle(out, lms[i, :2], float(radii[i]), SIDE_COLORS[side_of[i]], outline if radii[i] >= 3 else 1)

    if fps is not None:
        text = f"{fps:.1f} FPS"
        org = (int(8 * scale), int(24 * scale))
        cv2.putText(out, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, (0, 0, 0), thickness + 2, cv2.LINE_AA)
        cv2.putText(out, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return out
