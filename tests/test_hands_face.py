"""mediapipe-hands and mediapipe-face-mesh: two zoo models of the family ``mediapipe`` (data only).

First the data and the family's additions they use, on made-up numbers checked against MediaPipe's own
formulas written out here (HandLandmarksToRect + RectTransformation, LandmarksToDetection +
DetectionsToRects, the binary handedness classification, LandmarksRefinement, AssociationCalculator).
Then the real weights (the shared TFLite files, converted here) against MediaPipe 0.10.14's own results
(../shared/testdata/mediapipe_wholebody_reference.json: legacy Hands and FaceMesh, static image mode):
the same hands and faces found on every photo, each within a fraction of a percent of the reference's
box diagonal, handedness as MediaPipe's label read for an unmirrored photo. Then video tracking on a
clip made from a photo (the detectors run only when needed, counted by the tracker and by the detector's
session), and both models through the CLI from a loopback mirror.
"""

from __future__ import annotations

import dataclasses
import json
import math

import cv2
import numpy as np
import pytest

from clitools import one_line_error, posezoo_env, run_posezoo
from httpserver import MirrorServer
from mirror import build_mirror
from posezoo.inference.model import Capabilities
from posezoo.inference.preprocess import Roi
from posezoo.inference.regions import Region
from posezoo_plugins.mediapipe.anchors import generate_anchors
from posezoo_plugins.mediapipe.landmarks import LandmarkStage, decode_landmarks
from posezoo_plugins.mediapipe.model import PoseEstimator, associate
from posezoo_plugins.mediapipe.roi import roi_from_detection, roi_from_landmarks
from posezoo_plugins.mediapipe.spec import LandmarkSpec, Refinement, RoiRule
from posezoo_plugins.mediapipe_face_mesh import FACE_NAMES, REFINED_SPEC, topology
from posezoo_plugins.mediapipe_face_mesh import SPEC as FACE
from posezoo_plugins.mediapipe_hands import HAND_NAMES, HAND_SKELETON, HAND_TRACKING_ROI
from posezoo_plugins.mediapipe_hands import SPEC as HANDS

TFLITE = {  # file under ../shared/models/mediapipe-assets
    "palm_full": "palm_detection_full.tflite",
    "palm_lite": "palm_detection_lite.tflite",
    "hand_full": "hand_landmark_full.tflite",
    "hand_lite": "hand_landmark_lite.tflite",
    "face_detector": "face_detection_short_range.tflite",
    "face": "face_landmark.tflite",
    "face_attention": "face_landmark_with_attention.tflite",
}
MODELS = {  # (model, variant) -> (spec, detector file, landmark file), the registry's pairs
    ("mediapipe-hands", "full"): (HANDS, "palm_full", "hand_full"),
    ("mediapipe-hands", "lite"): (HANDS, "palm_lite", "hand_lite"),
    ("mediapipe-face-mesh", "base"): (FACE.for_variant("base"), "face_detector", "face"),
    ("mediapipe-face-mesh", "refined"): (FACE.for_variant("refined"), "face_detector", "face_attention"),
}
MIRRORED = {"Left": "right", "Right": "left"}  # MediaPipe's Hands label (a mirrored image) -> the person's hand
TWO_HANDS_AND_A_FACE = "panoptic_ex2_2.flv_000040_l.jpg"


# ------------------------------------------------------------------------------------ data


def test_hands_spec_is_mediapipes_21_keypoints_with_handedness_and_world_landmarks():
    assert len(HAND_NAMES) == 21 and HAND_NAMES[0] == "wrist" and HAND_NAMES[20] == "pinky_tip"
    assert HAND_NAMES[9] == "middle_finger_mcp" and len(HAND_SKELETON) == 21
    assert len(generate_anchors(HANDS.detector.anchors)) == 2016
    caps = Capabilities.of(HANDS)
    assert caps.features == frozenset({"world"}) and caps.mesh == () and caps.max_poses is None
    assert HANDS.landmark.label_output == "Identity_2" and HANDS.label_part == "{label}_hand"


def test_face_mesh_spec_base_468_refined_478_contours_and_tesselation():
    assert len(generate_anchors(FACE.detector.anchors)) == 896
    base, refined = FACE.for_variant("base"), FACE.for_variant("refined")
    assert base is FACE and refined.keypoint_names == REFINED_SPEC.keypoint_names
    assert len(base.keypoint_names) == 468 and len(refined.keypoint_names) == 478
    assert refined.keypoint_names[468] == "right_iris_center" and refined.keypoint_names[473] == "left_iris_center"
    caps, rcaps = Capabilities.of(base), Capabilities.of(refined)
    assert caps.parts == (("face", 0, 468),) and rcaps.parts == (("face", 0, 478),)
    assert len(caps.mesh) == 2556 and caps.mesh == topology.TESSELATION == rcaps.mesh
    assert len(caps.skeleton) == 40 + 16 + 8 + 16 + 8 + 36  # FACEMESH_CONTOURS
    assert set(rcaps.skeleton) - set(caps.skeleton) == set(topology.LEFT_IRIS + topology.RIGHT_IRIS)
    assert caps.describe()["mesh"][0] == list(topology.TESSELATION[0])
    assert "mesh" not in Capabilities.of(HANDS).describe()
    assert base.landmark.flag_is_logit and base.landmark.normalize_z == 1.0


def _rect_transformation(cx, cy, w, h, rotation, size, scale, shift_y):
    """MediaPipe's RectTransformationCalculator on a normalized rect (image ``size`` = (W, H))."""
    iw, ih = size
    x_shift = (-ih * h * shift_y * math.sin(rotation)) / iw
    y_shift = (ih * h * shift_y * math.cos(rotation)) / ih
    cx, cy = cx + x_shift, cy + y_shift
    long_side = max(w * iw, h * ih)
    return cx * iw, cy * ih, long_side * scale, long_side * scale, rotation


def _normalize(angle):
    return angle - 2 * math.pi * math.floor((angle + math.pi) / (2 * math.pi))


def test_the_hand_tracking_roi_is_mediapipes_hand_landmarks_to_rect():
    """hand_landmark_landmarks_to_roi: 12 of the 21 landmarks, rotation wrist -> mix of the MCPs, the
    bounds in the rotated frame, then x2.0 and a shift of -0.1, on a 640x480 image (normalized rects)."""
    rng = np.random.default_rng(3)
    size = (640, 480)
    for _ in range(20):
        px = rng.uniform([100, 80], [500, 400], size=(21, 2))
        norm = px / size
        sub = norm[[0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18]]
        x0, y0 = sub[0, 0] * size[0], sub[0, 1] * size[1]
        x1 = ((sub[4, 0] + sub[8, 0]) / 2 + sub[6, 0]) / 2 * size[0]
        y1 = ((sub[4, 1] + sub[8, 1]) / 2 + sub[6, 1]) / 2 * size[1]
        rotation = _normalize(math.pi / 2 - math.atan2(-(y1 - y0), x1 - x0))
        c0 = (sub.max(0) + sub.min(0)) / 2
        d = (sub - c0) * size
        rev = _normalize(-rotation)
        proj = np.stack([d[:, 0] * math.cos(rev) - d[:, 1] * math.sin(rev), d[:, 0] * math.sin(rev) + d[:, 1] * math.cos(rev)], 1)
        pc = (proj.max(0) + proj.min(0)) / 2
        cx = (pc[0] * math.cos(rotation) - pc[1] * math.sin(rotation) + size[0] * c0[0]) / size[0]
        cy = (pc[0] * math.sin(rotation) + pc[1] * math.cos(rotation) + size[1] * c0[1]) / size[1]
        w, h = np.ptp(proj[:, 0]) / size[0], np.ptp(proj[:, 1]) / size[1]
        expected = _rect_transformation(cx, cy, w, h, rotation, size, 2.0, -0.1)
        roi = roi_from_landmarks(px, HAND_TRACKING_ROI)
        np.testing.assert_allclose([roi.cx, roi.cy, roi.w, roi.h, roi.rotation], expected, atol=1e-6, rtol=1e-9)


def test_the_face_tracking_roi_is_the_landmarks_box_turned_by_the_eye_corners():
    rng = np.random.default_rng(4)
    px = rng.uniform(50, 300, size=(468, 2))
    px[33], px[263] = (100.0, 150.0), (200.0, 130.0)
    roi = roi_from_landmarks(px, FACE.landmark.tracking_roi)
    (x0, y0), (x1, y1) = px.min(0), px.max(0)
    side = 1.5 * max(x1 - x0, y1 - y0)
    rotation = -math.atan2(-(130.0 - 150.0), 100.0)  # target 0
    np.testing.assert_allclose([roi.cx, roi.cy, roi.w, roi.h, roi.rotation], [(x0 + x1) / 2, (y0 + y1) / 2, side, side, rotation], atol=1e-9)


def test_the_palm_roi_turns_the_box_wrist_to_middle_finger_up_and_moves_it_to_the_fingers():
    class Det:
        box = np.array([100.0, 100.0, 140.0, 140.0])
        keypoints = np.array([[120.0, 140.0], [0, 0], [120.0, 100.0]] + [[0, 0]] * 4)

    roi = roi_from_detection(Det, HANDS.detector.roi)  # upright hand: no rotation, shifted up by half the box
    assert roi == Roi(120.0, 120.0 - 20.0, 40.0 * 2.6, 40.0 * 2.6, 0.0)


def test_handedness_is_mediapipes_binary_classification_read_for_an_unmirrored_image():
    stage = LandmarkStage(HANDS.landmark)
    assert stage.label(np.array([[0.8]], np.float32)) == ("right", pytest.approx(0.8))  # MediaPipe: "Left" 0.8
    assert stage.label(np.array([[0.25]], np.float32)) == ("left", pytest.approx(0.75))  # MediaPipe: "Right" 0.75
    assert LandmarkStage(FACE.landmark).label(np.array([[0.9]])) == (None, None)


def test_refinements_replace_rows_and_add_the_irises_with_their_eyes_mean_z():
    spec = REFINED_SPEC.landmark
    rng = np.random.default_rng(5)
    mesh = rng.uniform(0, 192, (468, 3)).astype(np.float32)
    raws = [rng.uniform(0, 192, (len(r.rows), r.values_per_landmark)).astype(np.float32) for r in spec.refinements]
    out = decode_landmarks(mesh.reshape(1, -1), spec, [r.reshape(1, 1, 1, -1) for r in raws])
    assert out.shape == (478, 5) and spec.total_landmarks == 478
    lips = spec.refinements[0]
    np.testing.assert_array_equal(out[list(lips.rows), :2], raws[0] / 192)
    np.testing.assert_array_equal(out[list(lips.rows), 2], mesh[list(lips.rows), 2] / 192)  # z kept
    iris = spec.refinements[3]
    assert iris.rows == (468, 469, 470, 471, 472)
    np.testing.assert_allclose(out[468:473, 2], np.mean(mesh[list(iris.z_rows), 2] / 192), rtol=1e-6)
    np.testing.assert_array_equal(out[468:473, :2], raws[3] / 192)
    untouched = sorted(set(range(468)) - {i for r in spec.refinements for i in r.rows})
    np.testing.assert_array_equal(out[untouched, :3], mesh[untouched] / 192)


def test_associate_keeps_the_later_of_two_overlapping_regions_as_mediapipe_does():
    a = Region(Roi(100, 100, 50, 50), score=0.9)
    b = Region(Roi(300, 100, 50, 50), score=0.8)
    c = Region(Roi(105, 100, 50, 50), score=0.7)  # IoU with a: 45 / 55 > 0.5
    assert associate([a, b, c], 0.5) == [b, c]
    assert associate([a, b], 0.5) == [a, b] and associate([], 0.5) == []


def test_spec_errors_name_what_is_wrong():
    with pytest.raises(ValueError, match="bounds must be"):
        RoiRule(bounds="diagonal")
    with pytest.raises(ValueError, match=r"tracking_roi 0 -> mix \[4, 30\] is outside the 12 points it reads"):
        dataclasses.replace(HANDS.landmark, tracking_roi=dataclasses.replace(HAND_TRACKING_ROI, end_mix=((4, 0.5), (30, 0.5))))
    with pytest.raises(ValueError, match="needs its two labels"):
        dataclasses.replace(HANDS.landmark, labels=())
    with pytest.raises(ValueError, match="z 'average' needs z_rows"):
        Refinement("x", (1, 2), z="average")
    with pytest.raises(ValueError, match=r"refinement 'x' names a row outside 0\.\.468"):
        LandmarkSpec(input_size=(8, 8), num_landmarks=468, num_keypoints=468,
                     refinements=(Refinement("x", (468,), z="average", z_rows=(600,)),))  # fmt: skip
    with pytest.raises(ValueError, match="variant 'x' must be a ModelSpec named"):
        dataclasses.replace(FACE, variant_specs=(("x", HANDS),))
    with pytest.raises(ValueError, match="mesh edge"):
        dataclasses.replace(HANDS, mesh=((0, 21),))


# ------------------------------------------------------------------------------------ real weights


@pytest.fixture(scope="module")
def onnx_files(shared_models, tmp_path_factory):
    """The seven TFLite files converted to ONNX on first use: ``onnx_files[key]``."""
    from posezoo.supply.convert import convert_file

    out, done = tmp_path_factory.mktemp("hands-face"), {}

    def get(key: str):
        if key not in done:
            done[key] = out / f"{key}.onnx"
            convert_file(shared_models / "mediapipe-assets" / TFLITE[key], done[key])
        return done[key]

    return get


@pytest.fixture(scope="module")
def models(onnx_files):
    """(model, variant) -> a CPU PoseEstimator, built on first use."""
    cache = {}

    def get(model: str, variant: str) -> PoseEstimator:
        if (model, variant) not in cache:
            spec, det, lm = MODELS[(model, variant)]
            files = {"detector": onnx_files(det), "landmark": onnx_files(lm)}
            cache[(model, variant)] = PoseEstimator(spec, files, variant=variant, device="cpu")
        return cache[(model, variant)]

    return get


@pytest.fixture(scope="module")
def reference(testdata):
    return json.loads((testdata / "mediapipe_wholebody_reference.json").read_text())["images"]


def photo(testdata, name):
    path = testdata / "images-wholebody" / name
    return cv2.imread(str(path if path.is_file() else testdata / "images" / name))


def error_pct(ours, ref) -> float:
    ref = np.asarray(ref, np.float64)[:, :2]
    return float(np.linalg.norm(np.asarray(ours)[:, :2] - ref, axis=1).mean() / np.hypot(*np.ptp(ref, axis=0)) * 100)


def test_hands_find_mediapipes_hands_on_every_photo_in_its_order_with_its_handedness(models, reference, testdata):
    """model_complexity 1 = the full variant, max_num_hands 2: the same hands on all nine photos (none
    missed, none extra: e.g. four palm detections on the AIC photo, one a hand), in MediaPipe's order,
    each within 0.5 % of its box diagonal (measured: at most 0.02 %), its label MediaPipe's mirrored."""
    model = models("mediapipe-hands", "full")
    errors = []
    for name, ref in reference.items():
        hands = model.predict(photo(testdata, name), max_poses=2)
        assert len(hands) == len(ref["hands"]), name
        for hand, want in zip(hands, ref["hands"]):
            errors.append(error_pct(hand.landmarks, want["landmarks"]))
            assert errors[-1] <= 0.5, (name, errors[-1])
            assert hand.label == MIRRORED[want["handedness"]], name
            assert hand.label_score == pytest.approx(want["score"], abs=0.01)
            assert hand.parts == {f"{hand.label}_hand": (0, 21)} and hand.names == HAND_NAMES
            z = np.asarray(want["landmarks"])[:, 2]  # MediaPipe's z x image width: pixels, as ours
            assert np.abs(hand.landmarks[:, 2] - z).max() <= 0.01 * np.hypot(*np.ptp(np.asarray(want["landmarks"])[:, :2], 0))
            assert hand.world_landmarks.shape == (21, 3) and np.isfinite(hand.world_landmarks).all()
            palm = np.linalg.norm(hand.world_landmarks[9] - hand.world_landmarks[0])
            assert 0.04 < palm < 0.15, palm  # wrist to middle finger MCP, metres
    assert len(errors) == 6 and np.median(errors) <= 0.1


def test_hands_lite_is_the_complexity_0_pair(models, testdata):
    """model_complexity 0 has other weights: against the same reference it is a few % off (the benchmark
    prints it); here, the two hands of the Panoptic photo, the player's left one first."""
    hands = models("mediapipe-hands", "lite").predict(photo(testdata, TWO_HANDS_AND_A_FACE), max_poses=2)
    assert [h.label for h in hands] == ["left", "right"]
    assert all(h.presence >= 0.5 and h.landmarks.shape == (21, 5) for h in hands)


@pytest.mark.parametrize("variant,key,rows", [("base", "face_mesh_refine0", 468), ("refined", "face_mesh_refine1", 478)])
def test_face_mesh_finds_mediapipes_faces_on_every_photo(models, reference, testdata, variant, key, rows):
    """max_num_faces 2, refine_landmarks False / True: the same faces on all nine photos (the H36M photo's
    one face detection is no face for the landmark model, as for MediaPipe), each within 0.5 % of its box
    diagonal (measured: at most 0.04 %), z too, the irises' included."""
    model = models("mediapipe-face-mesh", variant)
    errors = []
    for name, ref in reference.items():
        faces = model.predict(photo(testdata, name), max_poses=2)
        assert len(faces) == len(ref[key]), name
        for face, want in zip(faces, ref[key]):
            want = np.asarray(want)
            assert face.landmarks.shape == (rows, 5) and face.parts == {"face": (0, rows)}
            errors.append(error_pct(face.landmarks, want))
            assert errors[-1] <= 0.5, (name, errors[-1])
            diag = np.hypot(*np.ptp(want[:, :2], 0))
            assert np.abs(face.landmarks[:, 2] - want[:, 2]).mean() <= 0.005 * diag, name
            assert face.presence >= 0.5 and face.names[:468] == FACE_NAMES
    assert len(errors) == 4 and np.median(errors) <= 0.1


def _shifted(image, dx: float, dy: float):
    return cv2.warpAffine(image, np.float32([[1, 0, dx], [0, 1, dy]]), (image.shape[1], image.shape[0]), borderMode=cv2.BORDER_REPLICATE)


@pytest.fixture(scope="module")
def clip(testdata):
    """Twelve frames of the Panoptic photo (two hands, a face) drifting right and down 2 px a frame."""
    base = photo(testdata, TWO_HANDS_AND_A_FACE)
    return [_shifted(base, 2.0 * i, 1.0 * i) for i in range(12)]


def test_hands_tracking_runs_the_palm_detector_only_while_a_hand_is_missing(models, clip):
    model = models("mediapipe-hands", "full")
    runs = model.sessions["detector"].runs
    tracker = model.tracker(max_poses=2, smooth=False)
    frames = [tracker.update(f) for f in clip]
    assert [sorted(h.track_id for h in hands) for hands in frames] == [[0, 1]] * len(clip)
    assert tracker.detector_runs == 1 and model.sessions["detector"].runs - runs == 1  # both held from frame 0
    assert tracker.landmark_runs == 2 * len(clip)
    for i, hands in enumerate(frames):  # each hand near where a still-image run puts it, the same hand
        still = model.predict(clip[i], max_poses=2)
        for hand in hands:
            nearest = min(still, key=lambda s: error_pct(hand.landmarks, s.landmarks))
            assert hand.presence >= 0.9 and hand.label == frames[0][hand.track_id].label  # each track keeps its hand
            # the crops differ (landmarks' box x2.0 vs the palm's x2.6): the clear hand agrees within 3 %,
            # the half-closed one within 12 % (still images even flip its label on 2 of the 12 frames, at
            # scores of 0.6; tracked, it holds "right" at 0.9+)
            assert error_pct(hand.landmarks, nearest.landmarks) < (3.0 if hand.label == "left" else 12.0)
    for first, last in zip(*(sorted(f, key=lambda h: h.track_id) for f in (frames[0], frames[-1]))):
        moved = (last.landmarks[:, :2] - first.landmarks[:, :2]).mean(axis=0)
        np.testing.assert_allclose(moved, (22.0, 11.0), atol=5.0)  # the hands drift with the frames (22, 11 px)
    # a hand short: with one hand allowed per track slot left empty, the detector comes back on schedule
    one = model.tracker(max_poses=3, smooth=False, redetect_every=4)
    for f in clip:
        one.update(f)
    assert one.detector_runs == 3  # frames 0, 4, 8: never three hands held


def test_a_lost_hand_runs_the_detector_on_that_frame_and_a_new_track_follows(models, clip):
    tracker = models("mediapipe-hands", "full").tracker(max_poses=2)
    blank = np.full_like(clip[0], 128)
    counts = [len(tracker.update(f)) for f in (clip[0], clip[1], blank, clip[2])]
    assert counts == [2, 2, 0, 2]
    assert tracker.detector_runs == 3  # frame 0; the blank frame (both lost); the next (none held)
    assert sorted(h.track_id for h in tracker.update(clip[3])) == [2, 3]


def test_face_tracking_holds_the_face_and_redetects_on_schedule_for_a_second(models, clip):
    model = models("mediapipe-face-mesh", "refined")
    runs = model.sessions["detector"].runs
    single = model.tracker(max_poses=1)
    faces = [single.update(f) for f in clip]
    assert [[f.track_id for f in fs] for fs in faces] == [[0]] * len(clip)
    assert single.detector_runs == 1 and model.sessions["detector"].runs - runs == 1
    assert all(fs[0].landmarks.shape == (478, 5) for fs in faces)
    still = model.predict(clip[-1])[0]
    assert error_pct(faces[-1][0].landmarks, still.landmarks) < 2.0
    two = model.tracker(max_poses=2, redetect_every=5)
    for f in clip:
        assert len(two.update(f)) == 1
    assert two.detector_runs == 3  # frames 0, 5, 10: looking for a second face


# ------------------------------------------------------------------------------------ the CLI


FILES = {f"{name}.tflite" for name in ("palm_detection_lite", "palm_detection_full", "hand_landmark_lite", "hand_landmark_full",
                                      "face_detection_short_range", "face_landmark", "face_landmark_with_attention")}  # fmt: skip


@pytest.fixture(scope="module")
def cli_home(shared_models, tmp_path_factory):
    """A POSEZOO_HOME with every variant of both models fetched by the CLI from a loopback HTTP mirror
    (each file once, verified) and converted."""
    root = tmp_path_factory.mktemp("hands-face-cli")
    build_mirror(shared_models, root / "mirror", link=True)
    with MirrorServer(root / "mirror") as server:
        for model in ("mediapipe-hands", "mediapipe-face-mesh"):
            result = run_posezoo("fetch", model, "--all-variants", "--mirror", server.url, env=posezoo_env(root))
            assert result.returncode == 0, result.stderr
        assert sorted(r.name for r in server.requests) == sorted(FILES)  # the shared detector: fetched once
    return root


def test_the_cli_runs_both_models_from_a_mirror(cli_home, testdata, tmp_path):
    env = posezoo_env(cli_home, POSEZOO_OFFLINE="1")
    image = testdata / "images-wholebody" / TWO_HANDS_AND_A_FACE
    result = run_posezoo("run", "mediapipe-hands", "-i", image, "--max-poses", "2", "--json", "hands.jsonl", "-s", "hands.png",
                         "--no-display", env=env, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "hands.jsonl").read_text())
    assert record["model"] == "mediapipe-hands" and record["variant"] == "full" and len(record["poses"]) == 2
    assert all(len(p["landmarks"]) == 21 and len(p["world_landmarks"]) == 21 for p in record["poses"])
    result = run_posezoo("run", "mediapipe-face-mesh", "--variant", "refined", "-i", image, "--json", "face.jsonl",
                         "-s", "face.png", "--draw-mesh", "--no-display", env=env, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    (face,) = json.loads((tmp_path / "face.jsonl").read_text())["poses"]
    assert len(face["landmarks"]) == 478
    drawn, plain = cv2.imread(str(tmp_path / "face.png")), cv2.imread(str(image))
    assert drawn.shape == plain.shape and (np.abs(drawn.astype(int) - plain).sum(axis=2) > 0).sum() > 500

    info = json.loads(run_posezoo("info", "mediapipe-face-mesh", "--json", env=env).stdout)  # the default variant's
    assert len(info["keypoint_names"]) == 468 and len(info["mesh"]) == 2556 and info["parts"] == {"face": [0, 468]}
    assert info["variants"]["refined"]["keypoints"] == 478 and "keypoints" not in info["variants"]["base"]
    line = one_line_error(run_posezoo("run", "mediapipe-hands", "--variant", "heavy", "-i", image, "--no-display", env=env, cwd=tmp_path))
    assert "heavy" in line


def test_the_cli_tracks_hands_in_a_video(cli_home, clip, tmp_path):
    env = posezoo_env(cli_home, POSEZOO_OFFLINE="1")
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (clip[0].shape[1], clip[0].shape[0]))
    for f in clip:
        writer.write(f)
    writer.release()
    result = run_posezoo("run", "mediapipe-hands", "-v", video, "--max-poses", "2", "--json", "clip.jsonl", "--no-display",
                         env=env, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in (tmp_path / "clip.jsonl").read_text().splitlines()]
    assert len(records) == len(clip)
    assert [sorted(p["track_id"] for p in r["poses"]) for r in records] == [[0, 1]] * len(clip)
