"""Parity with the references, every built-in single-stage and two-stage model, through the public API only.

For each model and variant, each shared photo: the mean keypoint distance to the reference as % of the
diagonal of the reference pose's box (MediaPipe Pose lite/full/heavy: mediapipe_reference.json over the
landmarks it saw; the 2021 web solution for blazepose-upper / blazepose-full-2020; TF.js for MoveNet),
printed to 6 decimals, and a SHA-256 of all our landmarks so two checkouts can be compared bit for bit.
Uses only ``posezoo.load`` and ``model.predict``, so it runs on any revision of posezoo.

    python benchmarks/parity.py [--shared ../shared] [--json out.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import yaml

REPO = Path(__file__).resolve().parent.parent if (Path(__file__).resolve().parent.parent / "registry.yaml").is_file() else Path.cwd()


def build_mirror(shared_models: Path, mirror: Path) -> None:
    """Every registry file found in ../shared/models (by digest), under its registry name."""
    by_digest = {}
    for line in (shared_models / "SHA256SUMS").read_text().splitlines():
        if line.strip():
            digest, rel = line.split(maxsplit=1)
            path = shared_models / rel.strip().lstrip("*")
            data = path.read_bytes()
            by_digest[f"sha256:{digest}"] = path
            by_digest[f"git-blob-sha1:{hashlib.sha1(b'blob %d' % len(data) + bytes(1) + data).hexdigest()}"] = path
    models = yaml.safe_load((REPO / "registry.yaml").read_text())["models"]
    mirror.mkdir(parents=True, exist_ok=True)
    for model in models.values():
        for variant in model["variants"].values():
            for f in variant["files"].values():
                for entry in [f, *f.get("shards", [])]:
                    src = by_digest.get(entry["digest"])
                    if src is not None:
                        shutil.copyfile(src, mirror / entry["name"])


def box_diagonal(points: np.ndarray) -> float:
    return float(np.hypot(*np.ptp(points[:, :2], axis=0)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=Path(os.environ.get("POSEZOO_SHARED", REPO.parent / "shared")))
    ap.add_argument("--json", type=Path, help="also write the rows and digests here")
    args = ap.parse_args()
    testdata = args.shared / "testdata"
    home = Path(tempfile.mkdtemp(prefix="posezoo-parity-"))
    os.environ["POSEZOO_HOME"] = str(home / "home")
    build_mirror(args.shared / "models", home / "mirror")
    import posezoo

    mp_ref = json.loads((testdata / "mediapipe_reference.json").read_text())["images"]
    web_ref = json.loads((testdata / "mediapipe_web2021_reference.json").read_text())["images"]
    mn_ref = json.loads((testdata / "movenet_reference.json").read_text())["images"]
    runs = [("blazepose-full", v, mp_ref, k) for v, k in (("lite", "0"), ("full", "1"), ("heavy", "2"))]
    runs += [("blazepose-upper", None, web_ref, "upper"), ("blazepose-full-2020", None, web_ref, "full2021")]
    runs += [("movenet-lightning", None, mn_ref, "lightning"), ("movenet-thunder", None, mn_ref, "thunder")]
    runs += [("movenet-multipose", None, mn_ref, "multipose")]
    rows, digests = [], {}
    for name, variant, refs, key in runs:
        model = posezoo.load(name, variant, mirror=str(home / "mirror"), progress=False)
        h = hashlib.sha256()
        for photo in sorted(refs):
            ref = refs[photo][key]
            image = cv2.imread(str(testdata / "images" / photo))
            multi = name == "movenet-multipose"
            poses = model.predict(image, max_poses=None if multi else 1)
            for p in poses:
                h.update(np.ascontiguousarray(p.landmarks, np.float32).tobytes())
                if p.world_landmarks is not None:
                    h.update(np.ascontiguousarray(p.world_landmarks, np.float32).tobytes())
            wants = [np.asarray(r["keypoints"], np.float64) for r in ref] if multi else [np.asarray(ref["landmarks"] if "landmarks" in ref else ref[0]["keypoints"], np.float64)]
            errs = []
            for want in wants:
                seen = want[:, 3] > 0.5 if want.shape[1] >= 5 else np.ones(len(want), bool)
                diag = box_diagonal(want[seen])
                best = min(
                    (float(np.linalg.norm(p.landmarks[: len(want)][seen, :2] - want[seen, :2], axis=1).mean()) for p in poses),
                    default=float("nan"),
                )
                errs.append(100.0 * best / diag)
            rows.append({"model": name, "variant": model.variant, "photo": photo, "poses": len(poses), "pct": [round(e, 6) for e in errs]})
            print(f"{name:20s} {model.variant:8s} {photo[:34]:34s} poses {len(poses)}  mean % of diag: "
                  + " ".join(f"{e:.6f}" for e in errs), flush=True)
        digests[f"{name}:{model.variant}"] = h.hexdigest()
        print(f"{name:20s} {model.variant:8s} landmarks sha256 {h.hexdigest()[:16]}", flush=True)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    print(f"cpu: {cpu}; python {platform.python_version()}; opencv {cv2.__version__}; numpy {np.__version__}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "digests": digests, "cpu": cpu}, indent=1))
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
