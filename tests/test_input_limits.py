"""Inputs that would hang or exhaust a reader are refused before any reader opens them: special files
given as images or videos (or lying in an input folder), and decompression bombs (a header claiming
more pixels than the limit), on real files and through the real CLI."""

from __future__ import annotations

import os
import struct
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from clitools import one_line_error, posezoo_env, run_posezoo
from posezoo.errors import InputError
from posezoo.io.items import local_items
from posezoo.io.sources import DEFAULT_MAX_PIXELS, MAX_PIXELS_ENV, decode_image, header_size, read_image


def bomb_jpeg(path: Path, width: int = 30000, height: int = 30000) -> Path:
    """A small real JPEG whose frame header (SOF0) claims ``width`` x ``height``."""
    ok, data = cv2.imencode(".jpg", np.full((64, 64, 3), 128, np.uint8))
    data = bytearray(data.tobytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    path.write_bytes(bytes(data))
    return path


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def bomb_png(path: Path, side: int = 50000) -> Path:
    """A PNG of a few dozen bytes whose header (IHDR) claims ``side`` x ``side`` RGB pixels."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + _chunk(b"IEND", b"")
    path.write_bytes(data)
    return path


def test_headers_are_read_without_decoding(tmp_path):
    assert header_size(bomb_jpeg(tmp_path / "a.jpg").read_bytes()) == (30000, 30000)
    png = bomb_png(tmp_path / "b.png")
    assert png.stat().st_size < 100
    assert header_size(png.read_bytes()) == (50000, 50000)
    assert header_size(b"not an image") is None


@pytest.mark.parametrize("make", [bomb_jpeg, bomb_png])
def test_a_decompression_bomb_is_refused_quickly(tmp_path, make):
    path = make(tmp_path / ("bomb.jpg" if make is bomb_jpeg else "bomb.png"))
    start = time.monotonic()
    with pytest.raises(InputError, match=r"claims \d+x\d+ pixels, more than the limit of 100,000,000") as err:
        read_image(path)
    assert time.monotonic() - start < 2.0
    assert MAX_PIXELS_ENV in str(err.value)
    with pytest.raises(InputError, match="claims"):
        decode_image(np.frombuffer(path.read_bytes(), np.uint8), "remote item")


def test_the_limit_is_settable(tmp_path, monkeypatch):
    ok, data = cv2.imencode(".png", np.zeros((40, 50, 3), np.uint8))
    path = tmp_path / "small.png"
    path.write_bytes(data.tobytes())
    assert read_image(path).shape == (40, 50, 3)
    monkeypatch.setenv(MAX_PIXELS_ENV, "1999")  # 50 x 40 = 2000 pixels
    with pytest.raises(InputError, match="50x40 pixels, more than the limit of 1,999"):
        read_image(path)
    monkeypatch.setenv(MAX_PIXELS_ENV, "abc")
    with pytest.raises(InputError, match="not a positive number"):
        read_image(path)
    assert DEFAULT_MAX_PIXELS == 100_000_000


def test_special_files_in_input_folders_are_skipped_and_refused_when_named(tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    os.mkfifo(folder / "fifo.mp4")
    os.mkfifo(folder / "fifo.jpg")
    ok, data = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))
    (folder / "real.jpg").write_bytes(data.tobytes())
    items = local_items(images=[folder])
    assert [Path(i.source).name for i in items] == ["real.jpg"]
    with pytest.raises(InputError, match="holds no video files"):
        local_items(videos=[folder])  # the FIFO named .mp4 is never opened
    with pytest.raises(InputError, match="not a regular file"):
        local_items(videos=[folder / "fifo.mp4"])


@pytest.fixture
def empty_env(tmp_path):
    """An empty cache, offline: a command that got as far as loading a model would fail with exit 3."""
    return posezoo_env(tmp_path, POSEZOO_OFFLINE="1")


@pytest.mark.parametrize("where", ["file", "folder"])
def test_a_fifo_given_as_a_video_is_refused_without_hanging(empty_env, tmp_path, where):
    fifo = tmp_path / "clip.mp4"
    os.mkfifo(fifo)
    args = ["-v", str(fifo)] if where == "file" else ["-v", str(tmp_path), "-i", str(tmp_path)]
    start = time.monotonic()
    result = run_posezoo("run", "movenet-lightning", "--no-display", *args, env=empty_env, cwd=tmp_path, timeout=60)
    line = one_line_error(result)
    assert result.returncode == 5, result.stderr
    assert ("not a regular file" in line) if where == "file" else ("holds no" in line), line
    assert time.monotonic() - start < 30


def test_silencing_native_stderr_is_safe_from_several_threads():
    """Threads decoding at once (a server) share one silence: descriptor 2 is the real stderr again
    once the last one leaves, however their windows overlap."""
    import threading

    from posezoo.io.sources import quiet_native_stderr

    before = os.fstat(2)
    barrier = threading.Barrier(4)
    seen = []

    def work():
        barrier.wait()
        for _ in range(200):
            with quiet_native_stderr():
                seen.append(os.fstat(2).st_ino)
                with quiet_native_stderr():  # nested, as quiet_opencv does
                    pass

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    after = os.fstat(2)
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)
    devnull = os.stat(os.devnull)
    assert set(seen) == {devnull.st_ino}  # silenced inside every window
