"""Many people with BlazePose's 33 keypoints: ``blazepose-multi`` against its two parents.

On the four shared photos and the two shared clips (``$POSEZOO_SHARED`` or ../shared), with the shared
weights converted into a work folder (``--work``, reused between runs):

1. **People found** per photo and per clip frame: ``blazepose-multi`` (MoveNet MultiPose's people as
   regions for the BlazePose landmark model), BlazePose's own detector (``blazepose-full``,
   ``max_poses=6``) and MoveNet MultiPose (``movenet-multipose``), each at its default threshold.
2. **Keypoint quality** against MediaPipe's own output (testdata/mediapipe_reference.json: the one
   person MediaPipe 0.10.14 found, static mode, same landmark model): per model, the pose closest to
   it; mean pixel distance over the landmarks MediaPipe saw (visibility > 0.5) as a % of the diagonal
   of their box (the parity bar of tests/test_parity.py is 1 %), over all 33 and over COCO's 17 (the
   only ones MultiPose has); world landmarks in mm. For scale, ``blazepose-full`` is also run in the
   ROI its own tracker would take on the next frame (from its auxiliary landmarks): the landmark model
   moves with its crop, and that row shows by how much. And against COCO's ground truth for the skier
   (val2017 #785): mean pixel error over its 17 labelled keypoints and OKS (COCO's sigmas).
3. **Speed**, ms per frame, tracked (``tracker.update``), ``max_poses=6``: the soccer clip (3 players)
   played forward and back (no cut, so tracks hold), and a pan-and-zoom clip over the 3-person photo;
   ``blazepose-multi`` (lite and full) against MultiPose alone (its tracker runs the model on every
   frame). Median and mean of ``--frames`` timed frames after ``--warmup``; the run with the lowest
   median of ``--repeat`` interleaved runs (a shared machine's load falls on every model alike).

    python benchmarks/multi_person.py [--work DIR] [--frames 120] [--repeat 3] [--variants lite full heavy] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from parity_photos import COMPLEXITY, REPO, SHARED, TFLITE  # the shared BlazePose files, model_complexity

SIGMAS = np.array([0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89]) / 10.0
AIC = "aic_ff945ae2e729f24eea992814639d59b3bdec8bd8.jpg"


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown"


def convert(work: Path, models: Path) -> dict[str, Path]:
    from posezoo.supply.convert import convert_file, convert_tfjs_file

    work.mkdir(parents=True, exist_ok=True)
    out = {}
    for key, rel in TFLITE.items():
        out[key] = work / f"{key}.onnx"
        if not out[key].exists():
            convert_file(models / rel, out[key])
    out["multipose"] = work / "movenet-multipose.onnx"
    if not out["multipose"].exists():
        convert_tfjs_file(models / "human-models" / "movenet-multipose.json", out["multipose"])
    return out


def build(files: dict[str, Path], variants: list[str]) -> dict[str, object]:
    """{label: model}: blazepose-multi and blazepose-full per variant, and movenet-multipose."""
    from posezoo_plugins import blazepose_full, blazepose_multi
    from posezoo_plugins.mediapipe.model import PoseEstimator
    from posezoo_plugins.movenet import MULTIPOSE, MoveNet

    models = {}
    for v in variants:
        models[f"blazepose-multi:{v}"] = blazepose_multi.PeopleLandmarks(
            blazepose_multi.SPEC, {"detector": files["multipose"], "landmark": files[v]}, variant=v, device="cpu"
        )
    for v in variants:
        models[f"blazepose-full:{v}"] = PoseEstimator(
            blazepose_full.SPEC, {"detector": files["detector"], "landmark": files[v]}, variant=v, device="cpu"
        )
    models["movenet-multipose"] = MoveNet(MULTIPOSE, {"model": files["multipose"]}, variant="default", device="cpu")
    return models


def clip_frames(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


# ------------------------------------------------------------------------------------ quality


def coco_index(names) -> list[int]:
    from posezoo.io.coco import COCO_KEYPOINTS

    return [names.index(n) for n in COCO_KEYPOINTS]


def against_mediapipe(pose, ref: dict) -> dict:
    """The parity metric of tests/test_parity.py, over all of the pose's keypoints that MediaPipe's
    33 name, and over COCO's 17."""
    from posezoo.io.coco import COCO_KEYPOINTS
    from posezoo_plugins.blazepose_full import BODY_NAMES

    want = np.asarray(ref["landmarks"], np.float64)
    seen = want[:, 3] > 0.5
    diag = float(np.hypot(*np.ptp(want[seen, :2], axis=0)))
    rows = [BODY_NAMES.index(n) for n in pose.names]
    got = np.full((33, 2), np.nan)
    got[rows] = pose.landmarks[:, :2]
    out = {}
    for label, keep in (("all", np.isin(np.arange(33), rows)), ("coco", np.isin(np.arange(33), [BODY_NAMES.index(n) for n in COCO_KEYPOINTS]))):
        use = seen & keep
        d = np.linalg.norm(got[use] - want[use, :2], axis=1)
        out[label] = (float(d.mean()), 100.0 * float(d.mean()) / diag)
    if pose.world_landmarks is not None and len(pose.names) == 33:
        out["world_mm"] = 1000.0 * float(np.abs(pose.world_landmarks - np.asarray(ref["world"])).mean())
    return out


def closest(poses, ref_landmarks: np.ndarray) -> object | None:
    """The pose whose COCO keypoints are closest to the reference's."""
    from posezoo.io.coco import COCO_KEYPOINTS
    from posezoo_plugins.blazepose_full import BODY_NAMES

    want = ref_landmarks[[BODY_NAMES.index(n) for n in COCO_KEYPOINTS], :2]
    best, best_d = None, np.inf
    for p in poses:
        d = float(np.linalg.norm(p.landmarks[coco_index(p.names), :2] - want, axis=1).mean())
        if d < best_d:
            best, best_d = p, d
    return best


def against_coco(pose, ann: dict) -> tuple[float, float]:
    """(mean px error over the labelled keypoints, OKS) of one pose against one COCO annotation."""
    gt = np.asarray(ann["keypoints"], np.float64).reshape(17, 3)
    labelled = gt[:, 2] > 0
    got = pose.landmarks[coco_index(pose.names), :2]
    d2 = ((got - gt[:, :2]) ** 2).sum(axis=1)
    oks = float(np.exp(-d2 / (2 * ann["area"] * (2 * SIGMAS) ** 2))[labelled].mean())
    return float(np.sqrt(d2[labelled]).mean()), oks


# ------------------------------------------------------------------------------------ speed


def ping_pong(frames: list[np.ndarray], count: int) -> list[np.ndarray]:
    """``count`` frames playing ``frames`` forward and back (no cut)."""
    cycle = frames + frames[-2:0:-1]
    return [cycle[i % len(cycle)] for i in range(count)]


def time_tracker(model, frames: list[np.ndarray], warmup: int, fps: float) -> dict:
    tracker = model.tracker(max_poses=6)
    times, people, ids = [], [], set()
    for i, frame in enumerate(frames):
        start = time.perf_counter()
        poses = tracker.update(frame, timestamp=i / fps)
        took = time.perf_counter() - start
        if i >= warmup:
            times.append(took * 1000.0)
            people.append(len(poses))
            ids.update(p.track_id for p in poses)
    out = {
        "median_ms": statistics.median(times),
        "mean_ms": statistics.fmean(times),
        "people": statistics.fmean(people),
        "ids": len(ids),
    }
    if hasattr(tracker, "detector_runs"):
        out["detector_runs"] = tracker.detector_runs
    return out


# ------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=SHARED, help="../shared (models, testdata)")
    parser.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "posezoo-multi-person")
    parser.add_argument("--variants", nargs="+", choices=tuple(COMPLEXITY), default=["lite", "full", "heavy"])
    parser.add_argument("--speed-variants", nargs="+", choices=tuple(COMPLEXITY), default=["lite", "full"])
    parser.add_argument("--frames", type=int, default=120, help="timed frames per clip and model")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3, help="timing runs per clip and model; the fastest median is kept")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = parser.parse_args(argv)

    testdata = args.shared / "testdata"
    files = convert(args.work, args.shared / "models")
    variants = sorted(set(args.variants) | set(args.speed_variants), key=list(COMPLEXITY).index)
    models = build(files, variants)
    photos = sorted((testdata / "images").glob("*.jpg"))
    reference = json.loads((testdata / "mediapipe_reference.json").read_text())["images"]
    skier = json.loads((testdata / "coco_val2017_000000000785_person_keypoints.json").read_text())["annotations"][0]
    clips = {p.name: clip_frames(p) for p in sorted((testdata / "video").glob("*.mp4"))}
    report: dict = {"cpu": cpu_name(), "cores": os.cpu_count(), "found": {}, "clips": {}, "mediapipe": {}, "coco": {}, "speed": {}}

    labels = [m for m in models if m.split(":")[-1] in args.variants or ":" not in m]
    for photo in photos:
        image = cv2.imread(str(photo))
        for label in labels:
            poses = models[label].predict(image, max_poses=6)
            report["found"].setdefault(photo.name, {})[label] = len(poses)
            ref = reference.get(photo.name)
            if ref is not None:
                key = COMPLEXITY.get(label.split(":")[-1], "1")  # MultiPose: against the full model's reference
                pose = closest(poses, np.asarray(ref[key]["landmarks"]))
                if pose is not None:
                    report["mediapipe"].setdefault(photo.name, {})[label] = against_mediapipe(pose, ref[key])
                if pose is not None and label.startswith("blazepose-full:"):
                    # the same model in the ROI its own tracker takes on the next frame (from its
                    # auxiliary landmarks): how much the landmarks move with the crop alone
                    est = models[label]
                    again = est.make_pose(est.landmarks_in_roi(est.to_rgb(image), est.roi_from_landmarks(pose)), pose.score)
                    report["mediapipe"][photo.name][label + " (next-frame ROI)"] = against_mediapipe(again, ref[key])
            if photo.name == "coco_000000000785.jpg" and poses:
                gt = np.asarray(skier["keypoints"], np.float64).reshape(17, 3)
                best = min(poses, key=lambda p: np.linalg.norm(p.landmarks[coco_index(p.names), :2] - gt[:, :2], axis=1).mean())
                report["coco"][label] = against_coco(best, skier)
    for name, frames in clips.items():
        for label in labels:
            report["clips"].setdefault(name, {})[label] = [len(models[label].predict(f, max_poses=6)) for f in frames]

    from posezoo.drivers.bench import pan_zoom_frames

    aic = cv2.imread(str(testdata / "images" / AIC))
    speed_clips = {
        "soccer_5frames.mp4 (3 players), forward and back": (ping_pong(clips["soccer_5frames.mp4"], args.warmup + args.frames), 30.0),
        f"pan over {AIC[:12]}... (3 people), 640x480": (list(pan_zoom_frames(aic, args.warmup + args.frames, reuse=False)), 30.0),
    }
    speed_labels = [f"blazepose-multi:{v}" for v in args.speed_variants] + ["movenet-multipose"]
    for _ in range(args.repeat):  # interleaved, so machine load falls on every model alike; the best run counts
        for name, (frames, fps) in speed_clips.items():
            for label in speed_labels:
                run = time_tracker(models[label], frames, args.warmup, fps)
                best = report["speed"].setdefault(name, {}).get(label)
                if best is None or run["median_ms"] < best["median_ms"]:
                    report["speed"][name][label] = run

    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print_tables(report, labels, speed_labels)
    return 0


def print_tables(report: dict, labels: list[str], speed_labels: list[str]) -> None:
    print(f"CPU: {report['cpu']} ({report['cores']} cores visible)\n")
    print("People found per photo (max_poses 6, default thresholds)\n")
    print("| photo | " + " | ".join(labels) + " |")
    print("|---|" + "---|" * len(labels))
    totals = dict.fromkeys(labels, 0)
    for photo, row in report["found"].items():
        print(f"| {photo[:24]} | " + " | ".join(str(row[l]) for l in labels) + " |")
        for l in labels:
            totals[l] += row[l]
    print("| **total** | " + " | ".join(f"**{totals[l]}**" for l in labels) + " |\n")
    print("People found per clip frame\n")
    print("| clip | " + " | ".join(labels) + " |")
    print("|---|" + "---|" * len(labels))
    for clip, row in report["clips"].items():
        print(f"| {clip} | " + " | ".join(" ".join(map(str, row[l])) for l in labels) + " |")
    print("\nAgainst MediaPipe's own output (the person it found): mean px (% of diag) over its seen landmarks, all / COCO 17; world mm\n")
    print("| photo | model | all | COCO 17 | world |")
    print("|---|---|---|---|---|")
    for photo, row in report["mediapipe"].items():
        for label, m in row.items():
            world = f"{m['world_mm']:.1f}" if "world_mm" in m else "-"
            allk = f"{m['all'][0]:.2f} ({m['all'][1]:.3f} %)" if "world_mm" in m else "-"
            print(f"| {photo[:24]} | {label} | {allk} | {m['coco'][0]:.2f} ({m['coco'][1]:.3f} %) | {world} |")
    print("\nAgainst COCO's ground truth, the skier (val2017 #785): mean px error over 17 keypoints, OKS\n")
    print("| model | px | OKS |")
    print("|---|---|---|")
    for label, (px, oks) in report["coco"].items():
        print(f"| {label} | {px:.1f} | {oks:.3f} |")
    print("\nTracked, max_poses 6: ms per frame (median / mean; the fastest of the repeats), people per frame, track ids seen, detector runs\n")
    print("| clip | model | median ms | mean ms | people | ids | detector runs |")
    print("|---|---|---|---|---|---|---|")
    for clip, row in report["speed"].items():
        for label in speed_labels:
            s = row[label]
            print(f"| {clip} | {label} | {s['median_ms']:.1f} | {s['mean_ms']:.1f} | {s['people']:.2f} | {s['ids']} | {s.get('detector_runs', 'every frame')} |")


if __name__ == "__main__":
    sys.exit(main())
