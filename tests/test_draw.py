"""draw_poses: skeleton lines, left/right colours, image- and z-sized points that keep apart,
visibility threshold, boxes, mask overlay, FPS text; any family's columns."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from posezoo.io.draw import CENTRE_COLOR, LEFT_COLOR, RIGHT_COLOR, TRACK_COLORS, base_radius, draw_poses, side


def _pose(points, mask=None, names=None, columns=None, **extra):
    return SimpleNamespace(landmarks=np.asarray(points, np.float32), mask=mask, names=names, columns=columns, **extra)


def _changed(a, b):
    return np.any(a != b, axis=2)


def _is(pixel, color, tol=12):
    return bool(np.all(np.abs(pixel.astype(int) - np.array(color)) <= tol))


def _blob_area(out, image, x0, x1):
    return int(_changed(out, image)[:, x0:x1].sum())


def test_skeleton_line_and_points_are_drawn():
    image = np.zeros((200, 300, 3), np.uint8)
    pose = _pose([[50, 100, 0, 0.9, 1], [250, 100, 0, 0.9, 1], [150, 20, 0, 0.1, 1]])
    out = draw_poses(image, [pose], [(0, 1), (1, 2)])
    assert out is not image and np.all(image == 0)  # a copy; the input stays untouched
    changed = _changed(out, image)
    assert changed[100, 60:240].all()  # along the visible edge
    assert changed[100, 50] and changed[100, 250]  # the two visible points
    assert not changed[15:25, 145:155].any()  # the invisible point and its edge are skipped
    assert not changed[50, :].any() and not changed[150:, :].any()


def test_left_and_right_have_their_own_colours_and_the_midline_its_own():
    assert side("left_wrist") == side("mouth_left") == 1 and side("right_hip") == side("mouth_right") == 2
    assert side("nose") == side("wrist") == side("thumb_tip") == 0
    image = np.full((300, 400, 3), 90, np.uint8)
    names = ("left_shoulder", "left_wrist", "right_shoulder", "right_wrist", "nose")
    pts = [[60, 60], [60, 240], [340, 60], [340, 240], [200, 150]]
    pose = _pose([[x, y, 0.9] for x, y in pts], names=names, columns=("x", "y", "score"))
    out = draw_poses(image, [pose], [(0, 1), (2, 3), (0, 2)])
    assert _is(out[60, 60], LEFT_COLOR) and _is(out[240, 60], LEFT_COLOR) and _is(out[150, 60], LEFT_COLOR)
    assert _is(out[60, 340], RIGHT_COLOR) and _is(out[240, 340], RIGHT_COLOR) and _is(out[150, 340], RIGHT_COLOR)
    assert _is(out[60, 200], CENTRE_COLOR)  # an edge joining the sides is the midline's colour
    assert _is(out[150, 200], CENTRE_COLOR)  # the nose
    # a family without left/right names (a hand): one colour for every point and line
    hand = _pose([[x, y, 0.9] for x, y in pts], names=("wrist", "thumb_tip", "index_finger_tip", "pinky_tip", "x"),
                 columns=("x", "y", "score"))  # fmt: skip
    out = draw_poses(image, [hand], [(0, 1), (2, 3)])
    for x, y in pts:
        assert _is(out[y, x], CENTRE_COLOR)
    assert _is(out[150, 60], CENTRE_COLOR) and _is(out[150, 340], CENTRE_COLOR)


def test_point_size_follows_the_image():
    assert base_radius(240, 320) == 2.5 and base_radius(1080, 1920) == 10.8
    small = np.zeros((200, 300, 3), np.uint8)
    big = np.zeros((800, 1200, 3), np.uint8)
    cols = ("x", "y", "score")
    a = draw_poses(small, [_pose([[150, 100, 1.0]], columns=cols)], [])
    b = draw_poses(big, [_pose([[600, 400, 1.0]], columns=cols)], [])
    area_small, area_big = _changed(a, small).sum(), _changed(b, big).sum()
    assert 4 * area_small < area_big  # 4x the image side: radius 2.5 -> 8 (outlines included, ~6x the area)


def test_nearer_points_are_bigger_only_where_the_family_has_z():
    image = np.zeros((200, 300, 3), np.uint8)
    pts = [[60, 100, -100, 1, 1], [240, 100, 100, 1, 1]]
    out = draw_poses(image, [_pose(pts)], [])  # MediaPipe's 5 columns: x y z visibility presence
    near, far = _blob_area(out, image, 0, 150), _blob_area(out, image, 150, 300)
    assert near > 2 * far > 0
    flat = _pose([[60, 100, 1.0], [240, 100, 1.0]], columns=("x", "y", "score"))  # no z: one size
    out = draw_poses(image, [flat], [])
    assert _blob_area(out, image, 0, 150) == _blob_area(out, image, 150, 300) > 0


def test_close_points_keep_apart_instead_of_merging():
    image = np.full((1000, 1000, 3), 128, np.uint8)  # base radius 10 px
    xs = [480, 488, 496, 504]  # four points 8 px apart, like a face seen from afar
    pose = _pose([[x, 500, 1.0] for x in xs], names=("nose",) * 4, columns=("x", "y", "score"))
    out = draw_poses(image, [pose], [])
    for x in xs:
        assert _is(out[500, x], CENTRE_COLOR)
    for x in xs[:-1]:
        assert not _is(out[500, x + 4], CENTRE_COLOR, tol=60)  # a gap between neighbours
    # a lone point of the same image keeps the full size
    lone = draw_poses(image, [_pose([[500, 500, 1.0]], columns=("x", "y", "score"))], [])
    assert _is(lone[500, 508], CENTRE_COLOR)


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


def test_mask_overlay_and_fps():
    image = np.full((120, 160, 3), 40, np.uint8)
    mask = np.zeros((120, 160), np.float32)
    mask[60:, 80:] = 1.0
    out = draw_poses(image, [_pose(np.zeros((0, 5)), mask)], [], mask_alpha=0.5)
    changed = _changed(out, image)
    assert changed[60:, 80:].all() and not changed[:60, :].any() and not changed[:, :80].any()
    none = draw_poses(image, [_pose(np.zeros((0, 5)), mask)], [], mask_alpha=0.0)
    assert np.array_equal(none, image)
    fps = draw_poses(image, [], [], fps=29.97)
    assert _changed(fps, image)[:40, :100].any()
    assert not _changed(fps, image)[60:, :].any()
