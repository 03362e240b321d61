"""``posezoo bench`` and the clip tools behind it; a real written clip through ``posezoo run -v``
(tracking by default, ``--static`` detecting every frame). No absolute times are asserted."""

from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest

from clitools import one_line_error, posezoo_env, run_posezoo
from mirror import build_mirror
from posezoo.drivers.bench import open_input, pan_zoom_frames, run_bench, stages_of, write_clip
from posezoo.errors import InputError
from posezoo.inference.runtime import Session


@pytest.fixture(scope="module")
def estimator(make_estimator):
    return make_estimator("lite")


@pytest.fixture(scope="module")
def photo(coco_photo):
    return coco_photo


@pytest.fixture(scope="module")
def clip(photo, tmp_path_factory):
    """A 640x480 pan-and-zoom clip over the photo: 12 frames, frame 6 cut to black."""
    path = tmp_path_factory.mktemp("clip") / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (640, 480))
    for i, frame in enumerate(pan_zoom_frames(photo, 12, reuse=False, period=60)):
        writer.write(np.zeros_like(frame) if i == 6 else frame)
    writer.release()
    return path


@pytest.fixture(scope="module")
def home(shared_models, tmp_path_factory):
    """A POSEZOO_HOME with blazepose-full (full) fetched through the CLI from a local mirror."""
    root = tmp_path_factory.mktemp("bench")
    build_mirror(shared_models, root / "mirror")
    env = posezoo_env(root)
    result = run_posezoo("fetch", "blazepose-full", "--variant", "full", "--mirror", root / "mirror", env=env)
    assert result.returncode == 0, result.stderr
    return root


@pytest.fixture
def env(home, tmp_path):
    return posezoo_env(home, POSEZOO_OFFLINE="1", XDG_CONFIG_HOME=str(tmp_path / "config"))


# ------------------------------------------------------------------------------------ frames


def test_pan_zoom_frames_move_and_reuse_one_buffer(photo):
    frames = list(pan_zoom_frames(photo, 4, reuse=False, period=8))
    assert all(f.shape == (480, 640, 3) and f.dtype == np.uint8 for f in frames)
    assert all(np.abs(a.astype(int) - b).mean() > 1.0 for a, b in zip(frames, frames[1:]))
    gen = pan_zoom_frames(photo, 3)
    assert next(gen) is next(gen)  # reused buffer: no per-frame allocation


def test_write_clip_round_trips(photo, tmp_path):
    path = write_clip(tmp_path / "c.avi", photo, 5)
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 5
    with pytest.raises(InputError):
        write_clip(tmp_path / "missing-folder" / "c.avi", photo, 2)


def test_open_input_checks_before_any_model_loads(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        open_input(image=tmp_path / "nope.jpg")
    with pytest.raises(InputError, match="does not exist"):
        open_input(video=tmp_path / "nope.mp4")
    with pytest.raises(InputError):
        open_input(image=tmp_path / "a.jpg", video=tmp_path / "b.mp4")
    assert open_input().size == (640, 480)


# ------------------------------------------------------------------------------------ bench


def test_bench_reports_stages_ratios_and_runs(estimator):
    report = run_bench(estimator, frames=15, warmup=3)
    assert report.stages == stages_of(estimator) == (
        "read", "preprocess", "detector", "landmark", "decode", "other", "draw"
    )  # fmt: skip
    static, tracking = report.modes["static"], report.modes["tracking"]
    for mode in (static, tracking):
        assert set(mode.stages_ms) == set(report.stages)
        assert all(v >= 0 for v in mode.stages_ms.values())
        # the measured stages add up to the pipeline time (means)
        inner = sum(mode.stages_ms[s] for s in ("preprocess", "detector", "landmark", "decode", "other"))
        assert inner == pytest.approx(mode.pipeline_mean_ms, rel=1e-6)
        assert mode.bare_ms["landmark"] > 0 and np.isfinite(mode.ratio) and mode.ratio > 0
        assert mode.poses == 1.0
    assert static.runs["detector"] == 15 and static.stages_ms["detector"] > 0 and static.bare_ms["detector"] > 0
    assert static.ort_ms == pytest.approx(static.bare_ms["detector"] + static.bare_ms["landmark"])
    assert tracking.runs["detector"] == 0 and tracking.stages_ms["detector"] == 0  # held after the warm-up
    assert tracking.bare_ms["detector"] is None and tracking.ort_ms == pytest.approx(tracking.bare_ms["landmark"])
    assert tracking.runs["landmark"] == 15
    table = report.table()
    assert "| static |" in table and "| tracking |" in table and "ORT landmark" in table
    assert json.loads(json.dumps(report.to_dict()))["modes"]["tracking"]["runs"]["detector"] == 0


def test_bench_leaves_the_model_as_it_was(estimator, photo):
    from posezoo.inference.timing import NO_CLOCK

    run_bench(estimator, open_input(photo), frames=2, warmup=1, modes=("tracking",))
    assert estimator.clock is NO_CLOCK and all(s.clock is NO_CLOCK for s in estimator.sessions.values())
    assert all(isinstance(s, Session) for s in estimator.sessions.values())
    assert len(estimator.predict(photo)) == 1


def test_bench_on_a_video_loops_it(estimator, clip):
    report = run_bench(estimator, open_input(video=clip), frames=20, warmup=0, modes=("tracking",), draw=False)
    tracking = report.modes["tracking"]
    assert report.frame_size == (640, 480) and tracking.frames == 20
    assert tracking.stages_ms["draw"] < 0.01  # not drawn: only the clock reads
    # 20 frames of a 12-frame clip with a black frame at 6: the detector runs at 0, 6, 7, then the
    # loop restarts at 12 (same person, tracked on), black again at 18, 19
    assert tracking.runs["detector"] == 5


def test_cli_bench_json(env, tmp_path):
    result = run_posezoo("bench", "blazepose-full", "--frames", "3", "--warmup", "1", "--json", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["model"] == "blazepose-full" and data["variant"] == "full"
    assert set(data["modes"]) == {"static", "tracking"}
    assert data["modes"]["static"]["runs"]["detector"] == 3
    for mode in data["modes"].values():
        assert mode["ratio"] > 0 and mode["bare_ms"]["landmark"] > 0


def test_cli_bench_table_on_a_video(env, tmp_path, clip):
    result = run_posezoo("bench", "blazepose-full", "-v", clip, "--frames", "2", "--warmup", "0", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "| tracking |" in result.stdout and "ORT landmark" in result.stdout


def test_cli_bench_errors_are_one_line(env, tmp_path):
    result = run_posezoo("bench", "blazepose-full", "-v", tmp_path / "missing.mp4", env=env, cwd=tmp_path)
    assert result.returncode == 5 and "does not exist" in one_line_error(result)
    result = run_posezoo("bench", "no-such-model", env=env, cwd=tmp_path)
    assert result.returncode == 2 and "no-such-model" in one_line_error(result)
    result = run_posezoo("bench", "blazepose-full", "-i", "a.jpg", "-v", "b.mp4", env=env, cwd=tmp_path)
    assert result.returncode == 2
    result = run_posezoo("bench", "blazepose-full", "--frames", "0", env=env, cwd=tmp_path)
    assert result.returncode == 2


# ------------------------------------------------------------------------------------ posezoo run -v


def _run_video(env, tmp_path, clip, *extra):
    out = tmp_path / "out.jsonl"
    result = run_posezoo("run", "blazepose-full", "-v", clip, "--no-display", "--json", out, *extra, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_run_video_tracks_and_static_detects_every_frame(env, tmp_path, clip):
    tracked = _run_video(env, tmp_path, clip)
    static = _run_video(env, tmp_path, clip, "--static")
    assert [r["frame"] for r in tracked] == list(range(12)) == [r["frame"] for r in static]
    assert [len(r["poses"]) for r in tracked] == [1] * 6 + [0] + [1] * 5
    assert [len(r["poses"]) for r in static] == [1] * 6 + [0] + [1] * 5
    # tracking and detection find the same person: landmarks agree to a few percent of its size
    for t, s in zip(tracked, static):
        if t["poses"]:
            a = np.array(t["poses"][0]["landmarks"])[:, :2]
            b = np.array(s["poses"][0]["landmarks"])[:, :2]
            size = np.ptp(b, axis=0).max()
            assert np.median(np.linalg.norm(a - b, axis=1)) < 0.05 * size


# ------------------------------------------------------------------------------------ hot path


def test_run_reused_matches_run_and_allocates_its_outputs_once(converted_models):
    session = Session(converted_models["lite"], "cpu")
    rng = np.random.default_rng(1)
    a, b = (rng.uniform(0, 1, (1, 256, 256, 3)).astype(np.float32) for _ in range(2))
    first = session.run_reused(a)
    ids = [id(x) for x in first]
    for got, want in zip(first, session.run(a)):
        np.testing.assert_array_equal(got, want)
    second = session.run_reused(b)
    assert [id(x) for x in second] == ids  # the same arrays, overwritten
    for got, want in zip(second, session.run(b)):
        np.testing.assert_array_equal(got, want)


def test_run_reused_falls_back_for_dynamic_outputs(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "dynamic",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "dyn.onnx")
    session = Session(tmp_path / "dyn.onnx", "cpu")
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    out = session.run_reused(x)
    np.testing.assert_array_equal(out[0], x)
    assert session.run_reused(x[:1])[0].shape == (1, 4)


def _conv_reshape_model(path, *, fixed_resize: bool = False):
    """A batch-1 model as the TFLite converter writes them: NHWC input, Conv, then a Reshape to the constant
    shape [1, -1] (or, ``fixed_resize``, a Resize to constant sizes [1, 4, 8, 8] first: no batch)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    inits = [
        numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(np.array([1, -1], np.int64), "shape"),
        numpy_helper.from_array(np.array([1, 4, 8, 8], np.int64), "sizes"),
    ]
    nodes = [
        helper.make_node("Transpose", ["x"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "w"], ["c"], pads=[1, 1, 1, 1]),
    ]
    last = "c"
    if fixed_resize:
        nodes.append(helper.make_node("Resize", ["c", "", "", "sizes"], ["r"], mode="linear"))
        last = "r"
    nodes.append(helper.make_node("Reshape", [last, "shape"], ["y"]))
    graph = helper.make_graph(
        nodes, "batch1", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 4, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 256 if fixed_resize else 64])], inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


@pytest.mark.parametrize("fixed_resize", [False, True])
def test_run_batch_gives_what_runs_one_at_a_time_give(tmp_path, fixed_resize, monkeypatch):
    """A batch-1 model on one thread runs a batch as one run when its graph takes one (the Reshape to
    [1, -1] follows the batch), else one input at a time; the outputs are those of single runs either
    way, bit for bit, and each input counts as a run."""
    from posezoo.inference.runtime import THREADS_ENV

    monkeypatch.setenv(THREADS_ENV, "1")
    session = Session(_conv_reshape_model(tmp_path / "m.onnx", fixed_resize=fixed_resize), "cpu")
    x = np.random.default_rng(4).uniform(0, 1, (3, 4, 4, 3)).astype(np.float32)
    for _ in range(2):  # the first batch is checked against single runs; the second runs batched alone
        (out,) = session.run_batch(x)
        want = np.concatenate([session.run(x[i : i + 1])[0] for i in range(3)])
        np.testing.assert_array_equal(out, want)
    assert (session._batched is not False) == (not fixed_resize)
    assert session.runs == 2 * (3 + 3)
    (one,) = session.run_batch(x[:1])
    np.testing.assert_array_equal(one, want[:1])


@pytest.mark.parametrize("threads", ["1", "2"])
def test_run_batch_on_a_converted_landmark_model(converted_models, threads, monkeypatch):
    """BlazePose full's landmark model (converted from TFLite, batch 1) on batches of two and three crops:
    what single runs give, bit for bit: on one thread as one batched run or one at a time, on two threads
    side by side on a one-thread session (kept after its first batch matched)."""
    from posezoo.inference.runtime import THREADS_ENV

    monkeypatch.setenv(THREADS_ENV, threads)
    session = Session(converted_models["full"], "cpu")
    rng = np.random.default_rng(5)
    for n in (2, 3):
        x = rng.uniform(0, 1, (n, 256, 256, 3)).astype(np.float32)
        out = session.run_batch(x)
        singles = [session.run(x[i : i + 1]) for i in range(n)]
        for got, *want in zip(out, *singles):
            np.testing.assert_array_equal(got, np.concatenate(want))
    if session.threads > 1:  # timed as large enough for two threads: side by side, checked and kept
        one, pool, checked = session._side_by_side
        assert checked and one.get_session_options().intra_op_num_threads == 1


def test_run_reused_skipping_the_mask_runs_the_pruned_graph(converted_models):
    """BlazePose full's landmark model asked for everything but its segmentation mask: the mask comes back
    None, every other output is what the whole graph gives, bit for bit, from a second session holding
    only the nodes those outputs need; the whole graph still runs when nothing is skipped."""
    session = Session(converted_models["full"], "cpu")
    seg = session.output_index(next(n for n, s in zip(session.output_names, session.output_shapes) if s == [1, 256, 256, 1]))
    rng = np.random.default_rng(6)
    for _ in range(2):  # the first run is checked against the whole graph; the second runs pruned alone
        x = rng.uniform(0, 1, (1, 256, 256, 3)).astype(np.float32)
        got = session.run_reused(x, skip=(seg,))
        whole = session.run(x)
        assert got[seg] is None
        for i, want in enumerate(whole):
            if i != seg:
                np.testing.assert_array_equal(got[i], want)
    pruned = session._pruned[frozenset({seg})]
    assert pruned and pruned.checked and len(pruned.sess.get_outputs()) == len(whole) - 1
    assert session.time_bare(x) > 0  # the bench times the pruned graph it ran
    assert session.run_reused(x)[seg].shape == (1, 256, 256, 1)


def test_small_models_run_on_one_thread(converted_models, tmp_path, monkeypatch):
    """A model whose run takes under SMALL_RUN_MS on the threads allowed, and on one, gets one intra-op
    thread; BlazePose full's landmark model keeps the threads allowed when its run takes longer."""
    import onnxruntime as ort

    from posezoo.inference.runtime import SMALL_RUN_MS, THREADS_ENV, _best_run_ms, session_options

    monkeypatch.setenv(THREADS_ENV, "2")
    tiny = Session(_conv_reshape_model(tmp_path / "tiny.onnx"), "cpu")
    assert tiny.threads == 1 and tiny._sess.get_session_options().intra_op_num_threads == 1
    full = Session(converted_models["full"], "cpu")
    sess = ort.InferenceSession(str(converted_models["full"]), session_options(1), providers=["CPUExecutionProvider"])
    if _best_run_ms(sess, {full.input_name: np.zeros((1, 256, 256, 3), np.float32)}) >= SMALL_RUN_MS:
        assert full.threads == 2
    monkeypatch.setenv(THREADS_ENV, "1")
    assert Session(converted_models["full"], "cpu").threads == 1


def test_threads_spin_only_while_a_run_lasts(converted_models, monkeypatch):
    """A session of several threads lets them spin between a run's operators and stops them when the run
    ends (an idle session holds no core); one of one thread has nothing to spin. Once one spins, OpenCV's
    own pool is down to one thread (its waiting workers would fight onnxruntime's for the cores)."""
    import cv2

    from posezoo.inference.runtime import THREADS_ENV, session_options

    for threads, spin in ((2, "1"), (4, "1"), (1, "0")):
        opts = session_options(threads)
        assert opts.intra_op_num_threads == threads
        assert opts.get_session_config_entry("session.intra_op.allow_spinning") == spin
        assert opts.get_session_config_entry("session.force_spinning_stop") == spin
        assert opts.get_session_config_entry("session.inter_op.allow_spinning") == "0"
    saved = cv2.getNumThreads()
    try:
        cv2.setNumThreads(2)
        monkeypatch.setenv(THREADS_ENV, "2")
        full = Session(converted_models["full"], "cpu")
        if full.threads > 1:
            assert full._sess.get_session_options().get_session_config_entry("session.force_spinning_stop") == "1"
            assert cv2.getNumThreads() == 1
    finally:
        cv2.setNumThreads(saved)


def test_memory_stays_flat_over_a_written_clip_run(estimator, clip):
    """The video pipeline of `posezoo run -v` (source -> tracker) over a written clip, looped 20
    times: RSS after the first loop and after the last differ by little."""
    from posezoo.io.sources import VideoSource

    def rss_mb() -> float:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") / 2**20)

    tracker = estimator.tracker()
    marks = []
    for _ in range(20):
        source = VideoSource(str(clip))
        for frame in source:
            tracker.update(frame.image, timestamp=frame.timestamp)
        source.close()
        tracker.reset()
        marks.append(rss_mb())
    assert marks[-1] - marks[0] < 15.0, marks
