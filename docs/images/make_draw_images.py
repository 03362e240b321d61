"""Render the pictures of docs/drawing.md from ../shared (run by hand; they are committed small).

    python docs/images/make_draw_images.py [--rev REV --prefix draw-before]

The four shared photos (``$POSEZOO_SHARED`` or ../shared/testdata/images) drawn with blazepose-full
(its segmentation mask on) and the skier with movenet-lightning, from the shared model files converted
into a temporary folder, as ``draw-after-<photo>.jpg`` (at most 800 px wide, JPEG quality 80); and the
synthetic whole-body pose of tests/wholebody.py, without and with its face mesh
(``draw-wholebody.jpg``). ``--rev REV --prefix draw-before`` draws with ``posezoo/io/draw.py`` of that
git revision instead (the before pictures were drawn with 2cfb1d8).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

OUT = Path(__file__).resolve().parent
REPO = OUT.parent.parent
SHARED = Path(os.environ.get("POSEZOO_SHARED") or REPO.parent / "shared")
JPEG = [cv2.IMWRITE_JPEG_QUALITY, 80]


def draw_of(rev: str | None, folder: Path):
    if rev is None:
        from posezoo.io.draw import draw_poses

        return draw_poses
    git = ["git", "show", f"{rev}:posezoo/io/draw.py"]
    source = subprocess.run(git, cwd=REPO, capture_output=True, text=True, check=True).stdout
    path = folder / "draw_rev.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("draw_rev", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.draw_poses


def save(image: np.ndarray, path: Path) -> None:
    h, w = image.shape[:2]
    if w > 800:
        image = cv2.resize(image, (800, round(h * 800 / w)), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(path), image, JPEG)
    print(f"{path.name}: {path.stat().st_size // 1024} KB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", help="draw with posezoo/io/draw.py of this git revision")
    parser.add_argument("--prefix", default="draw-after")
    args = parser.parse_args(argv)
    from posezoo.supply.convert import convert_file, convert_tfjs_file
    from posezoo_plugins.blazepose_full import SPEC
    from posezoo_plugins.mediapipe.model import PoseEstimator
    from posezoo_plugins.movenet import LIGHTNING, MoveNet

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        draw = draw_of(args.rev, tmp)
        models = SHARED / "models"
        convert_file(models / "mediapipe-assets/pose_detection.tflite", tmp / "detector.onnx")
        convert_file(models / "mediapipe-assets/pose_landmark_full.tflite", tmp / "full.onnx")
        convert_tfjs_file(models / "human-models/movenet-lightning.json", tmp / "lightning.onnx")
        files = {"detector": tmp / "detector.onnx", "landmark": tmp / "full.onnx"}
        blaze = PoseEstimator(SPEC, files, variant="full", device="cpu")
        movenet = MoveNet(LIGHTNING, {"model": tmp / "lightning.onnx"}, variant="default", device="cpu")
        seg = blaze.capabilities.make_options("blazepose-full", {"segmentation": True})
        for photo in sorted((SHARED / "testdata" / "images").glob("*.jpg")):
            image = cv2.imread(str(photo))
            tag = photo.name.split("_")[0]
            save(draw(image, blaze.predict(image, options=seg), blaze.skeleton), OUT / f"{args.prefix}-{tag}.jpg")
            if tag == "coco":
                save(draw(image, movenet.predict(image), movenet.skeleton), OUT / f"{args.prefix}-{tag}-movenet.jpg")

    if args.rev is None:  # the whole-body style, on a synthetic pose (no whole-body model yet)
        sys.path.insert(0, str(REPO / "tests"))
        from wholebody import whole_body

        pose, skeleton, mesh = whole_body(1200, 900, right_hand=True)
        pose.landmarks[pose.parts["left_hand"][0] + 17 : pose.parts["left_hand"][1], 3] = 0.2  # an unsure little finger
        canvas = np.full((900, 1200, 3), (64, 84, 74), np.uint8)
        plain = draw(canvas, [pose], skeleton)[30:560, 390:1010]  # the upper body and both hands
        face_xy = pose.part("face")[:, :2]
        (x0, y0), (x1, y1) = face_xy.min(axis=0).astype(int), face_xy.max(axis=0).astype(int)
        face = draw(canvas, [pose], skeleton, mesh=mesh)[y0 - 12 : y1 + 12, x0 - 40 : x1 + 40]
        zoom = plain.shape[0] / face.shape[0]
        face = cv2.resize(face, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_CUBIC)
        gap = np.full((plain.shape[0], 6, 3), 255, np.uint8)
        pair = np.concatenate([plain, gap, face[: plain.shape[0]]], axis=1)
        save(pair, OUT / "draw-wholebody.jpg")
    return 0


if __name__ == "__main__":
    sys.exit(main())
