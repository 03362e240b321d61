"""Links and special files planted in the cache are never followed (posezoo often runs as root): a
symbolic or hard link in place of a partial download, a lock, a manifest, a converted model, a cached
file or a whole cache folder; a FIFO in place of a manifest. Real links on a real file system, a real
HTTP server on 127.0.0.1 (honouring Range or not), a real mirror folder, the real CLI."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import time
import zipfile
from pathlib import Path

import pytest

from clitools import one_line_error, posezoo_env, run_posezoo
from httpserver import MirrorServer, home, mirror_dir, server  # noqa: F401  (pytest fixtures)
from posezoo.errors import FetchError
from posezoo.supply.cache import Cache
from posezoo.supply.convert import conversion_key, ensure_onnx
from posezoo.supply.fetch import fetch_file
from posezoo.supply.registry import FileEntry, build_registry

REGISTRY = build_registry(user_files=[])
DETECTOR = REGISTRY.files["pose_detection.tflite"]
LITE = REGISTRY.files["pose_landmark_lite_v0.8.9.tflite"]
PRECIOUS = b"precious: never touch\n"  # the file a planted link points to
FACE = "mediapipe-assets/face_detection_short_range.tflite"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture()
def victim(tmp_path) -> Path:
    path = tmp_path / "victim.txt"
    path.write_bytes(PRECIOUS)
    return path


def plant_part(home: Path, entry: FileEntry, url: str, target: Path, *, hard: bool = False) -> Path:
    """A link at ``partial/<name>.part`` to ``target``, with a sidecar that matches the download of
    ``entry`` from ``url`` (so that a fetch would resume into it)."""
    partial = home / "partial"
    partial.mkdir(parents=True, exist_ok=True)
    part = partial / f"{entry.name}.part"
    if hard:
        os.link(target, part)
    else:
        part.symlink_to(target)
    (partial / f"{entry.name}.part.json").write_text(json.dumps({"url": url, "digest": entry.digest}))
    return part


def assert_regular_and_verified(home: Path, entry: FileEntry) -> None:
    path = home / "files" / entry.name
    assert stat.S_ISREG(os.lstat(path).st_mode), "files/ holds a link"
    assert sha256(path.read_bytes()) == entry.digest and Cache(home).is_cached(entry)
    assert not os.path.lexists(home / "partial" / f"{entry.name}.part")


# --------------------------------------------------------------------------------------------- the case


def test_a_link_planted_as_the_part_is_removed_not_written_through_cli(tmp_path, mirror_dir, victim):
    """The issue's case: a mirror that ignores Range, through the real CLI. Before: exit 0, the victim
    overwritten with the model, files/<name> a link to it."""
    env = posezoo_env(tmp_path)
    home = tmp_path / "home"
    with MirrorServer(mirror_dir) as srv:
        srv.honour_range = False
        plant_part(home, DETECTOR, f"{srv.url}/{DETECTOR.name}", victim)
        started = time.monotonic()
        result = run_posezoo("fetch", "blazepose-full", "--variant", "lite", "--mirror", srv.url, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert victim.read_bytes() == PRECIOUS
    assert_regular_and_verified(home, DETECTOR)
    warnings = [l for l in result.stderr.splitlines() if "symbolic link" in l]
    assert len(warnings) == 1 and warnings[0].startswith("posezoo: warning: removed ") and DETECTOR.name in warnings[0]
    listing = run_posezoo("cache", "list", env=env, timeout=120)
    row = next(l for l in listing.stdout.splitlines() if DETECTOR.name in l)
    assert " yes " in f" {row} ", listing.stdout
    assert time.monotonic() - started < 300


@pytest.mark.parametrize("source", ["range", "no-range", "folder"])
def test_a_link_planted_as_the_part_is_never_followed(home, mirror_dir, victim, source, capfd):
    with MirrorServer(mirror_dir) as srv:
        srv.honour_range = source != "no-range"
        mirror = str(mirror_dir) if source == "folder" else srv.url
        url = (mirror_dir / DETECTOR.name).absolute().as_uri() if source == "folder" else f"{srv.url}/{DETECTOR.name}"
        plant_part(home, DETECTOR, url, victim)
        fetch_file(DETECTOR, mirror=mirror, progress=False)
        if source != "folder":
            assert [r.range for r in srv.gets(DETECTOR.name)] == [None]  # started over, nothing "resumed"
    assert victim.read_bytes() == PRECIOUS
    assert_regular_and_verified(home, DETECTOR)
    assert "it was a symbolic link" in capfd.readouterr().err


def test_a_hard_link_planted_as_the_part_is_not_written_into(home, server, victim):
    part = plant_part(home, DETECTOR, f"{server.url}/{DETECTOR.name}", victim, hard=True)
    assert os.stat(part).st_nlink == 2
    fetch_file(DETECTOR, mirror=server.url, progress=False)
    assert victim.read_bytes() == PRECIOUS and os.stat(victim).st_nlink == 1
    assert_regular_and_verified(home, DETECTOR)


def test_a_part_planted_between_the_check_and_the_write_is_refused(home, server, victim, monkeypatch):
    """A link that appears after the part was checked (a race) is met by O_NOFOLLOW: refused, one line."""
    cache = Cache()
    real = Cache.open_partial

    def then_plant(self, entry, url):
        offset = real(self, entry, url)
        self.part_path(entry).unlink(missing_ok=True)
        self.part_path(entry).symlink_to(victim)
        return offset

    monkeypatch.setattr(Cache, "open_partial", then_plant)  # (the attacker's move, not the code under test)
    with pytest.raises(FetchError) as err:
        fetch_file(DETECTOR, mirror=server.url, progress=False)
    assert "is a symbolic link" in str(err.value) and "never follows links" in str(err.value)
    assert victim.read_bytes() == PRECIOUS
    assert not os.path.lexists(cache.path(DETECTOR)) and not os.path.lexists(cache.part_path(DETECTOR))


def test_a_link_planted_as_the_part_of_an_archive_member(home, tmp_path, shared_models, victim):
    face = (shared_models / FACE).read_bytes()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("face.tflite", face)
    folder = tmp_path / "zips"
    folder.mkdir()
    (folder / "links-test.zip").write_bytes(buf.getvalue())
    archive = FileEntry("links-test.zip", "https://models.example.org/links-test.zip", sha256(buf.getvalue()), "zip",
                        size=len(buf.getvalue()))
    member = FileEntry("links_face.tflite", archive.url, sha256(face), "tflite", size=len(face), archive=archive,
                       member="face.tflite")
    (home / "partial").mkdir(parents=True)
    (home / "partial" / f"{member.name}.part").symlink_to(victim)
    fetch_file(member, mirror=str(folder), progress=False)
    assert victim.read_bytes() == PRECIOUS
    assert_regular_and_verified(home, member)


# --------------------------------------------------------------------------------------------- other files


def test_a_lock_file_that_is_a_link_is_replaced_not_truncated(home, server, victim, capfd):
    """filelock opened the lock with O_TRUNC through the link: the victim became empty."""
    (home / "locks").mkdir(parents=True)
    (home / "locks" / f"{DETECTOR.name}.lock").symlink_to(victim)
    fetch_file(DETECTOR, mirror=server.url, progress=False)
    assert victim.read_bytes() == PRECIOUS
    assert stat.S_ISREG(os.lstat(home / "locks" / f"{DETECTOR.name}.lock").st_mode)
    assert_regular_and_verified(home, DETECTOR)
    assert "not a lock file of posezoo's" in capfd.readouterr().err


def test_a_cached_file_that_is_a_link_is_not_trusted(home, server, tmp_path, mirror_dir):
    """A link in files/ to a good copy, with a good manifest: not cached, `cache list` says NO, `cache
    verify` removes the link (not its target), a fetch puts a regular file in its place."""
    fetch_file(DETECTOR, mirror=server.url, progress=False)
    copy = tmp_path / "copy.tflite"
    copy.write_bytes((mirror_dir / DETECTOR.name).read_bytes())
    path = home / "files" / DETECTOR.name
    path.unlink()
    path.symlink_to(copy)
    cache = Cache()
    assert not cache.is_cached(DETECTOR)
    assert not {r.name: r for r in cache.entries(REGISTRY)}[DETECTOR.name].verified
    problems = cache.verify(REGISTRY)
    assert [p.name for p in problems] == [DETECTOR.name] and "symbolic link" in problems[0].problem
    assert not os.path.lexists(path) and sha256(copy.read_bytes()) == DETECTOR.digest
    fetch_file(DETECTOR, mirror=server.url, progress=False)
    assert_regular_and_verified(home, DETECTOR)


def test_a_converted_model_that_is_a_link_is_converted_again(home, mirror_dir, victim):
    """A link at onnx/<name>.onnx with a manifest record that matches its target: never used, converted
    again, the target untouched."""
    fetch_file(DETECTOR, mirror=str(mirror_dir), progress=False)
    cache = Cache()
    manifest = home / "manifests" / f"{DETECTOR.name}.json"
    m = json.loads(manifest.read_text())
    m["onnx"] = {"converter_version": conversion_key(), "converted": "x", "digest": sha256(PRECIOUS),
                 "size": len(PRECIOUS)}
    manifest.write_text(json.dumps(m))
    (home / "onnx").mkdir()
    (home / "onnx" / f"{DETECTOR.name}.onnx").symlink_to(victim)
    assert cache.verified_onnx(DETECTOR, conversion_key()) is None
    onnx = ensure_onnx(DETECTOR, cache, progress=False)
    assert stat.S_ISREG(os.lstat(onnx).st_mode) and onnx.stat().st_size > 100_000
    assert victim.read_bytes() == PRECIOUS


@pytest.mark.parametrize("folder", ["partial", "files", "manifests"])
def test_a_cache_folder_that_is_a_link_is_refused_and_verify_removes_it(tmp_path, mirror_dir, folder):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    (home / folder).symlink_to(elsewhere)
    env = posezoo_env(tmp_path)
    fetch = run_posezoo("fetch", "blazepose-full", "--mirror", mirror_dir, env=env, timeout=120)
    line = one_line_error(fetch)
    assert fetch.returncode == 3 and f"{home / folder} is a symbolic link" in line and "never follows links" in line
    assert list(elsewhere.iterdir()) == []
    verify = run_posezoo("cache", "verify", env=env, timeout=120)
    assert verify.returncode == 1 and f"{folder}/: it is a symbolic link" in verify.stderr, verify.stderr
    assert not os.path.lexists(home / folder) and elsewhere.is_dir()
    again = run_posezoo("fetch", "blazepose-full", "--variant", "lite", "--mirror", mirror_dir, env=env, timeout=300)
    assert again.returncode == 0, again.stderr
    assert list(elsewhere.iterdir()) == []


def test_a_fifo_as_a_manifest_does_not_hang_list_or_verify(tmp_path, mirror_dir):
    env = posezoo_env(tmp_path)
    home = tmp_path / "home"
    fetched = run_posezoo("fetch", "blazepose-full", "--variant", "lite", "--mirror", mirror_dir, env=env, timeout=300)
    assert fetched.returncode == 0, fetched.stderr
    manifest = home / "manifests" / f"{DETECTOR.name}.json"
    manifest.unlink()
    os.mkfifo(manifest)
    started = time.monotonic()
    listing = run_posezoo("cache", "list", env=env, timeout=60)  # (before: blocked for ever opening the FIFO)
    assert listing.returncode == 0, listing.stderr
    assert " NO " in next(l for l in listing.stdout.splitlines() if DETECTOR.name in l)
    verify = run_posezoo("cache", "verify", env=env, timeout=60)
    assert verify.returncode == 1 and f"{DETECTOR.name}: no valid manifest" in verify.stderr, verify.stderr
    assert not os.path.lexists(manifest) and not os.path.lexists(home / "files" / DETECTOR.name)
    assert time.monotonic() - started < 60
