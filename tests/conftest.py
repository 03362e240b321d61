"""Shared test fixtures.

Tests that need real weights or test photos read them from ``../shared`` (or ``$POSEZOO_SHARED``).
CI always provides it; elsewhere those tests skip, saying why.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
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


# Pose weights converted to ONNX once per test session (each on first use): name -> file under ../shared/models.
POSE_TFLITE = {
    "detector": "mediapipe-assets/pose_detection.tflite",
    "full": "mediapipe-assets/pose_landmark_full.tflite",
    "lite": "mediapipe-v0.8.9/pose_landmark_lite.tflite",
    "heavy": "mediapipe-assets/pose_landmark_heavy.tflite",
    "detector128": "mediapipe-v0.7.12/pose_detection.tflite",  # the 2020 models' 128x128 detector
    "upper": "mediapipe-v0.7.12/pose_landmark_upper_body.tflite",
    "full2020": "mediapipe-0.8.2/pose_landmark_full_body.tflite",
}


class ConvertedModels(Mapping):
    """{name: ONNX path} for :data:`POSE_TFLITE`, converted with posezoo.supply.convert into one folder the
    first time a name is asked for (heavy takes seconds: only the tests that use it pay)."""

    def __init__(self, shared_models: Path, out: Path):
        self._shared, self._out, self._done = shared_models, out, {}

    def __getitem__(self, name: str) -> Path:
        if name not in self._done:
            from posezoo.supply.convert import convert_file

            path = self._out / f"{name}.onnx"
            convert_file(self._shared / POSE_TFLITE[name], path)
            self._done[name] = path
        return self._done[name]

    def __iter__(self):
        return iter(POSE_TFLITE)

    def __len__(self) -> int:
        return len(POSE_TFLITE)


@pytest.fixture(scope="session")
def converted_models(shared_models: Path, tmp_path_factory) -> ConvertedModels:
    """The BlazePose models converted to ONNX into a session temp folder, on first use:
    ``converted_models["detector" | "lite" | "full" | "heavy" | "detector128" | "upper" | "full2020"]``."""
    return ConvertedModels(shared_models, tmp_path_factory.mktemp("converted"))


# model name -> (detector, landmark) of converted_models, for make_estimator
ESTIMATOR_FILES = {
    ("blazepose-full", "lite"): ("detector", "lite"),
    ("blazepose-full", "full"): ("detector", "full"),
    ("blazepose-full", "heavy"): ("detector", "heavy"),
    ("blazepose-upper", "default"): ("detector128", "upper"),
    ("blazepose-full-2020", "default"): ("detector128", "full2020"),
}


@pytest.fixture(scope="session")
def make_estimator(converted_models):
    """Factory: ``make_estimator("full" | "lite" | "heavy")`` -> a new CPU PoseEstimator for
    blazepose-full on the converted weights; ``make_estimator("default", model="blazepose-upper")``
    (or ``"blazepose-full-2020"``) for the 128-detector models; ``spec=`` runs another spec on the
    same files. One per call: an estimator reuses its buffers, one thread at a time."""
    import importlib

    from posezoo_plugins.mediapipe.model import PoseEstimator

    def make(variant: str, *, model: str = "blazepose-full", spec=None):
        det, lm = ESTIMATOR_FILES[(model, variant)]
        files = {"detector": converted_models[det], "landmark": converted_models[lm]}
        if spec is None:
            spec = importlib.import_module("posezoo_plugins." + model.replace("-", "_")).SPEC
        return PoseEstimator(spec, files, variant=variant, device="cpu")

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
