"""BlazePose parity with MediaPipe on the shared photos, per photo and variant: the numbers behind
tests/test_parity.py's bounds and docs/models.md's table.

For each photo of ../shared/testdata/mediapipe_reference.json (MediaPipe 0.10.14's own landmarks) and
each variant (lite, full, heavy), runs blazepose-full on onnxruntime (CPU) and prints the mean distance
of our landmarks from MediaPipe's over the landmarks MediaPipe saw (visibility > 0.5), in pixels and in
% of the diagonal of MediaPipe's box around them; with ``--json`` also writes the landmarks, so two
runs (another OpenCV, another onnxruntime, before and after a change) can be compared point for point
with ``--against``.

    python benchmarks/parity_photos.py [--json out.json] [--against other.json] [--onnx-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("POSEZOO_SHARED") or REPO.parent / "shared")
TFLITE = {
    "detector": "mediapipe-assets/pose_detection.tflite",
    "full": "mediapipe-assets/pose_landmark_full.tflite",
    "lite": "mediapipe-v0.8.9/pose_landmark_lite.tflite",
    "heavy": "mediapipe-assets/pose_landmark_heavy.tflite",
}
COMPLEXITY = {"lite": "0", "full": "1", "heavy": "2"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--onnx-dir", type=Path, help="keep the converted models here (reused when present)")
    parser.add_argument("--json", type=Path, help="write the landmarks and distances here")
    parser.add_argument("--against", type=Path, help="a --json of another run: print how far the landmarks moved")
    args = parser.parse_args(argv)

    import tempfile

    import cv2
    import onnxruntime

    from posezoo.supply.convert import convert_file

    from posezoo_plugins.blazepose_full import SPEC
    from posezoo_plugins.mediapipe.model import PoseEstimator

    reference = json.loads((args.shared / "testdata" / "mediapipe_reference.json").read_text())["images"]
    onnx_dir = args.onnx_dir or Path(tempfile.mkdtemp())
    onnx_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, rel in TFLITE.items():
        files[name] = onnx_dir / f"{name}.onnx"
        if not files[name].is_file():
            convert_file(args.shared / "models" / rel, files[name])
    against = json.loads(args.against.read_text())["runs"] if args.against else None

    print(f"OpenCV {cv2.__version__}, onnxruntime {onnxruntime.__version__}, numpy {np.__version__}\n")
    head = "| variant | photo | mean px | % of diagonal |" + (" moved vs --against (px, max) |" if against else "")
    print(head)
    print("|---|---|---:|---:|" + ("---:|" if against else ""))
    runs: dict = {}
    for variant in ("full", "lite", "heavy"):
        pair = {"detector": files["detector"], "landmark": files[variant]}
        est = PoseEstimator(SPEC, pair, variant=variant, device="cpu")
        pcts = []
        for photo, by_model in sorted(reference.items()):
            want = np.asarray(by_model[COMPLEXITY[variant]]["landmarks"], np.float64)
            poses = est.predict(cv2.imread(str(args.shared / "testdata" / "images" / photo)), max_poses=1)
            got = poses[0].landmarks.astype(np.float64)
            seen = want[:, 3] > 0.5
            diag = float(np.hypot(*np.ptp(want[seen, :2], axis=0)))
            dist = np.linalg.norm(got[seen, :2] - want[seen, :2], axis=1)
            pct = 100.0 * dist.mean() / diag
            pcts.append(pct)
            runs.setdefault(variant, {})[photo] = {"landmarks": got.tolist(), "mean_px": dist.mean(), "pct": pct}
            row = f"| {variant} | {photo.split('_')[0]} | {dist.mean():.2f} | {pct:.3f} |"
            if against:
                other = np.asarray(against[variant][photo]["landmarks"])
                moved = np.linalg.norm(got[:, :2] - other[:, :2], axis=1)
                row += f" {moved.mean():.3f}, {moved.max():.3f} |"
            print(row, flush=True)
        print(f"| {variant} | **max** | | **{max(pcts):.3f}** |" + (" |" if against else ""))
    if args.json:
        meta = {"opencv": cv2.__version__, "onnxruntime": onnxruntime.__version__, "numpy": np.__version__}
        args.json.write_text(json.dumps({"versions": meta, "runs": runs}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
