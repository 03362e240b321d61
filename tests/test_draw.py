"""draw_poses: skeleton lines, z-sized points, visibility threshold, mask overlay, FPS text."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from posezoo.draw import draw_poses


def _pose(points, mask=None):
    return SimpleNamespace(landmarks=np.asarray(points, np.float32), mask=mask)


def _changed(a, b):
    return np.any(a != b, axis=2)


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


def test_nearer_points_are_bigger():
    image = np.zeros((200, 300, 3), np.uint8)
    pts = [[60, 100, -100, 1, 1], [240, 100, 100, 1, 1]]
    out = draw_poses(image, [_pose(pts)], [])
    changed = _changed(out, image)
    near = changed[:, :150].sum()
    far = changed[:, 150:].sum()
    assert near > 4 * far > 0


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
