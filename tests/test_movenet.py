"""The MoveNet family plugin: parity with TF.js pose-detection on the four shared photos, the crop rules
and crop tracking of the single-person models, identities of the multi-person model over a written clip,
the checks on options, and the bench. Real weights (the shared TF.js files, converted here), real
onnxruntime sessions; the reference outputs are shared/testdata/movenet_reference.json."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from posezoo.drivers.bench import open_input, run_bench, write_clip
from posezoo.errors import InputError, UsageError, PluginError
from posezoo.io.sources import VideoSource
from posezoo_plugins.movenet import COCO_NAMES, COCO_SKELETON, LIGHTNING, MULTIPOSE, THUNDER, MoveNet, MoveNetSpec
from posezoo_plugins.movenet.crop import initial_crop, next_crop

SPECS = {"movenet-lightning": LIGHTNING, "movenet-thunder": THUNDER, "movenet-multipose": MULTIPOSE}
REF_KEY = {"movenet-lightning": "lightning", "movenet-thunder": "thunder", "movenet-multipose": "multipose"}
PHOTOS = (
    "aic_ff945ae2e729f24eea992814639d59b3bdec8bd8.jpg",
    "coco_000000000785.jpg",
    "h36m_S1_Directions_1.54138969_000001.jpg",
    "mpii_052475643.jpg",
)
BOUND = 0.005  # mean keypoint distance, as a fraction of the diagonal of the reference pose's box


@pytest.fixture(scope="module")
def onnx_files(shared_models, tmp_path_factory) -> dict:
    """The three shared TF.js models converted with posezoo.supply.convert."""
    from posezoo.supply.convert import convert_tfjs_file

    out = tmp_path_factory.mktemp("movenet")
    files = {}
    for name in SPECS:
        files[name] = out / f"{name}.onnx"
        convert_tfjs_file(shared_models / "human-models" / f"{name}.json", files[name])
    return files


@pytest.fixture(scope="module")
def models(onnx_files) -> dict[str, MoveNet]:
    return {name: MoveNet(spec, {"model": onnx_files[name]}, variant="default", device="cpu") for name, spec in SPECS.items()}


@pytest.fixture(scope="module")
def reference(testdata) -> dict:
    return json.loads((testdata / "movenet_reference.json").read_text())["images"]


def photo(testdata, name):
    image = cv2.imread(str(testdata / "images" / name))
    assert image is not None, name
    return image


def distance_to(pose, ref: dict) -> tuple[float, float]:
    """(mean keypoint distance in pixels, the diagonal of the reference pose's box)."""
    want = np.array(ref["keypoints"])[:, :2]
    mean = float(np.linalg.norm(pose.landmarks[:, :2] - want, axis=1).mean())
    return mean, float(np.linalg.norm(want.max(axis=0) - want.min(axis=0)))


# ------------------------------------------------------------------------------------ parity


@pytest.mark.parametrize("name", ["movenet-lightning", "movenet-thunder"])
@pytest.mark.parametrize("image", PHOTOS)
def test_single_person_models_match_the_reference(models, reference, testdata, name, image):
    poses = models[name].predict(photo(testdata, image))
    ref = reference[image][REF_KEY[name]]
    assert len(poses) == len(ref) == 1
    pose = poses[0]
    mean, diag = distance_to(pose, ref[0])
    assert mean <= BOUND * diag, f"{name} on {image}: {mean:.3f} px, {100 * mean / diag:.4f} % of {diag:.0f}"
    assert pose.score == pytest.approx(ref[0]["score"], abs=1e-4)
    np.testing.assert_allclose(pose.landmarks[:, 2], np.array(ref[0]["keypoints"])[:, 2], atol=1e-4)
    assert pose.names == COCO_NAMES and pose.columns == ("x", "y", "score") and pose.landmarks.shape == (17, 3)
    assert pose.track_id is None and pose.presence == pose.score


def match_people(poses, refs) -> list[tuple[int, int, float, float]]:
    """Greedy matching of our poses to the reference's by mean keypoint distance: (ours, ref, mean, diag)."""
    pairs = sorted(
        ((distance_to(p, r), i, j) for i, p in enumerate(poses) for j, r in enumerate(refs)), key=lambda t: t[0][0]
    )
    used_i, used_j, out = set(), set(), []
    for (mean, diag), i, j in pairs:
        if i not in used_i and j not in used_j:
            used_i.add(i)
            used_j.add(j)
            out.append((i, j, mean, diag))
    return out


@pytest.mark.parametrize("image", PHOTOS)
def test_multi_person_model_finds_the_reference_people(models, reference, testdata, image):
    poses = models["movenet-multipose"].predict(photo(testdata, image), max_poses=6)
    refs = reference[image]["multipose"]
    assert len(poses) == len(refs)
    matched = match_people(poses, refs)
    assert len(matched) == len(refs)
    for i, j, mean, diag in matched:
        assert mean <= BOUND * diag, f"person {j} on {image}: {mean:.3f} px, {100 * mean / diag:.4f} %"
        assert poses[i].score == pytest.approx(refs[j]["score"], abs=1e-4)
        box = poses[i].box  # the model's box holds the person's confident keypoints
        sure = poses[i].landmarks[poses[i].landmarks[:, 2] > 0.3, :2]
        assert (sure >= box[:2] - 10).all() and (sure <= box[2:] + 10).all()
    scores = [p.score for p in poses]
    assert scores == sorted(scores, reverse=True)  # best first


def test_multi_person_max_poses_and_threshold(models, testdata):
    model = models["movenet-multipose"]
    image = photo(testdata, PHOTOS[0])  # three people
    assert len(model.predict(image)) == 3  # default: every person, up to 6
    best = model.predict(image, max_poses=2)
    assert len(best) == 2 and best[0].score >= best[1].score
    assert len(model.predict(image, threshold=0.54)) == 1
    assert model.predict(image, max_poses=0) == []
    with pytest.raises(UsageError, match="at most 6"):
        model.predict(image, max_poses=7)


def test_multi_person_input_size_is_a_multiple_of_32(models, testdata):
    model = models["movenet-multipose"]
    image = photo(testdata, PHOTOS[1])
    try:
        model.input_size = 320
        poses = model.predict(image)
        assert model._tensor.shape == (1, 224, 320, 3)  # 640x425 -> 320x213, padded to 224
        assert len(poses) == 1 and poses[0].score > 0.5
    finally:
        model.input_size = 256
    with pytest.raises(InputError, match="multiple of 32"):
        model.input_size = 250
    with pytest.raises(InputError, match="fixed"):
        models["movenet-lightning"].input_size = 256
    with pytest.raises(ValueError, match="multiple of 32"):
        MoveNetSpec(name="x", multipose=True, input_size=250, max_poses=6)
    with pytest.raises(ValueError, match="video_crop must be one of fast, exact"):
        MoveNetSpec(name="x", multipose=False, input_size=192, video_crop="tf")


# ------------------------------------------------------------------------------------ crop rules


def test_initial_crop_is_the_centred_square_then_the_padded_image():
    # landscape 640x480: first the centred 480x480 square, then the image padded to 640x640
    assert initial_crop(640, 480) == pytest.approx((0.0, 0.125, 1.0, 0.875))
    assert initial_crop(640, 480, first=False) == pytest.approx((-1 / 6, 0.0, 7 / 6, 1.0))
    # portrait 300x500
    assert initial_crop(300, 500) == pytest.approx((0.2, 0.0, 0.8, 1.0))
    assert initial_crop(300, 500, first=False) == pytest.approx((0.0, -1 / 3, 1.0, 4 / 3))


def keypoints_px(points: dict, width: int, height: int, score: float = 0.9) -> np.ndarray:
    """(17, 3) normalized keypoints: the named ones at ``points`` (pixels), the rest unseen."""
    kps = np.zeros((17, 3))
    for name, (x, y) in points.items():
        kps[COCO_NAMES.index(name)] = (x / width, y / height, score)
    return kps


def test_next_crop_from_the_torso_and_the_body():
    w, h = 640, 480
    pts = {"left_hip": (330, 300), "right_hip": (310, 300), "left_shoulder": (340, 200), "right_shoulder": (300, 200),
           "nose": (320, 160), "left_ankle": (330, 420)}  # fmt: skip
    kps = keypoints_px(pts, w, h)
    # centre (320, 300); torso: 100 px up (x1.9 = 190); body: 140 px up (nose), 120 down (x1.2 = 168)
    ymin, xmin, ymax, xmax = next_crop(kps, w, h, LIGHTNING.crop)
    assert (ymin * h, xmin * w, ymax * h, xmax * w) == pytest.approx((300 - 190, 320 - 190, 300 + 190, 320 + 190))
    # unseen keypoints (score < 0.2) do not count for the body range, seen ones do
    kps[COCO_NAMES.index("left_wrist")] = (620 / w, 300 / h, 0.1)
    assert next_crop(kps, w, h, LIGHTNING.crop) == pytest.approx((ymin, xmin, ymax, xmax))
    kps[COCO_NAMES.index("left_wrist")] = (620 / w, 300 / h, 0.2)  # 300 px right x 1.2 = 360; border at 320
    ymin, xmin, ymax, xmax = next_crop(kps, w, h, LIGHTNING.crop)
    assert (xmax - xmin) * w == pytest.approx(2 * 320) and (ymax - ymin) * h == pytest.approx(2 * 320)


def test_next_crop_falls_back_to_the_padded_image():
    w, h = 640, 480
    no_shoulders = keypoints_px({"left_hip": (330, 300), "right_hip": (310, 300)}, w, h)
    assert next_crop(no_shoulders, w, h, LIGHTNING.crop) == pytest.approx(initial_crop(w, h, first=False))
    one_of_each = keypoints_px({"left_hip": (330, 300), "right_shoulder": (300, 200)}, w, h)
    assert next_crop(one_of_each, w, h, LIGHTNING.crop) != pytest.approx(initial_crop(w, h, first=False))
    # a person filling more than the image: the square would be wider than the long side
    huge = keypoints_px({"left_hip": (320, 240), "right_hip": (320, 240), "left_shoulder": (320, 0),
                         "right_shoulder": (320, 0)}, w, h)  # fmt: skip
    assert next_crop(huge, w, h, LIGHTNING.crop) == pytest.approx(initial_crop(w, h, first=False))


# ------------------------------------------------------------------------------------ video


def plain_next_crop(pose, width, height, previous):
    """The reference's crop rule written plainly from pixel keypoints (determineNextCropRegion), then its
    low-pass filter (alpha 0.9) on the crop's four numbers."""
    kp = {n: (float(x), float(y), float(s)) for n, (x, y, s) in zip(pose.names, pose.landmarks)}
    seen = lambda n: kp[n][2] > 0.2  # noqa: E731
    padded = initial_crop(width, height, first=False)
    if (seen("left_hip") or seen("right_hip")) and (seen("left_shoulder") or seen("right_shoulder")):
        cx = (kp["left_hip"][0] + kp["right_hip"][0]) / 2
        cy = (kp["left_hip"][1] + kp["right_hip"][1]) / 2
        torso = [kp[n] for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip")]
        body = [p for p in kp.values() if p[2] >= 0.2]
        half = max(
            1.9 * max(abs(cx - p[0]) for p in torso), 1.9 * max(abs(cy - p[1]) for p in torso),
            1.2 * max([abs(cy - p[1]) for p in body] + [0.0]), 1.2 * max([abs(cx - p[0]) for p in body] + [0.0]),
        )  # fmt: skip
        half = min(half, max(cx, width - cx, cy, height - cy))
        new = padded if half > max(width, height) / 2 else (
            (cy - half) / height, (cx - half) / width, (cy + half) / height, (cx + half) / width)  # fmt: skip
    else:
        new = padded
    if previous is None:
        return new
    return tuple(p + 0.9 * (n - p) for p, n in zip(previous, new))


@pytest.fixture(scope="module")
def clip_frames(coco_photo, tmp_path_factory) -> list[np.ndarray]:
    """A 640x480 pan-and-zoom clip over the COCO skier, written to a file and read back."""
    path = write_clip(tmp_path_factory.mktemp("clip") / "skier.avi", coco_photo, 40)
    source = VideoSource(str(path))
    try:
        frames = [f.image.copy() for f in source]
    finally:
        source.close()
    assert len(frames) == 40 and frames[0].shape == (480, 640, 3)
    return frames


@pytest.mark.parametrize("smooth", [False, True])
def test_the_crop_follows_the_person_by_the_reference_rules(models, clip_frames, smooth):
    model = models["movenet-lightning"]
    tracker = model.tracker(smooth=smooth)
    previous = None
    zoomed = 0
    for i, frame in enumerate(clip_frames):
        used = tracker.crop
        assert (used is None) == (i == 0)  # the first frame starts from the centred square
        poses = tracker.update(frame, timestamp=i / 30)
        assert len(poses) == 1, f"lost the skier on frame {i}"
        expected = plain_next_crop(poses[0], 640, 480, previous)
        assert tracker.crop == pytest.approx(expected, abs=1e-6)  # poses hold float32 pixels
        ymin, xmin, ymax, xmax = tracker.crop
        assert (ymax - ymin) * 480 == pytest.approx((xmax - xmin) * 640)  # square in pixels
        zoomed += (xmax - xmin) * 640 < 400  # tighter than the centred 480 px square
        previous = tracker.crop
    assert zoomed > 30
    assert tracker.frames == tracker.model_runs == 40


def test_tracked_keypoints_stay_near_the_still_photos_and_smoothing_calms_them(models, clip_frames):
    model = models["movenet-lightning"]
    still = [clip_frames[20]] * 12
    spread = {}
    for smooth in (False, True):
        tracker = model.tracker(smooth=smooth)
        noise = np.random.default_rng(0)
        track = []
        for i, frame in enumerate(still):
            noisy = np.clip(frame.astype(np.int16) + noise.integers(-6, 7, frame.shape), 0, 255).astype(np.uint8)
            track.append(tracker.update(noisy, timestamp=i / 30)[0].landmarks[:, :2])
        spread[smooth] = np.mean(np.abs(np.diff(np.array(track[4:]), axis=0)))
        seen = model.predict(still[0])[0]
        sure = seen.landmarks[:, 2] > 0.3
        # the tracked crop is tighter than the centred square: keypoints agree within a few pixels
        assert np.median(np.linalg.norm(track[-1][sure] - seen.landmarks[sure, :2], axis=1)) < 12
    assert spread[True] < spread[False]


def test_losing_the_person_resets_the_crop_to_the_centred_square(models, clip_frames):
    model = models["movenet-lightning"]
    tracker = model.tracker(exact_crop=True)  # TensorFlow's crop, as photos get: comparable with predict
    for i in range(5):
        assert len(tracker.update(clip_frames[i], timestamp=i / 30)) == 1
    assert tracker.crop is not None
    assert tracker.update(np.zeros_like(clip_frames[0]), timestamp=5 / 30) == []
    assert tracker.crop is None  # the next frame starts again from the centred square
    poses = tracker.update(clip_frames[6], timestamp=6 / 30)
    assert len(poses) == 1
    static = model.predict(clip_frames[6])[0]  # the same crop as a photo
    np.testing.assert_allclose(poses[0].landmarks, static.landmarks, atol=1e-4)
    # another frame size: the crop of the old size is dropped
    tracker.update(cv2.resize(clip_frames[7], (320, 240)), timestamp=7 / 30)
    assert tracker.crop is not None and tracker._size == (320, 240)


def test_the_fast_video_crop_keeps_keypoints_within_a_pixel_of_the_exact_crop(models, clip_frames):
    """Video crops are cut by OpenCV's warp by default (spec video_crop "fast"); over the written clip
    the tracked keypoints stay within a pixel, on average, of those TensorFlow's crop gives."""
    model = models["movenet-lightning"]
    assert model.spec.video_crop == "fast"
    fast, exact = model.tracker(), model.tracker(exact_crop=True)
    assert not fast.exact_crop and exact.exact_crop
    gaps, diagonals = [], []
    for i, frame in enumerate(clip_frames):
        a, b = fast.update(frame, timestamp=i / 30), exact.update(frame, timestamp=i / 30)
        assert len(a) == len(b) == 1
        sure = b[0].landmarks[:, 2] > 0.3
        gaps.append(np.linalg.norm(a[0].landmarks[sure, :2] - b[0].landmarks[sure, :2], axis=1).mean())
        x0, y0, x1, y1 = b[0].box
        diagonals.append(np.hypot(x1 - x0, y1 - y0))
    assert 0 < np.mean(gaps) < 1.5  # not the same crop, but close: pixels of a 640x480 frame
    assert np.mean(gaps) / np.median(diagonals) < 0.005  # the photo parity bound, 0.5 % of the diagonal
    assert fast.crop == pytest.approx(exact.crop, abs=0.01)


def test_multi_person_identities_stay_with_their_people(models, testdata, tmp_path):
    """A pan-and-zoom clip over three footballers, written and read back: each person keeps an
    identity, identities are distinct, poses come in identity order."""
    image = photo(testdata, PHOTOS[0])
    path = write_clip(tmp_path / "three.avi", image, 45)
    model = models["movenet-multipose"]
    tracker = model.tracker(max_poses=6)
    source = VideoSource(str(path))
    boxes: dict[int, np.ndarray] = {}
    seen_ids: set[int] = set()
    try:
        for frame in source:
            poses = tracker.update(frame.image, timestamp=frame.timestamp)
            ids = [p.track_id for p in poses]
            assert len(ids) == len(set(ids)) and ids == sorted(ids)
            for p in poses:
                if p.track_id in boxes:  # the same identity: the same person, moved a little
                    prev, box = boxes[p.track_id], p.box
                    inter = np.clip(np.minimum(prev[2:], box[2:]) - np.maximum(prev[:2], box[:2]), 0, None).prod()
                    union = np.prod(prev[2:] - prev[:2]) + np.prod(box[2:] - box[:2]) - inter
                    assert inter / union > 0.5, f"identity {p.track_id} jumped on frame {frame.index}"
                boxes[p.track_id] = p.box
            seen_ids.update(ids)
    finally:
        source.close()
    assert tracker.frames == 45
    assert len(seen_ids) <= 4  # three people; at most one re-identified after leaving the view
    assert {0, 1, 2} <= seen_ids


def test_multi_person_tracker_on_a_shared_video(models, testdata):
    model = models["movenet-multipose"]
    for video in sorted((testdata / "video").glob("*.mp4")):
        tracker = model.tracker(max_poses=6, smooth=True)
        source = VideoSource(str(video))
        per_frame = []
        try:
            for frame in source:
                per_frame.append({p.track_id for p in tracker.update(frame.image, timestamp=frame.timestamp)})
        finally:
            source.close()
        assert per_frame and all(per_frame), video.name
        assert per_frame[0] & per_frame[-1], f"{video.name}: nobody kept an identity over {len(per_frame)} frames"
        tracker.reset()
        assert tracker.identities.ids == set()


# ------------------------------------------------------------------------------------ checks


def test_options_and_inputs_are_checked(models, testdata):
    lightning = models["movenet-lightning"]
    image = photo(testdata, PHOTOS[1])
    assert lightning.max_poses_limit == 1 and models["movenet-multipose"].max_poses_limit == 6
    with pytest.raises(UsageError, match="at most 1"):
        lightning.predict(image, max_poses=2)
    with pytest.raises(UsageError, match="at most 1"):
        lightning.tracker(max_poses=2)
    with pytest.raises(UsageError, match="no option 'segmentation'"):
        lightning.predict(image, segmentation=True)
    with pytest.raises(UsageError, match="no option 'segmentation'"):
        models["movenet-multipose"].tracker(segmentation=True)
    with pytest.raises(UsageError, match="threshold"):
        lightning.predict(image, threshold=float("nan"))
    with pytest.raises(InputError):
        lightning.predict(np.zeros((10, 10), np.float32))
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)  # gray and BGRA images are converted
    assert len(lightning.predict(gray)) == 1
    assert len(lightning.predict(cv2.cvtColor(image, cv2.COLOR_BGR2BGRA))) == 1
    assert lightning.predict(np.zeros((200, 300, 3), np.uint8)) == []  # nobody: under the 0.25 score


def test_a_model_file_that_does_not_fit_the_spec_is_refused(onnx_files, tmp_path):
    with pytest.raises(PluginError, match=r"expects tensor\(int32\) \[1, 192, 192, 3\]"):
        MoveNet(LIGHTNING, {"model": onnx_files["movenet-thunder"]}, device="cpu")
    with pytest.raises(PluginError, match=r"expects \[1, 1, 17, 3\]"):
        MoveNet(MoveNetSpec(name="x", multipose=False, input_size=256), {"model": onnx_files["movenet-multipose"]}, device="cpu")
    with pytest.raises(PluginError, match="no model file"):
        MoveNet(LIGHTNING, {"detector": onnx_files["movenet-thunder"]}, device="cpu")
    with pytest.raises(PluginError, match="does not exist"):
        MoveNet(LIGHTNING, {"model": tmp_path / "missing.onnx"}, device="cpu")


def test_describe_and_skeleton(models):
    data = models["movenet-multipose"].describe()
    assert data["family"] == "movenet" and data["multipose"] and data["max_poses"] == 6
    assert data["keypoint_names"] == list(COCO_NAMES) and len(data["skeleton"]) == len(COCO_SKELETON)
    assert data["sessions"]["model"]["input"]["type"] == "tensor(int32)"
    assert any(line.startswith("video: identities by box IoU") for line in data["summary"])
    single = models["movenet-thunder"].describe()
    assert single["crop"]["torso_scale"] == 1.9 and single["input"]["size"] == 256
    assert models["movenet-lightning"].skeleton == COCO_SKELETON


def test_bench_times_the_family_stages(models, coco_photo):
    model = models["movenet-lightning"]
    report = run_bench(model, open_input(coco_photo), frames=6, warmup=2)
    assert report.stages == ("read", "preprocess", "model", "decode", "other", "draw")
    for mode in ("static", "tracking"):
        result = report.modes[mode]
        assert result.runs == {"model": 6} and result.bare_ms["model"] > 0
        assert result.stages_ms["preprocess"] > 0 and result.stages_ms["decode"] > 0
        assert math.isfinite(result.ratio) and result.poses == 1
