"""Parity of mediapipe-hands and mediapipe-face-mesh with MediaPipe 0.10.14's own results, per photo.

The reference is ../shared/testdata/mediapipe_wholebody_reference.json: MediaPipe's legacy solutions in
static image mode (``Hands(max_num_hands=2, model_complexity=1)``, ``FaceMesh(max_num_faces=2,
refine_landmarks=False/True)``) on the photos of testdata/images-wholebody and testdata/images. posezoo
runs the same models (``mediapipe-hands`` full = model_complexity 1; ``mediapipe-face-mesh`` base /
refined) with ``max_poses=2``. Per photo: how many hands / faces each found, and for each reference one
the posezoo one nearest to it: the mean keypoint distance (x, y) as % of the diagonal of the reference's
box, and for hands both handedness labels (posezoo reports the person's hand, MediaPipe's label assumes
a mirrored image: its "Right" is posezoo's "left"). The lite hands variant (model_complexity 0) is printed
too, against the same complexity-1 reference (expect a few %: other weights).

    python benchmarks/wholebody_parity.py [--shared ../shared] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
MIRRORED = {"Left": "right", "Right": "left"}  # MediaPipe's Hands label -> the person's hand (posezoo's)
RUNS = (  # (model, variant, reference key, kind)
    ("mediapipe-hands", "full", "hands", "hand"),
    ("mediapipe-hands", "lite", "hands", "hand"),
    ("mediapipe-face-mesh", "base", "face_mesh_refine0", "face"),
    ("mediapipe-face-mesh", "refined", "face_mesh_refine1", "face"),
)


def photo_path(testdata: Path, name: str) -> Path:
    path = testdata / "images-wholebody" / name
    return path if path.is_file() else testdata / "images" / name


def error_pct(ours: np.ndarray, ref: np.ndarray) -> float:
    """Mean x, y distance as % of the diagonal of the reference's box."""
    ref = np.asarray(ref, np.float64)[:, :2]
    diagonal = float(np.hypot(*np.ptp(ref, axis=0)))
    return float(np.linalg.norm(np.asarray(ours, np.float64)[:, :2] - ref, axis=1).mean() / diagonal * 100.0)


def compare(poses, refs: list, kind: str) -> list[dict]:
    """One row per reference hand / face: the nearest pose, its error, labels, and its index in ours."""
    rows = []
    for i, ref in enumerate(refs):
        points = ref["landmarks"] if kind == "hand" else ref
        errors = [error_pct(p.landmarks, points) for p in poses]
        row = {"ref": i, "ours": None, "error_pct": None}
        if errors:
            best = int(np.argmin(errors))
            row.update(ours=best, error_pct=errors[best])
            if kind == "hand":
                row.update(ref_label=ref["handedness"], ref_score=ref["score"], label=poses[best].label,
                           label_score=poses[best].label_score)  # fmt: skip
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=Path(os.environ.get("POSEZOO_SHARED", REPO.parent / "shared")))
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args()

    import posezoo
    from parity import build_mirror  # benchmarks/parity.py: registry files found in ../shared, by digest

    testdata = args.shared / "testdata"
    reference = json.loads((testdata / "mediapipe_wholebody_reference.json").read_text())
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        mirror = Path(tmp) / "mirror"
        build_mirror(args.shared / "models", mirror)
        for model, variant, key, kind in RUNS:
            m = posezoo.load(model, variant=variant, mirror=str(mirror))
            print(f"\n{model} {variant} vs MediaPipe {reference['mediapipe']} {key}")
            print(f"{'photo':44} {'ref':>3} {'ours':>4}  {'error %':>8}  labels (MediaPipe -> ours)")
            errors = []
            for name, ref in reference["images"].items():
                image = cv2.imread(str(photo_path(testdata, name)))
                poses = m.predict(image, max_poses=2)
                rows = compare(poses, ref[key], kind)
                out.append({"model": model, "variant": variant, "photo": name, "found": len(poses),
                            "expected": len(ref[key]), "rows": rows})  # fmt: skip
                errs = [r["error_pct"] for r in rows if r["error_pct"] is not None]
                errors += errs
                labels = ", ".join(
                    f"{r['ref_label']} {r['ref_score']:.3f} -> {r['label']} {r['label_score']:.3f}"
                    + ("" if MIRRORED[r["ref_label"]] == r["label"] else " DIFFERS")
                    for r in rows if r.get("label") is not None
                )  # fmt: skip
                err_text = " ".join(f"{e:.4f}" for e in errs) or "-"
                flag = "" if len(poses) == len(ref[key]) else "  COUNT DIFFERS"
                print(f"{name[:44]:44} {len(ref[key]):>3} {len(poses):>4}  {err_text:>8}  {labels}{flag}")
            if errors:
                print(f"median {np.median(errors):.4f} %, max {max(errors):.4f} % over {len(errors)}")
    print(f"\n{platform.processor() or platform.machine()}, onnxruntime {__import__('onnxruntime').__version__}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
