"""``mediapipe-holistic`` against MediaPipe 0.10.14's own Holistic, per photo and part.

On the four photos of testdata/images and the five of testdata/images-wholebody (``$POSEZOO_SHARED`` or
../shared), with the shared weights converted into a work folder (``--work``, reused between runs), against
testdata/mediapipe_wholebody_reference.json (``holistic_refine0``: static_image_mode, model_complexity 1):

1. **Parity**, per photo and part: body, the mean distance over the landmarks MediaPipe saw (visibility >
   0.5) as a % of the diagonal of MediaPipe's box around them (tests/test_parity.py's measure); a hand or
   the face, the median distance over its landmarks as a % of the diagonal of MediaPipe's box around the
   part, with the largest distance in pixels. ``missed`` / ``extra``: a part one of the two found and the
   other did not; ``-``: neither found it.
2. **The stages after the body** (``--stages``): the same, the hands and face computed from MediaPipe's
   own body landmarks (the reference's), so only the hand and face stages can differ.
3. **Sensitivity** (``--perturb N``): each part again from MediaPipe's body landmarks moved by Gaussian
   noise of 0.5 px (N draws): how much a hand or the face moves when the body moves by about as much as
   posezoo's differs from MediaPipe's (the MPII right hand: 1.3-4.4 %, and 3 draws of 10 find no hand).
4. **Video against MediaPipe's video mode** (``--video-reference FILE``, from
   ``benchmarks/holistic_video_mediapipe.py``): the same pan over the same photo tracked, per part the
   median over frames of each frame's median distance (% of the part's diagonal in MediaPipe's frame),
   the largest, and the frames where one of the two found the part and the other did not.
5. **Video** (``--video``): ms per frame tracking a slow pan over the Panoptic photo (both hands and the
   face in view), median of ``--frames`` frames after 3, with the part models' runs and how often last
   frame's region of a hand or the face was kept.

    python benchmarks/holistic_parity.py [--work DIR] [--stages] [--perturb 10] [--video-reference FILE]
                                         [--video] [--frames 60]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from parity_photos import SHARED

FILES = {  # role -> file under shared/models
    "detector": "mediapipe-assets/pose_detection.tflite",
    "landmark": "mediapipe-assets/pose_landmark_full.tflite",
    "hand_recrop": "mediapipe-assets/hand_recrop.tflite",
    "hand_landmark": "mediapipe-assets/hand_landmark_full.tflite",
    "face_detector": "mediapipe-assets/face_detection_short_range.tflite",
    "face_landmark": "mediapipe-assets/face_landmark.tflite",
}
PARTS = {"body": "pose", "left_hand": "left_hand", "right_hand": "right_hand", "face": "face"}


def convert(work: Path, shared: Path) -> dict[str, Path]:
    from posezoo.supply.convert import convert_file

    work.mkdir(parents=True, exist_ok=True)
    out = {}
    for role, rel in FILES.items():
        path = work / (Path(rel).stem + ".onnx")
        if not path.is_file():
            convert_file(shared / "models" / rel, path)
        out[role] = path
    return out


def photo(testdata: Path, name: str) -> np.ndarray:
    for folder in ("images", "images-wholebody"):
        if (testdata / folder / name).is_file():
            return cv2.imread(str(testdata / folder / name))
    raise FileNotFoundError(name)


def cell(part: str, got, want) -> str:
    if (got is None) != (want is None):
        return "missed" if got is None else "extra"
    if got is None:
        return "-"
    want = np.asarray(want, np.float64)
    if part == "body":
        seen = want[:, 3] > 0.5
        got, want = got[seen], want[seen]
    diag = float(np.hypot(*np.ptp(want[:, :2], axis=0)))
    dist = np.linalg.norm(got[:, :2] - want[:, :2], axis=1)
    value = dist.mean() if part == "body" else np.median(dist)
    return f"{100 * value / diag:.3f}% ({dist.max():.1f}px)"


def table(title: str, rows: list[tuple[str, dict]]) -> None:
    print(f"\n{title}\n")
    print("| photo | " + " | ".join(PARTS) + " |")
    print("|---|" + "---|" * len(PARTS))
    for name, cells in rows:
        print(f"| {name} | " + " | ".join(cells[p] for p in PARTS) + " |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--work", type=Path, default=Path("/tmp/posezoo-holistic-bench"))
    parser.add_argument("--stages", action="store_true", help="also the hand and face stages on MediaPipe's body")
    parser.add_argument("--perturb", type=int, default=0, metavar="N", help="also N draws of 0.5 px noise on MediaPipe's body")
    parser.add_argument("--video-reference", type=Path, help="MediaPipe's video-mode output (holistic_video_mediapipe.py)")
    parser.add_argument("--video", action="store_true", help="also ms per frame, tracked")
    parser.add_argument("--frames", type=int, default=60)
    args = parser.parse_args()

    from posezoo.inference.model import Pose
    from posezoo.inference.regions import Region
    from posezoo_plugins.mediapipe_holistic import SPEC, Holistic

    testdata = args.shared / "testdata"
    model = Holistic(SPEC, convert(args.work, args.shared), variant="full", device="cpu")
    reference = json.loads((testdata / "mediapipe_wholebody_reference.json").read_text())["images"]

    rows = []
    for name, ref in reference.items():
        ref = ref["holistic_refine0"]
        poses = model.predict(photo(testdata, name), max_poses=1)
        pose = poses[0] if poses else None
        rows.append((name, {p: cell(p, None if pose is None else pose.part(p), ref[k]) for p, k in PARTS.items()}))
    table("Parity with MediaPipe's Holistic (body: mean over visible landmarks; hands, face: median)", rows)

    def from_body(name: str, ref: dict, noise: np.ndarray | None = None):
        body = np.asarray(ref["pose"], np.float32)
        lms = np.concatenate([body, np.ones((len(body), 1), np.float32)], axis=1)
        if noise is not None:
            lms[:, :2] += noise
        given = Pose(landmarks=lms, columns=("x", "y", "z", "visibility", "presence"),
                     names=SPEC.body.keypoint_names, score=1.0, box=np.zeros(4, np.float32))  # fmt: skip
        return model.region_model.whole_body(model.frame(photo(testdata, name)), given, Region(None))

    if args.stages:
        rows = []
        for name, ref in reference.items():
            ref = ref["holistic_refine0"]
            if ref["pose"] is None:
                continue
            whole = from_body(name, ref)
            cells = {p: cell(p, whole.part(p), ref[k]) for p, k in PARTS.items()}
            cells["body"] = "(MediaPipe's)"
            rows.append((name, cells))
        table("The hand and face stages given MediaPipe's own body landmarks", rows)

    if args.perturb:
        rng = np.random.default_rng(0)
        print(f"\nEach part from MediaPipe's body landmarks + N(0, 0.5 px) noise, {args.perturb} draws: the smallest and "
              "largest error (missed: draws where the part was not found)\n")
        for name, ref in reference.items():
            ref = ref["holistic_refine0"]
            if ref["pose"] is None:
                continue
            errors: dict[str, list] = {p: [] for p in PARTS if p != "body" and ref[PARTS[p]] is not None}
            for _ in range(args.perturb):
                whole = from_body(name, ref, rng.normal(0.0, 0.5, (33, 2)).astype(np.float32))
                for p in errors:
                    errors[p].append(cell(p, whole.part(p), ref[PARTS[p]]))
            for p, cells in errors.items():
                values = sorted(float(c.split("%")[0]) for c in cells if c[0].isdigit())
                missed = sum(c == "missed" for c in cells)
                print(f"{name[:28]:28s} {p:10s} {values[0]:.3f} .. {values[-1]:.3f} %" + (f", missed {missed}" if missed else ""))

    if args.video_reference:
        from holistic_video_mediapipe import pan

        ref = json.loads(args.video_reference.read_text())
        image = photo(testdata, ref["photo"])
        tracker = model.tracker(max_poses=1)
        errors: dict[str, list[float]] = {p: [] for p in PARTS}
        disagree: dict[str, list[int]] = {p: [] for p in PARTS}
        for i, want in enumerate(ref["frames"]):
            poses = tracker.update(pan(image, i), timestamp=i / 30)
            pose = poses[0] if poses else None
            for part in PARTS:
                got = None if pose is None else pose.part(part)
                if (got is None) != (want[part] is None):
                    disagree[part].append(i)
                elif got is not None:
                    w = np.asarray(want[part], np.float64)
                    diag = float(np.hypot(*np.ptp(w, axis=0)))
                    errors[part].append(100 * float(np.median(np.linalg.norm(got[:, :2] - w, axis=1))) / diag)
        print(f"\nTracked against MediaPipe {ref['mediapipe']}'s video mode, {ref['photo']}, {len(ref['frames'])} frames\n")
        for part in PARTS:
            e = errors[part]
            both = f"median {statistics.median(e):.3f} %, largest {max(e):.3f} % over {len(e)} frames" if e else "found by neither"
            print(f"{part:10s} {both}" + (f"; found by one only on frames {disagree[part]}" if disagree[part] else ""))

    if args.video:
        image = photo(testdata, "panoptic_ex2_2.flv_000040_l.jpg")
        h, w = image.shape[:2]
        tracker = model.tracker(max_poses=1)
        counts = model.region_model.counts
        counts.clear()
        times = []
        for i in range(args.frames + 3):
            shift = np.float32([[1, 0, 10 * np.sin(i / 10)], [0, 1, 5 * np.cos(i / 13)]])
            frame = cv2.warpAffine(image, shift, (w, h), borderMode=cv2.BORDER_REPLICATE)
            start = time.perf_counter()
            tracker.update(frame)
            if i >= 3:
                times.append(1000 * (time.perf_counter() - start))
        print(f"\nVideo, {w}x{h}, {args.frames} frames: {statistics.median(times):.1f} ms per frame (median), "
              f"{statistics.mean(times):.1f} mean; pose detector runs {tracker.detector_runs}; {dict(counts)}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
