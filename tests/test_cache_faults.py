"""Cache integrity and cache file systems: converted models verified before use, sources re-verified
before conversion, a real read-only cache (a read-only bind mount as root, where chmod stops nothing),
a real full disk (a 1 MiB tmpfs), a POSEZOO_HOME that is a file."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from clitools import one_line_error, posezoo_env, run_posezoo
from fstools import read_only_view, small_disk
from httpserver import home, mirror_dir  # noqa: F401  (pytest fixtures)
from mirror import fetched_home
from posezoo.supply.cache import Cache
from posezoo.supply.convert import conversion_key, ensure_onnx
from posezoo.errors import FetchError, InputError
from posezoo.supply.fetch import fetch_file, fetch_model
from posezoo.supply.registry import FileEntry, build_registry
from posezoo.zoo.resolve import model_files

REGISTRY = build_registry(user_files=[])
FULL = REGISTRY.model("blazepose-full")
DETECTOR = REGISTRY.files["pose_detection.tflite"]
LITE = REGISTRY.files["pose_landmark_lite_v0.8.9.tflite"]


def sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()


def flip(path: Path, at: int = 1000) -> None:
    """Change one byte in place (same size, so only hashing can tell)."""
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


# --------------------------------------------------------------------------------------------- converted models


def test_conversion_records_the_onnx_digest_and_a_changed_onnx_is_converted_again(home, mirror_dir):
    paths = model_files(FULL, "lite", mirror=str(mirror_dir), progress=False)
    cache = Cache()
    record = cache.manifest(DETECTOR.name)["onnx"]
    onnx = paths["detector"]
    assert record["digest"] == sha256(onnx) and record["size"] == onnx.stat().st_size
    assert record["converter_version"] == conversion_key()  # converter version + CPU target block
    good = onnx.read_bytes()

    flip(onnx)  # the .onnx changed after it was written: never run it
    assert cache.verified_onnx(DETECTOR, conversion_key()) is None
    assert ensure_onnx(DETECTOR, cache, progress=False) == onnx
    assert onnx.read_bytes() == good  # converted again from the (re-verified) source


def test_cache_verify_checks_converted_models(home, mirror_dir):
    paths = model_files(FULL, "lite", mirror=str(mirror_dir), progress=False)
    cache = Cache()
    assert cache.verify() == []
    flip(paths["landmark"])
    problems = cache.verify()
    assert [p.name for p in problems] == [f"{LITE.name}.onnx"] and problems[0].removed
    assert "converted model digest mismatch" in problems[0].problem
    assert not paths["landmark"].exists() and cache.manifest(LITE.name)["onnx"] is None
    assert cache.is_cached(LITE)  # the source is intact and stays
    assert cache.verify() == []
    model_files(FULL, "lite", mirror=str(mirror_dir), progress=False)  # converted again on next use
    assert cache.verified_onnx(LITE, conversion_key()) == paths["landmark"]


def test_the_source_is_re_verified_before_conversion(home, mirror_dir):
    fetch_model(FULL, "lite", mirror=str(mirror_dir), progress=False)
    cache = Cache()
    flip(cache.path(LITE))  # same size: the cheap check still says cached
    assert cache.is_cached(LITE)
    with pytest.raises(FetchError) as err:
        ensure_onnx(LITE, cache, progress=False)
    assert f"the cached {LITE.name} has changed since it was verified" in str(err.value)
    assert "it was removed" in str(err.value)
    assert not cache.path(LITE).exists() and not cache.onnx_path(LITE).exists()
    paths = model_files(FULL, "lite", mirror=str(mirror_dir), progress=False)  # fetched and converted anew
    assert sha256(cache.path(LITE)) == LITE.digest and paths["landmark"].is_file()


def test_a_file_that_is_its_own_onnx_model_is_re_verified_before_use(home, mirror_dir, tmp_path):
    paths = model_files(FULL, "lite", mirror=str(mirror_dir), progress=False)
    source = tmp_path / "onnx-mirror"
    source.mkdir()
    (source / "detector.onnx").write_bytes(paths["detector"].read_bytes())
    entry = FileEntry("detector.onnx", "https://example.org/detector.onnx", sha256(paths["detector"]), "onnx",
                      size=paths["detector"].stat().st_size)
    fetch_file(entry, mirror=str(source), progress=False)
    assert ensure_onnx(entry, progress=False) == Cache().path(entry)
    flip(Cache().path(entry))
    with pytest.raises(FetchError, match="has changed since it was verified"):
        ensure_onnx(entry, progress=False)


# --------------------------------------------------------------------------------------------- file systems


@pytest.fixture(scope="module")
def filled(shared_models, tmp_path_factory) -> dict:
    """A cache with blazepose-full lite fetched and converted through the real CLI, and a mirror."""
    root = fetched_home(shared_models, tmp_path_factory.mktemp("filled"), ["blazepose-full", "--variant", "lite"])
    return {"home": root / "home", "mirror": root / "mirror"}


def test_a_read_only_cache_still_serves_run_offline_list_and_verify(filled, tmp_path, testdata):
    with read_only_view(filled["home"], tmp_path / "ro") as ro:
        env = posezoo_env(tmp_path, POSEZOO_HOME=str(ro))
        photo = testdata / "images" / "coco_000000000785.jpg"
        run = run_posezoo("run", "blazepose-full", "--variant", "lite", "--offline", "-i", photo, "-s",
                          tmp_path / "out.png", "--no-display", env=env, timeout=300)  # fmt: skip
        assert run.returncode == 0, run.stderr
        assert (tmp_path / "out.png").stat().st_size > 0
        listing = run_posezoo("cache", "list", env=env, timeout=120)
        assert listing.returncode == 0 and "pose_landmark_lite_v0.8.9.tflite" in listing.stdout, listing.stderr
        verify = run_posezoo("cache", "verify", env=env, timeout=120)
        assert verify.returncode == 0 and "all cached files verified" in verify.stdout, verify.stderr

        fetch = run_posezoo("fetch", "blazepose-full", "--variant", "full", "--mirror", filled["mirror"], env=env,
                            timeout=120)  # fmt: skip
        line = one_line_error(fetch)
        assert fetch.returncode == 5 and "read-only file system" in line and str(ro) in line
        assert "POSEZOO_HOME" in line  # the fix

        clear = run_posezoo("cache", "clear", env=env, timeout=120)
        assert clear.returncode != 0 and "could not remove" in one_line_error(clear)
        assert (ro / "files" / LITE.name).is_file()


def test_verify_on_a_read_only_cache_reports_what_it_cannot_remove(filled, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(filled["home"], copy)
    flip(copy / "onnx" / f"{LITE.name}.onnx")
    flip(copy / "files" / DETECTOR.name)
    with read_only_view(copy, tmp_path / "ro") as ro:
        problems = {p.name: p for p in Cache(ro).verify()}
        assert sorted(problems) == [DETECTOR.name, f"{LITE.name}.onnx"]
        assert not any(p.removed for p in problems.values())
        assert "digest mismatch" in str(problems[DETECTOR.name])
        assert "could not remove it" in str(problems[DETECTOR.name])
        result = run_posezoo("cache", "verify", env=posezoo_env(tmp_path, POSEZOO_HOME=str(ro)), timeout=120)
        assert result.returncode == 1 and f"posezoo: corrupt file: {DETECTOR.name}: digest mismatch" in result.stderr
        assert "Traceback" not in result.stderr
        with pytest.raises(InputError, match="cannot convert .* is on a read-only file system"):
            ensure_onnx(LITE, Cache(ro), progress=False)  # the changed .onnx is never run


def test_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, mirror_dir, monkeypatch):
    with small_disk(tmp_path / "small", "1m") as small:
        monkeypatch.setenv("POSEZOO_HOME", str(small / "home"))
        with pytest.raises(FetchError) as err:
            fetch_file(DETECTOR, mirror=str(mirror_dir), progress=False)  # 2.9 MB into 1 MiB
        assert "disk full while storing pose_detection.tflite" in str(err.value)
        assert "the partial file was removed" in str(err.value)
        assert not any((small / "home" / "partial").iterdir())
        assert not Cache().path(DETECTOR).exists()

        env = posezoo_env(tmp_path, POSEZOO_HOME=str(small / "home"))
        result = run_posezoo("fetch", "blazepose-full", "--mirror", mirror_dir, env=env, timeout=120)
        assert result.returncode == 3 and "disk full" in one_line_error(result)


def test_posezoo_home_that_is_a_file(tmp_path, mirror_dir):
    home_file = tmp_path / "home-file"
    home_file.write_text("not a folder")
    env = posezoo_env(tmp_path, POSEZOO_HOME=str(home_file))
    for args in (("fetch", "blazepose-full", "--mirror", mirror_dir), ("cache", "list"), ("cache", "verify"),
                 ("cache", "clear"), ("run", "blazepose-full", "--offline", "--no-display")):
        result = run_posezoo(*args, env=env, cwd=tmp_path, timeout=120)
        line = one_line_error(result)
        assert result.returncode == 5, (args, result.stderr)  # an input/output error
        assert f"POSEZOO_HOME {home_file} is a file, not a folder" in line and "set POSEZOO_HOME to a folder" in line
    assert home_file.read_text() == "not a folder"
