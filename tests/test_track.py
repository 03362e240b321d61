"""Video tracking and smoothing: filters against a plain reference, the tracking rule (detector only
on the first frame and after a cut), ROIs from the smoothed auxiliary landmarks, jitter, several
people, and flat memory over 10,000 frames."""

from __future__ import annotations

import math
import os
import time

import cv2
import numpy as np
import pytest

from posezoo.errors import UsageError

from posezoo_plugins.mediapipe.model import PoseEstimator
from posezoo_plugins.mediapipe.roi import roi_from_landmarks
from posezoo_plugins.mediapipe.spec import SmoothingSpec
from posezoo.inference.tracking import BoxIdentities, LowPassFilter, OneEuroFilter, box_iou
from posezoo_plugins.mediapipe.track import PoseSmoother, Tracker, object_scale
from posezoo_plugins.blazepose_full import ROI, SPEC

AIC = "aic_ff945ae2e729f24eea992814639d59b3bdec8bd8.jpg"  # two people


@pytest.fixture(scope="module")
def estimator(make_estimator):
    return make_estimator("full")


@pytest.fixture(scope="module")
def lite(make_estimator):
    return make_estimator("lite")


@pytest.fixture(scope="module")
def photo(coco_photo):
    return coco_photo


def shifted(image: np.ndarray, dx: float, dy: float = 0.0) -> np.ndarray:
    m = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]])
    return cv2.warpAffine(image, m, (image.shape[1], image.shape[0]), borderMode=cv2.BORDER_REPLICATE)


# ------------------------------------------------------------------------------------ filters


def reference_one_euro(values, times, min_cutoff, beta, dcutoff, scale=1.0, freq=30.0):
    """Casiez et al.'s one-euro filter, scalar, written plainly (as MediaPipe's one_euro_filter.cc)."""

    def alpha(cutoff, f):
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau * f)

    out, x_prev, x_raw, dx_prev, t_prev = [], None, None, None, None
    for v, t in zip(values, times):
        if t_prev is not None:
            freq = 1.0 / (t - t_prev)
        t_prev = t
        dv = 0.0 if x_raw is None else (v - x_raw) * scale * freq
        a_d = alpha(dcutoff, freq)
        dx_prev = dv if dx_prev is None else a_d * dv + (1 - a_d) * dx_prev
        a = alpha(min_cutoff + beta * abs(dx_prev), freq)
        x_prev = v if x_prev is None else a * v + (1 - a) * x_prev
        x_raw = v
        out.append(x_prev)
    return np.array(out)


def test_one_euro_matches_a_plain_scalar_implementation_elementwise():
    rng = np.random.default_rng(0)
    times = np.cumsum(rng.uniform(0.02, 0.05, 60))
    values = np.cumsum(rng.normal(0, 3, (60, 4, 3)), axis=0)
    f = OneEuroFilter(0.05, 80.0, 1.0)
    got = np.array([f.apply(v, t, 0.01) for v, t in zip(values, times)])
    for i in range(4):
        for j in range(3):
            ref = reference_one_euro(values[:, i, j], times, 0.05, 80.0, 1.0, scale=0.01)
            np.testing.assert_allclose(got[:, i, j], ref, rtol=1e-9, atol=1e-9)


def test_one_euro_first_value_passes_constant_stays_and_steps_lag():
    f = OneEuroFilter(0.1, 0.0, 1.0)
    assert f.apply(np.array([5.0]), 0.0)[0] == 5.0
    for i in range(1, 10):
        assert f.apply(np.array([5.0]), i / 30)[0] == pytest.approx(5.0)
    stepped = f.apply(np.array([15.0]), 10 / 30)[0]
    assert 5.0 < stepped < 6.0  # min_cutoff 0.1 Hz at 30 fps: ~2 % of the step
    f.reset()
    assert f.apply(np.array([15.0]), 0.0)[0] == 15.0


def test_one_euro_beta_follows_fast_motion_and_value_scale_tempers_it():
    fast, scaled = OneEuroFilter(0.05, 80.0, 1.0), OneEuroFilter(0.05, 80.0, 1.0)
    a = b = None
    for i in range(10):
        a = fast.apply(np.array([10.0 * i]), i / 30)[0]
        b = scaled.apply(np.array([10.0 * i]), i / 30, 1.0 / 20000.0)[0]
    assert a > 85.0  # beta 80 opens the cutoff: it keeps up with 300 px/s
    assert b < a - 10.0  # the same motion, small against a 20,000 px object: smoothed harder


def test_one_euro_ignores_a_timestamp_that_does_not_advance():
    f = OneEuroFilter(0.05, 80.0, 1.0)
    f.apply(np.array([1.0]), 1.0)
    assert f.apply(np.array([9.0]), 1.0)[0] == 9.0  # returned unfiltered, state untouched
    assert f.apply(np.array([1.0]), 2.0)[0] == pytest.approx(1.0)


def test_low_pass_alpha():
    f = LowPassFilter(0.1)
    assert f.apply(np.array([1.0]))[0] == 1.0
    assert f.apply(np.array([0.0]))[0] == pytest.approx(0.9)
    assert f.apply(np.array([0.0]))[0] == pytest.approx(0.81)
    with pytest.raises(ValueError):
        LowPassFilter(0.0)


def reference_threshold_one_euro(values, times, min_cutoff, beta, dcutoff, th_cutoff, th_beta, freq=30.0):
    """The one-euro filter with a soft threshold on the step, scalar and plain (TF.js pose-detection's
    OneEuroFilter + LowPassFilter.applyWithAlpha with a threshold)."""

    def alpha(cutoff, f):
        return 1.0 / (1.0 + f / (2 * math.pi * cutoff))

    out, y, x_raw, dx, t_prev = [], None, None, None, None
    for v, t in zip(values, times):
        if t_prev is not None:
            freq = 1.0 / (t - t_prev)
        t_prev = t
        dv = 0.0 if x_raw is None else (v - x_raw) * freq
        a_d = alpha(dcutoff, freq)
        dx = dv if dx is None else dx + a_d * (dv - dx)
        a = alpha(min_cutoff + beta * abs(dx), freq)
        th = th_cutoff + th_beta * abs(dx)
        y = v if y is None else y + a * th * math.asinh((v - y) / th)
        x_raw = v
        out.append(y)
    return np.array(out)


def test_one_euro_with_a_threshold_matches_a_plain_scalar_implementation():
    rng = np.random.default_rng(7)
    times = np.cumsum(rng.uniform(0.02, 0.05, 80))
    values = np.cumsum(rng.normal(0, 0.01, (80, 5, 2)), axis=0)
    values[40] += 0.3  # a jump: the threshold tempers it
    f = OneEuroFilter(2.5, 300.0, 2.5, threshold_cutoff=0.5, threshold_beta=5.0)
    got = np.array([f.apply(v, t) for v, t in zip(values, times)])
    for i in range(5):
        for j in range(2):
            ref = reference_threshold_one_euro(values[:, i, j], times, 2.5, 300.0, 2.5, 0.5, 5.0)
            np.testing.assert_allclose(got[:, i, j], ref, rtol=1e-12, atol=1e-12)
    plain = OneEuroFilter(2.5, 300.0, 2.5)
    plain_out = np.array([plain.apply(v, t) for v, t in zip(values, times)])
    assert np.abs(plain_out - got).max() > 1e-4  # the threshold changes the result
    with pytest.raises(ValueError):
        OneEuroFilter(1.0, 0.0, 1.0, threshold_cutoff=0.0)


def test_low_pass_threshold_is_close_to_plain_for_small_steps_and_log_for_big_ones():
    small, plain = LowPassFilter(0.5), LowPassFilter(0.5)
    for f in (small, plain):
        f.apply(np.array([0.0]))
    assert small.apply(np.array([0.01]), threshold=1.0)[0] == pytest.approx(plain.apply(np.array([0.01]))[0], rel=1e-4)
    big = LowPassFilter(0.5)
    big.apply(np.array([0.0]))
    assert big.apply(np.array([100.0]), threshold=1.0)[0] == pytest.approx(0.5 * math.asinh(100.0))


def test_box_iou():
    a = np.array([[0, 0, 10, 10], [0, 0, 0, 10]])
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 10, 10]])
    np.testing.assert_allclose(box_iou(a, b), [[50 / 150, 0, 1], [0, 0, 0]])


def test_box_identities_follow_boxes_greedily_best_detection_first():
    ids = BoxIdentities(min_similarity=0.15, max_age=1.0, max_tracks=18)
    assert ids.assign([[0, 0, 10, 20], [50, 0, 60, 20]], 0.0) == [0, 1]
    # the people swap order in the detections and move a little: identities follow the boxes
    assert ids.assign([[52, 1, 62, 21], [1, 0, 11, 20]], 0.1) == [1, 0]
    # a box overlapping two identities takes the one it overlaps most
    assert ids.assign([[50, 0, 60, 20], [3, 0, 13, 20]], 0.2) == [1, 0]
    # too little overlap (IoU 0.05): a new identity (numbering goes on)
    assert ids.assign([[12, 0, 22, 20]], 0.3) == [2]
    assert ids.ids == {0, 1, 2}
    # identity 0 and 1 are still held (seen at 0.2, within max_age): a box back on 1 gets it back
    assert ids.assign([[50, 0, 60, 20]], 1.15) == [1]
    # after max_age unseen, an identity is forgotten
    assert ids.assign([[0, 0, 10, 20]], 1.25) == [3]
    assert ids.ids == {1, 2, 3}
    ids.reset()
    assert ids.ids == set() and ids.assign([[0, 0, 10, 20]], 2.0) == [4]


def test_box_identities_keep_the_most_recent_tracks_and_two_boxes_never_share_one():
    ids = BoxIdentities(max_tracks=2)
    assert ids.assign([[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]], 0.0) == [0, 1, 2]
    assert len(ids.ids) == 2
    assert ids.assign([[0, 0, 10, 10], [0, 0, 10, 10]], 0.1) in ([0, 3], [3, 4])
    with pytest.raises(ValueError):
        BoxIdentities(min_similarity=1.5)
    with pytest.raises(ValueError):
        BoxIdentities(max_age=0)


def test_object_scale_is_the_aux_alignment_side_in_pixels():
    aux = np.array([[100.0, 200.0, 0, 1, 1], [100.0, 140.0, 0, 1, 1]])
    assert object_scale(aux, ROI) == pytest.approx(120.0)  # 2 * |end - start|, scale 1.25 not applied
    assert object_scale(aux, None) == pytest.approx(30.0)  # bounding box (0 + 60) / 2


def test_smoother_uses_the_spec_parameters_and_passes_presence():
    sm = PoseSmoother(SmoothingSpec(), ROI)
    assert (sm.landmarks.min_cutoff, sm.landmarks.beta, sm.landmarks.derivate_cutoff) == (0.05, 80.0, 1.0)
    assert (sm.world.min_cutoff, sm.world.beta) == (0.1, 40.0)
    assert (sm.aux.min_cutoff, sm.aux.beta) == (0.01, 10.0)
    assert sm.visibility.alpha == 0.1
    lm = np.ones((33, 5), np.float32)
    aux = np.array([[10, 20, 0, 1, 1], [10, 0, 0, 1, 1]], np.float32)
    sm.apply(lm, np.zeros((33, 3), np.float32), aux, 0.0)
    lm2 = lm.copy()
    lm2[:, 3] = 0.0
    lm2[:, 4] = 0.25
    out, world, out_aux = sm.apply(lm2, np.zeros((33, 3), np.float32), aux, 1 / 30)
    np.testing.assert_allclose(out[:, 3], 0.9)  # visibility low-passed
    np.testing.assert_allclose(out[:, 4], 0.25)  # presence as is
    assert out.dtype == np.float32 and world.shape == (33, 3) and out_aux.shape == (2, 5)


# ------------------------------------------------------------------------------------ tracking


def test_detector_runs_only_on_the_first_frame_and_after_a_cut(estimator, photo):
    tracker = estimator.tracker()
    cut = 8
    ran, counts = [], []
    for i in range(16):
        frame = np.zeros_like(photo) if i == cut else shifted(photo, 2.0 * i, 1.0 * i)
        before = tracker.detector_runs
        poses = tracker.update(frame)
        if tracker.detector_runs > before:
            ran.append(i)
        counts.append(len(poses))
    # the cut frame: the held ROI loses the pose, the detector looks (finds nothing) on that frame;
    # the next frame has no ROI, so the detector runs again and the person is found
    assert ran == [0, cut, cut + 1]
    assert counts == [1] * cut + [0] + [1] * (16 - cut - 1)
    assert tracker.detector_runs == 3 and tracker.landmark_runs == 16  # one per frame: 15 found, 1 lost
    assert tracker.frames == 16 and tracker.tracked == 1


def test_static_estimator_runs_the_detector_every_frame_but_the_tracker_does_not(estimator, photo):
    tracker = estimator.tracker()
    for i in range(5):
        tracker.update(shifted(photo, i))
    assert tracker.detector_runs == 1


def test_next_roi_comes_from_the_smoothed_aux_landmarks(estimator, photo):
    tracker = estimator.tracker()
    prev = None
    for i in range(6):
        poses = tracker.update(shifted(photo, 3.0 * i))
        assert len(poses) == 1
        if prev is not None:
            expected = roi_from_landmarks(prev.aux, SPEC.landmark.tracking_roi)
            got = poses[0].roi
            assert (got.cx, got.cy, got.w, got.h, got.rotation) == pytest.approx(
                (expected.cx, expected.cy, expected.w, expected.h, expected.rotation)
            )
        prev = poses[0]
    assert prev.aux.shape == (2, 5)


def test_tracked_landmarks_agree_with_static_predictions(estimator, photo):
    tracker = estimator.tracker()
    for _ in range(10):
        tracked = tracker.update(photo)
    static = estimator.predict(photo)
    err = np.linalg.norm(tracked[0].landmarks[:, :2] - static[0].landmarks[:, :2], axis=1)
    size = np.ptp(static[0].landmarks[:, :2], axis=0).max()
    assert np.median(err) < 0.02 * size  # same person, same landmarks, only the crop differs slightly
    assert tracked[0].world_landmarks.shape == (33, 3) and tracked[0].score > 0.5


def test_reset_makes_the_next_update_detect(estimator, photo):
    tracker = estimator.tracker()
    tracker.update(photo)
    tracker.update(photo)
    assert tracker.detector_runs == 1 and tracker.tracked == 1
    tracker.reset()
    assert tracker.tracked == 0
    assert len(tracker.update(photo)) == 1 and tracker.detector_runs == 2


def test_empty_frames_run_the_detector_every_frame_and_find_nothing(estimator, photo):
    tracker = estimator.tracker()
    for _ in range(3):
        assert tracker.update(np.zeros_like(photo)) == []
    assert tracker.detector_runs == 3 and tracker.landmark_runs == 0


def _jitter(poses_per_frame, what):
    arr = np.stack([getattr(p[0], what) for p in poses_per_frame])
    return float(np.std(arr, axis=0).mean())


def test_smoothing_reduces_jitter_on_a_still_image_with_noise(estimator, photo):
    rng = np.random.default_rng(3)
    frames = [
        np.clip(photo.astype(np.int16) + rng.normal(0, 12, photo.shape).astype(np.int16), 0, 255).astype(np.uint8)
        for _ in range(40)
    ]
    raw, smooth = estimator.tracker(smooth=False), estimator.tracker()
    out_raw = [raw.update(f, timestamp=i / 30) for i, f in enumerate(frames)]
    out_smooth = [smooth.update(f, timestamp=i / 30) for i, f in enumerate(frames)]
    assert all(len(p) == 1 for p in out_raw + out_smooth)
    steady_raw, steady_smooth = out_raw[5:], out_smooth[5:]
    lm_raw = np.stack([p[0].landmarks for p in steady_raw])
    lm_smooth = np.stack([p[0].landmarks for p in steady_smooth])
    jitter_raw = np.std(lm_raw[:, :, :2], axis=0).mean()
    jitter_smooth = np.std(lm_smooth[:, :, :2], axis=0).mean()
    assert jitter_smooth < 0.6 * jitter_raw, (jitter_smooth, jitter_raw)
    assert _jitter(steady_smooth, "world_landmarks") < 0.6 * _jitter(steady_raw, "world_landmarks")
    vis_raw, vis_smooth = np.std(lm_raw[:, :, 3], axis=0).mean(), np.std(lm_smooth[:, :, 3], axis=0).mean()
    assert vis_smooth < vis_raw
    # and the smoothed pose stays on the person: its mean is close to the raw mean
    offset = np.abs(lm_smooth[:, :, :2].mean(axis=0) - lm_raw[:, :, :2].mean(axis=0)).mean()
    assert offset < 3.0 * jitter_raw + 1.0


def test_two_people_are_tracked_and_redetection_is_periodic_only_while_short(estimator, testdata):
    image = cv2.imread(str(testdata / "images" / AIC))
    two = estimator.tracker(max_poses=2)
    order = []
    for i in range(20):
        poses = two.update(image)
        assert len(poses) == 2
        order.append(poses[0].roi.cx < poses[1].roi.cx)
    assert two.detector_runs == 1  # both held: never again
    assert len(set(order)) == 1  # poses[i] is the same person on every frame
    a, b = poses
    assert abs(a.roi.cx - b.roi.cx) > 0.25 * max(a.roi.w, b.roi.w)  # two different people
    three = estimator.tracker(max_poses=3, redetect_every=5)
    for i in range(11):
        three.update(image)
    assert three.tracked == 2
    assert three.detector_runs == 3  # frames 0, 5, 10: looking for a third person


def test_timestamps_from_the_caller_and_validation(estimator, photo):
    tracker = estimator.tracker()
    for t in (0.0, 0.04, 0.04, 0.1):  # a repeated timestamp is tolerated
        assert len(tracker.update(photo, timestamp=t)) == 1
    with pytest.raises(UsageError):
        estimator.tracker(max_poses=0)
    with pytest.raises(ValueError):
        Tracker(estimator, fps=0)


@pytest.mark.slow
def test_memory_stays_flat_over_10000_frames(lite, photo):
    """10,000 tracked frames (lite model, 320x240 frames panning over the photo, a cut to black every
    1,000 frames so the detector and track loss run too): RSS growth after warm-up < 30 MB."""

    def rss_mb() -> float:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") / 2**20)

    small = cv2.resize(photo, (320, 212))
    frame = np.zeros((240, 320, 3), np.uint8)
    black = np.zeros_like(frame)
    tracker = lite.tracker()
    start = time.perf_counter()
    found = 0
    warm = None
    for i in range(10_000):
        if i % 1000 == 999:
            poses = tracker.update(black)
        else:
            m = np.array([[1.0, 0.0, 20 * math.sin(i / 50)], [0.0, 1.0, 14 + 10 * math.cos(i / 70)]])
            cv2.warpAffine(small, m, (320, 240), dst=frame, borderMode=cv2.BORDER_REPLICATE)
            poses = tracker.update(frame)
        found += len(poses)
        if i == 500:
            warm = rss_mb()
    elapsed = time.perf_counter() - start
    growth = rss_mb() - warm
    assert growth < 30.0, f"RSS grew {growth:.1f} MB over 9,500 frames ({elapsed:.0f} s)"
    assert found > 9_000  # the person was tracked through the clip
    assert 10 <= tracker.detector_runs <= 40  # first frame + around each of the 10 cuts



class _FakeEstimator:
    """Stage methods with scripted outputs: detections at given x positions, each with a pose flag.
    (Only for the detection-order rule; the tracking tests above run the real models.)"""

    def __init__(self, flags: list[float]):
        from posezoo_plugins.mediapipe.detect import Detection

        self.spec = SPEC
        self.flags = {}
        self.dets = []
        for i, flag in enumerate(flags):
            x = 100.0 + 300.0 * i
            self.dets.append(Detection(np.array([x - 20, 80, x + 20, 120], np.float32),
                                       np.array([[x, 300], [x, 200], [0, 0], [0, 0]], np.float32), 0.9 - 0.1 * i))  # fmt: skip
            self.flags[x] = flag

    def to_rgb(self, frame):
        return frame

    def detect_rgb(self, rgb, threshold=None):
        return list(self.dets)

    def roi_from_detection(self, det):
        from posezoo_plugins.mediapipe.roi import roi_from_detection

        return roi_from_detection(det, SPEC.detector.roi)

    def landmarks_in_roi(self, rgb, roi, segmentation=False):
        from posezoo_plugins.mediapipe.landmarks import LandmarkResult

        lms = np.zeros((33, 5), np.float32)
        lms[:, 0], lms[:, 1], lms[:, 3:] = roi.cx, roi.cy, 1.0
        aux = np.array([[roi.cx, roi.cy, 0, 1, 1], [roi.cx, roi.cy - roi.w / 2.5, 0, 1, 1]], np.float32)
        flag = self.flags[min(self.flags, key=lambda x: abs(x - roi.cx))]
        return LandmarkResult(lms, aux, None, flag, None, roi)

    make_pose = PoseEstimator.make_pose
    roi_from_landmarks = PoseEstimator.roi_from_landmarks


def test_a_false_best_detection_gets_one_spare_try():
    tracker = Tracker(_FakeEstimator([0.1, 0.9, 0.9]))
    poses = tracker.update(np.zeros((480, 1000, 3), np.uint8))
    assert len(poses) == 1 and poses[0].roi.cx == pytest.approx(400.0)  # the second detection
    assert tracker.landmark_runs == 2
    tracker = Tracker(_FakeEstimator([0.1, 0.1, 0.9]))
    assert tracker.update(np.zeros((480, 1000, 3), np.uint8)) == []  # only one spare try
    assert tracker.landmark_runs == 2
