"""Hardening, round two (issue 26), classes 2, 7, 8, 9, 10 and 11, on the real command, real files,
mounts, processes and signals: outputs that would overwrite an input, the Python API's argument checks,
plugins that break, workers that outlive their parent, batch output after a kill, and the environment's
faults (a full disk, few file descriptors, a deleted working folder, POSEZOO_THREADS)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from clitools import one_line_error, posezoo_env, run_posezoo
from mirror import build_mirror

VIDEO = "street_5frames.mp4"


@pytest.fixture(scope="module")
def filled(shared_models, tmp_path_factory) -> Path:
    """A POSEZOO_HOME's parent whose cache holds blazepose-full lite, fetched through the real CLI."""
    root = tmp_path_factory.mktemp("hardening2")
    build_mirror(shared_models, root / "mirror")
    for model in (["blazepose-full", "--variant", "lite"], ["movenet-lightning"]):
        result = run_posezoo("fetch", *model, "--mirror", root / "mirror", env=posezoo_env(root), timeout=300)
        assert result.returncode == 0, result.stderr
    return root


@pytest.fixture
def env(filled, tmp_path):
    return posezoo_env(filled, POSEZOO_OFFLINE="1", XDG_CONFIG_HOME=str(tmp_path / "config"))


@pytest.fixture
def photo(tmp_path) -> Path:
    path = tmp_path / "mine.jpg"
    shutil.copy(Path(__file__).parents[1] / "posezoo" / "data" / "coco_000000000785.jpg", path)
    return path


def error_line(result) -> str:
    """:func:`one_line_error`, with the progress bar's lines (tqdm draws on stderr) left out."""
    lines = [l for l in result.stderr.splitlines() if not re.match(r"^\s*\d+%\|", l)]
    return one_line_error(subprocess.CompletedProcess(result.args, result.returncode, result.stdout, "\n".join(lines)))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_lite(*args, env, cwd, timeout=300):
    return run_posezoo("run", "blazepose-full", "--variant", "lite", "--no-display", *args, env=env, cwd=cwd,
                       timeout=timeout)  # fmt: skip


# ------------------------------------------------------------------- class 10: inputs overwritten


def test_outputs_that_are_an_input_are_refused_before_anything_runs(env, tmp_path, photo, testdata):
    before = digest(photo)
    (tmp_path / "hard.jpg").hardlink_to(photo)
    (tmp_path / "link.jpg").symlink_to(photo)
    (tmp_path / "d").mkdir()
    shutil.copy(photo, tmp_path / "d" / "a.png")
    video = tmp_path / "clip.mp4"
    shutil.copy(testdata / "video" / VIDEO, video)
    cases = [
        (["-i", "mine.jpg", "--json", "mine.jpg"], "--json mine.jpg would overwrite the input"),
        (["-i", "mine.jpg", "-s", "mine.jpg"], "-s mine.jpg would overwrite the input"),
        (["-i", "mine.jpg", "-s", "./sub/../mine.jpg"], "would overwrite the input"),
        (["-i", "mine.jpg", "-s", "hard.jpg"], "-s hard.jpg would overwrite the input mine.jpg"),
        (["-i", "mine.jpg", "--json", "link.jpg"], "--json link.jpg would overwrite the input mine.jpg"),
        (["-i", "d/a.png", "-s", "d"], "would overwrite the input d/a.png"),
        (["-i", "mine.jpg", "--coco", "mine.jpg"], "--coco mine.jpg would overwrite"),
        (["-v", "clip.mp4", "-s", "clip.mp4"], "-s clip.mp4 would overwrite the input clip.mp4"),
        (["-i", "mine.jpg", "-i", "d", "--json", "mine.jpg", "--jobs", "2"], "--json mine.jpg would overwrite"),
    ]
    (tmp_path / "sub").mkdir()
    video_before = digest(video)
    for args, expected in cases:
        start = time.monotonic()
        result = run_lite(*args, env=env, cwd=tmp_path, timeout=120)
        line = one_line_error(result)
        assert result.returncode == 5 and expected in line, (args, result.stderr)
        assert "running" not in result.stderr, (args, result.stderr)  # refused before the model loads
        assert time.monotonic() - start < 60
    assert digest(photo) == before and digest(tmp_path / "d" / "a.png") == before
    assert digest(video) == video_before


def test_batch_out_over_its_inputs_is_refused(env, tmp_path, photo):
    (tmp_path / "d").mkdir()
    shutil.copy(photo, tmp_path / "d" / "a.png")
    for args in (["d", "--out", "d"], ["d/a.png", "--out", "d"], ["d", "--out", "."]):
        result = run_posezoo("batch", "blazepose-full", "--variant", "lite", *args, env=env, cwd=tmp_path, timeout=120)
        assert result.returncode == 5 and "would write over the input" in one_line_error(result), result.stderr
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["a.png"]


# ------------------------------------------------------------------- class 11: the Python API


API_SCRIPT = textwrap.dedent("""
    import json, math
    import numpy as np
    import posezoo
    from posezoo.errors import PosezooError

    out = {}
    def attempt(key, call):
        try:
            value = call()
            out[key] = ["ok", repr(value)[:200]]
        except PosezooError as exc:
            out[key] = [type(exc).__name__, str(exc)]
        except Exception as exc:
            out[key] = ["other " + type(exc).__name__, str(exc)]

    for name in (None, 3, b"x"):
        attempt(f"load {name!r}", lambda: posezoo.load(name))
    attempt("variant 1", lambda: posezoo.load("blazepose-full", variant=1))
    image = np.zeros((240, 320, 3), np.uint8)
    for name, kw in (("blazepose-full", dict(variant="lite")), ("movenet-lightning", {})):
        tracker = posezoo.load(name, offline=True, **kw).tracker()
        for ts in (float("nan"), float("inf"), float("-inf"), "1", True):
            attempt(f"{name} {ts!r}", lambda: tracker.update(image, timestamp=ts))
        attempt(f"{name} 1.0", lambda: tracker.update(image, timestamp=1.0))
        attempt(f"{name} back", lambda: tracker.update(image, timestamp=0.5))
        tracker.reset()
        attempt(f"{name} after reset", lambda: tracker.update(image, timestamp=np.float32(0.5)))
        attempt(f"{name} default", lambda: tracker.update(image))
        out[f"{name} frames"] = tracker.frames
    print(json.dumps(out))
""")


def test_api_refuses_bad_names_and_timestamps_clearly(env, tmp_path):
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-c", API_SCRIPT], env=env, cwd=tmp_path, capture_output=True, text=True,
                            timeout=240)  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.splitlines()[-1])
    for name in ("None", "3", "b'x'"):
        assert out[f"load {name}"][0] == "UsageError" and "model name must be a string" in out[f"load {name}"][1], out
    assert out["variant 1"][0] == "UsageError", out
    for model in ("blazepose-full", "movenet-lightning"):
        for ts in ("nan", "inf", "-inf"):
            kind, text = out[f"{model} {ts}"]
            assert kind == "UsageError" and "finite number of seconds" in text, (model, ts, out)
        assert out[f"{model} '1'"][0] == "UsageError" and out[f"{model} True"][0] == "UsageError", out
        assert out[f"{model} 1.0"][0] == "ok", out
        kind, text = out[f"{model} back"]
        assert kind == "UsageError" and "before the previous frame" in text and "reset()" in text, out
        assert out[f"{model} after reset"][0] == "ok" and out[f"{model} default"][0] == "ok", out
        assert out[f"{model} frames"] == 3, out  # refused updates are not frames
        assert "nan" not in out[f"{model} after reset"][1].lower(), out
    assert time.monotonic() - start < 240


def test_threshold_and_fps_nan_are_usage_errors(env, tmp_path, photo, testdata):
    for args in (["run", "blazepose-full", "--variant", "lite", "--no-display", "-i", "mine.jpg", "--json", "o.jsonl",
                  "--threshold", "nan"],
                 ["batch", "blazepose-full", "--variant", "lite", "mine.jpg", "--out", "o", "--threshold", "nan"],
                 ["run", "blazepose-full", "--variant", "lite", "--no-display", "-v", testdata / "video" / VIDEO,
                  "--json", "o.jsonl", "--option", "fps=nan"],
                 ["run", "movenet-lightning", "--no-display", "-v", testdata / "video" / VIDEO, "--json", "o.jsonl",
                  "--option", "fps=nan"]):  # fmt: skip
        result = run_posezoo(*args, env=env, cwd=tmp_path, timeout=120)
        line = error_line(result)
        assert result.returncode == 2 and "nan" in line, (args, result.stderr)


# ------------------------------------------------------------------- class 9: plugins


NONE_PLUGIN = textwrap.dedent(
    '''
    """A family whose build returns None, and one whose build raises; plus a print at import."""
    import hashlib
    import os
    import sys
    from dataclasses import dataclass

    from posezoo import hookimpl
    from posezoo.inference.model import Family

    print("hello from a chatty plugin")
    os.write(1, b"and from its native code\\n")

    @dataclass(frozen=True)
    class NoneSpec:
        name: str
        family: str
        keypoint_names: tuple = ("nose", "neck")
        skeleton: tuple = ((0, 1),)

    def build_none(spec, files, *, variant=None, device="auto"):
        print("building")  # (at load time stdout is the command's: only import and hooks are redirected)
        return None

    def build_raises(spec, files, *, variant=None, device="auto"):
        raise KeyError("weights")

    @hookimpl
    def register_families(register):
        register(Family(name="nonefam", spec_type=NoneSpec, roles=("model",), build=build_none))
        register(Family(name="raisefam", spec_type=NoneSpec, roles=("model",), build=build_raises))

    @hookimpl
    def register_models(register):
        print("registering")
        register(NoneSpec("none-pose", "nonefam"))
        register(NoneSpec("raise-pose", "raisefam"))

    DATA = b"not really an onnx model"

    @hookimpl
    def registry_entries():
        def entry(name):
            f = {"name": name + ".onnx", "url": "https://example.org/" + name + ".onnx", "format": "onnx",
                 "digest": "sha256:" + hashlib.sha256(DATA).hexdigest(), "size": len(DATA)}
            return {"plugin": "chatty", "description": name, "licence": "MIT", "source": "https://example.org",
                    "default_variant": "base", "variants": {"base": {"files": {"model": f}}}}
        return {"none-pose": entry("none-pose"), "raise-pose": entry("raise-pose")}
    '''
)


def test_plugin_build_failures_name_the_plugin_and_prints_stay_off_stdout(tmp_path, photo):
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "chatty.py").write_text(NONE_PLUGIN)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name in ("none-pose", "raise-pose"):
        (mirror / f"{name}.onnx").write_bytes(b"not really an onnx model")
    env = posezoo_env(tmp_path, POSEZOO_PLUGINS_PATH=str(folder), POSEZOO_MIRROR=str(mirror))
    info = run_posezoo("info", "none-pose", "--json", env=env, cwd=tmp_path, timeout=120)
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["plugin"] == "chatty"  # stdout is the JSON alone
    assert "hello from a chatty plugin" in info.stderr and "and from its native code" in info.stderr
    assert "registering" in info.stderr
    listed = run_posezoo("list", env=env, cwd=tmp_path, timeout=120)
    assert listed.returncode == 0 and listed.stdout.splitlines()[0].startswith("MODEL"), listed.stdout
    for model, expected in (("none-pose", "build returned NoneType for model 'none-pose', not a PoseModel"),
                            ("raise-pose", "failed to build model 'raise-pose': KeyError")):  # fmt: skip
        start = time.monotonic()
        result = run_posezoo("run", model, "--no-display", "-i", photo, "--json", "o.jsonl", env=env, cwd=tmp_path,
                             timeout=120)  # fmt: skip
        lines = [l for l in result.stderr.splitlines() if l.startswith("posezoo: ")]  # (the plugin's own chatter aside)
        assert result.returncode == 2 and lines[-1].startswith("posezoo: error: ") and "Traceback" not in result.stderr
        assert "plugin 'chatty'" in lines[-1] and expected in lines[-1], result.stderr
        assert "internal error" not in result.stderr
        assert time.monotonic() - start < 120


# ------------------------------------------------------------------- class 2: orphaned workers


@pytest.fixture(scope="module")
def long_videos(tmp_path_factory) -> Path:
    """Four 300-frame videos (a few seconds of work each on one core), so a run is killed mid-way."""
    import cv2
    import numpy as np

    folder = tmp_path_factory.mktemp("long-videos")
    image = cv2.resize(cv2.imread(str(Path(__file__).parents[1] / "posezoo" / "data" / "coco_000000000785.jpg")), (320, 240))
    for k in range(4):
        writer = cv2.VideoWriter(str(folder / f"v{k}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 30, (320, 240))
        for i in range(300):
            writer.write(np.roll(image, 3 * i + k, axis=1))
        writer.release()
    return folder


def descendants(pid: int) -> set[int]:
    """Every living process below ``pid`` (read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    out, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.add(child)
            todo.append(child)
    return out


def alive(pids: set[int]) -> set[int]:
    left = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if state[state.rindex(")") + 2] != "Z":
            left.add(pid)
    return left


def start_and_wait_for_workers(args, env, cwd, log: Path):
    """Start ``posezoo ARGS`` and return (process, its helper and worker processes) once two workers run."""
    proc = subprocess.Popen([sys.executable, "-m", "posezoo", *map(str, args)], env=env, cwd=cwd,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log.open("w"))  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        kids = descendants(proc.pid)
        # the resource tracker, the fork server and one worker forked from it
        if len(kids) >= 3 and "running" in log.read_text():
            time.sleep(2)  # the workers are in their first units
            return proc, descendants(proc.pid)
        assert proc.poll() is None, log.read_text()
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"no workers started: {log.read_text()}")


def snapshot(folder: Path) -> dict[str, int]:
    return {str(p): p.stat().st_size for p in folder.rglob("*") if p.is_file()} if folder.exists() else {}


COMMANDS = {
    "run": lambda videos, out: ["run", "blazepose-full", "--variant", "lite", "--no-display", "-v", videos,
                                "--json", f"{out}/", "--jobs", "2"],
    "batch": lambda videos, out: ["batch", "blazepose-full", "--variant", "lite", videos, "--out", out, "--workers", "2"],
}


@pytest.mark.parametrize("command", ["run", "batch"])
def test_sigkill_to_the_parent_takes_its_workers_down(env, tmp_path, long_videos, command):
    out = tmp_path / "out"
    proc, helpers = start_and_wait_for_workers(COMMANDS[command](long_videos, out), env, tmp_path, tmp_path / "log")
    os.kill(proc.pid, 9)
    proc.wait(timeout=10)
    start = time.monotonic()
    while alive(helpers) and time.monotonic() - start < 20:
        time.sleep(0.2)
    assert not alive(helpers), f"still alive {time.monotonic() - start:.1f} s after the parent's death: {alive(helpers)}"
    written = snapshot(out)
    time.sleep(1.5)
    assert snapshot(out) == written  # nothing writes any more
    assert not [p for p in written if Path(p).name.startswith(".")], written  # no temporary left behind


@pytest.mark.parametrize("command", ["run", "batch"])
def test_sigterm_is_a_clean_stop_with_one_line_and_exit_143(env, tmp_path, long_videos, command):
    out = tmp_path / "out"
    proc, helpers = start_and_wait_for_workers(COMMANDS[command](long_videos, out), env, tmp_path, tmp_path / "log")
    start = time.monotonic()
    os.kill(proc.pid, 15)
    rc = proc.wait(timeout=60)
    took = time.monotonic() - start
    stderr = (tmp_path / "log").read_text()
    lines = [l for l in stderr.splitlines() if l.strip()]
    assert rc == 143 and lines[-1] == "posezoo: terminated", stderr
    assert "Traceback" not in stderr and "internal error" not in stderr
    assert took < 30, took
    deadline = time.monotonic() + 10
    while alive(helpers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(helpers), alive(helpers)
    assert not [p for p in snapshot(out) if Path(p).name.startswith(".")]


# ------------------------------------------------------------------- class 8: the environment


@pytest.fixture
def images(tmp_path, photo) -> Path:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(6):
        shutil.copy(photo, folder / f"i{i}.jpg")
    return folder


def test_posezoo_threads_is_checked_and_honoured_with_jobs(env, tmp_path, images):
    for args in (["run", "blazepose-full", "--variant", "lite", "--no-display", "-i", images, "--json", "o.jsonl", "-j", "2"],
                 ["run", "blazepose-full", "--variant", "lite", "--no-display", "-i", images, "--json", "o.jsonl", "-j", "1"],
                 ["batch", "blazepose-full", "--variant", "lite", images, "--out", "bo", "--workers", "2"]):  # fmt: skip
        result = run_posezoo(*args, env=dict(env, POSEZOO_THREADS="abc"), cwd=tmp_path, timeout=120)
        assert result.returncode == 5 and "POSEZOO_THREADS is 'abc'" in one_line_error(result), result.stderr
        assert "running" not in result.stderr  # refused before any work
    result = run_posezoo("run", "blazepose-full", "--variant", "lite", "--no-display", "-i", images, "--json", "o.jsonl",
                         "-j", "2", env=dict(env, POSEZOO_THREADS="3"), cwd=tmp_path, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "on 2 worker(s), 3 thread(s) each" in result.stderr


def test_too_few_file_descriptors_is_one_line(env, tmp_path, images):
    import resource

    def low_limit():  # the 20 is just enough on some runs (the pool opens its pipes as it goes); 14 never is
        resource.setrlimit(resource.RLIMIT_NOFILE, (14, 14))

    result = subprocess.run([sys.executable, "-m", "posezoo", "run", "blazepose-full", "--variant", "lite", "--no-display",
                             "-i", str(images), "--json", "o.jsonl", "-j", "2"], env=env, cwd=tmp_path,
                            preexec_fn=low_limit, capture_output=True, text=True, timeout=120)  # fmt: skip
    line = one_line_error(result)
    assert "too many open files (the limit is 14)" in line and "ulimit -n" in line, result.stderr


def test_a_deleted_working_folder_is_one_line(env, tmp_path, images):
    gone = tmp_path / "gone"
    gone.mkdir()
    proc_args = [
        ["run", "blazepose-full", "--variant", "lite", "--no-display", "-i", images, "--json", tmp_path / "o.jsonl", "-j", "2"],
        ["batch", "blazepose-full", "--variant", "lite", images, "--out", tmp_path / "bo", "--workers", "2"],
    ]
    for args in proc_args:
        script = f"import os, runpy, sys; os.chdir({str(gone)!r}); os.rmdir({str(gone)!r}); sys.argv = ['posezoo'] + {list(map(str, args))!r}; runpy.run_module('posezoo', run_name='__main__')"
        result = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True,
                                timeout=120)  # fmt: skip
        if not gone.exists():
            gone.mkdir()
        assert "working folder no longer exists" in one_line_error(result), result.stderr


def test_a_full_disk_for_one_json_file_with_jobs_is_one_line(env, tmp_path, images):
    from fstools import small_disk

    many = tmp_path / "many"
    many.mkdir()
    for i in range(40):
        shutil.copy(images / "i0.jpg", many / f"m{i:02d}.jpg")
    with small_disk(tmp_path / "disk", "16k") as disk:
        start = time.monotonic()
        result = run_posezoo("run", "blazepose-full", "--variant", "lite", "--no-display", "-i", many, "--json",
                             disk / "all.jsonl", "-j", "2", env=env, cwd=tmp_path, timeout=180)  # fmt: skip
        line = error_line(result)
        assert result.returncode == 5 and "all.jsonl" in line and "the disk is full" in line, result.stderr
        assert "internal error" not in result.stderr
        assert list(disk.iterdir()) == []  # no partial file, no temporary
        assert time.monotonic() - start < 180


# ------------------------------------------------------------------- class 7: batch output


def _rows_by_key(folder: Path):
    import pandas as pd

    df = pd.read_parquet(folder)
    if not len(df):
        return df, []
    return df, sorted(zip(df["source"], df["frame"], df["pose"]))


def test_a_killed_batch_is_marked_incomplete_and_resumable(env, tmp_path, long_videos, images):
    out = tmp_path / "out"
    args = ["batch", "blazepose-full", "--variant", "lite", images, long_videos, "--out", out, "--workers", "2"]
    proc, _ = start_and_wait_for_workers(args, env, tmp_path, tmp_path / "log")
    deadline = time.monotonic() + 60
    while not list(out.glob("_incomplete/*.parquet")) and time.monotonic() < deadline:  # some units are done
        time.sleep(0.2)
    os.kill(proc.pid, 9)
    proc.wait(timeout=10)
    time.sleep(3)  # (the workers stop within 2 s)
    assert not (out / "_posezoo.json").exists()
    assert list(out.glob("_incomplete/*.parquet")) and not list(out.glob("*.parquet"))
    df, _ = _rows_by_key(out)
    assert len(df) == 0  # readers of the folder take nothing of an unfinished run
    again = run_posezoo(*args, env=env, cwd=tmp_path, timeout=120)
    line = one_line_error(again)
    assert "holds an interrupted batch run" in line and "--resume" in line, again.stderr
    resumed = run_posezoo(*args, "--resume", env=env, cwd=tmp_path, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming: " in resumed.stderr and "resuming: 0 of" not in resumed.stderr, resumed.stderr
    assert (out / "_posezoo.json").is_file() and not (out / "_incomplete").exists()
    clean = tmp_path / "clean"
    fresh = run_posezoo(*args[:-4], "--out", clean, "--workers", "2", env=env, cwd=tmp_path, timeout=300)
    assert fresh.returncode == 0, fresh.stderr
    (df, keys), (clean_df, clean_keys) = _rows_by_key(out), _rows_by_key(clean)
    assert keys == clean_keys and len(set(keys)) == len(keys)  # every row once, as a run never killed
    sidecar = json.loads((out / "_posezoo.json").read_text())
    assert sidecar["rows"] == len(clean_df) and sidecar["inputs"] == 10
    finished = run_posezoo(*args, "--resume", env=env, cwd=tmp_path, timeout=120)
    assert "already holds the results of a finished batch run" in one_line_error(finished)


def test_batch_out_with_stray_files_read_only_or_full_is_refused_up_front(env, tmp_path, images):
    from fstools import read_only_view, small_disk

    def batch(out, *extra):
        return run_posezoo("batch", "blazepose-full", "--variant", "lite", images, "--out", out, *extra, env=env,
                           cwd=tmp_path, timeout=120)  # fmt: skip

    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "notes.txt").write_text("mine")
    result = batch(stray)
    assert "holds files that are not a batch run's (notes.txt)" in one_line_error(result), result.stderr
    assert "running" not in result.stderr and sorted(p.name for p in stray.iterdir()) == ["notes.txt"]
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / ".DS_Store").write_text("x")
    (hidden / "_notes").write_text("x")
    ok = batch(hidden)
    assert ok.returncode == 0, ok.stderr
    assert json.loads((hidden / "_posezoo.json").read_text())["rows"] == 6
    src = tmp_path / "src"
    src.mkdir()
    engines = [[]]
    try:
        import ray  # noqa: F401

        engines.append(["--ray", "local"])
    except ImportError:
        pass
    with read_only_view(src, tmp_path / "ro") as ro:
        for extra in engines:
            start = time.monotonic()
            result = batch(ro / "o", *extra)
            line = one_line_error(result)
            assert "cannot write into --out" in line and "Read-only file system" in line, result.stderr
            assert "running" not in result.stderr and time.monotonic() - start < 60
    with small_disk(tmp_path / "disk", "64k") as disk:
        (disk / "fill").write_bytes(b"\0" * 60 * 1024)
        for extra in engines:
            result = batch(disk / "o", *extra)
            assert "the disk is full" in one_line_error(result), result.stderr
            assert "running" not in result.stderr


def test_a_disk_that_fills_during_a_batch_is_one_line(env, tmp_path, long_videos):
    from fstools import small_disk

    with small_disk(tmp_path / "disk", "1200k") as disk:
        start = time.monotonic()
        result = run_posezoo("batch", "blazepose-full", "--variant", "lite", long_videos, "--out", disk / "o",
                             "--workers", "2", env=env, cwd=tmp_path, timeout=300)  # fmt: skip (parts of ~450 kB)
        line = one_line_error(result)
        assert "no space left on the device" in line or "disk is full" in line, result.stderr
        assert "internal error" not in result.stderr and "skipped" not in result.stderr, result.stderr
        assert not (disk / "o" / "_posezoo.json").exists()
        assert time.monotonic() - start < 300
