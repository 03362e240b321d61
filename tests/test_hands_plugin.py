"""The example third-party plugin (docs/examples/posezoo-hands), pip-installed and run for real.

The package is pip-installed into a private folder put on PYTHONPATH (never into the test
interpreter), then the ``posezoo`` CLI runs in a
subprocess with an isolated cache, fetching the hand weights from a mirror folder built from
../shared/models (files matched to the registry by their SHA-256, as SHA256SUMS lists them).
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from clitools import posezoo_env, run_posezoo
from conftest import REPO
from mirror import build_mirror

HANDS_PKG = REPO / "docs" / "examples" / "posezoo-hands"
HAND_PHOTO = "images/aic_ff945ae2e729f24eea992814639d59b3bdec8bd8.jpg"  # the right-hand player's hand
# Where that hand is (pixels of the 950x641 photo): x from the thumb to the wrist, y wrist to fingertips.
HAND_REGION = (780.0, 320.0, 870.0, 420.0)


_INSTALLED: list[str] = []


def install_hands() -> str:
    """pip install docs/examples/posezoo-hands into a private folder (once per test session) and return
    that folder: put it on PYTHONPATH (``hands_env``) for the subprocesses that should see the plugin.

    The interpreter running the tests is left as it was: no test installs into it, so one test's plugin
    never shows up (or breaks) in another test's run, nor in the user's environment after the suite.
    An isolated build needs setuptools from the index (CI has PyPI); without an index, a build in this
    environment (setuptools + wheel installed) is tried. The build runs on a copy: the checkout stays
    untouched (no build/ or egg-info beside the example).
    """
    if _INSTALLED:
        return _INSTALLED[0]
    work = Path(tempfile.mkdtemp(prefix="posezoo-hands-"))
    atexit.register(shutil.rmtree, work, True)
    source, target = work / "src", str(work / "site")
    shutil.copytree(HANDS_PKG, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    base = [sys.executable, "-m", "pip", "install", "--no-deps", "--disable-pip-version-check", "-q",
            "--target", target]  # fmt: skip
    first = subprocess.run([*base, str(source)], capture_output=True, text=True, timeout=300)
    if first.returncode != 0:
        second = subprocess.run(
            [*base, "--no-build-isolation", str(source)], capture_output=True, text=True, timeout=300
        )
        assert second.returncode == 0, f"pip install failed:\n{first.stderr}\n{second.stderr}"
    _INSTALLED.append(target)
    return target


def hands_env(env: dict[str, str]) -> dict[str, str]:
    """``env`` with the installed example plugin importable (and its entry point visible)."""
    site = install_hands()
    return {**env, "PYTHONPATH": os.pathsep.join(p for p in (site, env.get("PYTHONPATH", "")) if p)}


@pytest.fixture(scope="session")
def hands_installed() -> str:
    return install_hands()


@pytest.fixture(scope="session")
def mirror(shared_models: Path, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("mirror")
    build_mirror(shared_models, folder)
    return folder


def test_mirror_holds_the_hand_files(mirror):
    assert {"palm_detection_full.tflite", "hand_landmark_lite.tflite", "pose_detection.tflite"} <= {
        p.name for p in mirror.iterdir()
    }


def test_registry_doc_example_is_the_package_registry():
    """docs/registry.md shows the hands package's registry file; keep the two identical."""
    text = (REPO / "docs" / "registry.md").read_text()
    example = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    package = (HANDS_PKG / "posezoo_hands" / "registry.yaml").read_text()
    assert yaml.safe_load(example) == yaml.safe_load(package)


@pytest.mark.slow
def test_installed_plugin_lists_and_finds_a_hand(hands_installed, mirror, testdata, tmp_path):
    env = hands_env(posezoo_env(tmp_path))

    listed = run_posezoo("list", env=env, script=True)
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line for line in listed.stdout.splitlines()[1:]}
    assert "hands-lite-landmarks" in rows and rows["hands-lite-landmarks"].split()[2] == "hands-lite-landmarks"
    assert "mediapipe-hands" in rows  # the built-in hands model beside it
    assert "warning" not in listed.stderr

    plugins = run_posezoo("plugins", env=env)
    assert "entry point of posezoo-hands" in plugins.stdout

    out = tmp_path / "out.jsonl"
    drawn = tmp_path / "hand.png"
    photo = testdata / HAND_PHOTO
    result = run_posezoo(
        "run", "hands-lite-landmarks", "-i", photo, "--json", out, "-s", drawn, "--mirror", mirror, "--no-display",
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert drawn.is_file()
    record = json.loads(out.read_text().splitlines()[0])
    assert record["model"] == "hands-lite-landmarks" and record["variant"] == "default"
    assert len(record["poses"]) == 1
    hand = record["poses"][0]
    assert hand["score"] >= 0.5 and hand["presence"] >= 0.5
    assert len(hand["landmarks"]) == 21 and all(len(row) == 5 for row in hand["landmarks"])
    assert len(hand["world_landmarks"]) == 21
    x0, y0, x1, y1 = HAND_REGION
    for x, y, *_ in hand["landmarks"]:
        assert x0 <= x <= x1 and y0 <= y <= y1, (x, y)
    wrist, middle_tip = hand["landmarks"][0], hand["landmarks"][12]
    assert middle_tip[1] > wrist[1] + 30  # the hand hangs down: fingertips below the wrist

    # the verified files are in the isolated cache now: offline works without the mirror
    offline = run_posezoo("run", "hands-lite-landmarks", "-i", photo, "--offline", "--no-display", env=env, cwd=tmp_path)
    assert offline.returncode == 0, offline.stderr
    assert "1 pose(s)" in offline.stderr


@pytest.mark.slow
def test_python_api_runs_the_plugin(hands_installed, mirror, testdata, tmp_path, monkeypatch):
    """posezoo.load() on the installed plugin (in a subprocess: this process's zoo was loaded earlier)."""
    code = (
        "import cv2, posezoo, sys\n"
        f"m = posezoo.load('hands-lite-landmarks', mirror={str(mirror)!r})\n"
        f"poses = m.predict(cv2.imread({str(testdata / HAND_PHOTO)!r}))\n"
        "print(len(poses) >= 1, poses[0].landmarks.shape, poses[0].names[0], poses[0].names[20], poses[0].label)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=hands_env(posezoo_env(tmp_path)), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "(21,", "5)", "wrist", "pinky_tip", "left"]  # the player's left hand
