"""Temporary names are unique per process and per call: two runs writing one output never damage each
other's file (the last to finish wins, whole), and the temporaries of killed runs are cleaned once their
process is gone. Real OpenCV writers, real `posezoo run` processes, SIGKILL."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from clitools import posezoo_env
from mirror import fetched_home
from videotools import read_frames
from posezoo.io.sinks import JsonlSink, VideoSink
from posezoo.supply.atomic import STALE_AGE, clean_stale_temporaries, temporary_owner, temporary_path

FRAMES = 40  # frames of the clip the runs read (the 5-frame street clip, eight times)


def frame_count(path: Path) -> tuple[int, int]:
    """(frames the header states, frames that decode)."""
    cap = cv2.VideoCapture(str(path))
    stated = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    decoded = 0
    while cap.read()[0]:
        decoded += 1
    cap.release()
    return stated, decoded


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def dead_pid() -> int:
    """The pid of a process that has ended."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=60)
    return proc.pid


# --------------------------------------------------------------------------------------------- names


def test_temporary_names_carry_the_pid_and_are_unique(tmp_path):
    dest = tmp_path / "out.mp4"
    made = [temporary_path(dest, suffix=".tmp.mp4") for _ in range(50)]
    for fd, _ in made:
        os.close(fd)
    names = {p.name for _, p in made}
    assert len(names) == 50
    for name in names:
        assert name.startswith(f".out.mp4.{os.getpid()}.") and name.endswith(".tmp.mp4")
        assert temporary_owner(name) == ("out.mp4", os.getpid())


def test_two_video_sinks_for_one_path_do_not_share_a_temporary(tmp_path):
    """Before: both wrote `.same.partial.mp4`; closing the first failed with a false "is the disk full?"
    and the second published a damaged video."""
    path = tmp_path / "same.mp4"
    size = (64, 48)
    first = VideoSink(path, 10.0, size)
    second = VideoSink(path, 10.0, size)
    assert first.tmp != second.tmp
    for i in range(12):
        first.write(np.full((48, 64, 3), i * 10, np.uint8))
        if i < 7:
            second.write(np.full((48, 64, 3), 255 - i * 10, np.uint8))
    first.close()
    assert frame_count(path) == (12, 12)
    second.close()
    assert frame_count(path) == (7, 7)  # the last to finish wins, whole
    assert hidden(tmp_path) == []


def test_two_jsonl_sinks_for_one_path(tmp_path):
    path = tmp_path / "same.jsonl"
    a, b = JsonlSink(path), JsonlSink(path)
    for i in range(5):
        a.write({"a": i})
        b.write({"b": i})
    b.close()
    a.close()
    assert [json.loads(l) for l in path.read_text().splitlines()] == [{"a": i} for i in range(5)]
    assert hidden(tmp_path) == []


ATOMIC_WRITER = """
import sys
from posezoo.supply.atomic import write_bytes
for _ in range(int(sys.argv[3])):
    write_bytes(sys.argv[1], bytes([int(sys.argv[2])]) * (1 << 20))
"""


def test_two_processes_writing_one_file_atomically(tmp_path):
    target = tmp_path / "target.bin"
    procs = [subprocess.Popen([sys.executable, "-c", ATOMIC_WRITER, str(target), str(k), "60"]) for k in (1, 2)]
    deadline = time.monotonic() + 120
    reads = 0
    while any(p.poll() is None for p in procs):
        assert time.monotonic() < deadline
        if target.exists():
            data = target.read_bytes()
            assert len(data) == 1 << 20 and len(set(data)) == 1  # always one whole file, never a mix
            reads += 1
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    assert hidden(tmp_path) == [] and reads > 0


# --------------------------------------------------------------------------------------------- stale temporaries


def test_only_temporaries_of_gone_processes_untouched_for_long_are_cleaned(tmp_path):
    old = time.time() - 2 * STALE_AGE
    gone = dead_pid()
    paths = {
        "gone-old": tmp_path / f".out.jsonl.{gone}.abcdefgh.tmp",
        "gone-fresh": tmp_path / f".out.jsonl.{gone}.ijklmnop.tmp",
        "alive-old": tmp_path / f".out.jsonl.{os.getpid()}.qrstuvwx.tmp",
        "other-target": tmp_path / f".other.jsonl.{gone}.abcdefgh.tmp",
        "not-ours": tmp_path / ".out.jsonl.backup",
    }
    for key, p in paths.items():
        p.write_text(key)
        if key != "gone-fresh":
            os.utime(p, (old, old))
    assert clean_stale_temporaries(tmp_path, "out.jsonl") == [paths["gone-old"]]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for k, p in paths.items() if k != "gone-old")
    assert clean_stale_temporaries(tmp_path) == [paths["other-target"]]  # (the whole folder)


@pytest.fixture(scope="module")
def lite_env(shared_models, tmp_path_factory):
    root = fetched_home(shared_models, tmp_path_factory.mktemp("tmpnames"), ["blazepose-full", "--variant", "lite"])
    return posezoo_env(root, POSEZOO_OFFLINE="1")


@pytest.fixture(scope="module")
def clip(testdata, tmp_path_factory) -> Path:
    """The street clip eight times over: long enough for two runs to overlap."""
    frames = read_frames(testdata / "video" / "street_5frames.mp4")
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (w, h))
    for i in range(FRAMES):
        writer.write(frames[i % len(frames)])
    writer.release()
    assert frame_count(path) == (FRAMES, FRAMES)
    return path


def run_cmd(clip: Path) -> list[str]:
    return [sys.executable, "-m", "posezoo", "run", "blazepose-full", "--variant", "lite", "-v", str(clip),
            "-s", "same.mp4", "--json", "same.jsonl", "--no-display"]  # fmt: skip


def test_two_runs_writing_one_video_both_succeed_and_the_output_is_whole(lite_env, clip, tmp_path):
    """The first run is stopped (SIGSTOP) while it writes, until the second has opened its own outputs:
    the two writers overlap for sure. Before: both wrote `.same.partial.mp4`; one failed with "is the
    disk full?" (or the other published a damaged video)."""

    def videos() -> list[str]:  # (the temporaries of same.mp4, whatever their naming)
        return [n for n in hidden(tmp_path) if n.startswith(".same.") and n.endswith(".mp4")]

    def jsonls() -> list[str]:
        return [n for n in hidden(tmp_path) if n.startswith(".same.jsonl.")]

    def popen():
        return subprocess.Popen(run_cmd(clip), env=lite_env, cwd=tmp_path, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip

    procs = [popen()]
    try:
        deadline = time.monotonic() + 300
        while not videos():
            assert procs[0].poll() is None and time.monotonic() < deadline, procs[0].stderr.read()
            time.sleep(0.01)
        procs[0].send_signal(signal.SIGSTOP)
        procs.append(popen())
        while len(jsonls()) < 2:  # the second run has loaded its model and opened its outputs
            assert procs[1].poll() is None and time.monotonic() < deadline, procs[1].stderr.read()
            time.sleep(0.01)
        deadline_videos = time.monotonic() + 10
        while len(videos()) < 2 and time.monotonic() < deadline_videos:
            time.sleep(0.01)
        seen = len(videos())  # two temporaries of one output, one per run
        procs[0].send_signal(signal.SIGCONT)
        results = [p.communicate(timeout=500) for p in procs]
    finally:
        for p in procs:
            p.send_signal(signal.SIGCONT)
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in results]
    assert frame_count(tmp_path / "same.mp4") == (FRAMES, FRAMES)
    assert len((tmp_path / "same.jsonl").read_text().splitlines()) == FRAMES
    assert hidden(tmp_path) == [] and seen == 2


def test_a_killed_run_leaves_temporaries_that_a_later_run_cleans(lite_env, clip, tmp_path):
    proc = subprocess.Popen(run_cmd(clip), env=lite_env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while len(hidden(tmp_path)) < 2:  # the video's and the JSON Lines' temporaries
            assert proc.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    left = hidden(tmp_path)
    assert len(left) == 2 and all(temporary_owner(n)[1] == proc.pid for n in left), left
    assert not (tmp_path / "same.mp4").exists() and not (tmp_path / "same.jsonl").exists()
    old = time.time() - 2 * STALE_AGE
    for name in left:
        os.utime(tmp_path / name, (old, old))
    fresh = tmp_path / f".same.jsonl.{dead_pid()}.abcdefgh.tmp"  # a gone process's, but recent: kept
    fresh.write_text("x")

    result = subprocess.run(run_cmd(clip), env=lite_env, cwd=tmp_path, capture_output=True, text=True, timeout=500)
    assert result.returncode == 0, result.stderr
    assert hidden(tmp_path) == [fresh.name]
    assert frame_count(tmp_path / "same.mp4") == (FRAMES, FRAMES)
    assert re.fullmatch(r"(\{.*\}\n){%d}" % FRAMES, (tmp_path / "same.jsonl").read_text())
