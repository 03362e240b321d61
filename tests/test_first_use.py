"""First use, as a newcomer meets it: progress lines for downloads and conversions (on stderr, never
stdout; a live bar on a terminal, one line per file elsewhere, none with --quiet), and the error of a
machine that cannot reach the registry URL (the whole URL, a mirror and `posezoo info` named)."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import socket
import struct
import subprocess
import sys
import termios
import time

from clitools import one_line_error, posezoo_env, run_posezoo
from httpserver import mirror_dir, server  # noqa: F401  (pytest fixtures)
from posezoo.supply.registry import build_registry

LITE = ("blazepose-full", "--variant", "lite")
LITE_FILES = ("pose_detection.tflite", "pose_landmark_lite_v0.8.9.tflite")


def test_first_run_prints_a_line_per_download_and_conversion_on_stderr(server, tmp_path, testdata):
    """Off a terminal the command line (progress on) prints one line per file, and only stderr."""
    out, photo = tmp_path / "out.jpg", testdata / "images" / "coco_000000000785.jpg"
    result = run_posezoo("run", *LITE, "-i", photo, "-s", out, "--no-display", "--mirror", server.url,
                         env=posezoo_env(tmp_path), timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert out.is_file() and result.stdout == ""
    lines = result.stderr.splitlines()
    for name in LITE_FILES:
        fetched = [l for l in lines if l.startswith(f"posezoo: fetched {name} (2.")]
        converted = [l for l in lines if l.startswith(f"posezoo: converted {name} to ONNX in ")]
        assert len(fetched) == 1 and fetched[0].endswith(" s") and "MiB) in " in fetched[0], result.stderr
        assert len(converted) == 1 and converted[0].endswith(" s"), result.stderr
    assert all(l.startswith("posezoo: ") for l in lines), result.stderr
    assert "\r" not in result.stderr  # no bar drawn into a log

    again = run_posezoo("run", *LITE, "-i", photo, "-s", out, "--no-display", "--offline",
                        env=posezoo_env(tmp_path), timeout=300)  # fmt: skip
    assert again.returncode == 0 and "fetched" not in again.stderr and "converted" not in again.stderr, again.stderr


def test_quiet_prints_no_progress(server, tmp_path):
    result = run_posezoo("fetch", *LITE, "--mirror", server.url, "--quiet", env=posezoo_env(tmp_path), timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and result.stdout.count(".onnx") == 2


def test_a_failed_download_prints_its_error_alone(server, tmp_path):
    server.inject(LITE_FILES[1], "404")
    result = run_posezoo("fetch", *LITE, "--mirror", server.url, env=posezoo_env(tmp_path), timeout=120)
    line = one_line_error(result)
    assert result.returncode == 3 and "HTTP 404" in line
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"posezoo: fetched {LITE_FILES[0]} (2.8 MiB) in "), result.stderr
    assert lines[1] == line  # nothing for the file that failed but its error


def _python(code: str, env: dict, stderr=subprocess.PIPE) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=stderr,
                          text=True, timeout=300, stdin=subprocess.DEVNULL)  # fmt: skip


def test_load_progress_none_follows_the_terminal_true_forces_it(server, tmp_path):
    load = "import posezoo; posezoo.load('blazepose-full', 'lite', mirror={url!r}{extra}); print('loaded')"
    silent = _python(load.format(url=server.url, extra=""), posezoo_env(tmp_path / "a"))
    assert silent.returncode == 0 and silent.stdout == "loaded\n", silent.stderr
    assert "fetched" not in silent.stderr and "converted" not in silent.stderr  # stderr is no terminal

    forced = _python(load.format(url=server.url, extra=", progress=True"), posezoo_env(tmp_path / "b"))
    assert forced.returncode == 0 and forced.stdout == "loaded\n", forced.stderr
    assert forced.stderr.count("posezoo: fetched ") == 2 and forced.stderr.count("to ONNX in ") == 2

    env = posezoo_env(tmp_path / "c", POSEZOO_PROGRESS="0")  # what --quiet sets: over progress=True too
    quiet = _python(load.format(url=server.url, extra=", progress=True"), env)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr


def _run_in_pty(args: list[str], env: dict, timeout: float = 300) -> tuple[int, str, str]:
    """Run with stderr on a pseudo-terminal (80x24), stdout a pipe: (exit code, stdout, terminal text)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    seen = bytearray()
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # (EIO: every writer closed)
                data = b""
            if not data and proc.poll() is not None:
                break
            seen += data
        elif proc.poll() is not None:
            break
    os.close(master)
    out = proc.stdout.read().decode()
    proc.stdout.close()
    return proc.wait(timeout=30), out, seen.decode(errors="replace")


def test_on_a_terminal_the_download_is_a_live_bar(server, tmp_path):
    code, out, tty = _run_in_pty([sys.executable, "-m", "posezoo", "fetch", *LITE, "--mirror", server.url],
                                 posezoo_env(tmp_path))  # fmt: skip
    assert code == 0, tty
    assert out.count(".onnx") == 2 and "posezoo:" not in out
    for name in LITE_FILES:
        assert f"\rposezoo: fetching {name}: 100%" in tty, tty  # a bar redrawn in place (\r)
        assert f"posezoo: converting {name} to ONNX ...\r\x1b[Kposezoo: converted {name} to ONNX in " in tty, tty

    code, _, tty = _run_in_pty([sys.executable, "-m", "posezoo", "fetch", *LITE, "--all-variants", "-q",
                                "--mirror", server.url], posezoo_env(tmp_path))  # fmt: skip
    assert code == 0 and "posezoo:" not in tty, tty


# --------------------------------------------------------------------------------------------- no network


def test_unreachable_registry_url_is_printed_whole_with_a_mirror_fix(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    detector = build_registry(user_files=[]).files["pose_detection.tflite"]
    url = f"https://127.0.0.1:{port}/mediapipe-assets/a/long/path/that/a/user/must/copy/whole/far_away.tflite?generation=1678737489600422"
    assert len(url) > 120
    registry = tmp_path / "registry.yaml"
    registry.write_text(f"""version: 1
models:
  far-away-model:
    plugin: blazepose-full
    description: a model whose registry URL cannot be reached
    licence: Apache-2.0
    source: https://example.org
    default_variant: only
    variants:
      only:
        files:
          detector:
            name: far_away.tflite
            url: {url}
            digest: {detector.digest}
            size: {detector.size}
            format: tflite
          landmark:
            name: far_away.tflite
            url: {url}
            digest: {detector.digest}
            size: {detector.size}
            format: tflite
""")
    env = posezoo_env(tmp_path, POSEZOO_REGISTRY=str(registry), POSEZOO_FETCH_RETRIES="1")
    result = run_posezoo("fetch", "far-away-model", env=env, timeout=120)
    line = one_line_error(result)
    assert result.returncode == 3
    assert f" from {url}: the network is unreachable (127.0.0.1: connection refused)" in line, line
    assert "--mirror DIR" in line and "POSEZOO_MIRROR=DIR" in line, line
    assert "`posezoo info far-away-model` lists every file's URL" in line, line

    lite = build_registry(user_files=[]).files[LITE_FILES[1]]
    assert len(lite.url) > 97  # where the fix points: `posezoo info` shows every URL whole
    info = run_posezoo("info", "blazepose-full", env=posezoo_env(tmp_path), timeout=60)
    assert info.returncode == 0 and f"url:    {lite.url}\n" in info.stdout, info.stderr


def test_offline_error_says_where_the_url_is(tmp_path):
    result = run_posezoo("fetch", *LITE, "--offline", env=posezoo_env(tmp_path), timeout=60)
    line = one_line_error(result)
    assert "is not in the cache and posezoo is offline" in line and "--mirror DIR / POSEZOO_MIRROR" in line
    assert "`posezoo info blazepose-full` shows its URL" in line, line
