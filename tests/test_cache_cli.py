"""The cache verbs through the real CLI: fetch, list, verify, export, clear, path."""

from __future__ import annotations

import hashlib

from clitools import one_line_error, posezoo_env, run_posezoo
from mirror import build_mirror


def test_cache_verbs_end_to_end(tmp_path, shared_models):
    mirror = tmp_path / "mirror"
    build_mirror(shared_models, mirror)
    env = posezoo_env(tmp_path)
    home = tmp_path / "home"

    path = run_posezoo("cache", "path", env=env)
    assert path.returncode == 0 and path.stdout.strip() == str(home)
    assert "the cache is empty" in run_posezoo("cache", "list", env=env).stdout

    fetched = run_posezoo("fetch", "blazepose-full", "--variant", "lite", "--mirror", mirror, env=env)
    assert fetched.returncode == 0, fetched.stderr
    assert fetched.stdout.count(".onnx") == 2

    listing = run_posezoo("cache", "list", env=env).stdout
    assert "pose_detection.tflite" in listing and "pose_landmark_lite_v0.8.9.tflite" in listing
    listed = run_posezoo("list", env=env).stdout.splitlines()
    assert any(l.startswith("blazepose-full") and l.rstrip().endswith("lite") for l in listed)

    # export -> a mirror that serves a fresh cache with the same bytes
    exported = run_posezoo("cache", "export", tmp_path / "export", env=env)
    assert exported.returncode == 0 and "exported 2 files" in exported.stdout
    env2 = posezoo_env(tmp_path / "second")
    again = run_posezoo("fetch", "blazepose-full", "--variant", "lite", "--mirror", tmp_path / "export", "--offline", env=env2)
    assert again.returncode == 0, again.stderr
    for name in ("pose_detection.tflite", "pose_landmark_lite_v0.8.9.tflite"):
        a = (home / "files" / name).read_bytes()
        b = (tmp_path / "second" / "home" / "files" / name).read_bytes()
        assert hashlib.sha256(a).digest() == hashlib.sha256(b).digest()

    # one flipped byte: verify reports it, removes it, exits 1; then all is clean
    target = home / "files" / "pose_landmark_lite_v0.8.9.tflite"
    data = bytearray(target.read_bytes())
    data[1000] ^= 0xFF
    target.write_bytes(bytes(data))
    verify = run_posezoo("cache", "verify", env=env)
    assert verify.returncode == 1 and "pose_landmark_lite_v0.8.9.tflite" in verify.stderr
    assert not target.exists()
    assert run_posezoo("cache", "verify", env=env).returncode == 0

    # a run offline now says which file is missing
    run = run_posezoo("run", "blazepose-full", "--variant", "lite", "--offline", "--no-display", env=env, cwd=tmp_path)
    assert "pose_landmark_lite_v0.8.9.tflite" in one_line_error(run)

    cleared = run_posezoo("cache", "clear", "blazepose-full", env=env)
    assert cleared.returncode == 0
    assert "the cache is empty" in run_posezoo("cache", "list", env=env).stdout


def test_bad_mirror_is_one_line(tmp_path):
    result = run_posezoo("fetch", "blazepose-full", "--mirror", tmp_path / "nowhere", env=posezoo_env(tmp_path))
    line = one_line_error(result)
    assert "nowhere" in line and result.returncode == 3
