"""Faults at the edges of the real CLI: output targets checked before the models run, writes that fail
midway on a real full disk, unreadable inputs without FFmpeg/OpenCV noise, file permissions, Ctrl-C,
plugins that call sys.exit(), and what `cache clear` / `cache verify` say."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from clitools import default_sigint, one_line_error, posezoo_env, run_posezoo
from fstools import read_only_view, small_disk
from httpserver import MirrorServer, mirror_dir  # noqa: F401  (pytest fixtures)
from mirror import build_mirror

VIDEO = "street_5frames.mp4"
LITE = "pose_landmark_lite_v0.8.9.tflite"


@pytest.fixture(scope="module")
def filled(shared_models, tmp_path_factory) -> Path:
    """A POSEZOO_HOME's parent whose cache holds blazepose-full lite, fetched through the real CLI."""
    root = tmp_path_factory.mktemp("cli-faults")
    build_mirror(shared_models, root / "mirror")
    result = run_posezoo("fetch", "blazepose-full", "--variant", "lite", "--mirror", root / "mirror",
                         env=posezoo_env(root), timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return root


@pytest.fixture
def env(filled, tmp_path):
    return posezoo_env(filled, POSEZOO_OFFLINE="1", XDG_CONFIG_HOME=str(tmp_path / "config"))


@pytest.fixture
def empty_env(tmp_path):
    """An empty cache, offline: a command that got as far as loading a model would fail with exit 3."""
    return posezoo_env(tmp_path, POSEZOO_OFFLINE="1")


def error_line(result) -> str:
    """:func:`one_line_error`, with the progress bar's lines (tqdm draws on stderr) left out."""
    lines = [l for l in result.stderr.splitlines() if not re.match(r"^\s*\d+%\|", l)]
    return one_line_error(subprocess.CompletedProcess(result.args, result.returncode, result.stdout, "\n".join(lines)))


def run_lite(*args, env, cwd, timeout=300):
    return run_posezoo("run", "blazepose-full", "--variant", "lite", "--no-display", *args, env=env, cwd=cwd,
                       timeout=timeout)  # fmt: skip


@pytest.fixture
def umask_022():
    old = os.umask(0o022)  # the subprocesses inherit it
    try:
        yield
    finally:
        os.umask(old)


# --------------------------------------------------------------------------------------------- outputs


def test_written_files_get_normal_permissions(env, tmp_path, testdata, umask_022):
    result = run_posezoo("run", "blazepose-full", "--variant", "lite", "--json", "out.jsonl", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    video = run_lite("-v", testdata / "video" / VIDEO, "-s", "out.mp4", env=env, cwd=tmp_path)
    assert video.returncode == 0, video.stderr
    for name in ("output.png", "out.jsonl", "out.mp4"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary left


def test_output_targets_are_checked_before_the_models_run(empty_env, tmp_path, testdata):
    photo = testdata / "images" / "coco_000000000785.jpg"
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "a-folder").mkdir()
    cases = [
        (["-i", photo, "-s", "/dev/full"], "cannot write /dev/full: it is not a regular file"),
        (["-i", photo, "--json", "/dev/full"], "cannot write /dev/full: it is not a regular file"),
        (["-i", photo, "-i", photo, "-s", "a-file"], "cannot write images into a-file: it is a file, not a folder"),
        (["-i", photo, "--json", "a-folder"], "cannot write a-folder: it is a folder"),
        (["-i", photo, "-s", "a-file/out.png"], "cannot write a-file/out.png: a-file is a file, not a folder"),
        (["-i", photo, "-s", "out.mp4"], "cannot write image out.mp4: unknown type '.mp4'"),
        (["-v", testdata / "video" / VIDEO, "-s", "out.png"], "cannot write video out.png: unknown type '.png'"),
        (["-i", photo, "-s", "missing/out.png"], "folder missing does not exist"),
    ]
    for args, expected in cases:
        result = run_lite(*args, env=empty_env, cwd=tmp_path, timeout=120)
        line = one_line_error(result)
        assert result.returncode == 5 and expected in line, (args, result.stderr)  # 5, not 3: no model was loaded
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)  # the device is still a device
    assert (tmp_path / "a-file").read_text() == "x" and list((tmp_path / "a-folder").iterdir()) == []


def test_an_unwritable_folder_is_refused_before_the_models_run(empty_env, tmp_path, testdata):
    (tmp_path / "out").mkdir()
    with read_only_view(tmp_path / "out", tmp_path / "ro") as ro:
        photo = testdata / "images" / "coco_000000000785.jpg"
        for args in (["-s", ro / "x.png"], ["--json", ro / "x.jsonl"], ["-i", photo, "-s", ro / "sub"]):
            result = run_lite("-i", photo, *args, env=empty_env, cwd=tmp_path, timeout=120)
            line = one_line_error(result)
            assert result.returncode == 5 and f"folder {ro}" in line and "choose a folder you can write to" in line


@pytest.mark.parametrize("what", ["image", "jsonl", "video"])
def test_a_disk_that_fills_up_midway_is_one_line_and_leaves_nothing(env, tmp_path, testdata, what):
    size = {"image": "64k", "jsonl": "8k", "video": "64k"}[what]
    with small_disk(tmp_path / "small", size) as small:
        if what == "image":
            args = ["-i", testdata / "images" / "coco_000000000785.jpg", "-s", small / "out.png"]
        elif what == "jsonl":
            args = ["-v", testdata / "video" / VIDEO, "--json", small / "out.jsonl"]
        else:
            args = ["-v", testdata / "video" / VIDEO, "-s", small / "out.mp4"]
        result = run_lite(*args, env=env, cwd=tmp_path)
        line = error_line(result)
        assert result.returncode == 5, result.stderr
        assert "disk is full" in line or "is the disk full?" in line, line
        assert list(small.iterdir()) == []  # nothing visible, no temporary left


# --------------------------------------------------------------------------------------------- inputs


def test_an_unreadable_video_is_one_line_without_ffmpeg_noise(empty_env, tmp_path, testdata):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(os.urandom(50_000))
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes((testdata / "video" / VIDEO).read_bytes()[:20_000])  # no index: FFmpeg complains
    for video in (garbage, truncated, tmp_path):
        result = run_lite("-v", video, env=empty_env, cwd=tmp_path, timeout=120)
        line = one_line_error(result)
        assert result.stderr.strip() == line, result.stderr  # the only line
        assert str(video) in line and result.returncode == 5
    assert "ffprobe" in one_line_error(run_lite("-v", garbage, env=empty_env, cwd=tmp_path, timeout=120))


@pytest.mark.parametrize("path", ["/dev/zero", "fifo"])
def test_an_image_that_is_a_device_or_a_pipe_is_refused(empty_env, tmp_path, path):
    if path == "fifo":
        os.mkfifo(tmp_path / "fifo")
    result = run_lite("-i", path, "-s", "out.png", env=empty_env, cwd=tmp_path, timeout=60)
    assert result.returncode == 5 and "not a regular file" in one_line_error(result)


# --------------------------------------------------------------------------------------------- Ctrl-C


def test_ctrl_c_says_interrupted_exits_130_and_keeps_the_part(tmp_path, mirror_dir):
    env = posezoo_env(tmp_path)
    part = tmp_path / "home" / "partial" / "pose_detection.tflite.part"
    with MirrorServer(mirror_dir) as server:
        server.delay = 0.1  # about 5 s for the detector: time to interrupt it
        cmd = [sys.executable, "-m", "posezoo", "fetch", "blazepose-full", "--variant", "lite", "--mirror", server.url]
        proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint
        )
        try:
            deadline = time.monotonic() + 60
            while not (part.exists() and part.stat().st_size > 0) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert part.exists(), "the download never started"
            proc.send_signal(signal.SIGINT)
            _, stderr = proc.communicate(timeout=30)
        finally:
            proc.kill()
        assert proc.returncode == 130, stderr
        lines = [l for l in stderr.splitlines() if l.strip()]
        assert lines[-1] == "posezoo: interrupted" and "Traceback" not in stderr, stderr
        kept = part.stat().st_size
        assert kept > 0

        server.delay = 0
        again = run_posezoo("fetch", "blazepose-full", "--variant", "lite", "--mirror", server.url, env=env, timeout=300)
        assert again.returncode == 0, again.stderr
        assert server.gets("pose_detection.tflite")[-1].range == f"bytes={kept}-"  # resumed


# --------------------------------------------------------------------------------------------- plugins


def test_a_plugin_that_calls_sys_exit_is_skipped_with_a_warning(tmp_path):
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "quitter.py").write_text("import sys\nsys.exit(3)\n__posezoo_plugin__ = 'quitter'\n")
    (folder / "quitter_later.py").write_text(textwrap.dedent(
        """
        import sys
        from posezoo import hookimpl

        @hookimpl
        def register_models(register):
            sys.exit("bye")
        """
    ))  # fmt: skip
    result = run_posezoo("plugins", env=posezoo_env(tmp_path, POSEZOO_PLUGINS_PATH=str(folder)), timeout=120)
    assert result.returncode == 0, result.stderr
    assert "plugin 'quitter'" in result.stderr and "failed to load: it called sys.exit(3)" in result.stderr
    assert "plugin 'quitter_later'" in result.stderr and "register_models failed: it called sys.exit('bye')" in result.stderr
    assert "blazepose-full" in result.stdout  # the others still load


# --------------------------------------------------------------------------------------------- cache verbs


def test_cache_clear_says_what_it_removed_and_verify_names_a_changed_onnx(tmp_path, shared_models):
    build_mirror(shared_models, tmp_path / "mirror")
    env = posezoo_env(tmp_path)
    fetched = run_posezoo("fetch", "blazepose-full", "--variant", "lite", "--mirror", tmp_path / "mirror", env=env)
    assert fetched.returncode == 0, fetched.stderr
    onnx = tmp_path / "home" / "onnx" / f"{LITE}.onnx"
    data = bytearray(onnx.read_bytes())
    data[5000] ^= 0xFF
    onnx.write_bytes(bytes(data))
    verify = run_posezoo("cache", "verify", env=env)
    assert verify.returncode == 1
    assert f"posezoo: removed corrupt file: {LITE}.onnx: converted model digest mismatch" in verify.stderr
    assert not onnx.exists() and (tmp_path / "home" / "files" / LITE).exists()

    cleared = run_posezoo("cache", "clear", env=env)
    assert cleared.returncode == 0, cleared.stderr
    assert cleared.stdout.splitlines() == [
        "removed pose_detection.tflite",
        f"removed {LITE}",
        "cleared the cache: 2 file(s) removed",
    ]
    assert run_posezoo("cache", "clear", env=env).stdout.strip() == "the cache: nothing to remove"


def test_no_command_writes_over_a_device_or_into_a_file(tmp_path, shared_models):
    env = posezoo_env(tmp_path)
    tflite = shared_models / "mediapipe-assets" / "pose_detection.tflite"
    converted = run_posezoo("convert", tflite, "-o", "/dev/full", env=env, timeout=120)
    assert converted.returncode == 4 and "cannot write /dev/full: it is not a regular file" in one_line_error(converted)
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)
    from_device = run_posezoo("convert", "/dev/zero", "-o", tmp_path / "x.onnx", env=env, timeout=60)
    assert from_device.returncode == 4 and "not a regular file" in one_line_error(from_device)

    build_mirror(shared_models, tmp_path / "mirror", [])  # (an empty mirror folder is enough to test export)
    (tmp_path / "a-file").write_text("x")
    exported = run_posezoo("cache", "export", tmp_path / "a-file", env=env, timeout=60)
    assert exported.returncode == 5 and "it is not a folder" in one_line_error(exported)


def test_an_invalid_mirror_url_is_one_line(tmp_path):
    result = run_posezoo("fetch", "blazepose-full", "--mirror", "http://[::1", env=posezoo_env(tmp_path), timeout=60)
    assert result.returncode == 3 and "is not a valid URL" in one_line_error(result)
