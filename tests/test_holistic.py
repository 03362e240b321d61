"""mediapipe-holistic: one person's body, hands and face as one pose with parts, against MediaPipe 0.10.14's
own Holistic (static_image_mode, model_complexity 1) on the nine shared photos; each stage after the body
against MediaPipe's given its own body; the layout; video tracking of hands and face; the CLI from a
mirror.

The measures: body, the mean distance over the landmarks MediaPipe saw (visibility > 0.5) as a percentage
of the diagonal of MediaPipe's box around them (tests/test_parity.py's); a hand or the face, the median
distance over its landmarks as a percentage of the diagonal of MediaPipe's box around the part.
benchmarks/holistic_parity.py prints the same table.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from clitools import posezoo_env, run_posezoo
from mirror import fetched_home
from posezoo.inference.model import Capabilities, Pose
from posezoo.inference.regions import Region
from posezoo_plugins.mediapipe_holistic import SPEC, Holistic

PARTS = {"body": "pose", "left_hand": "left_hand", "right_hand": "right_hand", "face": "face"}  # ours -> the reference's
TARGET = {"body": 0.3, "left_hand": 1.5, "right_hand": 1.5, "face": 1.5}  # % of the part's diagonal
# Where the target does not hold, measured (benchmarks/holistic_parity.py) plus a margin, and why:
# - onehand10k body (0.367 %): blazepose-full's own stage (the same detection to 1e-4 px, the same landmark
#   model outputs as LiteRT's on the same crop); the crop's sampling moves the heatmap refinement of two
#   landmarks (left elbow 6.3 px, left index 3.2 px) on a 226 x 346 photo. The median is 0.14 %.
# - mpii right hand (3.3 %): the body's right wrist, pinky and index differ from MediaPipe's by 0.3-0.7 px,
#   and this hand (blurred, seen edge-on) is unstable: MediaPipe's own body landmarks moved by 0.5 px
#   (normal noise) give 1.3-4.4 % here and no hand in 3 of 10 draws (benchmarks/holistic_parity.py
#   --perturb 10), against 0.26 % unmoved (test_each_stage_after_the_body_is_mediapipes).
EXCEPTIONS = {("onehand10k", "body"): 0.45, ("mpii", "right_hand"): 4.0}


def photo_path(testdata: Path, name: str) -> Path:
    for folder in ("images", "images-wholebody"):
        if (testdata / folder / name).is_file():
            return testdata / folder / name
    raise FileNotFoundError(name)


@pytest.fixture(scope="module")
def reference(testdata: Path) -> dict:
    return json.loads((testdata / "mediapipe_wholebody_reference.json").read_text())["images"]


@pytest.fixture(scope="module")
def make_holistic(converted_models, shared_models: Path, tmp_path_factory):
    """``make_holistic(refined=False)``: the full variant (refined: full-refined) on converted shared files."""
    from posezoo.supply.convert import convert_file

    out = tmp_path_factory.mktemp("holistic")
    made = {}

    def make(refined: bool = False) -> Holistic:
        if refined not in made:
            files = {"detector": converted_models["detector"], "landmark": converted_models["full"]}
            face = "face_landmark_with_attention" if refined else "face_landmark"
            for role, name in (("hand_recrop", "hand_recrop"), ("hand_landmark", "hand_landmark_full"),
                               ("face_detector", "face_detection_short_range"), ("face_landmark", face)):  # fmt: skip
                files[role] = out / f"{name}.onnx"
                if not files[role].is_file():
                    convert_file(shared_models / "mediapipe-assets" / f"{name}.tflite", files[role])
            variant = "full-refined" if refined else "full"
            made[refined] = Holistic(SPEC.for_variant(variant), files, variant=variant, device="cpu")
        return made[refined]

    return make


@pytest.fixture(scope="module")
def holistic(make_holistic) -> Holistic:
    return make_holistic()


def part_error(part: str, got: np.ndarray, want: np.ndarray) -> float:
    """The parity measure of one part (module docstring), in % of the diagonal."""
    if part == "body":
        seen = want[:, 3] > 0.5
        got, want = got[seen], want[seen]
    diag = float(np.hypot(*np.ptp(want[:, :2], axis=0)))
    dist = np.linalg.norm(got[:, :2] - want[:, :2], axis=1)
    return 100.0 * float(dist.mean() if part == "body" else np.median(dist)) / diag


def compare(pose: Pose | None, ref: dict) -> dict[str, float | str | None]:
    """Per part: the error, None when neither found it, or a string saying which one missed it."""
    out: dict[str, float | str | None] = {}
    for part, key in PARTS.items():
        want = ref[key]
        got = None if pose is None else pose.part(part)
        if (got is None) != (want is None):
            out[part] = "missed" if got is None else "extra"
        else:
            out[part] = None if got is None else part_error(part, got, np.asarray(want, np.float64))
    return out


@pytest.mark.parametrize("refined", [False, True], ids=["full", "full-refined"])
def test_parity_with_mediapipes_holistic(refined, make_holistic, reference, testdata):
    holistic = make_holistic(refined)
    rows, failures = [], []
    for name, ref in reference.items():
        poses = holistic.predict(cv2.imread(str(photo_path(testdata, name))), max_poses=1)
        errors = compare(poses[0] if poses else None, ref["holistic_refine1" if refined else "holistic_refine0"])
        if refined and poses and poses[0].parts["face"] is not None:
            assert poses[0].part("face").shape == (478, 5)
        rows.append(f"{name[:28]:28s} " + " ".join(f"{p}={'-' if e is None else e if isinstance(e, str) else f'{e:.3f}%'}" for p, e in errors.items()))
        for part, err in errors.items():
            bound = EXCEPTIONS.get((name.split("_")[0], part), TARGET[part])
            if isinstance(err, str) or (err is not None and err > bound):
                failures.append(f"{name} {part}: {err} (bound {bound})")
    print("\n" + "\n".join(rows))
    assert not failures, "\n".join(failures)


def test_each_stage_after_the_body_is_mediapipes(holistic, reference, testdata):
    """Given MediaPipe's own body landmarks, the hands' and the face's regions, recrop, face detection and
    landmark models give MediaPipe's hands and face: every part found where MediaPipe found it, within
    0.3 % (a pixel or less)."""
    names = SPEC.body.keypoint_names
    for name, ref in reference.items():
        ref = ref["holistic_refine0"]
        if ref["pose"] is None:
            continue
        body = np.asarray(ref["pose"], np.float32)
        lms = np.concatenate([body, np.ones((len(body), 1), np.float32)], axis=1)  # presence: not in the reference
        pose = Pose(landmarks=lms, columns=("x", "y", "z", "visibility", "presence"), names=names, score=1.0,
                    box=np.zeros(4, np.float32))  # fmt: skip
        frame = holistic.frame(cv2.imread(str(photo_path(testdata, name))))
        whole = holistic.region_model.whole_body(frame, pose, Region(None))
        for part, err in compare(whole, ref).items():
            if part != "body":
                assert err is None or (not isinstance(err, str) and err <= 0.3), f"{name} {part}: {err}"


def test_one_pose_per_person_with_parts(holistic, testdata):
    spec_parts = (("body", 0, 33), ("left_hand", 33, 54), ("right_hand", 54, 75), ("face", 75, 543))
    assert SPEC.parts == spec_parts and Capabilities.of(SPEC).parts == spec_parts
    names = SPEC.keypoint_names
    assert len(names) == 543 and names[0] == "nose" and names[33] == "left_hand.wrist" and names[54] == "right_hand.wrist"
    assert names[75] == "face.0" and len(set(names)) == 543
    assert all(0 <= a < 543 and 0 <= b < 543 for a, b in SPEC.skeleton)
    # the COCO skier: body and face, no hand (her wrists are seen, but no hand model finds a hand there)
    (pose,) = holistic.predict(cv2.imread(str(testdata / "images" / "coco_000000000785.jpg")))
    assert pose.parts == {"body": (0, 33), "left_hand": None, "right_hand": None, "face": (75, 543)}
    assert pose.landmarks.shape == (543, 5) and pose.columns == ("x", "y", "z", "visibility", "presence")
    assert np.isnan(pose.landmarks[33:75]).all() and np.isfinite(pose.landmarks[:33]).all() and np.isfinite(pose.landmarks[75:]).all()
    face = pose.part("face")
    assert (face[:, 3] == face[0, 3]).all() and face[0, 3] > 0.5  # the face's presence, on each of its rows
    assert pose.world_landmarks.shape == (543, 3) and np.isfinite(pose.world_landmarks[:33]).all()
    assert np.isnan(pose.world_landmarks[33:]).all()
    assert np.isfinite(pose.box).all() and pose.box[0] <= face[:, 0].min() and pose.box[3] >= pose.landmarks[:33, 1].max()
    # a photo of a hand alone: no person, no pose (MediaPipe finds none either)
    assert holistic.predict(cv2.imread(str(testdata / "images-wholebody" / "freihand_00000355.jpg"))) == []


def test_video_follows_hands_and_face_from_their_last_landmarks(holistic, testdata):
    """A slow pan over the Panoptic photo: one person held with one id, both hands and the face on every
    frame, near the still photo's; the regions from last frame's landmarks are kept on most frames, as
    MediaPipe's RoiTrackingCalculator keeps them."""
    image = cv2.imread(str(testdata / "images-wholebody" / "panoptic_ex2_2.flv_000040_l.jpg"))
    h, w = image.shape[:2]
    tracker = holistic.tracker(max_poses=1)
    counts = holistic.region_model.counts
    before = counts.copy()
    for i in range(8):
        frame = cv2.warpAffine(image, np.float32([[1, 0, i * 1.5], [0, 1, i * 0.5]]), (w, h), borderMode=cv2.BORDER_REPLICATE)
        (pose,) = tracker.update(frame, timestamp=i / 30)
        assert pose.track_id == 0 and all(pose.parts[p] is not None for p in ("left_hand", "right_hand", "face"))
        still = holistic.predict(frame)[0]
        for part in ("left_hand", "right_hand", "face"):
            assert np.abs(pose.part(part)[:, :2] - still.part(part)[:, :2]).mean() < 3.0, (i, part)
    runs = counts - before
    assert list(holistic.region_model.smoothers) == [0]  # the held person's body filter: hands and face from the smoothed body
    assert tracker.detector_runs == 1
    assert runs["hand_landmark"] == 2 * 8 * 2 and runs["face_landmark"] == 8 * 2  # tracked + the still photo's
    assert runs["hand_kept"] >= 8 and runs["face_kept"] >= 5  # of 14 and 7 tracked frames with last frame's parts


def test_the_cli_tracks_a_clip_from_a_mirror(shared_models, testdata, tmp_path_factory):
    root = fetched_home(shared_models, tmp_path_factory.mktemp("holistic-cli"), ["mediapipe-holistic"])
    env = posezoo_env(root, POSEZOO_OFFLINE="1")
    work = root / "work"
    work.mkdir()
    image = cv2.imread(str(testdata / "images-wholebody" / "panoptic_ex2_2.flv_000040_l.jpg"))
    h, w = image.shape[:2]
    writer = cv2.VideoWriter(str(work / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (w, h))
    for i in range(5):
        writer.write(cv2.warpAffine(image, np.float32([[1, 0, 2 * i], [0, 1, 0]]), (w, h), borderMode=cv2.BORDER_REPLICATE))
    writer.release()
    result = run_posezoo("run", "mediapipe-holistic", "-v", "clip.avi", "-s", "out.mp4", "--json", "out.jsonl",
                         "--no-display", env=env, cwd=work)  # fmt: skip
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in (work / "out.jsonl").read_text().splitlines()]
    assert len(records) == 5 and (work / "out.mp4").stat().st_size > 0
    for record in records:
        (pose,) = record["poses"]
        lms = np.asarray(pose["landmarks"], np.float64)
        assert pose["track_id"] == 0 and lms.shape == (543, 5) and np.isfinite(lms).all()  # every part found
    # a photo where no hand is found: those rows are NaN in the pose, null in JSON (parts null), and drawing skips them
    result = run_posezoo("run", "mediapipe-holistic", "-i", testdata / "images" / "coco_000000000785.jpg", "-s", "skier.png",
                         "--json", "skier.jsonl", "--no-display", env=env, cwd=work)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert cv2.imread(str(work / "skier.png")).shape == (425, 640, 3)
    (pose,) = json.loads((work / "skier.jsonl").read_text())["poses"]
    rows = pose["landmarks"]
    assert all(r is None for r in rows[33:75]) and np.isfinite(np.asarray(rows[:33] + rows[75:], np.float64)).all()
    assert pose["parts"]["left_hand"] is None and pose["parts"]["right_hand"] is None
    assert len(pose["parts"]["body"]) == 33 and len(pose["parts"]["face"]) == 468
