"""Drawing poses on BGR images, one style for every family (``posezoo.draw``, ``posezoo run -s``;
docs/drawing.md shows it).

- The person's left side (keypoints named ``left_*`` / ``*_left``) is orange, the right side blue,
  the rest (nose, mid-line; every keypoint of a family without left/right names) white. An edge
  takes its ends' side when both are on one side. A pose labelled ``left`` / ``right`` (a hand's
  handedness) whose names have no side is drawn in that side's colour.
- Lines and points have a dark outline, so they read on snow as on asphalt.
- Sizes follow the image (:func:`base_radius`) but a point is at most :data:`PERSON_RADIUS` of its
  person's size; where the family has a ``z`` column, depth changes a point's radius only mildly
  (:data:`DEPTH_RANGE`, 0.8x far to 1.25x near). A point is never wider than its distance to the
  nearest other point allows. The face keypoints of a body (eyes, ears, nose, mouth) are small points
  on the thinnest lines, and only the lines when the face is too small for its points to keep apart:
  a small face stays a face instead of one blob.
- Points whose ``visibility`` (or ``score``) column is under the threshold are drawn *faded* (see
  through, smaller, on thinner lines), and so are their edges; rows that are not finite (a part not
  found) are skipped.
- Whole-body poses (``Pose.parts``): the body as above; each hand (``left_hand`` / ``right_hand``)
  on thin lines with small points in its side's colour; the face (``face``) as the contours the
  skeleton gives for it (its points are not drawn one by one), and its full mesh only when asked
  for (``mesh=`` edges, drawn thin and grey). Where a face or hand part is found, the body's own face
  keypoints, or that side's finger keypoints, are left out.
- Optional: boxes with the pose's score and track id, a segmentation-mask overlay (where the mask is
  at least 0.5) in a neutral grey with a thin white outline, blended inside the mask's box only; FPS text.

Speed (benchmarks/draw_speed.py): lines are drawn with one ``polylines`` call per width and colour
over all the edges that share them, their dark outlines and the points' dark discs without
anti-aliasing (the anti-aliased colour lies on them); see-through parts are blended inside their
boxes only, in uint8.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache

import cv2
import numpy as np

# BGR colours (Okabe-Ito orange and sky blue: told apart with every common colour-vision deficiency)
LEFT_COLOR = (0, 159, 230)
RIGHT_COLOR = (233, 180, 86)
CENTRE_COLOR = (245, 245, 245)
OUTLINE_COLOR = (20, 20, 20)
SIDE_COLORS = (CENTRE_COLOR, LEFT_COLOR, RIGHT_COLOR)  # indexed by side(): 0 centre, 1 left, 2 right
# the segmentation overlay: a neutral light grey (no side's colour), its outline near-white
MASK_GREY = 225
MASK_COLOR = (MASK_GREY, MASK_GREY, MASK_GREY)
MASK_EDGE_COLOR = (250, 250, 250)
MESH_COLOR = (200, 200, 200)
# boxes: one colour per track id (Okabe-Ito yellow, bluish green, reddish purple, vermillion, blue)
TRACK_COLORS = ((66, 228, 240), (115, 158, 0), (167, 121, 204), (0, 94, 213), (178, 114, 0))

XYZ_COLUMNS = ("x", "y", "z", "visibility", "presence")
CENTRE, LEFT, RIGHT = 0, 1, 2
DEPTH_RANGE = (0.8, 1.25)  # the most depth may shrink (far) or grow (near) a point
FADED_ALPHA = 0.45  # how opaque a low-score point and its edges are
PERSON_RADIUS = 0.025  # a point's radius is at most this fraction of its person's size (height or width)

# line styles of a keypoint: BODY (thick lines, full-size points), HAND (a hand part: thin lines, small
# points), FACIAL (the face keypoints of a body: eyes, ears, nose, mouth: thinnest lines, small points
# only where the face is large enough for them to keep apart), FACE (a face part: its skeleton edges
# as thin contours, no points)
BODY, HAND, FACIAL, FACE = 0, 1, 2, 3
_FACE_WORDS = frozenset({"eye", "eyes", "ear", "ears", "nose", "mouth", "lip", "lips", "brow", "eyebrow", "cheek", "chin"})
_SHIFT = 3  # fraction bits of the coordinates handed to OpenCV (sub-pixel centres)
_ONE = 1 << _SHIFT


def _words(name: str) -> set[str]:
    return set(str(name).lower().replace("-", "_").replace(" ", "_").split("_"))


def side(name: str) -> int:
    """LEFT for ``left_wrist`` / ``mouth_left`` (a ``left`` word in the name), RIGHT likewise, else CENTRE."""
    words = _words(name)
    if "left" in words and "right" not in words:
        return LEFT
    if "right" in words and "left" not in words:
        return RIGHT
    return CENTRE


@lru_cache(maxsize=64)
def _name_sides(names: tuple[str, ...]) -> np.ndarray:
    out = np.array([side(n) for n in names], np.int8)
    out.setflags(write=False)
    return out


@lru_cache(maxsize=64)
def _name_fingers(names: tuple[str, ...]) -> np.ndarray:
    """Finger keypoints of a body (``left_pinky``, ``right_thumb``; not ``left_foot_index``)."""
    out = np.array([bool(_words(n) & {"pinky", "index", "thumb"}) and not (_words(n) & {"foot", "toe"}) for n in names], bool)
    out.setflags(write=False)
    return out


@lru_cache(maxsize=64)
def _name_faces(names: tuple[str, ...]) -> np.ndarray:
    out = np.array([bool(_words(n) & _FACE_WORDS) for n in names], bool)
    out.setflags(write=False)
    return out


def sides(names: Sequence[str] | None, count: int) -> np.ndarray:
    """(count,) sides of the keypoints (all CENTRE when there are no names)."""
    if not names or len(names) != count:
        return np.zeros(count, np.int8)
    return _name_sides(tuple(names))


def base_radius(height: int, width: int) -> float:
    """A keypoint's radius in pixels for an image of this size (2.5 px up to 250 lines, 10.8 at 1080)."""
    return max(2.5, min(height, width) / 100.0)


def _columns(pose, width: int) -> tuple[str, ...]:
    """The pose's landmark columns (a posezoo.Pose names them; bare arrays of 5 are MediaPipe's)."""
    cols = getattr(pose, "columns", None)
    if cols is not None:
        return tuple(cols)
    return XYZ_COLUMNS if width == 5 else ("x", "y") + tuple(f"c{i}" for i in range(2, width))


@lru_cache(maxsize=32)
def _edges_of(skeleton: tuple) -> np.ndarray:
    out = np.asarray(skeleton, np.int64).reshape(-1, 2)
    out.setflags(write=False)
    return out


def _edge_array(skeleton) -> np.ndarray:
    """(M, 2) int edges of a skeleton (a sequence of pairs or an array); cached for tuples."""
    if skeleton is None:
        return np.zeros((0, 2), np.int64)
    if isinstance(skeleton, np.ndarray):
        return skeleton.astype(np.int64, copy=False).reshape(-1, 2)
    if not isinstance(skeleton, tuple):
        skeleton = tuple(tuple(e) for e in skeleton)
    try:
        return _edges_of(skeleton)
    except TypeError:  # unhashable pairs (lists): not cached
        return np.asarray(skeleton, np.int64).reshape(-1, 2)


def _depth_factor(z: np.ndarray, xy: np.ndarray, finite: np.ndarray) -> np.ndarray:
    """Radius factors in :data:`DEPTH_RANGE` from z (pixels, x's scale; more negative is nearer),
    compared with the pose's size so the effect is scale-free."""
    if not finite.any():
        return np.ones(len(z), np.float32)
    p = xy[finite]
    size = max(float(np.ptp(p[:, 0])), float(np.ptp(p[:, 1])), 1.0)
    return np.clip(1.0 - 0.5 * np.where(finite, z, 0.0) / size, *DEPTH_RANGE).astype(np.float32)


def _spaced(radii: np.ndarray, xy: np.ndarray, idx: np.ndarray, outline: float) -> np.ndarray:
    """Radii no larger than 0.45 x the distance to the nearest other drawn point (``idx``) less the
    outline (and at least 1 px), so that close points (a small face, a hand's knuckles) keep a gap."""
    if len(idx) < 2:
        return radii
    p = xy[idx].astype(np.float32)
    d2 = ((p[:, None, :] - p[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    room = 0.45 * np.sqrt(d2.min(axis=1)) - outline
    out = radii.copy()
    out[idx] = np.minimum(out[idx], np.maximum(1.0, room))
    return out


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
    box = getattr(pose, "box", None)
    box = np.asarray(box if box is not None else [], np.float64)
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


def _draw_masks(out: np.ndarray, masks: list[np.ndarray], alpha: float) -> None:
    """Tint the pixels where the masks (their union) are at least 0.5 towards the neutral grey, inside
    the mask's box only (uint8 arithmetic), and outline the mask."""
    mask = masks[0] if len(masks) == 1 else np.maximum.reduce(masks)
    inside = (mask >= 0.5).view(np.uint8)
    x, y, w, h = cv2.boundingRect(inside)
    if w == 0 or h == 0:
        return
    roi, on = out[y : y + h, x : x + w], inside[y : y + h, x : x + w]
    tinted = cv2.convertScaleAbs(roi, alpha=1.0 - alpha, beta=alpha * MASK_GREY)  # grey: one number for B, G, R
    cv2.copyTo(tinted, on, roi)
    contours, _ = cv2.findContours(on, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE, offset=(x, y))
    if contours:
        cv2.polylines(out, contours, True, MASK_EDGE_COLOR, 1, cv2.LINE_AA)


def _lines(out, segs: np.ndarray, widths: list[int], outlines: list[int], colours: list[int]) -> None:
    """Edges ``segs`` (n, 2, 2 fixed point) with their widths, outline widths and colour indices: the dark
    outlines under all of them first (one call per total width; not anti-aliased, a third of the time:
    the coloured line's smooth edges lie on them), then one anti-aliased call per width and colour,
    the wide ones first."""
    if len(segs) == 0:
        return
    under: dict[int, list[int]] = {}
    over: dict[tuple[int, int], list[int]] = {}
    for i, (w, o, c) in enumerate(zip(widths, outlines, colours)):
        if o:
            under.setdefault(w + 2 * o, []).append(i)
        over.setdefault((w, c), []).append(i)
    for width, rows in under.items():
        cv2.polylines(out, segs[rows], False, OUTLINE_COLOR, width, cv2.LINE_8, _SHIFT)
    for (width, c), rows in sorted(over.items(), reverse=True):
        cv2.polylines(out, segs[rows], False, SIDE_COLORS[c], width, cv2.LINE_AA, _SHIFT)


def _points(out, pts: np.ndarray, radii: np.ndarray, outlines: list[int], colours: list[int]) -> None:
    """Filled circles at ``pts`` (fixed point) of ``radii`` (pixels), anti-aliased, each on a dark disc
    ``outlines`` px wider (not anti-aliased: the smooth fill lies on it)."""
    rad = np.maximum(np.rint(radii * _ONE).astype(np.int32), _ONE).tolist()
    for (x, y), r, o, c in zip(pts.tolist(), rad, outlines, colours):
        if o:
            cv2.circle(out, (x, y), r + o * _ONE, OUTLINE_COLOR, -1, cv2.LINE_8, _SHIFT)
        cv2.circle(out, (x, y), r, SIDE_COLORS[c], -1, cv2.LINE_AA, _SHIFT)


def _part_styles(pose, count: int, names) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(count,) style (BODY / HAND / FACIAL / FACE), (count,) colour index and (count,) bool "left out"
    of each keypoint, from the pose's parts (hands and face), keypoint names (sides, face words) and
    label (a hand's side). Where a face or hand part was found, the body's own face keypoints, or that
    side's finger keypoints, are left out: the part shows them better."""
    names = getattr(pose, "names", None) or names
    named = bool(names) and len(names) == count
    colour = _name_sides(tuple(names)).copy() if named else np.zeros(count, np.int8)
    style = np.where(_name_faces(tuple(names)), FACIAL, BODY).astype(np.int8) if named else np.zeros(count, np.int8)
    hidden = np.zeros(count, bool)
    parts = getattr(pose, "parts", None)
    if parts:
        fingers = _name_fingers(tuple(names)) if named else np.zeros(count, bool)
        body = np.zeros(count, bool)
        rows = parts.get("body")
        if rows is not None:
            body[int(rows[0]) : int(rows[1])] = True
        for part, rows in parts.items():
            if rows is None:
                continue
            a, b = int(rows[0]), int(rows[1])
            words = _words(part)
            if "face" in words:
                style[a:b] = FACE
                hidden |= body & (style == FACIAL)
            elif "hand" in words:
                style[a:b] = HAND
                s = side(part)
                if s != CENTRE:
                    colour[a:b] = s
                    hidden |= body & fingers & (colour == s)
    elif count and not colour.any():
        label = str(getattr(pose, "label", None) or "").lower()
        s = LEFT if label == "left" else RIGHT if label == "right" else CENTRE
        colour[:] = s
    return style, colour, hidden


def _sizes(radius: float) -> dict:
    """Point radii and line widths (pixels) for a body point of ``radius``."""
    line = max(1, int(round(radius / 2)))
    return {
        "radius": radius,
        "small_radius": max(1.5, 0.5 * radius),
        "line": line,
        "thin_line": max(1, line // 2),
        "outline": max(1, int(round(radius / 5))),
    }


def _draw_pose(out, pose, edges, mesh, names, threshold: float, radius: float, faded_alpha: float) -> None:
    lms = np.asarray(pose.landmarks, np.float32)
    count = len(lms)
    if count == 0:
        return
    cols = _columns(pose, lms.shape[1])
    xy = lms[:, :2]
    finite = np.isfinite(xy).all(axis=1)
    if not finite.any():
        return
    conf = next((lms[:, cols.index(c)] for c in ("visibility", "score") if c in cols), None)
    sure = finite & (conf >= threshold) if conf is not None else finite  # NaN compares False, quietly
    faded = finite & ~sure if faded_alpha > 0 else np.zeros(count, bool)  # 0: the unsure are not drawn
    style, colour, hidden = _part_styles(pose, count, names)
    if hidden.any():
        finite = finite & ~hidden
        sure, faded = sure & ~hidden, faded & ~hidden
    pts = np.rint(np.where(finite[:, None], xy, 0.0) * _ONE).astype(np.int32)
    # the image's sizes, but no larger than a small person's size allows (a point at most 2.5% of its height)
    body_xy = xy[finite & (style == BODY)]
    if len(body_xy) > 1:
        extent = float(max(np.ptp(body_xy[:, 0]), np.ptp(body_xy[:, 1])))
        if extent > 0:
            radius = min(radius, max(2.5, PERSON_RADIUS * extent))
    sizes = _sizes(radius)

    radii = np.where(style == BODY, sizes["radius"], sizes["small_radius"]).astype(np.float32)
    if "z" in cols:
        radii *= _depth_factor(lms[:, cols.index("z")], xy, finite)
    dots = np.flatnonzero(finite & (style != FACE))
    radii = _spaced(radii, xy, dots, 1.0)
    facial = dots[style[dots] == FACIAL]
    if len(facial) and radii[facial].min() < 1.75:  # a small face: its lines only, no points to blur them
        dots = dots[style[dots] != FACIAL]

    # edges inside the pose whose two ends are drawn
    if len(edges):
        edges = edges[(edges < count).all(axis=1) & (edges >= 0).all(axis=1)]
        edges = edges[finite[edges[:, 0]] & finite[edges[:, 1]]]
    a, b = edges[:, 0], edges[:, 1]
    e_style = np.where(style[a] == style[b], style[a], BODY)
    e_colour = np.where(colour[a] == colour[b], colour[a], CENTRE).astype(np.int8)
    e_sure = sure[a] & sure[b]
    segs = pts[edges]

    if mesh is not None and len(mesh):
        m = mesh[(mesh < count).all(axis=1) & (mesh >= 0).all(axis=1)]
        m = m[finite[m[:, 0]] & finite[m[:, 1]]]
        if len(m):
            cv2.polylines(out, pts[m], False, MESH_COLOR, 1, cv2.LINE_AA, _SHIFT)

    # by style (BODY, HAND, FACIAL, FACE): line width, its outline, point outline; confident and faded
    line, thin, outline = sizes["line"], sizes["thin_line"], sizes["outline"]
    sure_look = np.array([[line, outline, outline], [thin, 1, 1], [1, 1, 1], [1, 0, 0]], np.int32)
    faded_look = np.array([[thin, 1, 1], [1, 1, 1], [1, 0, 1], [1, 0, 0]], np.int32)

    def lines(pick: np.ndarray, look: np.ndarray) -> None:
        if pick.any():
            widths, outlines = look[e_style[pick], 0].tolist(), look[e_style[pick], 1].tolist()
            _lines(out, segs[pick], widths, outlines, e_colour[pick].tolist())

    def points(rows: np.ndarray, look: np.ndarray, shrink: float = 1.0) -> None:
        if len(rows):
            rows = rows[np.argsort(-style[rows], kind="stable")]  # the body's points last, on top
            _points(out, pts[rows], radii[rows] * shrink, look[style[rows], 2].tolist(), colour[rows].tolist())

    # faded first (blended into the picture inside their box), so the confident ones stay on top
    f_edges = ~e_sure & (faded[a] | faded[b])
    f_dots = dots[faded[dots]]
    if f_edges.any() or len(f_dots):
        ends = np.concatenate([edges[f_edges].ravel(), f_dots])
        p = xy[ends]
        pad = int(np.ceil(radii[ends].max() + outline + line + 2))
        h, w = out.shape[:2]
        x0, y0 = (max(0, int(np.floor(v)) - pad) for v in p.min(axis=0))
        x1, y1 = (min(n, int(np.ceil(v)) + pad + 1) for v, n in zip(p.max(axis=0), (w, h)))
        if x1 > x0 and y1 > y0:
            under = out[y0:y1, x0:x1].copy()
            lines(f_edges, faded_look)
            points(f_dots, faded_look, 0.85)
            roi = out[y0:y1, x0:x1]
            cv2.addWeighted(roi, faded_alpha, under, 1.0 - faded_alpha, 0.0, dst=roi)

    lines(e_sure, sure_look)

    # a face part without edges of its own: a thinned set of small dots instead of contours
    face_rows = np.flatnonzero(sure & (style == FACE))
    if len(face_rows) and not (e_style == FACE).any():
        step = max(1, int(np.ceil(len(face_rows) / 70)))
        for x, y in pts[face_rows[::step]].tolist():
            cv2.circle(out, (x, y), _ONE, SIDE_COLORS[CENTRE], -1, cv2.LINE_AA, _SHIFT)

    points(dots[sure[dots]], sure_look)


def draw_poses(
    image_bgr: np.ndarray,
    poses: Iterable,
    skeleton=None,
    *,
    names: Sequence[str] | None = None,
    visibility_threshold: float = 0.5,
    mask_alpha: float = 0.4,
    fps: float | None = None,
    boxes: bool = False,
    mesh=None,
    faded_alpha: float = FADED_ALPHA,
) -> np.ndarray:
    """Return a copy of ``image_bgr`` with ``poses`` drawn on it.

    A pose is an object with ``.landmarks`` (K, >=2) in pixels, ``.columns`` naming them, and
    optionally ``.names`` (keypoint names, for the left/right colours; else ``names``), ``.parts``
    and ``.label`` (whole-body parts, a hand's side), ``.mask`` (H, W), and for ``boxes`` ``.box``,
    ``.score`` and ``.track_id``. ``skeleton``: the model's edges (``model.skeleton``), or the model
    (or its ``capabilities``) itself; ``mesh``: more edges over the same rows (a face mesh), drawn
    thin and grey, only when given (``True``: the ``mesh`` of the model passed as ``skeleton``).

    Keypoints whose ``visibility`` (or ``score``) column is under ``visibility_threshold`` are drawn
    see-through at ``faded_alpha`` (0: not drawn), with their edges; rows that are not finite (a
    part not found) are skipped. ``mask_alpha``: how strongly the masks are tinted (0: not at all).
    """
    out = image_bgr.copy()
    h, w = out.shape[:2]
    radius = base_radius(h, w)
    scale = max(1.0, min(h, w) / 360.0)
    line = _sizes(radius)["line"]
    poses = list(poses)
    if hasattr(skeleton, "skeleton"):  # a model, or its Capabilities
        source, skeleton = skeleton, skeleton.skeleton
        if mesh is True:
            mesh = getattr(getattr(source, "capabilities", source), "mesh", None)
    if mesh is True:
        raise TypeError("draw_poses: mesh=True takes the mesh of the model passed as skeleton; pass the model")
    edges = _edge_array(skeleton)
    mesh_edges = _edge_array(mesh) if mesh is not None else None

    masks = [m for m in (getattr(p, "mask", None) for p in poses) if m is not None and m.shape[:2] == (h, w)]
    if masks and mask_alpha > 0:  # first, so lines and points stay on top
        _draw_masks(out, masks, mask_alpha)

    for pose in poses:
        if boxes:
            _draw_box(out, pose, line, scale)
        _draw_pose(out, pose, edges, mesh_edges, names, visibility_threshold, radius, faded_alpha)

    if fps is not None:
        text = f"{fps:.1f} FPS"
        org = (int(8 * scale), int(24 * scale))
        cv2.putText(out, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, (0, 0, 0), line + 2, cv2.LINE_AA)
        cv2.putText(out, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, (255, 255, 255), line, cv2.LINE_AA)
    return out


draw = draw_poses  # ``posezoo.draw`` is this function
