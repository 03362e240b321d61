"""draw_poses (``posezoo.draw``): skeleton lines, left/right colours, image-sized points that depth
changes only mildly, faded low-score points, face points that do not blur into a blob, boxes, a
neutral mask overlay, FPS text; whole-body parts (hands, a face's contours, the mesh on request, a
part not found); any family's columns. Real drawings on canvases, measured pixel by pixel."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import pytest

import posezoo
from posezoo.inference.model import Capabilities, Pose
from posezoo.io.draw import (
    CENTRE_COLOR,
    LEFT_COLOR,
    MASK_COLOR,
    RIGHT_COLOR,
    TRACK_COLORS,
    base_radius,
    draw_poses,
    side,
)
from wholebody import FACE, FACE_RINGS, LEFT_HAND, RIGHT_HAND, whole_body


def _pose(points, mask=None, names=None, columns=None, **extra):
    return SimpleNamespace(landmarks=np.asarray(points, np.float32), mask=mask, names=names, columns=columns, **extra)


def _changed(a, b):
    return np.any(a != b, axis=2)


def _is(pixel, color, tol=12):
    return bool(np.all(np.abs(pixel.astype(int) - np.array(color)) <= tol))


def _blob_area(out, image, x0, x1):
    return int(_changed(out, image)[:, x0:x1].sum())


def _blob_width(out, image, y, x0, x1):
    """Columns changed along row ``y`` between x0 and x1: a drawn point's width through its centre."""
    return int(_changed(out, image)[y, x0:x1].sum())


def test_skeleton_line_and_points_are_drawn():
    image = np.zeros((200, 300, 3), np.uint8)
    pose = _pose([[50, 100, 0, 0.9, 1], [250, 100, 0, 0.9, 1], [150, 20, 0, 0.1, 1]])
    out = draw_poses(image, [pose], [(0, 1), (1, 2)])
    assert out is not image and np.all(image == 0)  # a copy; the input stays untouched
    changed = _changed(out, image)
    assert changed[100, 60:240].all()  # along the confident edge
    assert changed[100, 50] and changed[100, 250]  # the two confident points
    assert changed[20, 150] and changed[50, 187]  # the low-score point is drawn (faded), and so is its edge
    assert not changed[50, :175].any() and not changed[50, 200:].any() and not changed[150:, :].any()
    hidden = draw_poses(image, [pose], [(0, 1), (1, 2)], faded_alpha=0.0)  # 0: the unsure are left out
    assert not _changed(hidden, image)[15:25, 145:155].any()
    # any sequence of pairs is a skeleton (lists, arrays); edges outside the pose are ignored
    for skeleton in ([[0, 1], [1, 2]], ([0, 1], [1, 2]), np.array([[0, 1], [1, 2]]), ((0, 1), (1, 2), (2, 9))):
        assert np.array_equal(draw_poses(image, [pose], skeleton), out)


def test_a_low_score_point_is_faded_not_dropped():
    image = np.full((600, 800, 3), 70, np.uint8)  # base radius 6 px, lines 3 px
    cols = ("x", "y", "score")
    names = ("left_knee", "left_ankle")
    sure = draw_poses(image, [_pose([[200, 300, 0.9]], names=names[:1], columns=cols)], [])
    unsure = draw_poses(image, [_pose([[200, 300, 0.2]], names=names[:1], columns=cols)], [])
    diff_sure = np.abs(sure.astype(int) - image).sum()
    diff_unsure = np.abs(unsure.astype(int) - image).sum()
    assert 0 < diff_unsure < 0.7 * diff_sure  # drawn, but weaker than a confident point
    assert not _is(unsure[300, 200], LEFT_COLOR, tol=30)  # see-through: between the colour and the background
    assert np.abs(unsure[300, 200].astype(int) - image[300, 200]).max() > 30
    # an edge to a low-score point is faded as well: thinner and see-through
    line = [[100, 300, 0.9], [700, 300, 0.9]]
    both = draw_poses(image, [_pose(line, names=names, columns=cols)], [(0, 1)])
    one = draw_poses(image, [_pose([line[0], [700, 300, 0.1]], names=names, columns=cols)], [(0, 1)])
    across = slice(285, 316)
    assert 0 < _changed(one, image)[across, 400].sum() < _changed(both, image)[across, 400].sum()
    assert np.abs(one[300, 400].astype(int) - image[300, 400]).sum() < np.abs(both[300, 400].astype(int) - image[300, 400]).sum()


def test_left_and_right_have_their_own_colours_and_the_midline_its_own():
    assert side("left_wrist") == side("mouth_left") == 1 and side("right_hip") == side("mouth_right") == 2
    assert side("nose") == side("wrist") == side("thumb_tip") == 0
    image = np.full((300, 400, 3), 90, np.uint8)
    names = ("left_shoulder", "left_wrist", "right_shoulder", "right_wrist", "neck")
    pts = [[60, 60], [60, 240], [340, 60], [340, 240], [200, 150]]
    pose = _pose([[x, y, 0.9] for x, y in pts], names=names, columns=("x", "y", "score"))
    out = draw_poses(image, [pose], [(0, 1), (2, 3), (0, 2)])
    assert _is(out[60, 60], LEFT_COLOR) and _is(out[240, 60], LEFT_COLOR) and _is(out[150, 60], LEFT_COLOR)
    assert _is(out[60, 340], RIGHT_COLOR) and _is(out[240, 340], RIGHT_COLOR) and _is(out[150, 340], RIGHT_COLOR)
    assert _is(out[60, 200], CENTRE_COLOR)  # an edge joining the sides is the midline's colour
    assert _is(out[150, 200], CENTRE_COLOR)  # a midline point
    # a family without left/right names (a hand): one colour for every point and line
    hand_names = ("wrist", "thumb_tip", "index_finger_tip", "pinky_tip", "x")
    hand = _pose([[x, y, 0.9] for x, y in pts], names=hand_names, columns=("x", "y", "score"))
    out = draw_poses(image, [hand], [(0, 1), (2, 3)])
    for x, y in pts:
        assert _is(out[y, x], CENTRE_COLOR)
    assert _is(out[150, 60], CENTRE_COLOR) and _is(out[150, 340], CENTRE_COLOR)
    # ... unless the pose is labelled with its side (a hand model's handedness)
    for label, colour in (("left", LEFT_COLOR), ("right", RIGHT_COLOR)):
        labelled = _pose([[x, y, 0.9] for x, y in pts], names=hand_names, columns=("x", "y", "score"), label=label)
        out = draw_poses(image, [labelled], [(0, 1), (2, 3)])
        assert _is(out[60, 60], colour) and _is(out[150, 60], colour) and _is(out[150, 340], colour)


def test_point_size_follows_the_image():
    assert base_radius(240, 320) == 2.5 and base_radius(1080, 1920) == 10.8
    small = np.zeros((200, 300, 3), np.uint8)
    big = np.zeros((800, 1200, 3), np.uint8)
    cols = ("x", "y", "score")
    a = draw_poses(small, [_pose([[150, 100, 1.0]], columns=cols)], [])
    b = draw_poses(big, [_pose([[600, 400, 1.0]], columns=cols)], [])
    area_small, area_big = _changed(a, small).sum(), _changed(b, big).sum()
    assert 4 * area_small < area_big  # 4x the image side: radius 2.5 -> 8 (outlines included, ~6x the area)


def test_depth_changes_a_point_only_mildly():
    """Even far beyond the pose's size, a near point is at most 1.25x and a far one at least 0.8x as
    wide as a point at z=0 (measured through the blob's centre on a blank canvas)."""
    image = np.zeros((1000, 1000, 3), np.uint8)  # base radius 10 px
    pts = [[200, 500, -5000, 1, 1], [500, 500, 0, 1, 1], [800, 500, 5000, 1, 1]]  # MediaPipe's x y z visibility presence
    out = draw_poses(image, [_pose(pts)], [])
    near, mid, far = (_blob_width(out, image, 500, x - 40, x + 40) for x in (200, 500, 800))
    assert near > mid > far > 0
    outline = 2  # the dark ring, each side
    assert (near - 2 * outline) <= 1.25 * (mid - 2 * outline) + 1.5
    assert (far - 2 * outline) >= 0.8 * (mid - 2 * outline) - 1.5
    r = base_radius(1000, 1000)
    assert mid <= 2 * (r + outline) + 2 and near <= 2 * (1.25 * r + outline) + 2
    flat = _pose([[300, 500, 1.0], [700, 500, 1.0]], columns=("x", "y", "score"))  # no z: one size
    out = draw_poses(image, [flat], [])
    assert _blob_area(out, image, 0, 500) == _blob_area(out, image, 500, 1000) > 0


def test_close_points_keep_apart_instead_of_merging():
    image = np.full((1000, 1000, 3), 128, np.uint8)  # base radius 10 px
    xs = [470, 486, 502, 518]  # four points 16 px apart: their full size would overlap
    pose = _pose([[x, 500, 1.0] for x in xs], names=("neck",) * 4, columns=("x", "y", "score"))
    out = draw_poses(image, [pose], [])
    for x in xs:
        assert _is(out[500, x], CENTRE_COLOR)
    for x in xs[:-1]:
        assert not _is(out[500, x + 8], CENTRE_COLOR, tol=60)  # a gap between neighbours
    # a lone point of the same image keeps the full size
    lone = draw_poses(image, [_pose([[500, 500, 1.0]], columns=("x", "y", "score"))], [])
    assert _is(lone[500, 508], CENTRE_COLOR)


def test_a_small_face_is_its_lines_not_a_blob_of_points():
    """The 11 face keypoints of a 33-point body on a face 24 px wide: the eye and mouth lines are
    drawn thin, in their sides' colours, and the points are not (they would merge); on a large face the
    points are drawn, smaller than the body's."""
    from wholebody import _body

    image = np.full((1000, 1000, 3), 60, np.uint8)
    from posezoo_plugins.blazepose_full import SPEC

    def drawn(scale):
        xy = _body(scale, 500, 100)
        pose = _pose(np.concatenate([xy, np.ones((33, 1), np.float32)], 1), names=SPEC.keypoint_names, columns=("x", "y", "score"))
        return xy, draw_poses(image, [pose], SPEC.skeleton)

    xy, out = drawn(120)  # the eyes' width (outer to outer) ~24 px
    changed = _changed(out, image)
    face = changed[int(xy[:11, 1].min()) - 6 : int(xy[:11, 1].max()) + 6, int(xy[:11, 0].min()) - 6 : int(xy[:11, 0].max()) + 6]
    assert 0.1 < face.mean() < 0.6  # lines with background between them, not one filled blob
    eye_l, eye_r = xy[2].round().astype(int), xy[5].round().astype(int)  # left_eye, right_eye
    assert _is(out[eye_l[1], eye_l[0]], LEFT_COLOR, tol=40) and _is(out[eye_r[1], eye_r[0]], RIGHT_COLOR, tol=40)
    # the shoulders are full-size points: wider than anything on the face
    sh = xy[11].round().astype(int)
    assert _blob_width(out, image, sh[1], sh[0] - 30, sh[0] + 30) > 2 * base_radius(1000, 1000)
    xy, big = drawn(900)  # a large face: its points are drawn (round blobs wider than the eye line)
    le = xy[2].round().astype(int)
    width = _blob_width(big, image, le[1] - 3, le[0] - 12, le[0] + 12)
    assert width >= 4


def test_boxes_with_score_and_track_id():
    image = np.full((240, 320, 3), 60, np.uint8)
    pose = _pose([[100, 120, 1.0], [200, 120, 1.0]], columns=("x", "y", "score"),
                 box=np.array([80, 60, 220, 200], np.float32), score=0.87, track_id=1)  # fmt: skip
    plain = draw_poses(image, [pose], [])
    boxed = draw_poses(image, [pose], [], boxes=True)
    assert not _changed(plain, image)[150:190, 80].any()
    assert _is(boxed[150, 80], TRACK_COLORS[1]) and _is(boxed[60, 150], TRACK_COLORS[1])  # left and top edges
    label = _changed(boxed, image)[35:60, 75:140]
    assert label.mean() > 0.5  # the filled label over the box's top-left corner
    no_id = draw_poses(image, [_pose(pose.landmarks, columns=pose.columns, box=pose.box, score=0.5, track_id=None)], [], boxes=True)
    assert _is(no_id[150, 80], CENTRE_COLOR)


def test_mask_overlay_is_neutral_and_only_where_the_mask_is():
    image = np.full((120, 160, 3), 40, np.uint8)
    mask = np.zeros((120, 160), np.float32)
    mask[60:, 80:] = 1.0
    out = draw_poses(image, [_pose(np.zeros((0, 5)), mask)], [], mask_alpha=0.5)
    changed = _changed(out, image)
    assert changed[61:, 81:].all() and not changed[:58, :].any() and not changed[:, :78].any()
    inside = out[90, 120].astype(int)
    assert np.ptp(inside) <= 3 and inside[0] > 60  # a grey tint: no side's colour
    expected = 40 + 0.5 * (np.array(MASK_COLOR) - 40)
    assert np.abs(inside - expected).max() <= 2
    for colour in (LEFT_COLOR, RIGHT_COLOR):
        assert np.ptp(colour) > 100  # the sides are saturated colours; the mask is not
    assert np.ptp(MASK_COLOR) <= 10
    # on a coloured photo the tint keeps the pixel's hue order, only lighter
    photo = np.zeros((120, 160, 3), np.uint8)
    photo[:] = (30, 60, 150)
    tinted = draw_poses(photo, [_pose(np.zeros((0, 5)), mask)], [], mask_alpha=0.5)[90, 120].astype(int)
    assert tinted[0] < tinted[1] < tinted[2] and (tinted > photo[90, 120]).all()
    none = draw_poses(image, [_pose(np.zeros((0, 5)), mask)], [], mask_alpha=0.0)
    assert np.array_equal(none, image)
    fps = draw_poses(image, [], [], fps=29.97)
    assert _changed(fps, image)[:40, :100].any()
    assert not _changed(fps, image)[60:, :].any()


def _box_changed(out, image, pts, pad=3):
    x0, y0 = np.floor(np.nanmin(pts, axis=0)).astype(int) - pad
    x1, y1 = np.ceil(np.nanmax(pts, axis=0)).astype(int) + pad
    return _changed(out, image)[y0:y1, x0:x1]


def test_whole_body_parts_hands_face_and_a_part_not_found():
    pose, skeleton, mesh = whole_body(1280, 960)
    image = np.full((960, 1280, 3), 80, np.uint8)
    assert pose.parts["right_hand"] is None and np.isnan(pose.landmarks[RIGHT_HAND[0] : RIGHT_HAND[1]]).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the NaN rows of the hand not found are skipped without a warning
        out = draw_poses(image, [pose], skeleton)
    changed = _changed(out, image)
    xy = pose.landmarks[:, :2]
    # the left hand: drawn, in the left side's colour, on lines thinner than the body's
    hand = xy[LEFT_HAND[0] : LEFT_HAND[1]]
    assert _box_changed(out, image, hand).mean() > 0.05
    tip = hand[8].round().astype(int)  # index fingertip
    assert _is(out[tip[1], tip[0]], LEFT_COLOR, tol=40)
    # the face part: its contours (the oval ring) drawn, its inner points not drawn one by one
    face = xy[FACE[0] : FACE[1]]
    start, n, _ = FACE_RINGS["oval"]
    a, b = face[start], face[start + 1]
    mid = ((a + b) / 2).round().astype(int)
    assert changed[mid[1] - 1 : mid[1] + 2, mid[0] - 1 : mid[0] + 2].any()
    first_grid = sum(k for _, k, _ in FACE_RINGS.values())
    inner = face[first_grid:]
    far_from_contours = [p for p in inner.round().astype(int) if np.hypot(*(p - face[:first_grid]).T).min() > 6]
    assert len(far_from_contours) > 20
    assert not any(changed[y, x] for x, y in far_from_contours)
    # line widths: an upper arm (body) against a hand's finger, measured across each
    def thickness(p, q):
        m = ((p + q) / 2).round().astype(int)
        d = (q - p) / np.linalg.norm(q - p)
        normal = np.array([-d[1], d[0]])
        return sum(bool(changed[tuple((m + normal * t).round().astype(int))[::-1]]) for t in np.arange(-12, 12.5, 0.5)) / 2

    assert thickness(xy[11], xy[13]) > thickness(hand[9], hand[10]) > 0
    # a hand that was found on the other side is drawn in that side's colour
    both, skeleton, _ = whole_body(1280, 960, right_hand=True)
    out2 = draw_poses(image, [both], skeleton)
    rtip = both.landmarks[RIGHT_HAND[0] + 8, :2].round().astype(int)
    assert _is(out2[rtip[1], rtip[0]], RIGHT_COLOR, tol=40)
    assert not changed[rtip[1] - 2 : rtip[1] + 3, rtip[0] - 2 : rtip[0] + 3].any()  # missing hand: nothing there


def test_a_found_part_replaces_the_bodys_own_keypoints_of_it():
    """With the face and the left hand found, the body's 11 face keypoints and its left pinky, index
    and thumb are not drawn (the drawing is the same as with those rows NaN); the right hand, not found,
    leaves the body's right fingers drawn."""
    pose, skeleton, _ = whole_body(640, 480)
    image = np.full((480, 640, 3), 80, np.uint8)
    names = pose.names
    replaced = [i for i, n in enumerate(names[:33]) if i <= 10 or n in ("left_pinky", "left_index", "left_thumb")]
    assert len(replaced) == 14
    blanked = pose.landmarks.copy()
    blanked[replaced] = np.nan
    same = Pose(landmarks=blanked, columns=pose.columns, names=names, score=pose.score, box=pose.box, parts=pose.parts)
    assert np.array_equal(draw_poses(image, [pose], skeleton), draw_poses(image, [same], skeleton))
    right = [names.index(n) for n in ("right_pinky", "right_index", "right_thumb")]
    blanked[right] = np.nan
    fewer = Pose(landmarks=blanked, columns=pose.columns, names=names, score=pose.score, box=pose.box, parts=pose.parts)
    assert not np.array_equal(draw_poses(image, [pose], skeleton), draw_poses(image, [fewer], skeleton))
    # without parts (a plain 33-point body) the face keypoints are drawn
    body = Pose(landmarks=pose.landmarks[:33], columns=pose.columns, names=names[:33], score=0.9, box=pose.box)
    no_face = body.landmarks.copy()
    no_face[:11] = np.nan
    faceless = Pose(landmarks=no_face, columns=pose.columns, names=names[:33], score=0.9, box=pose.box)
    assert not np.array_equal(draw_poses(image, [body], skeleton[:35]), draw_poses(image, [faceless], skeleton[:35]))


def test_the_face_mesh_is_drawn_only_when_given():
    pose, skeleton, mesh = whole_body(640, 480)
    image = np.full((480, 640, 3), 80, np.uint8)
    plain = draw_poses(image, [pose], skeleton)
    meshed = draw_poses(image, [pose], skeleton, mesh=mesh)
    face = pose.landmarks[FACE[0] : FACE[1], :2]
    first_grid = sum(k for _, k, _ in FACE_RINGS.values())
    i, j = (k - FACE[0] for k in mesh[len(mesh) // 2])
    assert i >= first_grid and j >= first_grid
    mid = ((face[i] + face[j]) / 2).round().astype(int)
    assert not _changed(plain, image)[mid[1], mid[0]] and _changed(meshed, image)[mid[1], mid[0]]
    assert _box_changed(meshed, image, face).mean() > 2 * _box_changed(plain, image, face).mean()
    assert np.array_equal(draw_poses(image, [pose], skeleton, mesh=None), plain)
    # from a model's capabilities: mesh=True takes their mesh
    caps = SimpleNamespace(skeleton=skeleton, mesh=mesh)
    assert np.array_equal(draw_poses(image, [pose], caps, mesh=True), meshed)
    assert np.array_equal(draw_poses(image, [pose], caps), plain)
    with pytest.raises(TypeError):
        draw_poses(image, [pose], skeleton, mesh=True)


def test_posezoo_draw_is_the_documented_entry_point():
    pose, skeleton, _ = whole_body(320, 240, right_hand=True)
    image = np.full((240, 320, 3), 30, np.uint8)
    out = posezoo.draw(image, [pose], skeleton, boxes=True)
    assert np.array_equal(out, draw_poses(image, [pose], skeleton, boxes=True)) and _changed(out, image).any()
    caps = Capabilities(keypoint_names=pose.names, skeleton=skeleton)
    assert np.array_equal(posezoo.draw(image, [pose], caps), draw_poses(image, [pose], skeleton))
    assert isinstance(pose, Pose)
