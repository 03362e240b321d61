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
