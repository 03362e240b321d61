"""The cache tells the truth: `cache verify` re-hashes against the registry and agrees with `cache list`,
`cache export` exports only what verifies, manifests of the wrong JSON types are unverified (not internal
errors), `cache clear` waits for a conversion under way (or refuses, naming it), and lock waits are
bounded and name the holder. Real files, real processes (stopped with SIGSTOP), the real CLI."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clitools import one_line_error, posezoo_env, run_posezoo
from httpserver import MirrorServer, mirror_dir  # noqa: F401  (pytest fixtures)
from mirror import fetched_home
from posezoo.supply.cache import STOPPED_GRACE, Cache
from posezoo.supply.fetch import fetch_model
from posezoo.supply.registry import build_registry

REPO = Path(__file__).resolve().parent.parent
REGISTRY = build_registry(user_files=[])
FULL = REGISTRY.model("blazepose-full")
DETECTOR = REGISTRY.files["pose_detection.tflite"]
LITE = REGISTRY.files["pose_landmark_lite_v0.8.9.tflite"]
HEAVY = REGISTRY.files["pose_landmark_heavy.tflite"]


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def row(listing: str, name: str) -> list[str]:
    return next(l.split() for l in listing.splitlines() if name in l)


def wait_for(predicate, what: str, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def lock_says(home: Path, name: str, doing: str) -> bool:
    try:
        return doing in (home / "locks" / f"{name}.lock").read_text()
    except OSError:
        return False


@pytest.fixture(scope="module")
def fetched(shared_models, tmp_path_factory) -> Path:
    """A root whose home holds blazepose-full lite, fetched and converted through the real CLI."""
    return fetched_home(shared_models, tmp_path_factory.mktemp("truth"), ["blazepose-full", "--variant", "lite"])


@pytest.fixture()
def root(fetched, tmp_path) -> Path:
    """A copy of ``fetched`` for one test: ``root / "home"`` is its POSEZOO_HOME."""
    shutil.copytree(fetched / "home", tmp_path / "home", symlinks=True)
    return tmp_path


# --------------------------------------------------------------------------------------------- verify, list, export


def test_a_flipped_byte_with_a_matching_manifest_fails_verify_like_list_and_is_not_exported(root):
    """Before: `cache verify` exit 0 (it re-hashed against the manifest only) while `cache list` said
    VERIFIED NO, and `cache export` copied the file into the mirror."""
    env = posezoo_env(root)
    path = root / "home" / "files" / LITE.name
    data = bytearray(path.read_bytes())
    data[1000] ^= 0xFF
    path.write_bytes(bytes(data))
    manifest = root / "home" / "manifests" / f"{LITE.name}.json"
    m = json.loads(manifest.read_text())
    m["digest"] = sha256(bytes(data))  # the manifest agrees with the changed bytes, the registry does not
    manifest.write_text(json.dumps(m))

    listing = run_posezoo("cache", "list", env=env, timeout=120)
    assert row(listing.stdout, LITE.name)[-2] == "NO" and row(listing.stdout, DETECTOR.name)[-2] == "yes"

    exported = run_posezoo("cache", "export", root / "export", env=env, timeout=120)
    assert exported.returncode == 1 and "exported 1 files" in exported.stdout, exported.stderr
    assert f"posezoo: warning: not exported: {LITE.name}: its manifest says {m['digest']}" in exported.stderr
    assert sorted(p.name for p in (root / "export").iterdir()) == [DETECTOR.name]

    verify = run_posezoo("cache", "verify", env=env, timeout=120)
    assert verify.returncode == 1, verify.stderr
    assert f"posezoo: removed corrupt file: {LITE.name}: its manifest says {m['digest']}, the registry's digest is " \
           f"{LITE.digest}" in verify.stderr
    assert not os.path.lexists(path)
    again = run_posezoo("cache", "verify", env=env, timeout=120)
    listing = run_posezoo("cache", "list", env=env, timeout=120)
    assert again.returncode == 0 and LITE.name not in listing.stdout and row(listing.stdout, DETECTOR.name)[-2] == "yes"


def test_export_rehashes_what_it_copies(root):
    """A flipped byte that the cheap check cannot see (same size, manifest untouched): left out of the
    mirror, no temporary left in it."""
    path = root / "home" / "files" / DETECTOR.name
    data = bytearray(path.read_bytes())
    data[5000] ^= 0x01
    path.write_bytes(bytes(data))
    exported = Cache(root / "home").export(root / "export", REGISTRY)
    assert [p.name for p in exported] == [LITE.name]
    assert [(s.name, s.problem.split(":")[0]) for s in exported.skipped] == [(DETECTOR.name, "digest mismatch")]
    assert sorted(p.name for p in (root / "export").iterdir()) == [LITE.name]  # (no hidden temporary either)


BAD_MANIFESTS = {
    "a list": [],
    "a string": "manifest",
    "digest a number": {"digest": 5},
    "size a string": {"size": "123"},
    "size a boolean": {"size": True},
    "onnx a string": {"onnx": "yes"},
    "onnx a list": {"onnx": ["x"]},
    "onnx digest a number": {"onnx": {"digest": 5, "size": 1, "converter_version": "1"}},
    "archive a number": {"archive": 7},
}


@pytest.mark.parametrize("kind", list(BAD_MANIFESTS))
def test_a_manifest_of_the_wrong_json_type_is_unverified_not_an_internal_error(root, kind):
    """Before: `onnx` of the wrong type was an internal error in `cache list` (AttributeError)."""
    env = posezoo_env(root)
    manifest = root / "home" / "manifests" / f"{DETECTOR.name}.json"
    good = json.loads(manifest.read_text())
    bad = BAD_MANIFESTS[kind]
    manifest.write_text(json.dumps({**good, **bad} if isinstance(bad, dict) else bad))
    listing = run_posezoo("cache", "list", env=env, timeout=120)
    assert listing.returncode == 0 and "internal error" not in listing.stderr, listing.stderr
    cells = row(listing.stdout, DETECTOR.name)
    onnx_only = kind.startswith("onnx")
    assert cells[-2] == ("yes" if onnx_only or kind.startswith("archive") else "NO")
    assert cells[-1] == ("no" if onnx_only or not isinstance(bad, dict) else "yes")
    verify = run_posezoo("cache", "verify", env=env, timeout=120)
    assert "internal error" not in verify.stderr and "Traceback" not in verify.stderr
    if kind.startswith("archive"):
        assert verify.returncode == 0, verify.stderr
    else:
        assert verify.returncode == 1
        problem = "converted model without a valid record" if onnx_only else "no valid manifest"
        name = f"{DETECTOR.name}.onnx" if onnx_only else DETECTOR.name
        assert f"posezoo: removed corrupt file: {name}: {problem}" in verify.stderr, verify.stderr
    assert run_posezoo("cache", "verify", env=env, timeout=120).returncode == 0


# --------------------------------------------------------------------------------------------- clear and conversions


CONVERT_IN_CHILD = """
import sys
from posezoo.supply.convert import ensure_onnx
from posezoo.supply.registry import build_registry
print(ensure_onnx(build_registry(user_files=[]).files[sys.argv[1]], progress=False))
"""


def test_cache_clear_refuses_a_stopped_conversion_and_waits_for_a_running_one(tmp_path, mirror_dir, monkeypatch):
    """Before: `cache clear` exit 0 at once, then the converter wrote its 55 MB .onnx into the cleared
    cache (and a manifest with only its record), which `cache list` called empty."""
    home = tmp_path / "home"
    monkeypatch.setenv("POSEZOO_HOME", str(home))
    fetch_model(FULL, "heavy", mirror=str(mirror_dir), progress=False)  # (fetched; not converted)
    env = posezoo_env(tmp_path)
    converter = subprocess.Popen([sys.executable, "-c", CONVERT_IN_CHILD, HEAVY.name], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        wait_for(lambda: lock_says(home, HEAVY.name, "converting"), "the conversion to start")
        converter.send_signal(signal.SIGSTOP)
        started = time.monotonic()
        refused = run_posezoo("cache", "clear", env=env, timeout=120)
        line = one_line_error(refused)
        assert refused.returncode == 3 and f"pid {converter.pid}" in line and f"converting {HEAVY.name}" in line
        assert "which is stopped" in line and f"kill -CONT {converter.pid}" in line
        assert STOPPED_GRACE <= time.monotonic() - started < STOPPED_GRACE + 30
        assert (home / "files" / HEAVY.name).is_file()  # nothing was removed

        clear = subprocess.Popen([sys.executable, "-m", "posezoo", "cache", "clear"], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        time.sleep(1.0)  # (it starts while the holder is stopped: it must wait, not remove)
        converter.send_signal(signal.SIGCONT)
        out, err = clear.communicate(timeout=300)
        assert clear.returncode == 0, err
        assert f"posezoo: waiting for pid {converter.pid}" in err and f"converting {HEAVY.name}" in err
        conv_out, conv_err = converter.communicate(timeout=300)
        assert converter.returncode == 0, conv_err  # the conversion ended first, then the cache was cleared
        assert f"removed {HEAVY.name}" in out
    finally:
        converter.send_signal(signal.SIGCONT)
        converter.kill()
        converter.wait(timeout=30)
    for sub in ("files", "onnx", "manifests", "partial"):
        assert not (home / sub).exists(), sub
    assert "the cache is empty" in run_posezoo("cache", "list", env=env, timeout=120).stdout


# --------------------------------------------------------------------------------------------- lock waits


HOLD_IN_CHILD = """
import sys, time
from posezoo.supply.cache import Cache
from posezoo.supply.registry import build_registry
with Cache().hold(build_registry(user_files=[]).files[sys.argv[1]], "fetching"):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_a_stopped_fetch_makes_another_fetch_fail_naming_it_not_wait_for_ever(tmp_path, mirror_dir):
    """Before: the second fetch waited for ever (filelock without a timeout)."""
    env = posezoo_env(tmp_path)
    part = tmp_path / "home" / "partial" / f"{DETECTOR.name}.part"
    with MirrorServer(mirror_dir) as srv:
        srv.delay = 0.1  # about 5 s for the detector
        cmd = [sys.executable, "-m", "posezoo", "fetch", "blazepose-full", "--variant", "lite", "--mirror", srv.url]
        first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: part.exists() and part.stat().st_size > 0, "the download to start")
            first.send_signal(signal.SIGSTOP)
            started = time.monotonic()
            second = run_posezoo("fetch", "blazepose-full", "--variant", "lite", "--mirror", srv.url, env=env,
                                 timeout=120)  # fmt: skip
            elapsed = time.monotonic() - started
            line = one_line_error(second)
            assert second.returncode == 3 and f"pid {first.pid}" in line and f"fetching {DETECTOR.name}" in line
            assert "posezoo fetch blazepose-full" in line and "which is stopped" in line
            assert STOPPED_GRACE <= elapsed < STOPPED_GRACE + 30
            assert f"posezoo: waiting for pid {first.pid}" in second.stderr
            first.send_signal(signal.SIGCONT)
            srv.delay = 0
            _, err = first.communicate(timeout=300)
            assert first.returncode == 0, err
        finally:
            first.send_signal(signal.SIGCONT)
            first.kill()
            first.wait(timeout=30)
        assert run_posezoo("fetch", "blazepose-full", "--variant", "lite", "--mirror", srv.url, env=env,
                           timeout=120).returncode == 0  # fmt: skip


def test_a_lock_wait_is_bounded_by_posezoo_lock_timeout_and_names_the_holder(tmp_path, mirror_dir):
    env = posezoo_env(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_IN_CHILD, DETECTOR.name, "120"], env=env,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        result = run_posezoo("fetch", "blazepose-full", "--mirror", mirror_dir, env={**env, "POSEZOO_LOCK_TIMEOUT": "1.5"},
                             timeout=120)  # fmt: skip
        elapsed = time.monotonic() - started
        line = one_line_error(result)
        assert result.returncode == 3 and f"held by pid {holder.pid}" in line and f"fetching {DETECTOR.name}" in line
        assert "gave up after 1.5 s" in line and "POSEZOO_LOCK_TIMEOUT" in line
        assert 1.5 <= elapsed < 60
        bad = run_posezoo("fetch", "blazepose-full", "--mirror", mirror_dir, env={**env, "POSEZOO_LOCK_TIMEOUT": "soon"},
                          timeout=120)  # fmt: skip
        assert bad.returncode == 3 and "$POSEZOO_LOCK_TIMEOUT is soon" in one_line_error(bad)
    finally:
        holder.kill()
        holder.wait(timeout=30)
    done = run_posezoo("fetch", "blazepose-full", "--variant", "lite", "--mirror", mirror_dir, env=env, timeout=300)
    assert done.returncode == 0, done.stderr  # a killed holder's lock is free at once
