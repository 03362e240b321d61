"""The Python API a newcomer meets first: readable reprs, and the colour order of the image.

Every family expects BGR (what ``cv2.imread`` and ``cv2.VideoCapture`` give). ``rgb=True`` on
``predict``, ``model(image)`` and ``tracker.update`` takes an RGB array instead; the core's
``PoseModel`` template converts it once for every family.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import SHARED
from posezoo.errors import UsageError
from posezoo.inference.model import Pose, PoseTracker

pytestmark = pytest.mark.skipif(SHARED is None, reason="needs ../shared (weights and test photos)")


@pytest.fixture(scope="module")
def model(make_estimator):
    return make_estimator("lite")


def test_pose_repr_is_one_readable_line(model, coco_photo):
    (pose,) = model.predict(coco_photo)
    text = repr(pose)
    assert "\n" not in text and "array" not in text and len(text) < 200, text
    assert text.startswith("Pose(33 keypoints x,y,z,visibility,presence, score=0.")
    assert f"score={pose.score:.2f}" in text and f"presence={pose.presence:.2f}" in text
    x0, y0, x1, y1 = pose.box
    assert f"box=[{x0:.1f}, {y0:.1f}, {x1:.1f}, {y1:.1f}]" in text
    assert "parts=body" in text and "world" in text and "track_id" not in text


def test_pose_repr_shows_track_parts_and_label():
    pose = Pose(
        landmarks=np.zeros((42, 3), np.float32), columns=("x", "y", "z"), names=tuple(f"k{i}" for i in range(42)),
        score=0.912, box=np.array([1, 2, 3, 4], np.float32), track_id=7,
        parts={"left_hand": (0, 21), "right_hand": None}, label="left", label_score=0.876,
    )  # fmt: skip
    assert repr(pose) == (
        "Pose(42 keypoints x,y,z, score=0.91, box=[1.0, 2.0, 3.0, 4.0], track_id=7, "
        "parts=left_hand,right_hand(not found), label=left(0.88))"
    )


def test_model_repr_is_readable(model):
    assert repr(model) == "<PoseEstimator blazepose-full:lite (33 keypoints, CPUExecutionProvider)>"


def test_rgb_true_gives_the_poses_of_the_bgr_image(model, coco_photo):
    rgb = np.ascontiguousarray(coco_photo[:, :, ::-1])
    (bgr_pose,) = model.predict(coco_photo)
    (rgb_pose,) = model.predict(rgb, rgb=True)
    np.testing.assert_array_equal(rgb_pose.landmarks, bgr_pose.landmarks)
    assert rgb_pose.score == bgr_pose.score
    (called,) = model(rgb, rgb=True)  # model(image) is predict
    np.testing.assert_array_equal(called.landmarks, bgr_pose.landmarks)
    # the same RGB array read as BGR is not refused: it just gives other (worse) numbers
    wrong = model.predict(rgb)
    assert not wrong or not np.array_equal(wrong[0].landmarks, bgr_pose.landmarks)
    # RGBA -> BGRA too
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    (rgba_pose,) = model.predict(rgba, rgb=True)
    np.testing.assert_array_equal(rgba_pose.landmarks, model.predict(np.dstack([coco_photo, rgba[:, :, 3]]))[0].landmarks)


def test_tracker_update_takes_rgb_frames(model, coco_photo):
    rgb = np.ascontiguousarray(coco_photo[:, :, ::-1])
    bgr_tracker, rgb_tracker = model.tracker(), model.tracker()
    assert isinstance(rgb_tracker, PoseTracker)
    for i in range(3):
        (a,) = bgr_tracker.update(coco_photo, timestamp=i / 30)
        (b,) = rgb_tracker.update(rgb, timestamp=i / 30, rgb=True)
        np.testing.assert_array_equal(a.landmarks, b.landmarks)
    assert rgb_tracker.frames == 3 and rgb_tracker.landmark_runs == bgr_tracker.landmark_runs  # the family's own
    rgb_tracker.reset()
    assert len(rgb_tracker.update(rgb, timestamp=0.0, rgb=True)) == 1  # a new video after reset()


def test_rgb_must_be_a_bool(model, coco_photo):
    with pytest.raises(UsageError, match="rgb must be True or False"):
        model.predict(coco_photo, rgb="yes")
