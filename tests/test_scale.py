"""Many inputs: ``posezoo run --jobs`` (a process pool), ``posezoo batch`` (Parquet, local pool or Ray Data).

Real weights from a mirror of ../shared, the shared photos and clips copied into a folder tree, the
real CLI in subprocesses, a real local Ray (``ray.init(num_cpus=2)``), files read back.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from clitools import default_sigint, one_line_error, posezoo_env, run_posezoo
from mirror import fetched_home

TOL = 1e-4  # JSON Lines round landmarks to 4 decimals


@pytest.fixture(scope="module")
def home(shared_models, tmp_path_factory):
    """A POSEZOO_HOME holding blazepose-full (full), fetched through the real CLI from a mirror."""
    return fetched_home(shared_models, tmp_path_factory.mktemp("scale"), ["blazepose-full"])


@pytest.fixture
def env(home, tmp_path):
    return posezoo_env(home, POSEZOO_OFFLINE="1", XDG_CONFIG_HOME=str(tmp_path / "config"))


@pytest.fixture(scope="module")
def data(testdata, tmp_path_factory) -> Path:
    """data/photos/{3 photos, sub/1 photo}, data/clips/{2 clips of 5 frames}."""
    root = tmp_path_factory.mktemp("data") / "data"
    (root / "photos" / "sub").mkdir(parents=True)
    (root / "clips").mkdir()
    for i, src in enumerate(sorted((testdata / "images").iterdir())):
        shutil.copyfile(src, root / "photos" / ("sub" if i == 0 else "") / src.name)
    for src in (testdata / "video").iterdir():
        shutil.copyfile(src, root / "clips" / src.name)
    return root


@pytest.fixture(scope="module")
def reference(home, data, tmp_path_factory) -> dict:
    """``posezoo run --jobs 1`` over the data: {(file name, frame, pose index): pose record}, and the run's folder."""
    out = tmp_path_factory.mktemp("ref")
    env = posezoo_env(home, POSEZOO_OFFLINE="1")
    result = run_posezoo(
        "run", "blazepose-full", "-i", data / "photos", "-v", data / "clips", "-s", "ann", "--json", "all.jsonl",
        "--jobs", "1", env=env, cwd=out,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return {"poses": _poses_of_jsonl(out / "all.jsonl"), "dir": out}


def _poses_of_jsonl(path: Path) -> dict:
    poses = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        for i, pose in enumerate(record["poses"]):
            poses[(Path(record["source"]).name, record["frame"], i)] = pose
    return poses


def _rows(folder: Path | str) -> dict:
    """The Parquet rows of a batch output, read back with pyarrow: {(file name, frame, pose): row}."""
    import pyarrow.parquet as pq

    table = pq.read_table(str(folder))
    return {(Path(r["source"]).name, r["frame"], r["pose"]): r for r in table.to_pylist()}


def _assert_rows_match_run(rows: dict, run: dict) -> None:
    assert sorted(rows) == sorted(run) and len(rows) == 14  # 4 photos + 2 clips x 5 frames, one person each
    for key, row in rows.items():
        pose = run[key]
        assert row["model"] == "blazepose-full" and row["variant"] == "full"
        assert row["columns"] == pose["columns"] == ["x", "y", "z", "visibility", "presence"]
        assert np.abs(np.array(row["keypoints"]) - np.array(pose["landmarks"])).max() <= TOL, key
        assert np.abs(np.array(row["world_landmarks"]) - np.array(pose["world_landmarks"])).max() <= TOL, key
        assert abs(row["score"] - pose["score"]) <= TOL and abs(row["presence"] - pose["presence"]) <= TOL
        assert np.abs(np.array(row["box"]) - np.array(pose["box"])).max() <= 0.01  # JSON: 2 decimals
        assert row["track_id"] == pose["track_id"]
        assert (row["track_id"] is None) == key[0].endswith(".jpg")
        # one part, body: all rows (Parquet: the range; JSON: the rows), no label
        assert dict(row["parts"]) == {"body": [0, 33]} and pose["parts"] == {"body": pose["landmarks"]}
        assert row["label"] is None is pose["label"] and row["label_score"] is None is pose["label_score"]


# ------------------------------------------------------------------------------------------ posezoo run


def test_jobs_2_gives_the_results_of_jobs_1(env, data, reference, tmp_path):
    result = run_posezoo(
        "run", "blazepose-full", "-i", data / "photos", "-v", data / "clips", "-s", "ann", "--json", "all.jsonl",
        "--jobs", "2", env=env, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "on 2 worker(s), 1 thread(s) each" in result.stderr
    ref_lines = (reference["dir"] / "all.jsonl").read_text().splitlines()
    lines = (tmp_path / "all.jsonl").read_text().splitlines()
    # input order: images (sorted by path, sub/ after the top files), then the videos' frames
    names = [(Path(json.loads(l)["source"]).name, json.loads(l)["frame"]) for l in lines]
    assert names == [(Path(json.loads(l)["source"]).name, json.loads(l)["frame"]) for l in ref_lines]
    assert [n for n, _ in names[:4]] == sorted(p.name for p in (data / "photos").iterdir() if p.is_file()) + [
        next((data / "photos" / "sub").iterdir()).name
    ]
    poses, ref = _poses_of_jsonl(tmp_path / "all.jsonl"), reference["poses"]
    assert sorted(poses) == sorted(ref) and len(poses) == 14
    for key, pose in poses.items():
        assert np.abs(np.array(pose["landmarks"]) - np.array(ref[key]["landmarks"])).max() <= TOL
    # annotated copies mirror the input tree, one per input, readable
    written = sorted(p.relative_to(tmp_path / "ann").as_posix() for p in (tmp_path / "ann").rglob("*") if p.is_file())
    expected = sorted(p.relative_to(reference["dir"] / "ann").as_posix() for p in (reference["dir"] / "ann").rglob("*") if p.is_file())
    assert written == expected and len(written) == 6
    assert {w.split("/")[0] for w in written} == {"photos", "clips"} and any(w.startswith("photos/sub/") for w in written)
    for rel in written:
        if rel.endswith(".png"):
            assert cv2.imread(str(tmp_path / "ann" / rel)) is not None
        else:
            cap = cv2.VideoCapture(str(tmp_path / "ann" / rel))
            assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
            cap.release()


def test_a_corrupt_input_is_reported_and_the_others_written(env, data, tmp_path):
    inputs = tmp_path / "in"
    shutil.copytree(data, inputs)
    (inputs / "photos" / "broken.jpg").write_bytes(b"\xff\xd8 not really a JPEG")
    (inputs / "clips" / "broken.mp4").write_bytes(b"not a video")
    result = run_posezoo(
        "run", "blazepose-full", "-i", inputs / "photos", "-v", inputs / "clips", "-s", "ann", "--json", "out/",
        "--jobs", "2", env=env, cwd=tmp_path,
    )  # fmt: skip
    line = one_line_error(result)
    assert result.returncode == 5 and "2 of 8 inputs failed" in line
    skipped = [l for l in result.stderr.splitlines() if l.startswith("posezoo: skipped:")]
    assert len(skipped) == 2 and any("broken.jpg" in l for l in skipped) and any("broken.mp4" in l for l in skipped)
    jsons = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.jsonl"))
    assert len(jsons) == 6 and not any("broken" in j for j in jsons)
    assert sum(len(p.read_text().splitlines()) for p in (tmp_path / "out").rglob("*.jsonl")) == 14
    annotated = [p for p in (tmp_path / "ann").rglob("*") if p.is_file()]
    assert len(annotated) == 6 and not any(p.name.startswith(".") or "broken" in p.name for p in annotated)


def test_resume_skips_finished_inputs(env, data, tmp_path):
    shutil.copytree(data, tmp_path / "in")
    # the outputs inside an input folder: never listed as inputs on the next run
    args = ("run", "blazepose-full", "-i", "in/photos", "-v", "in/clips", "-s", "in/photos/ann", "--json", "in/photos/js/",
            "--jobs", "2")  # fmt: skip
    first = run_posezoo(*args, env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    outputs = sorted(p for p in (tmp_path / "in" / "photos").glob("[aj]*/**/*") if p.is_file())
    assert len(outputs) == 12  # 6 inputs: an annotated copy and a JSON Lines file each
    gone = tmp_path / "in" / "photos" / "ann" / "clips" / "street_5frames.mp4"
    gone.unlink()
    stamps = {p: p.stat().st_mtime_ns for p in outputs if p.stem != "street_5frames"}  # the other 5 inputs
    again = run_posezoo(*args, "--resume", env=env, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "resuming: 5 of 6 inputs already done" in again.stderr and "over 1 input(s)" in again.stderr
    assert gone.is_file() and {p: p.stat().st_mtime_ns for p in stamps} == stamps
    # one JSON Lines file cannot be checked input by input
    line = one_line_error(run_posezoo(*args[:-4], "--json", "all.jsonl", "--resume", env=env, cwd=tmp_path))
    assert "--resume" in line and "--json DIR/" in line


def test_ctrl_c_stops_the_workers_cleanly(env, tmp_path, coco_photo):
    from posezoo.drivers.bench import write_clip

    clips = tmp_path / "long"
    clips.mkdir()
    write_clip(clips / "c0.mp4", coco_photo, 200, (320, 240))
    shutil.copyfile(clips / "c0.mp4", clips / "c1.mp4")
    proc = subprocess.Popen(
        [sys.executable, "-m", "posezoo", "run", "blazepose-full", "-v", str(clips), "-s", "ann", "--json", "all.jsonl",
         "--jobs", "2"],
        cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True, preexec_fn=default_sigint,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not list((tmp_path / "ann").glob(".*.tmp*")) and time.monotonic() < deadline:
            time.sleep(0.1)  # until both workers are writing their videos
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole process group
        start = time.monotonic()
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130 and time.monotonic() - start < 15, err
    assert "Traceback" not in err, err
    left = sorted(p.name for p in tmp_path.rglob("*") if p.is_file() and p.parent != clips)
    assert left == [], left  # no video or JSON Lines half-written, no temporary file left behind


# ------------------------------------------------------------------------------------------ posezoo batch


@pytest.fixture(scope="module")
def local_batch(home, data, tmp_path_factory) -> Path:
    """``posezoo batch`` without --ray (the local process pool), with --save-media."""
    out = tmp_path_factory.mktemp("batch") / "out"
    env = posezoo_env(home, POSEZOO_OFFLINE="1")
    result = run_posezoo(
        "batch", "blazepose-full", data / "photos", data / "clips", "--out", out, "--save-media", "--workers", "2", env=env
    )
    assert result.returncode == 0, result.stderr
    return out


def test_batch_on_the_local_pool_writes_the_poses_of_posezoo_run(local_batch, reference):
    _assert_rows_match_run(_rows(local_batch), reference["poses"])
    sidecar = json.loads((local_batch / "_posezoo.json").read_text())
    assert sidecar["rows"] == 14 and sidecar["inputs"] == 6 and sidecar["failed"] == 0
    assert sidecar["keypoint_names"][0] == "nose" and len(sidecar["keypoint_names"]) == 33
    media = sorted(p.relative_to(local_batch / "_media").as_posix() for p in (local_batch / "_media").rglob("*") if p.is_file())
    ref = sorted(p.relative_to(reference["dir"] / "ann").as_posix() for p in (reference["dir"] / "ann").rglob("*") if p.is_file())
    assert media == ref
    assert cv2.imread(str(local_batch / "_media" / media[-1])) is not None


def test_batch_reads_and_writes_uris_through_pyarrow_fs(env, data, local_batch, tmp_path):
    """file:// URIs take the remote path (pyarrow.fs streams, a video copied to a temporary file)."""
    out = f"file://{tmp_path / 'uri-out'}"
    result = run_posezoo(
        "batch", "blazepose-full", f"file://{data / 'photos'}", f"file://{data / 'clips' / 'street_5frames.mp4'}",
        "--out", out, "--workers", "1", "--save-media", env=env, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows, local = _rows(tmp_path / "uri-out"), _rows(local_batch)
    assert len(rows) == 9 and set(rows) <= set(local)
    assert all(r["source"].startswith("file://") for r in rows.values())
    for key, row in rows.items():
        assert np.abs(np.array(row["keypoints"]) - np.array(local[key]["keypoints"])).max() <= 1e-5
    assert (tmp_path / "uri-out" / "_media" / "clips" / "street_5frames.mp4").is_file()  # below data/
    # the same folder again: refused, rows of two runs never mix
    line = one_line_error(run_posezoo("batch", "blazepose-full", data / "photos", "--out", out, env=env, cwd=tmp_path))
    assert "already holds" in line


def test_batch_without_ray_installed_is_one_line_naming_the_extra(env, data, tmp_path):
    block = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'ray': raise ImportError('blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from posezoo.cli import main\n"
        "sys.argv = ['posezoo'] + sys.argv[1:]\n"
        "main()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", block, "batch", "blazepose-full", str(data / "photos"), "--out", "o", "--ray", "local"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    line = one_line_error(result)
    assert 'pip install "posezoo[ray]"' in line and "ray" in line
    assert not (tmp_path / "o").exists()


# A sitecustomize for every process of a run (the pool's workers too): importing ray is refused and
# noted in the file $NO_RAY_LOG, so a run that needs it fails and one that only tried is seen.
NO_RAY_SITE = """
import importlib.abc, os, sys


class _NoRay(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "ray":
            with open(os.environ["NO_RAY_LOG"], "a") as fh:
                fh.write(f"{os.getpid()} {name}\\n")
            raise ImportError(f"{name} is blocked by this test")


sys.meta_path.insert(0, _NoRay())
"""


def test_local_batch_needs_only_pyarrow_and_never_imports_ray(env, data, tmp_path):
    """posezoo[parquet] is enough without --ray: Ray is never imported, in the parent or the workers."""
    import pyarrow.parquet as pq

    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(NO_RAY_SITE)
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("coco_000000000785.jpg", "mpii_052475643.jpg"):
        shutil.copyfile(data / "photos" / name, photos / name)
    log = tmp_path / "ray-imports.txt"
    env = dict(env, PYTHONPATH=os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")])), NO_RAY_LOG=str(log))
    probe = subprocess.run([sys.executable, "-c", "import ray"], env=env, capture_output=True, text=True)
    assert probe.returncode != 0 and "blocked by this test" in probe.stderr and log.is_file()  # the block works
    log.unlink()
    result = run_posezoo("batch", "blazepose-full", photos, "--out", "out", "--workers", "2", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert not log.exists(), log.read_text()
    table = pq.read_table(str(tmp_path / "out"))
    assert table.num_rows == 2 and sorted(Path(s).name for s in table.column("source").to_pylist()) == [
        "coco_000000000785.jpg", "mpii_052475643.jpg"]  # fmt: skip
    assert all(line.startswith("posezoo: ") for line in result.stderr.splitlines() if line.strip()), result.stderr


def test_without_pyarrow_batch_is_one_line_naming_the_parquet_extra(env, data, tmp_path):
    block = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'pyarrow': raise ImportError('blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from posezoo.cli import main\n"
        "sys.argv = ['posezoo'] + sys.argv[1:]\n"
        "main()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", block, "batch", "blazepose-full", str(data / "photos"), "--out", "o"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    line = one_line_error(result)
    assert 'pip install "posezoo[parquet]"' in line and "pyarrow" in line
    assert not (tmp_path / "o").exists()


def test_a_ray_batch_from_the_command_line_prints_nothing_of_ray_s(env, data, tmp_path):
    """A real local Ray started by the CLI (about 20 s): its loggers, its C++ core's error lines and
    Ray Data's progress bars (no TTY here) stay off stderr, which holds posezoo's own lines only."""
    pytest.importorskip("ray.data", reason="posezoo[ray] is not installed (the test extra installs it)")
    import pyarrow.parquet as pq

    result = run_posezoo("batch", "blazepose-full", data / "photos", "--out", "out", "--ray", "local", "--workers", "1",
                         env=env, cwd=tmp_path, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and all(line.startswith("posezoo: ") for line in lines), result.stderr
    assert "Ray (local)" in lines[0] and "wrote 4 pose rows" in lines[-1], result.stderr
    assert pq.read_table(str(tmp_path / "out")).num_rows == 4


@pytest.fixture(scope="module")
def ray_session(home):
    """A local Ray of 2 CPUs for this module, its workers seeing the test's cache."""
    import ray  # (the test extra installs it)

    saved = {k: os.environ.get(k) for k in ("POSEZOO_HOME", "POSEZOO_OFFLINE", "POSEZOO_REGISTRY")}
    env = posezoo_env(home, POSEZOO_OFFLINE="1")
    os.environ.update({k: env[k] for k in saved})
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": {k: env[k] for k in saved}})
    yield ray
    ray.shutdown()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def test_ray_gives_the_poses_of_posezoo_run_and_of_the_local_pool(ray_session, data, reference, local_batch, tmp_path):
    from posezoo.drivers.batch import batch

    inputs = tmp_path / "in"
    shutil.copytree(data, inputs)
    (inputs / "photos" / "broken.png").write_bytes(b"\x89PNG not really")
    result = batch("blazepose-full", [str(inputs / "photos"), str(inputs / "clips")], str(tmp_path / "out"), ray="local", workers=2)
    assert result.engine == "ray" and result.workers == 2 and result.rows == 14
    assert len(result.failures) == 1 and "broken.png" in result.failures[0]
    errors = [json.loads(p.read_text()) for p in (tmp_path / "out" / "_errors").iterdir()]
    assert [Path(e["source"]).name for e in errors] == ["broken.png"]
    rows = _rows(tmp_path / "out")
    _assert_rows_match_run(rows, reference["poses"])
    local = _rows(local_batch)
    assert sorted(rows) == sorted(local)
    for key, row in rows.items():  # the same engine-independent rows, to float32 precision
        for col in ("keypoints", "world_landmarks", "box"):
            assert np.abs(np.array(row[col]) - np.array(local[key][col])).max() <= 1e-5, (key, col)
    assert ray_session.is_initialized()  # batch() used the session it found and left it running
