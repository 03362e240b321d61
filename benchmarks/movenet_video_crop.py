"""MoveNet's fast video crop: how far OpenCV's warp (spec ``video_crop="fast"``, the default in video)
moves tracked keypoints from TensorFlow's exact ``crop_and_resize``, next to how far re-encoding the
frames as JPEG (quality 95) moves them.

For each shared photo, a 640x480 pan-and-zoom clip is made over it (in memory); each single-person
model tracks it three times: exact crop, fast crop, and exact crop on the JPEG-re-encoded frames.
Prints, per model and clip, the mean distance of the keypoints scoring above 0.3 from the exact
run's, in pixels and in % of the person's median box diagonal (the photo parity bound is 0.5 %).

    python benchmarks/movenet_video_crop.py [--models movenet-lightning movenet-thunder] [--frames 150]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("POSEZOO_SHARED") or REPO.parent / "shared")
MODELS = ("movenet-lightning", "movenet-thunder")


def track(model, frames: list[np.ndarray], exact: bool) -> np.ndarray:
    """(frames, K, 3) keypoints of one tracked run (NaN where the person was lost)."""
    tracker = model.tracker(exact_crop=exact)
    out = []
    for i, frame in enumerate(frames):
        poses = tracker.update(frame, timestamp=i / 30)
        out.append(poses[0].landmarks if poses else np.full((len(model.spec.keypoint_names), 3), np.nan))
    return np.array(out, np.float64)


def gap(run: np.ndarray, exact: np.ndarray) -> tuple[float, float]:
    """Mean keypoint distance from the exact run (keypoints it scores above 0.3): pixels, % of diagonal."""
    sure = exact[:, :, 2] > 0.3
    diagonals = [np.hypot(*(k[s, :2].max(0) - k[s, :2].min(0))) for k, s in zip(exact, sure) if s.sum() > 2]
    d = np.linalg.norm(run[:, :, :2] - exact[:, :, :2], axis=2)[sure]
    px = float(np.nanmean(d))
    return px, 100 * px / float(np.median(diagonals))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=SHARED, help="../shared")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--frames", type=int, default=150)
    args = parser.parse_args(argv)

    from posezoo.drivers.bench import pan_zoom_frames
    from posezoo.supply.convert import convert_tfjs_file

    try:
        from posezoo_plugins.movenet import LIGHTNING, THUNDER, MoveNet
    except ImportError:  # not installed: the plugins folder holds the package
        sys.path.insert(0, str(REPO / "plugins"))
        from movenet import LIGHTNING, THUNDER, MoveNet
    specs = {s.name: s for s in (LIGHTNING, THUNDER)}
    photos = sorted((args.shared / "testdata" / "images").glob("*.jpg"))
    if not photos:
        parser.error(f"no photos under {args.shared / 'testdata' / 'images'}")

    print("| model | clip over | fast crop: px | % diagonal | JPEG q95: px | % diagonal |")
    print("|---|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            onnx = Path(tmp) / f"{name}.onnx"
            convert_tfjs_file(args.shared / "models" / "human-models" / f"{name}.json", onnx)
            model = MoveNet(specs[name], {"model": onnx}, variant="default", device="cpu")
            for photo in photos:
                frames = list(pan_zoom_frames(cv2.imread(str(photo)), args.frames, reuse=False))
                jpeg = [cv2.imdecode(cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 95])[1], cv2.IMREAD_COLOR) for f in frames]
                exact = track(model, frames, exact=True)
                fast_px, fast_pc = gap(track(model, frames, exact=False), exact)
                jpeg_px, jpeg_pc = gap(track(model, jpeg, exact=True), exact)
                print(f"| {name} | {photo.name.split('_')[0]} | {fast_px:.2f} | {fast_pc:.2f} | {jpeg_px:.2f} | {jpeg_pc:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
