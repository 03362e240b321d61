"""The wheel a user installs: built as pip builds it (setuptools from the package index) from a copy of
the checkout, it holds the licence, the registry, the sample photo and every built-in plugin."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile

from conftest import REPO


def test_the_wheel_holds_the_licence_registry_and_plugins(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".git", "node_modules", "*.egg-info", "build", "dist", "__pycache__"))
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(src)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    wheel = next((tmp_path / "dist").glob("posezoo-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    licence = [n for n in names if n.endswith(("/LICENSE", "/licenses/LICENSE"))]
    assert licence, [n for n in names if "dist-info" in n]
    assert "Apache License" in zipfile.ZipFile(wheel).read(licence[0]).decode()
    assert "posezoo/registry.yaml" in names and "posezoo/data/coco_000000000785.jpg" in names
    assert {"posezoo/serve/static/index.html", "posezoo/serve/static/app.js", "posezoo/serve/static/docs.html"} <= set(names)
    plugins = {n.split("/")[1] for n in names if n.startswith("posezoo_plugins/") and n.count("/") >= 2}
    assert {"mediapipe", "movenet", "blazepose_full"} <= plugins
