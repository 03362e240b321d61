"""Shared test fixtures.

Tests that need real weights or test photos read them from ``../shared`` (or ``$POSEZOO_SHARED``).
CI always provides it; elsewhere those tests skip, saying why.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _shared_dir() -> Path | None:
    env = os.environ.get("POSEZOO_SHARED")
    cand = Path(env) if env else REPO.parent / "shared"
    return cand if (cand / "models" / "SHA256SUMS").is_file() else None


SHARED = _shared_dir()


@pytest.fixture(scope="session")
def shared() -> Path:
    """The read-only ../shared folder (models, testdata, docs)."""
    if SHARED is None:
        pytest.skip("needs ../shared (weights and test photos); set POSEZOO_SHARED to its path")
    return SHARED


@pytest.fixture(scope="session")
def shared_models(shared: Path) -> Path:
    return shared / "models"


@pytest.fixture(scope="session")
def testdata(shared: Path) -> Path:
    return shared / "testdata"


# Pose weights converted to ONNX once per test session: role -> file under ../shared/models.
POSE_TFLITE = {
    "detector": "mediapipe-assets/pose_detection.tflite",
    "full": "mediapipe-assets/pose_landmark_full.tflite",
    "lite": "mediapipe-v0.8.9/pose_landmark_lite.tflite",
}


@pytest.fixture(scope="session")
def converted_models(shared_models: Path, tmp_path_factory) -> dict[str, Path]:
    """The BlazePose detector and lite/full landmark models, converted to ONNX with
    posezoo.convert into a session temp folder: {"detector": path, "lite": path, "full": path}."""
    from posezoo.convert import convert_file

    out = tmp_path_factory.mktemp("converted")
    paths = {}
    for role, rel in POSE_TFLITE.items():
        paths[role] = out / f"{role}.onnx"
        convert_file(shared_models / rel, paths[role])
    return paths


@pytest.fixture(scope="session")
def make_estimator(converted_models):
    """Factory: ``make_estimator("full" | "lite")`` -> a new CPU PoseEstimator for blazepose-full on
    the converted weights (one per call: an estimator reuses its buffers, one thread at a time)."""
    from posezoo.estimator import PoseEstimator
    from posezoo_plugins.blazepose_full import SPEC

    def make(variant: str):
        files = {"detector": converted_models["detector"], "landmark": converted_models[variant]}
        return PoseEstimator(SPEC, files, variant=variant, device="cpu")

    return make


@pytest.fixture(scope="session")
def coco_photo(testdata: Path):
    """The COCO skier (one person), BGR."""
    import cv2

    return cv2.imread(str(testdata / "images" / "coco_000000000785.jpg"))


@pytest.fixture(scope="session")
def tfjs_runner(tmp_path_factory):
    """TF.js (pure-JS CPU backend) under node, the reference of the TF.js converter: skips only when
    node or npm is not on PATH; installs tests/node's pinned packages (npm ci) when they are missing
    and fails loudly when that fails."""
    from tfjs import TfjsRunner, ensure_installed, missing_tools

    why = missing_tools()
    if why:
        pytest.skip(why)
    ensure_installed()
    return TfjsRunner(tmp_path_factory.mktemp("tfjs"))
