"""The composition seam (posezoo.inference.regions) on its own: regions as data, the one overlap test,
frames, the top-down pipeline, and the generic tracker's rules, with scripted stages (pure numpy: no
model, no weights). The plugins built on it are tested in test_compose_plugin.py (a family written from
scratch) and test_multi.py (blazepose-multi)."""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np
import pytest

from posezoo.errors import InputError, UsageError
from posezoo.inference.model import Pose
from posezoo.inference.preprocess import Roi
from posezoo.inference.regions import (
    Frame,
    PoseRegions,
    Region,
    RegionDetector,
    RegionModel,
    TopDownModel,
    TopDownTracker,
    overlaps,
    predict_top_down,
    square_iou,
)
from posezoo.inference.timing import StageClock

# ------------------------------------------------------------------------------------ regions as data


def test_a_region_from_a_box_is_an_unrotated_rect_that_keeps_the_box():
    r = Region.from_box([10, 20, 50, 100], score=0.7, track_id=3)
    assert (r.roi.cx, r.roi.cy, r.roi.w, r.roi.h, r.roi.rotation) == (30, 60, 40, 80, 0.0)
    assert r.score == 0.7 and r.track_id == 3 and r.box.tolist() == [10, 20, 50, 100]
    np.testing.assert_allclose(r.square(), [-10, 20, 70, 100])  # the long side, around the centre
    np.testing.assert_allclose(r.bounds(), [10, 20, 50, 100])
    assert r.is_usable() and not Region(Roi(5, 5, 1.0, 40)).is_usable() and not Region(Roi(math.nan, 5, 9, 9)).is_usable()


def test_a_rotated_region_bounds_its_corners_and_its_square_ignores_the_rotation():
    r = Region(Roi(100, 100, 40, 40, math.radians(45)), keypoints=np.array([[1, 2], [3, 4]], np.float32), names=("a", "b"))
    half = 20 * math.sqrt(2)
    np.testing.assert_allclose(r.bounds(), [100 - half, 100 - half, 100 + half, 100 + half])
    np.testing.assert_allclose(r.square(), [80, 80, 120, 120])
    assert r.keypoint("b").tolist() == [3, 4] and r.keypoint("c") is None


def _old_square_iou(a: Roi, b: Roi) -> float:
    """The MediaPipe tracker's own 'same person' test before it moved into the core (for comparison)."""
    ra, rb = max(a.w, a.h) * 0.5, max(b.w, b.h) * 0.5
    ix = min(a.cx + ra, b.cx + rb) - max(a.cx - ra, b.cx - rb)
    iy = min(a.cy + ra, b.cy + rb) - max(a.cy - ra, b.cy - rb)
    if ix <= 0 or iy <= 0:
        return 0.0
    inter = ix * iy
    return inter / (4 * ra * ra + 4 * rb * rb - inter)


def test_square_iou_is_the_box_iou_of_the_squares_and_matches_the_old_test():
    rng = np.random.default_rng(5)
    rois = [Roi(*rng.uniform(0, 200, 2), *rng.uniform(5, 120, 2), rng.uniform(-3, 3)) for _ in range(40)]
    regions = [Region(r) for r in rois]
    got = square_iou(regions[:20], regions[20:])
    want = np.array([[_old_square_iou(a, b) for b in rois[20:]] for a in rois[:20]])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert (want > 0).sum() > 20  # the sample has overlaps
    assert square_iou([], regions).shape == (0, 40)
    assert overlaps(regions[0], [regions[0]], 0.99) and not overlaps(regions[0], [], 0.0)


def test_a_frame_converts_to_rgb_once_for_every_stage():
    calls = []

    def to_rgb(bgr):
        calls.append(1)
        return bgr[:, :, ::-1]

    image = np.zeros((4, 6, 3), np.uint8)
    image[..., 0] = 9
    frame = Frame(image, timestamp=1.5, to_rgb=to_rgb)
    assert frame.rgb[0, 0, 2] == 9 and frame.rgb is frame.rgb and len(calls) == 1
    assert frame.size == (6, 4) and frame.timestamp == 1.5
    assert Frame.of(frame) is frame and Frame.of(image).rgb[0, 0, 2] == 9
    with pytest.raises(InputError):
        Frame.of(np.zeros((4, 6, 3), np.float32))


# ------------------------------------------------------------------------------------ scripted stages

SIDE = 40.0


def person_pose(x: float, y: float, score: float, track_id=None) -> Pose:
    lms = np.array([[x, y, 1.0]], np.float32)
    return Pose(landmarks=lms, columns=("x", "y", "score"), names=("centre",), score=score,
                box=np.array([x, y, x, y], np.float32), track_id=track_id)  # fmt: skip


class Script:
    """Who is where on each frame: ``frames[t] = {name: (x, y)}`` (the tracker's timestamp is t). The
    detector's regions come in ``order`` (best first), plus ``false`` regions with no one in them."""

    def __init__(self, frames, order=None, false=()):
        self.frames, self.order, self.false = frames, order, list(false)

    def people(self, frame: Frame) -> dict:
        return self.frames[int(frame.timestamp)]


class ScriptedDetector(RegionDetector):
    def __init__(self, script: Script):
        self.script, self.calls, self.thresholds = script, 0, []

    def find_regions(self, frame, *, threshold=None):
        self.calls += 1
        self.thresholds.append(threshold)
        people = self.script.people(frame)
        names = self.script.order or sorted(people)
        found = [Region(Roi(x, y, SIDE, SIDE), score=0.9) for x, y in self.script.false]
        return found + [Region(Roi(*people[n], SIDE, SIDE), score=0.8 - 0.1 * i) for i, n in enumerate(names) if n in people]


@dataclass
class CountingSmoother:
    """Moves every pose 1 px right (so the test sees it ran) and records its timestamps."""

    times: list

    def smooth(self, pose: Pose, timestamp: float) -> Pose:
        self.times.append(timestamp)
        lms = pose.landmarks.copy()
        lms[:, 0] += 1.0
        return replace(pose, landmarks=lms)


class ScriptedModel(RegionModel):
    """Finds the person nearest the region's centre, when inside it."""

    def __init__(self, script: Script, side: float = SIDE):
        self.script, self.side, self.smoothers, self.thresholds = script, side, [], []

    def predict_regions(self, frame, regions, *, threshold=None, options=None):
        self.thresholds.append(threshold)
        out = []
        for r in regions:
            inside = [(x, y) for x, y in self.script.people(frame).values()
                      if abs(x - r.roi.cx) < r.roi.w / 2 and abs(y - r.roi.cy) < r.roi.h / 2]  # fmt: skip
            if not inside:
                out.append(None)
                continue
            x, y = min(inside, key=lambda p: math.hypot(p[0] - r.roi.cx, p[1] - r.roi.cy))
            out.append(person_pose(x, y, r.score, r.track_id))
        return out

    def next_region(self, pose):
        x, y = pose.landmarks[0, :2]
        return Region(Roi(float(x), float(y), self.side, self.side), score=pose.score)

    def new_smoother(self, fps):
        self.smoothers.append(CountingSmoother([]))
        return self.smoothers[-1]


def tracker(script, **kw):
    kw.setdefault("smooth", False)
    det, model = ScriptedDetector(script), ScriptedModel(script)
    return TopDownTracker(det, model, **kw), det, model


BLANK = np.zeros((8, 8, 3), np.uint8)


def run(t: TopDownTracker, frames: int, start: int = 0):
    return [[(p.track_id, float(p.landmarks[0, 0])) for p in t.update(BLANK, timestamp=i)] for i in range(start, start + frames)]


# ------------------------------------------------------------------------------------ the pipeline


def test_predict_top_down_runs_the_model_in_the_best_regions_and_drops_empty_ones():
    script = Script([{"a": (100, 50), "b": (300, 50), "c": (500, 50)}], order=["c", "a", "b"], false=[(900, 50)])
    det, model = ScriptedDetector(script), ScriptedModel(script)
    frame = Frame(BLANK, timestamp=0)
    poses = predict_top_down(det, model, frame, max_poses=3, threshold=0.4)
    assert [p.landmarks[0, 0] for p in poses] == [500, 100]  # the false region (best) finds no one; b is past max_poses
    assert det.thresholds == [0.4] and model.thresholds == [0.4]
    assert len(predict_top_down(det, model, frame)) == 3
    assert predict_top_down(det, model, Frame(BLANK, timestamp=0), max_poses=0) == []


class PeopleModel:
    """A whole-image model (a PoseModel's ``predict``) for PoseRegions."""

    def __init__(self):
        self.calls = []

    def predict(self, image, *, max_poses=None, threshold=None, **options):
        self.calls.append((max_poses, threshold, options))
        return [person_pose(10, 20, 0.9), person_pose(200, 20, 0.1)]


def test_pose_regions_turn_a_pose_models_people_into_regions_by_a_rule():
    people = PeopleModel()
    finder = PoseRegions(people, lambda p: None if p.score < 0.5 else Region(Roi(*p.keypoints[0], 30, 30), score=p.score),
                         max_poses=4, options={"fast": True})  # fmt: skip
    regions = finder.find_regions(Frame(BLANK), threshold=0.3)
    assert len(regions) == 1 and (regions[0].roi.cx, regions[0].roi.cy, regions[0].score) == (10, 20, 0.9)
    assert people.calls == [(4, 0.3, {"fast": True})]


@dataclass(frozen=True)
class TinySpec:
    name: str = "tiny"
    family: str = "tiny"
    keypoint_names: tuple = ("centre",)
    skeleton: tuple = ()
    max_poses: int = 3


class TimedPart:
    def __init__(self, inner):
        self.inner, self.clock = inner, None

    def __getattr__(self, name):
        return getattr(self.inner, name)

    @contextmanager
    def timed(self, clock):
        self.clock = clock
        try:
            yield clock
        finally:
            self.clock = None


def test_a_top_down_model_is_a_pose_model_with_its_checks_tracker_and_timing():
    script = Script([{"a": (100, 50), "b": (300, 50)}] * 3)
    det, model = TimedPart(ScriptedDetector(script)), ScriptedModel(script)
    tm = TopDownModel(TinySpec(), det, model)
    with pytest.raises(UsageError, match="at most 3"):
        tm.predict(BLANK, max_poses=4)
    with pytest.raises(UsageError, match="no option"):
        tm.predict(BLANK, colour=True)
    with tm.timed(StageClock()) as clock:
        assert det.clock is clock
    assert det.clock is None
    t = tm.tracker(max_poses=2, redetect_every=7, overlap=0.3, fps=10.0)
    assert (t.redetect_every, t.overlap, t.fps, t.max_poses) == (7, 0.3, 10.0, 2)
    assert [p.track_id for p in t.update(BLANK, timestamp=0)] == [0, 1]


# ------------------------------------------------------------------------------------ the tracker


def test_held_people_keep_their_ids_and_the_detector_runs_once():
    frames = [{"a": (100 + 3 * t, 50), "b": (400 - 2 * t, 60)} for t in range(10)]
    t, det, model = tracker(Script(frames), max_poses=2)
    out = run(t, 10)
    assert all([i for i, _ in row] == [0, 1] for row in out)
    assert out[-1] == [(0, 127.0), (1, 382.0)]  # each track's region followed its person
    assert det.calls == 1 and t.detector_runs == 1 and t.region_runs == 2 * 10 and t.tracked == 2


def test_a_lost_track_runs_the_detector_on_the_same_frame_and_a_returning_person_gets_a_new_id():
    frames = [{"a": (100, 50), "b": (400, 50)}] * 4 + [{"a": (100, 50)}] * 4 + [{"a": (100, 50), "b": (400, 50)}] * 6
    t, det, _ = tracker(Script(frames), max_poses=2, redetect_every=3)
    ids, ran = [], []
    for i in range(len(frames)):
        before = det.calls
        ids.append([p.track_id for p in t.update(BLANK, timestamp=i)])
        ran.append(det.calls > before)
    assert ids == [[0, 1]] * 4 + [[0]] * 6 + [[0, 2]] * 4  # b, back on frame 8, is found on frame 10 as a new person
    # frame 4: b lost -> the detector runs on that frame; then every 3 frames while one of two is held
    assert [i for i, r in enumerate(ran) if r] == [0, 4, 7, 10]


def test_redetection_is_periodic_only_while_fewer_than_max_poses_are_held():
    frames = [{"a": (100, 50)}] * 7 + [{"a": (100, 50), "b": (400, 50)}] * 8
    t, det, _ = tracker(Script(frames), max_poses=2, redetect_every=5)
    out = run(t, len(frames))
    assert [len(r) for r in out] == [1] * 10 + [2] * 5  # b, there from frame 7, is found on frame 10
    assert det.calls == 3  # frames 0, 5, 10; then both are held: never again
    full, det_full, _ = tracker(Script([{"a": (100, 50)}] * 12), max_poses=1, redetect_every=5)
    run(full, 12)
    assert det_full.calls == 1


def test_a_detection_overlapping_a_held_track_is_skipped():
    frames = [{"a": (100, 50), "b": (180, 50)}] * 2 + [{"a": (100, 50), "b": (110, 50)}] * 2
    t, det, _ = tracker(Script(frames), max_poses=2, redetect_every=1)
    assert [[i for i, _ in row] for row in run(t, 4)] == [[0, 1], [0, 1], [0], [0]]
    # frame 2: b left track 1's region (lost); the detector's region on b overlaps a's held one
    # (IoU 0.6 > 0.5): the same person, skipped, so no model run is spent on it
    assert det.calls == 3 and t.region_runs == 2 + 2 + 2 + 1


def test_tracks_converging_on_one_person_keep_the_older():
    frames = [{"a": (100, 50), "b": (135, 50)}] * 2 + [{"a": (118, 50)}] * 2  # b leaves, a steps into its region
    t, det, _ = tracker(Script(frames), max_poses=2, redetect_every=1)
    assert run(t, 4) == [[(0, 100.0), (1, 135.0)]] * 2 + [[(0, 118.0)]] * 2
    assert t.tracked == 1


def test_a_false_best_region_gets_one_spare_try():
    script = Script([{"b": (400, 50), "c": (700, 50)}], false=[(100, 50)])
    t, _, _ = tracker(script, max_poses=1)
    assert run(t, 1) == [[(0, 400.0)]] and t.region_runs == 2
    script = Script([{"c": (700, 50)}], false=[(100, 50), (250, 50)])
    t, _, _ = tracker(script, max_poses=1)
    assert run(t, 1) == [[]] and t.region_runs == 2  # only one spare try


def test_every_track_has_its_own_smoother_and_regions_follow_the_smoothed_pose():
    frames = [{"a": (100, 50), "b": (400, 50)}] * 3
    t, _, model = tracker(Script(frames), max_poses=2, smooth=True)
    out = run(t, 3)
    assert out[0] == [(0, 101.0), (1, 401.0)]  # smoothed: moved 1 px
    assert len(model.smoothers) == 2 and [s.times for s in model.smoothers] == [[0.0, 1.0, 2.0]] * 2
    assert t.tracks[0].region.roi.cx == 101.0 and t.tracks[0].region.track_id == 0
    t, _, model = tracker(Script(frames), max_poses=2, smooth=False)
    run(t, 2)
    assert model.smoothers == []


def test_an_unusable_next_region_ends_the_track_and_reset_forgets():
    script = Script([{"a": (100, 50)}] * 4)
    det, model = ScriptedDetector(script), ScriptedModel(script, side=1.0)  # next regions 1 px wide
    t = TopDownTracker(det, model, smooth=False)
    assert run(t, 2) == [[(0, 100.0)], [(1, 100.0)]]  # the pose is given, but the detector finds it again
    assert det.calls == 2 and t.tracked == 0
    t2, det2, _ = tracker(script)
    run(t2, 2)
    t2.reset()
    assert t2.tracked == 0 and run(t2, 1, start=2) == [[(1, 100.0)]] and det2.calls == 2


def test_default_timestamps_checks_and_the_default_next_region():
    script = Script([{"a": (100, 50)}] * 3)
    t, _, _ = tracker(script, fps=2.0)
    for i in range(3):
        t.update(BLANK)  # timestamps 0, 0.5, 1.0 -> frames 0, 0, 1 of the script
    assert t.frames == 3
    with pytest.raises(ValueError):
        tracker(script, max_poses=0)
    with pytest.raises(ValueError):
        tracker(script, fps=0)
    with pytest.raises(InputError):
        t.update(np.zeros((4, 4), np.float32))
    pose = person_pose(10, 20, 0.5)
    pose.box = np.array([0, 0, 20, 40], np.float32)
    r = RegionModel().next_region(pose)
    assert (r.roi.cx, r.roi.cy, r.roi.w, r.roi.h, r.score) == (10, 20, 50, 50, 0.5)
    assert RegionModel().new_smoother(30.0) is None
