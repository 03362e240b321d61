"""The cache: location, list, verify, clear, export (files come from a local mirror folder)."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import pytest

from httpserver import home, mirror_dir  # noqa: F401  (pytest fixtures)
from posezoo.supply.cache import Cache, Cleared, cache_home
from posezoo.supply.hashes import file_digest
from posezoo.supply.fetch import fetch_model
from posezoo.supply.registry import Registry, Variant, build_registry

REGISTRY = build_registry(user_files=[])
FULL = REGISTRY.model("blazepose-full")
DETECTOR = REGISTRY.files["pose_detection.tflite"]
LITE = REGISTRY.files["pose_landmark_lite_v0.8.9.tflite"]
LANDMARK_FULL = REGISTRY.files["pose_landmark_full.tflite"]


@pytest.fixture()
def filled(home, mirror_dir) -> Cache:
    """A cache holding blazepose-full's lite and full variants (not converted)."""
    for variant in ("lite", "full"):
        fetch_model(FULL, variant, mirror=str(mirror_dir), progress=False)
    return Cache()


def test_cache_home(monkeypatch, tmp_path):
    monkeypatch.setenv("POSEZOO_HOME", str(tmp_path / "h"))
    assert cache_home() == tmp_path / "h" == Cache().root
    monkeypatch.delenv("POSEZOO_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_home() == tmp_path / "xdg" / "posezoo"
    assert Cache(tmp_path / "c").root == tmp_path / "c"


def test_paths_and_is_cached(filled):
    assert filled.path(DETECTOR) == filled.root / "files" / "pose_detection.tflite"
    assert filled.onnx_path(DETECTOR) == filled.root / "onnx" / "pose_detection.tflite.onnx"
    assert filled.is_cached(DETECTOR)
    moved = replace(DETECTOR, digest="sha256:" + "0" * 64)  # the registry changed its digest
    assert not filled.is_cached(moved)
    filled.path(LITE).write_bytes(b"short")  # size no longer matches the manifest
    assert not filled.is_cached(LITE)


def test_file_digest(mirror_dir, shared_models):
    path = mirror_dir / DETECTOR.name
    data = path.read_bytes()
    assert file_digest(path, "sha256") == DETECTOR.digest
    blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    assert file_digest(path, "git-blob-sha1") == f"git-blob-sha1:{blob}"


def test_entries(filled):
    filled.onnx_path(DETECTOR).parent.mkdir(parents=True)
    filled.onnx_path(DETECTOR).write_bytes(b"onnx")
    filled.record_conversion(DETECTOR, "7")
    records = {r.name: r for r in filled.entries(REGISTRY)}
    assert sorted(records) == sorted([DETECTOR.name, LITE.name, LANDMARK_FULL.name])
    det = records[DETECTOR.name]
    assert (det.size, det.digest) == (DETECTOR.size, DETECTOR.digest)
    assert det.models == ("blazepose-full", "mediapipe-holistic")  # every model whose files hold it
    assert det.url.startswith("file://") and det.url.endswith(f"/{DETECTOR.name}")
    assert det.verified and det.converted and det.converter_version == "7"
    assert not records[LITE.name].converted


def test_verify_removes_a_flipped_file(filled):
    onnx = filled.onnx_path(LITE)
    onnx.parent.mkdir(parents=True)
    onnx.write_bytes(b"onnx")
    path = filled.path(LITE)
    data = bytearray(path.read_bytes())
    data[1000] ^= 0x01
    path.write_bytes(bytes(data))

    problems = filled.verify()
    assert [p.name for p in problems] == [LITE.name]
    assert "digest mismatch" in str(problems[0]) and LITE.digest in str(problems[0])
    assert not path.exists() and not onnx.exists() and filled.manifest(LITE.name) is None
    assert filled.is_cached(DETECTOR) and filled.is_cached(LANDMARK_FULL)
    assert filled.verify() == []


def test_verify_removes_a_file_without_manifest(filled):
    (filled.root / "files" / "stray.tflite").write_bytes(b"?")
    assert [p.name for p in filled.verify()] == ["stray.tflite"]
    assert not (filled.root / "files" / "stray.tflite").exists()


def test_clear_one_model_keeps_shared_files(filled):
    other = replace(FULL, name="other", variants={"v": Variant("v", {"detector": DETECTOR, "landmark": LITE})})
    # shares the full landmark model, but its other file was never fetched: it keeps nothing
    heavy = REGISTRY.files["pose_landmark_heavy.tflite"]
    unfetched = replace(FULL, name="unfetched", variants={"v": Variant("v", {"detector": heavy, "landmark": LANDMARK_FULL})})
    registry = Registry()
    registry.add(FULL)
    registry.add(other)
    registry.add(unfetched)
    assert filled.clear(FULL, registry=registry) == Cleared([LANDMARK_FULL.name], [])
    assert filled.is_cached(DETECTOR) and filled.is_cached(LITE) and not filled.is_cached(LANDMARK_FULL)
    assert filled.manifest(LANDMARK_FULL.name) is None


def test_clear_everything(filled):
    filled.open_partial(REGISTRY.files["pose_landmark_heavy.tflite"], "https://example.invalid/heavy")
    cleared = filled.clear()
    assert sorted(cleared.removed) == sorted([DETECTOR.name, LITE.name, LANDMARK_FULL.name]) and cleared.failed == []
    assert filled.entries(REGISTRY) == []
    assert not any((filled.root / sub).exists() for sub in ("files", "manifests", "onnx", "partial"))


def test_export_writes_verified_files_only(filled, tmp_path):
    filled.path(LITE).write_bytes(b"short")  # no longer matches its manifest
    written = filled.export(tmp_path / "mirror")
    assert sorted(p.name for p in written) == sorted([DETECTOR.name, LANDMARK_FULL.name])
    assert (tmp_path / "mirror" / DETECTOR.name).read_bytes() == filled.path(DETECTOR).read_bytes()
    assert sorted(p.name for p in (tmp_path / "mirror").iterdir()) == sorted(p.name for p in written)


def test_empty_cache(home):
    cache = Cache()
    assert cache.entries(REGISTRY) == [] and cache.verify() == [] and cache.export(Path(home) / "x") == []
    assert not cache.is_cached(DETECTOR)
