"""Crop cost per frame: OpenCV's own ``cv2.warpAffine`` (what posezoo called before its crops had a
sampling of their own) against posezoo.inference.warp's OpenCV-4-exact warp, by engine.

Cases, on a 640x480 and a 1280x720 frame (the COCO skier, resized): BlazePose's landmark crop (256x256,
rotated ROI, border replicate; a new matrix every frame), the detector's letterbox (224x224, zero
border; the same matrix every frame, so its maps are kept) and MoveNet's fast video crop (a 256x256
box, zero border; a new box every frame). Prints the median ms per crop over ``--repeat`` runs, and how many
pixels ``cv2.warpAffine`` of the installed OpenCV puts differently from OpenCV 4's fixed-point warp.

    python benchmarks/crop_speed.py [--repeat 300]

Columns: ``cv2.warpAffine`` is OpenCV's own warp (the before); ``opencv engine`` computes OpenCV 4's
fixed-point maps in numpy and samples with ``cv2.remap`` on them (posezoo's default; a repeated matrix
reuses its maps); ``opencv, cached maps`` is the sampling alone; ``numpy engine`` samples in numpy too;
``maps only`` is the numpy half of the opencv engine (fresh arrays each call).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("POSEZOO_SHARED") or REPO.parent / "shared")
PHOTO = SHARED / "testdata" / "images" / "coco_000000000785.jpg"


def median_ms(fn, repeat: int) -> float:
    """Median ms of ``fn(i)`` over ``repeat`` calls (``i``: the call's number)."""
    fn(-1)
    times = []
    for i in range(repeat):
        t = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def moving(m: np.ndarray, i: int, moves: bool) -> np.ndarray:
    """The matrix of call ``i``: shifted by a hundredth of a pixel a call when the crop ``moves`` (a
    tracked ROI is new every frame), else the same (a letterbox)."""
    return m + [[0, 0, 0.01 * i], [0, 0, 0.005 * i]] if moves else m


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1, help="cv2.setNumThreads (1: a pipeline's per-frame cost)")
    args = parser.parse_args(argv)
    cv2.setNumThreads(args.threads)

    from posezoo.inference.preprocess import Roi, crop_to_image_matrix, letterbox_roi
    from posezoo.inference.warp import remap, warp_affine, warp_maps

    photo = cv2.imread(str(PHOTO))
    inv = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    print(f"OpenCV {cv2.__version__}, numpy {np.__version__}, {args.threads} OpenCV thread(s); median ms per crop\n")
    columns = ["cv2.warpAffine (before)", "opencv engine", "opencv, cached maps", "numpy engine", "maps only"]
    print("| frame | crop | " + " | ".join(columns) + " | pixels cv2 differs |")
    print("|---|---|---|---|---|---|---|---|")
    for fw, fh in ((640, 480), (1280, 720)):
        frame = cv2.resize(photo, (fw, fh), interpolation=cv2.INTER_AREA)
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        roi = Roi(0.52 * fw, 0.5 * fh, 0.7 * fh, 0.7 * fh, math.radians(17.0))
        lb_roi, _ = letterbox_roi(fw, fh, 224, 224)
        box_side = 0.8 * fh
        cases = {  # name: matrix, size, border, whether the matrix changes every frame
            "landmarks 256x256": (crop_to_image_matrix(roi, (256, 256)), (256, 256), cv2.BORDER_REPLICATE, True),
            "letterbox 224x224": (crop_to_image_matrix(lb_roi, (224, 224)), (224, 224), cv2.BORDER_CONSTANT, False),
            "MoveNet box 256x256": (
                np.array([[box_side / 255, 0, 0.3 * fw], [0, box_side / 255, 0.1 * fh]]),
                (256, 256),
                cv2.BORDER_CONSTANT,
                True,
            ),
        }
        for name, (m, size, border, moves) in cases.items():
            out = np.empty((*size, 3), np.uint8)
            xy, fxy = warp_maps(m, size)
            def before(i):
                cv2.warpAffine(rgb, moving(m, i, moves), size[::-1], dst=out, flags=inv, borderMode=border)

            def ours(i, engine="auto"):
                warp_affine(rgb, moving(m, i, moves), size, border=border, out=out, engine=engine)

            row = [
                median_ms(before, args.repeat),
                median_ms(ours, args.repeat),
                median_ms(lambda i: remap(rgb, xy, fxy, border=border, out=out), args.repeat),
                median_ms(lambda i: ours(i, "numpy"), max(20, args.repeat // 10)),
                median_ms(lambda i: warp_maps(moving(m, i, moves), size), args.repeat),
            ]
            ours = warp_affine(rgb, m, size, border=border)
            theirs = cv2.warpAffine(rgb, m, size[::-1], flags=inv, borderMode=border)
            differ = np.any(ours != theirs, axis=2).mean()
            cells = " | ".join(f"{v:.3f}" for v in row)
            print(f"| {fw}x{fh} | {name} | {cells} | {100 * differ:.2f} % |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
