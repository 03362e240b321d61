"""A synthetic whole-body pose (no whole-body model exists yet): a 33-keypoint body standing facing the
camera, a 21-point left hand at its left wrist, a right hand that was not found (rows NaN, part
None) and a 468-point face (contour rings: oval, eyes, brows, lips; the rest a grid inside), with the
skeleton a whole-body model would give (body, hand and face contour edges over the pose's rows) and a
face mesh (grid edges). Used by tests/test_draw.py and docs/images/make_draw_images.py."""

from __future__ import annotations

import numpy as np

from posezoo.inference.model import Pose, box_around

# MediaPipe's hand connections (21 points: wrist, then four joints per finger, thumb to pinky)
HAND_EDGES = (
    (0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (5, 9), (9, 10), (10, 11), (11, 12),
    (9, 13), (13, 14), (14, 15), (15, 16), (13, 17), (0, 17), (17, 18), (18, 19), (19, 20),
)  # fmt: skip
HAND_NAMES = ("wrist",) + tuple(f"{f}_{j}" for f in ("thumb", "index", "middle", "ring", "pinky") for j in ("1", "2", "3", "tip"))
BODY, LEFT_HAND, RIGHT_HAND, FACE = (0, 33), (33, 54), (54, 75), (75, 543)
# the face's contour rings: (first row in the face, points, closed)
FACE_RINGS = {"oval": (0, 36, True), "left_eye": (36, 16, True), "right_eye": (52, 16, True), "left_brow": (68, 8, False),
              "right_brow": (76, 8, False), "lips": (84, 24, True)}  # fmt: skip


def _body(s: float, cx: float, top: float) -> np.ndarray:
    """(33, 2) BlazePose-ordered body points of a person facing the camera (their left on the image's right)."""
    p = {
        "nose": (0, 0.12), "left_eye_inner": (0.04, 0.08), "left_eye": (0.07, 0.075), "left_eye_outer": (0.1, 0.08),
        "right_eye_inner": (-0.04, 0.08), "right_eye": (-0.07, 0.075), "right_eye_outer": (-0.1, 0.08),
        "left_ear": (0.16, 0.1), "right_ear": (-0.16, 0.1), "mouth_left": (0.06, 0.2), "mouth_right": (-0.06, 0.2),
        "left_shoulder": (0.4, 0.45), "right_shoulder": (-0.4, 0.45), "left_elbow": (0.75, 0.75),
        "right_elbow": (-0.6, 0.95), "left_wrist": (1.05, 0.95), "right_wrist": (-0.6, 1.4),
        "left_pinky": (1.15, 1.05), "right_pinky": (-0.66, 1.52), "left_index": (1.2, 1.0), "right_index": (-0.58, 1.55),
        "left_thumb": (1.12, 0.95), "right_thumb": (-0.52, 1.48), "left_hip": (0.25, 1.5), "right_hip": (-0.25, 1.5),
        "left_knee": (0.3, 2.1), "right_knee": (-0.3, 2.1), "left_ankle": (0.32, 2.7), "right_ankle": (-0.32, 2.7),
        "left_heel": (0.3, 2.78), "right_heel": (-0.3, 2.78), "left_foot_index": (0.45, 2.85), "right_foot_index": (-0.45, 2.85),
    }  # fmt: skip
    from posezoo_plugins.blazepose_full import SPEC

    return np.array([[cx + s * p[n][0], top + s * p[n][1]] for n in SPEC.keypoint_names], np.float32)


def _hand(wrist: np.ndarray, s: float) -> np.ndarray:
    """(21, 2) an open hand of size ``s`` hanging down and outwards from ``wrist``: the thumb's joints,
    then four fingers from knuckles on an arc, each straight along its own direction."""
    pts = [wrist]
    for f, angle in enumerate(np.radians([5, 35, 60, 85, 110])):
        d = np.array([np.cos(angle), np.sin(angle)], np.float32)
        start = wrist + s * d * (0.25 if f == 0 else 0.5)
        step = s * (0.18 if f == 0 else 0.15 + (0.03 if f == 2 else 0.0))
        pts += [start + step * j * d for j in range(4)]
    return np.array(pts, np.float32)


def _face(centre: np.ndarray, rx: float, ry: float) -> np.ndarray:
    """(468, 2): the rings of :data:`FACE_RINGS`, then a grid inside the oval."""
    pts = []
    t = np.linspace(0, 2 * np.pi, 36, endpoint=False)
    pts += list(np.stack([rx * np.cos(t), ry * np.sin(t)], 1))
    for sx in (1, -1):  # the person's left eye is on the image's right
        t = np.linspace(0, 2 * np.pi, 16, endpoint=False)
        pts += list(np.stack([sx * 0.38 * rx + 0.16 * rx * np.cos(t), -0.2 * ry + 0.07 * ry * np.sin(t)], 1))
    for sx in (1, -1):
        u = np.linspace(-1, 1, 8)
        pts += list(np.stack([sx * 0.38 * rx + 0.2 * rx * u, -0.36 * ry - 0.05 * ry * (1 - u * u)], 1))
    t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    pts += list(np.stack([0.3 * rx * np.cos(t), 0.45 * ry + 0.1 * ry * np.sin(t)], 1))
    grid = []
    for y in np.linspace(-0.85, 0.85, 26):
        for x in np.linspace(-0.85, 0.85, 26):
            if x * x + y * y < 0.7:
                grid.append((x * rx, y * ry))
    pts += grid[: 468 - len(pts)]
    assert len(pts) == 468, len(pts)
    return (np.array(pts, np.float32) + centre).astype(np.float32)


def face_edges() -> tuple[tuple[int, int], ...]:
    """The face's contour edges, rows of the face (0..467)."""
    edges = []
    for start, n, closed in FACE_RINGS.values():
        edges += [(start + i, start + i + 1) for i in range(n - 1)] + ([(start + n - 1, start)] if closed else [])
    return tuple(edges)


def face_mesh(face: np.ndarray) -> tuple[tuple[int, int], ...]:
    """Mesh edges over the face's grid points (rows of the face): each to its nearest neighbours."""
    first = sum(n for _, n, _ in FACE_RINGS.values())
    grid = face[first:]
    d = np.sqrt(((grid[:, None] - grid[None]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    step = float(d.min()) * 1.5
    return tuple((first + int(i), first + int(j)) for i, j in zip(*np.nonzero(np.triu(d <= step))))


def whole_body(width: int = 640, height: int = 480, *, right_hand: bool = False, score: float = 0.95):
    """(pose, skeleton, mesh): the synthetic whole-body :class:`Pose` (its right hand not found unless
    ``right_hand``), the whole-body skeleton and the face mesh, both over the pose's rows."""
    from posezoo_plugins.blazepose_full import SPEC

    s = height / 3.4
    body = _body(s, width / 2, height * 0.08)
    left = _hand(body[15], 0.4 * s)
    right = _hand(body[16], 0.4 * s) if right_hand else np.full((21, 2), np.nan, np.float32)
    face = _face(body[0] + np.array([0, 0.02 * s], np.float32), 0.17 * s, 0.22 * s)
    xy = np.concatenate([body, left, right, face])
    landmarks = np.concatenate([xy, np.zeros((len(xy), 1), np.float32), np.ones((len(xy), 2), np.float32)], axis=1)
    landmarks[np.isnan(xy[:, 0]), 2:] = np.nan
    names = tuple(SPEC.keypoint_names) + tuple("left_hand_" + n for n in HAND_NAMES) + tuple(
        "right_hand_" + n for n in HAND_NAMES) + tuple(f"face_{i}" for i in range(468))  # fmt: skip
    parts = {"body": BODY, "left_hand": LEFT_HAND, "right_hand": RIGHT_HAND if right_hand else None, "face": FACE}
    skeleton = (
        tuple(SPEC.skeleton)
        + tuple((LEFT_HAND[0] + a, LEFT_HAND[0] + b) for a, b in HAND_EDGES)
        + tuple((RIGHT_HAND[0] + a, RIGHT_HAND[0] + b) for a, b in HAND_EDGES)
        + tuple((FACE[0] + a, FACE[0] + b) for a, b in face_edges())
    )
    mesh = tuple((FACE[0] + a, FACE[0] + b) for a, b in face_mesh(face))
    pose = Pose(landmarks=landmarks, columns=("x", "y", "z", "visibility", "presence"), names=names, score=score,
                box=box_around(body), parts=parts)  # fmt: skip
    return pose, skeleton, mesh
