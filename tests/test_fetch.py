"""Fetching against a real loopback HTTP server: verification, resume, retries, locks, mirrors, offline."""

from __future__ import annotations

import errno
import hashlib
import os
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

import posezoo.supply.convert
from httpserver import home, mirror_dir, server  # noqa: F401  (pytest fixtures)
from posezoo.supply import fetch
from posezoo.supply.cache import Cache
from posezoo.errors import FetchError
from posezoo.supply.convert import ensure_onnx
from posezoo.supply.fetch import fetch_file, fetch_model
from posezoo.supply.formats import FORMATS
from posezoo.supply.registry import FileEntry, Variant, build_registry
from posezoo.zoo.resolve import model_files

REPO = Path(__file__).resolve().parent.parent
REGISTRY = build_registry(user_files=[])
FULL = REGISTRY.model("blazepose-full")
DETECTOR = REGISTRY.files["pose_detection.tflite"]
LANDMARK_FULL = REGISTRY.files["pose_landmark_full.tflite"]
HEAVY = REGISTRY.files["pose_landmark_heavy.tflite"]
DETECTOR_128 = REGISTRY.files["pose_detection_128_v0.7.12.tflite"]


def sha256sums(shared_models: Path) -> set[str]:
    return {line.split()[0] for line in (shared_models / "SHA256SUMS").read_text().splitlines() if line.strip()}


def leftovers(cache: Cache) -> list[str]:
    """Everything in the cache folder except locks, verified files and their manifests/.onnx."""
    partial = cache.root / "partial"
    hidden = [p.name for p in cache.root.rglob(".*")]
    return sorted(p.name for p in partial.iterdir()) + hidden if partial.is_dir() else hidden


# --------------------------------------------------------------------------------------------- success


def test_fetch_variants_from_http_mirror(home, server, shared_models):
    lite = fetch_model(FULL, "lite", mirror=server.url, progress=False)
    full = fetch_model(FULL, mirror=server.url, progress=False)  # default variant: full
    cache = Cache()
    assert lite["detector"] == full["detector"] == cache.path(DETECTOR)  # shared file, stored once
    assert full["landmark"] == cache.path(LANDMARK_FULL)
    files = sorted((home / "files").iterdir())
    assert [p.name for p in files] == sorted(
        ["pose_detection.tflite", "pose_landmark_full.tflite", "pose_landmark_lite_v0.8.9.tflite"]
    )
    sums = sha256sums(shared_models)
    assert all(hashlib.sha256(p.read_bytes()).hexdigest() in sums for p in files)
    manifest = cache.manifest("pose_landmark_full.tflite")
    assert manifest["digest"] == LANDMARK_FULL.digest and manifest["size"] == LANDMARK_FULL.size
    assert manifest["url"] == f"{server.url}/pose_landmark_full.tflite"
    assert leftovers(cache) == []
    assert len(server.requests) == 3  # the detector was downloaded once

    fetch_model(FULL, all_variants=False, mirror=server.url, progress=False)
    assert len(server.requests) == 3  # cached: no request


def test_all_variants(home, server):
    absent = replace(HEAVY, name="not_on_the_mirror.tflite")
    broken = Variant("broken", {"detector": DETECTOR, "landmark": absent})
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch_model(replace(FULL, variants={**FULL.variants, "broken": broken}), all_variants=True,
                    mirror=server.url, progress=False)
    paths = fetch_model(FULL, all_variants=True, mirror=server.url, progress=False)
    assert paths == {"detector": Cache().path(DETECTOR), "landmark": Cache().path(LANDMARK_FULL)}
    assert all(Cache().is_cached(f) for f in FULL.files())


def test_cli_all_variants_prints_every_variant_s_files(server, tmp_path):
    """`posezoo fetch --all-variants` through the real CLI: one line per file of every variant (before:
    only the default variant's), each an ONNX model onnxruntime loads; without it, the one variant's."""
    import onnxruntime as ort

    from clitools import posezoo_env, run_posezoo

    env = posezoo_env(tmp_path)
    result = run_posezoo("fetch", "blazepose-full", "--all-variants", "--mirror", server.url, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    seen = {}
    for line in lines:
        head, _, path = line.partition(": ")
        variant, role = head.split(" ")
        seen[(variant, role)] = Path(path)
    assert sorted(seen) == sorted((v, r) for v, var in FULL.variants.items() for r in var.files)
    assert len(lines) == len(seen) == 2 * len(FULL.variants) >= 6
    assert len({seen[(v, "detector")] for v in FULL.variants}) == 1  # one detector, shared
    assert len({seen[(v, "landmark")] for v in FULL.variants}) == len(FULL.variants)
    for path in set(seen.values()):
        assert path.is_relative_to(tmp_path / "home") and path.suffix == ".onnx"
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    one = run_posezoo("fetch", "blazepose-full", "--variant", "lite", "--offline", env=env, timeout=120)
    assert one.returncode == 0, one.stderr
    assert one.stdout.splitlines() == [f"detector: {seen[('lite', 'detector')]}", f"landmark: {seen[('lite', 'landmark')]}"]


def test_mirror_from_environment(home, server, monkeypatch):
    monkeypatch.setenv("POSEZOO_MIRROR", server.url)
    assert fetch_file(DETECTOR, progress=False).is_file()
    assert [r.name for r in server.requests] == [DETECTOR.name]


# --------------------------------------------------------------------------------------------- failures


def test_wrong_bytes_is_a_digest_error_and_nothing_is_kept(home, server):
    server.inject(LANDMARK_FULL.name, "wrong")
    with pytest.raises(FetchError) as err:
        fetch_file(LANDMARK_FULL, mirror=server.url, progress=False)
    msg = str(err.value)
    assert "\n" not in msg and LANDMARK_FULL.name in msg
    assert f"expected {LANDMARK_FULL.digest}, got sha256:" in msg
    cache = Cache()
    assert not cache.path(LANDMARK_FULL).exists() and cache.manifest(LANDMARK_FULL.name) is None
    assert leftovers(cache) == []


def test_cut_body_fails_then_next_run_resumes_with_range(home, server, monkeypatch):
    monkeypatch.setenv("POSEZOO_FETCH_RETRIES", "1")
    server.inject(LANDMARK_FULL.name, "cut")
    with pytest.raises(FetchError, match="stopped after .* bytes.*resume"):
        fetch_file(LANDMARK_FULL, mirror=server.url, progress=False)
    cache = Cache()
    part = cache.part_path(LANDMARK_FULL)
    got = part.stat().st_size  # what arrived of the first half, give or take a buffered chunk
    assert 0 < got <= LANDMARK_FULL.size // 2 and Path(f"{part}.json").is_file()
    assert not cache.path(LANDMARK_FULL).exists()

    path = fetch_file(LANDMARK_FULL, mirror=server.url, progress=False)
    assert server.gets(LANDMARK_FULL.name)[-1].range == f"bytes={got}-"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == LANDMARK_FULL.hexdigest
    assert leftovers(cache) == []


def test_cut_body_is_resumed_by_a_retry_in_the_same_run(home, server):
    server.inject(DETECTOR.name, "cut")
    fetch_file(DETECTOR, mirror=server.url, progress=False)
    first, second = server.gets(DETECTOR.name)
    assert first.range is None and second.range.startswith("bytes=") and second.range != "bytes=0-"
    assert Cache().is_cached(DETECTOR)


def test_server_ignoring_range_means_start_over(home, server, monkeypatch):
    monkeypatch.setenv("POSEZOO_FETCH_RETRIES", "1")
    server.inject(DETECTOR.name, "cut")
    with pytest.raises(FetchError):
        fetch_file(DETECTOR, mirror=server.url, progress=False)
    server.honour_range = False
    path = fetch_file(DETECTOR, mirror=server.url, progress=False)
    assert server.gets(DETECTOR.name)[-1].range is not None  # asked, got the whole file (200)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == DETECTOR.hexdigest


def test_part_of_another_url_is_not_resumed(home, server):
    cache = Cache()
    cache.open_partial(DETECTOR, "https://elsewhere.invalid/pose_detection.tflite")
    cache.part_path(DETECTOR).write_bytes(b"x" * 1000)
    fetch_file(DETECTOR, mirror=server.url, progress=False)
    assert server.gets(DETECTOR.name)[0].range is None
    assert cache.is_cached(DETECTOR)


def test_part_longer_than_the_file_starts_over(home, server):
    cache = Cache()
    cache.open_partial(DETECTOR, f"{server.url}/{DETECTOR.name}")
    cache.part_path(DETECTOR).write_bytes(b"x" * (DETECTOR.size + 10))
    fetch_file(DETECTOR, mirror=server.url, progress=False)
    assert [r.range for r in server.gets(DETECTOR.name)] == [f"bytes={DETECTOR.size + 10}-", None]  # 416, then all
    assert cache.is_cached(DETECTOR)


def test_404_names_url_and_status(home, server):
    absent = replace(HEAVY, name="not_on_the_mirror.tflite")
    with pytest.raises(FetchError) as err:
        fetch_file(absent, mirror=server.url, progress=False)
    assert f"{server.url}/{absent.name} answered HTTP 404" in str(err.value)
    assert len(server.requests) == 1  # 4xx is not retried
    assert leftovers(Cache()) == []


def test_one_500_then_success(home, server):
    server.inject(DETECTOR.name, "500")
    assert fetch_file(DETECTOR, mirror=server.url, progress=False).is_file()
    assert len(server.gets(DETECTOR.name)) == 2


def test_500_until_the_tries_run_out(home, server):
    server.inject(DETECTOR.name, "500", "500", "500")
    with pytest.raises(FetchError, match="answered HTTP 500"):
        fetch_file(DETECTOR, mirror=server.url, progress=False)
    assert len(server.gets(DETECTOR.name)) == 3


def test_unreachable_network(home):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(FetchError) as err:
        fetch_file(DETECTOR, mirror=f"http://127.0.0.1:{port}", progress=False)
    msg = str(err.value)
    assert "network is unreachable" in msg and "connection refused" in msg
    assert "--mirror" in msg and "--offline" in msg


def test_no_answer_is_reported_and_retried(home, server, monkeypatch):
    monkeypatch.setenv("POSEZOO_FETCH_SPEED_WINDOW", "0.1")  # also the longest wait for an answer
    server.inject(DETECTOR.name, "stall", "stall")
    monkeypatch.setenv("POSEZOO_FETCH_RETRIES", "2")
    with pytest.raises(FetchError, match="network is unreachable .*connected, but no answer within 0.1 s"):
        fetch_file(DETECTOR, mirror=server.url, progress=False)
    assert len(server.gets(DETECTOR.name)) == 2 and leftovers(Cache()) == []


def _fail_after_first_chunk(monkeypatch, exc: BaseException):
    """Make every download raise ``exc`` after its first chunk; returns the real writer."""
    original = fetch._Fetcher._write

    def write(self, entry, chunks, hasher, offset, total):
        def failing():
            yield next(iter(chunks))
            raise exc

        original(self, entry, failing(), hasher, offset, total)

    monkeypatch.setattr(fetch._Fetcher, "_write", write)
    return original


def test_disk_full_removes_the_partial_file(home, server, monkeypatch):
    _fail_after_first_chunk(monkeypatch, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    with pytest.raises(FetchError, match="disk full"):
        fetch_file(DETECTOR, mirror=server.url, progress=False)
    cache = Cache()
    assert not cache.path(DETECTOR).exists() and leftovers(cache) == []


def test_ctrl_c_keeps_a_resumable_part(home, server, monkeypatch):
    original = _fail_after_first_chunk(monkeypatch, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        fetch_file(DETECTOR, mirror=server.url, progress=False)
    cache = Cache()
    assert not cache.path(DETECTOR).exists()
    assert leftovers(cache) == [f"{DETECTOR.name}.part", f"{DETECTOR.name}.part.json"]
    kept = cache.part_size(DETECTOR)
    assert 0 < kept <= fetch.CHUNK  # the first chunk, as it arrived
    monkeypatch.setattr(fetch._Fetcher, "_write", original)
    fetch_file(DETECTOR, mirror=server.url, progress=False)
    assert server.gets(DETECTOR.name)[-1].range == f"bytes={kept}-"
    assert cache.is_cached(DETECTOR) and leftovers(cache) == []


# --------------------------------------------------------------------------------------------- concurrency


FETCH_IN_CHILD = """
import sys
from posezoo.supply.fetch import fetch_model
from posezoo.supply.registry import build_registry
model = build_registry(user_files=[]).model("blazepose-full")
fetch_model(model, mirror=sys.argv[1], progress=False)
"""


def test_two_processes_fetch_the_same_model(home, server):
    server.delay = 0.01  # about 1.5 s for the two files
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen([sys.executable, "-c", FETCH_IN_CHILD, server.url], env=env, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    errors = [p.communicate(timeout=60)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    assert sorted(r.name for r in server.requests) == sorted([DETECTOR.name, LANDMARK_FULL.name])
    cache = Cache()
    assert cache.is_cached(DETECTOR) and cache.is_cached(LANDMARK_FULL)
    assert len(list((home / "files").iterdir())) == 2 and leftovers(cache) == []


# --------------------------------------------------------------------------------------------- offline, mirrors


def test_offline_with_empty_cache_names_the_file(home, server, monkeypatch):
    with pytest.raises(FetchError) as err:
        fetch_model(FULL, offline=True, progress=False)
    msg = str(err.value)
    assert "pose_detection.tflite (model blazepose-full) is not in the cache" in msg
    assert "`posezoo fetch blazepose-full`" in msg and "--mirror DIR" in msg
    monkeypatch.setenv("POSEZOO_OFFLINE", "yes")
    with pytest.raises(FetchError, match="offline"):
        fetch_file(DETECTOR, mirror=server.url, progress=False)
    assert server.requests == []  # an http mirror is network too


def test_offline_from_a_mirror_folder(home, mirror_dir):
    paths = fetch_model(FULL, "lite", offline=True, mirror=str(mirror_dir), progress=False)
    assert all(Cache().is_cached(f) for f in FULL.variant("lite").files.values())
    assert paths["landmark"].read_bytes() == (mirror_dir / "pose_landmark_lite_v0.8.9.tflite").read_bytes()


def test_export_then_fetch_from_the_export(home, server, tmp_path, monkeypatch):
    fetch_model(FULL, "lite", mirror=server.url, progress=False)
    exported = Cache().export(tmp_path / "export")
    assert sorted(p.name for p in exported) == ["pose_detection.tflite", "pose_landmark_lite_v0.8.9.tflite"]
    for mirror in (str(tmp_path / "export"), (tmp_path / "export").as_uri()):
        fresh = tmp_path / f"fresh{len(mirror)}"
        monkeypatch.setenv("POSEZOO_HOME", str(fresh))
        fetch_model(FULL, "lite", mirror=mirror, offline=True, progress=False)
        assert Cache().is_cached(DETECTOR) and Cache().root == fresh


def test_missing_mirror_folder(home, tmp_path):
    with pytest.raises(FetchError, match="mirror folder .* does not exist"):
        fetch_file(DETECTOR, mirror=str(tmp_path / "nowhere"), progress=False)


# --------------------------------------------------------------------------------------------- git blob ids


def git_blob_id(data: bytes) -> str:
    """git's object id of a file: SHA-1 over b"blob <size>\\0" + bytes."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@pytest.mark.parametrize("known_size", [True, False])
@pytest.mark.parametrize("fault", [None, "no-length"])
def test_git_blob_sha1_digest(home, server, mirror_dir, known_size, fault):
    data = (mirror_dir / DETECTOR_128.name).read_bytes()
    blob = git_blob_id(data)
    assert blob == "55deb3c20ee7feac8af4ef431a401f658dc7d2ec"  # as published (SOURCES.md)
    entry = replace(DETECTOR_128, digest=f"git-blob-sha1:{blob}", size=len(data) if known_size else None)
    if fault:
        server.inject(entry.name, fault)
    assert fetch_file(entry, mirror=server.url, progress=False).read_bytes() == data

    wrong = replace(entry, name="other.tflite", digest=f"git-blob-sha1:{hashlib.sha1(data).hexdigest()}")
    (Path(home) / "src").mkdir()
    (Path(home) / "src" / "other.tflite").write_bytes(data)
    with pytest.raises(FetchError, match=f"expected {wrong.digest}, got git-blob-sha1:{blob}"):
        fetch_file(wrong, mirror=str(Path(home) / "src"), progress=False)


# --------------------------------------------------------------------------------------------- conversion


def test_model_files_converts_once(home, server):
    paths = model_files(FULL, "lite", mirror=server.url, progress=False)
    cache = Cache()
    assert paths == {role: cache.onnx_path(f) for role, f in FULL.variant("lite").files.items()}
    assert all(p.suffix == ".onnx" and p.stat().st_size > 0 for p in paths.values())
    assert cache.manifest(DETECTOR.name)["onnx"]["converter_version"] == posezoo.supply.convert.conversion_key()
    stamps = {p: p.stat().st_mtime_ns for p in paths.values()}
    requests_before = len(server.requests)

    assert model_files(FULL, "lite", mirror=server.url, progress=False) == paths
    assert len(server.requests) == requests_before
    assert {p: p.stat().st_mtime_ns for p in paths.values()} == stamps


def test_new_converter_version_converts_again(home, mirror_dir, monkeypatch):
    calls = []

    def fake_convert(src, dst, *, model_name=None):
        calls.append(Path(src).name)
        Path(dst).write_bytes(b"onnx")

    def version(v):  # the format table holds each converter's version
        monkeypatch.setitem(FORMATS, "tflite", replace(FORMATS["tflite"], version=v))

    monkeypatch.setattr(posezoo.supply.convert, "convert_file", fake_convert)
    version("test-a")
    model_files(FULL, "lite", mirror=str(mirror_dir), progress=False)
    model_files(FULL, "lite", mirror=str(mirror_dir), progress=False)
    assert len(calls) == 2  # detector and landmark, once each
    version("test-b")
    assert ensure_onnx(DETECTOR).read_bytes() == b"onnx"
    assert calls[2:] == [DETECTOR.name]
    assert Cache().manifest(DETECTOR.name)["onnx"]["converter_version"] == posezoo.supply.convert.conversion_key()
    assert posezoo.supply.convert.conversion_key().startswith("test-b/")


def test_ensure_onnx_needs_the_file(home):
    with pytest.raises(FetchError, match="not in the cache"):
        ensure_onnx(DETECTOR)
    onnx_entry = FileEntry("m.onnx", "https://example.invalid/m.onnx", "sha256:" + "0" * 64, "onnx")
    assert Cache().onnx_path(onnx_entry) == Cache().path(onnx_entry)
