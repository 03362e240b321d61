"""A model resolved once (``Zoo.resolve`` -> ``Resolution``), every option refused before anything is
downloaded, one options type and one frame loop; a resolution crossing to pool workers and Ray actors,
with a family that exists only in a POSEZOO_PLUGINS_PATH plugin."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from clitools import one_line_error, posezoo_env, run_posezoo
from conftest import REPO

from posezoo.drivers.frames import PredictOptions, frame_poses, image_frames
from posezoo.errors import InputError, PluginError, UnknownModelError, UsageError
from posezoo.inference.model import Pose, PoseModel, option
from posezoo.io.sources import Frame
from posezoo.supply.registry import ModelEntry
from posezoo.zoo.resolve import Resolution, _resolve_again, get_zoo

# ------------------------------------------------------------------------------------ the resolution


def test_resolve_gives_entry_variant_spec_family_and_capabilities():
    zoo = get_zoo()
    res = zoo.resolve("blazepose-full", "lite")
    assert isinstance(res, Resolution) and res.name == "blazepose-full" and res.variant_name == "lite"
    assert res.entry is zoo.model("blazepose-full") and res.variant is res.entry.variants["lite"]
    assert res.spec is zoo.plugins.specs["blazepose-full"] and res.family.name == res.spec.family
    assert res.capabilities == res.family.capabilities(res.spec)
    assert {"segmentation", "world"} <= res.capabilities.features and res.capabilities.max_poses is None
    assert zoo.resolve("blazepose-full").variant_name == res.entry.default_variant
    multipose = zoo.resolve("movenet-multipose").capabilities
    assert multipose.max_poses == 6 and multipose.features == frozenset() and len(multipose.keypoint_names) == 17
    with pytest.raises(UnknownModelError, match="has no variant 'nope'"):
        zoo.resolve("blazepose-full", "nope")
    with pytest.raises(UnknownModelError, match="unknown model"):
        zoo.resolve("no-such-model")


def test_resolve_enters_the_variant_once(monkeypatch):
    calls = []
    real = ModelEntry.variant
    monkeypatch.setattr(ModelEntry, "variant", lambda self, name=None: calls.append(name) or real(self, name))
    res = get_zoo().resolve("movenet-thunder")
    assert calls == [None] and res.variant_name == "default"


def test_a_resolution_pickles_by_name_and_resolves_again_to_the_same_model():
    res = get_zoo().resolve("blazepose-full", "heavy")
    data = pickle.dumps(res)
    assert b"PoseEstimator" not in data and b"ModelSpec" not in data  # by name: no spec or family objects
    again = pickle.loads(data)
    assert again == res and again.variant_name == "heavy" and again.capabilities == res.capabilities
    other = dataclasses.replace(res.entry, description="another registry's entry")
    with pytest.raises(PluginError, match="resolves to another registry entry"):
        _resolve_again("blazepose-full", "heavy", other, res.family.name)


# ------------------------------------------------------------------------------------ the options


def test_predict_options_are_checked_against_the_resolution():
    zoo = get_zoo()
    full, lightning, multipose = (zoo.resolve(n) for n in ("blazepose-full", "movenet-lightning", "movenet-multipose"))
    checked = PredictOptions(max_poses=3, features=("segmentation",)).check(full)
    assert checked.options == full.capabilities.options(segmentation=True) and checked.max_poses == 3
    assert PredictOptions(options={"redetect_every": 5}).check(full).options.redetect_every == 5
    assert PredictOptions().check(lightning).options == lightning.capabilities.options()
    refused = [
        (lightning, PredictOptions(features=("segmentation",)), "'movenet-lightning' has no segmentation output"),
        (lightning, PredictOptions(), "has no world output", ("world",)),
        (lightning, PredictOptions(max_poses=2), "finds at most 1 pose(s) per image, 2 asked for"),
        (multipose, PredictOptions(max_poses=7), "finds at most 6 pose(s) per image, 7 asked for"),
        (multipose, PredictOptions(options={"segmentation": True}), "has no option 'segmentation'"),
        (full, PredictOptions(options={"nope": 1}), "has no option 'nope'"),
        (full, PredictOptions(threshold=float("nan")), "threshold must be in [0, 1], not nan"),
        (full, PredictOptions(threshold=1.5), "threshold must be in [0, 1]"),
        (full, PredictOptions(max_poses=-1), "max_poses must be a whole number"),
    ]
    for res, opts, says, *needs in refused:
        with pytest.raises(UsageError) as err:
            opts.check(res, needs=needs[0] if needs else ())
        assert says in str(err.value) and err.value.exit_code == 2


def test_predict_options_cross_processes_with_keyword_options():
    full = get_zoo().resolve("blazepose-full")
    checked = PredictOptions(max_poses=2, threshold=0.4, features=("segmentation",)).check(full)
    sent = pickle.loads(pickle.dumps(checked))
    assert isinstance(sent.options, dict) and sent.options["segmentation"] is True  # no plugin class in the pickle
    assert sent.check(full) == checked and hash(sent) == hash(checked)
    assert (sent.max_poses, sent.threshold, sent.features) == (2, 0.4, ("segmentation",))


# ------------------------------------------------------------------------------------ the frame loop


@dataclasses.dataclass(frozen=True)
class _Spec:
    name: str = "fake"
    family: str = "fake"
    keypoint_names: tuple = ("a", "b")
    skeleton: tuple = ((0, 1),)
    max_poses: int = 3


@dataclasses.dataclass(frozen=True)
class _Options:
    gain: float = option(1.0, help="scales the score")


class _FakeModel(PoseModel):
    """Poses from the image's mean; records each predict and tracker update."""

    family = "fake"
    options_type = _Options

    def __init__(self):
        super().__init__(_Spec(), {}, variant="v")
        self.calls: list = []

    def _pose(self, image, options) -> Pose:
        pts = np.array([[1, 2, 0.5], [3, 4, 0.5]], np.float32)
        return Pose(landmarks=pts, columns=("x", "y", "score"), names=self.keypoint_names,
                    score=float(image.mean()) * options.gain, box=np.array([1, 2, 3, 4], np.float32))  # fmt: skip

    def _predict(self, image, *, max_poses, threshold, options):
        self.calls.append(("predict", max_poses, threshold, options))
        return [self._pose(image, options)]

    def _tracker(self, *, max_poses, threshold, smooth, options):
        model = self
        model.calls.append(("tracker", max_poses, threshold, smooth, options))

        class Tracker:
            frames = 0

            def update(self, image, timestamp=None):
                model.calls.append(("update", timestamp))
                return [model._pose(image, options)]

            def reset(self):
                pass

        return Tracker()


def _frames(n: int) -> list[Frame]:
    return [Frame(np.full((4, 4, 3), i, np.uint8), "clip", i, i / 10) for i in range(n)]


def test_frame_poses_predicts_images_and_tracks_videos():
    model = _FakeModel()
    opts = PredictOptions(max_poses=2, threshold=0.3, options={"gain": 2.0})
    out = list(frame_poses(model, _frames(3), opts, video=False))
    assert [f.index for f, _ in out] == [0, 1, 2] and [p[0].score for _, p in out] == [0.0, 2.0, 4.0]
    assert model.calls == [("predict", 2, 0.3, _Options(gain=2.0))] * 3
    model.calls.clear()
    out = list(frame_poses(model, _frames(3), opts, video=True))
    assert [p[0].score for _, p in out] == [0.0, 2.0, 4.0]
    assert model.calls == [("tracker", 2, 0.3, True, _Options(gain=2.0)), ("update", 0.0), ("update", 0.1), ("update", 0.2)]
    model.calls.clear()
    list(frame_poses(model, _frames(2), dataclasses.replace(opts, static=True), video=True))
    assert [c[0] for c in model.calls] == ["predict", "predict"]  # --static: no tracker
    with pytest.raises(UsageError, match="no option 'nope'"):
        next(frame_poses(model, _frames(1), PredictOptions(options={"nope": 1}), video=False))


def test_image_frames_skip_or_raise_unreadable_images(tmp_path):
    good, bad = tmp_path / "a.png", tmp_path / "b.png"
    cv2.imwrite(str(good), np.zeros((5, 6, 3), np.uint8))
    bad.write_bytes(b"not a png")
    skipped = []
    frames = list(image_frames([bad, good], lambda path, exc: skipped.append(path)))
    assert [f.source for f in frames] == [str(good)] and frames[0].image.shape == (5, 6, 3) and skipped == [bad]
    with pytest.raises(InputError):
        list(image_frames([bad]))


# ------------------------------------------------------------------------------------ nothing downloaded


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _unreachable_registry(tmp_path: Path) -> Path:
    """movenet-lightning, its files' URLs on a closed loopback port: any download fails at once."""
    entry = yaml.safe_load((REPO / "registry.yaml").read_text())["models"]["movenet-lightning"]
    port = _closed_port()

    def point(node):
        if isinstance(node, dict):
            return {k: (f"https://127.0.0.1:{port}/{node.get('name', 'x')}" if k == "url" else point(v)) for k, v in node.items()}
        if isinstance(node, list):
            return [point(v) for v in node]
        return node

    path = tmp_path / "unreachable.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "models": {"movenet-lightning": point(entry)}}))
    return path


def _nothing_in(home: Path) -> list[str]:
    return sorted(str(p.relative_to(home)) for p in home.rglob("*")) if home.exists() else []


@pytest.mark.parametrize("network", ["offline", "unreachable"])
def test_refusals_come_before_anything_is_downloaded_or_read(tmp_path, network):
    extra = {"POSEZOO_OFFLINE": "1"} if network == "offline" else {
        "POSEZOO_REGISTRY": str(_unreachable_registry(tmp_path)), "POSEZOO_FETCH_RETRIES": "1"}  # fmt: skip
    env = posezoo_env(tmp_path, **extra)
    home = tmp_path / "home"
    photos = tmp_path / "photos"
    photos.mkdir()
    cases = [
        (("run", "movenet-lightning", "--segmentation"), "model 'movenet-lightning' has no segmentation output"),
        (("run", "movenet-lightning", "--max-poses", "2"), "finds at most 1 pose(s) per image, 2 asked for"),
        (("run", "movenet-lightning", "--world-plot", "w.png"), "model 'movenet-lightning' has no world output"),
        (("run", "movenet-lightning", "--threshold", "nan"), "threshold must be in [0, 1], not nan"),
        (("run", "movenet-lightning", "--threshold", "1.5"), "threshold must be in [0, 1], not 1.5"),
        (("run", "movenet-lightning", "-i", photos, "-i", "missing.jpg", "--json", "out/", "--jobs", "2", "--segmentation"),
         "has no segmentation output"),  # the many-input path, before it lists any input
        (("batch", "movenet-lightning", photos, "--out", "parquet", "--threshold", "-0.1"), "threshold must be in [0, 1]"),
        (("eval", "movenet-lightning", "--ann", "no.json", "--images", photos, "--threshold", "nan"), "threshold must be"),
        (("run", "movenet-lightning", "--device", "tpu"), "unknown device 'tpu'"),
        (("bench", "movenet-lightning", "--device", "tpu"), "unknown device 'tpu'"),
        (("batch", "movenet-lightning", photos, "--out", "parquet", "--device", "tpu"), "unknown device 'tpu'"),
    ]
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():  # (a refusal only without CUDA)
        cases.append((("run", "movenet-lightning", "--device", "cuda"), "device 'cuda' is not available"))
        cases.append((("eval", "movenet-lightning", "--ann", "no.json", "--images", photos, "--device", "cuda"),
                      "device 'cuda' is not available"))
    before = sorted(p.name for p in tmp_path.iterdir())
    for args, says in cases:
        more = ("--no-display",) if args[0] == "run" else ()
        result = run_posezoo(*args, *more, env=env, cwd=tmp_path, timeout=120)
        line = one_line_error(result)
        assert result.returncode == 2 and says in line, (args, result.stderr)
        assert _nothing_in(home) == [], args  # nothing fetched, no lock taken
        assert sorted(p.name for p in tmp_path.iterdir()) == before, args  # no output begun
    # the same run without the refused option goes on to fetch, and fails there (exit 3)
    result = run_posezoo("run", "movenet-lightning", "--no-display", env=env, cwd=tmp_path, timeout=120)
    line = one_line_error(result)
    assert result.returncode == 3 and "movenet-lightning.json" in line, result.stderr
    if network == "unreachable":
        assert "127.0.0.1" in line


def test_info_shows_the_capabilities_without_downloading(tmp_path):
    env = posezoo_env(tmp_path, POSEZOO_OFFLINE="1")
    data = json.loads(run_posezoo("info", "movenet-multipose", "--json", env=env).stdout)
    assert data["max_poses"] == 6 and data["features"] == [] and len(data["keypoint_names"]) == 17
    assert data["keypoint_names"][0] == "nose" and [0, 1] in data["skeleton"]
    assert data["options"]["fps"]["default"] == 30.0 and data["options"]["exact_crop"]["default"] is None
    assert "help" in data["options"]["fps"]
    full = json.loads(run_posezoo("info", "blazepose-full", "--json", env=env).stdout)
    assert full["features"] == ["segmentation", "world"] and full["max_poses"] is None
    assert full["options"]["segmentation"] == {"default": False, "help": "also compute the segmentation mask"}
    assert full["options"]["redetect_every"]["default"] == 15 and len(full["keypoint_names"]) == 33
    text = run_posezoo("info", "blazepose-full", env=env)
    assert text.returncode == 0, text.stderr
    assert "features:   segmentation, world" in text.stdout and "max-poses:  no limit" in text.stdout
    assert "options:    segmentation=False: also compute the segmentation mask" in text.stdout
    assert "max-poses:  1" in run_posezoo("info", "movenet-lightning", env=env).stdout
    assert _nothing_in(tmp_path / "home") == []


# ------------------------------------------------------------------------------------ workers


SYNTH_PLUGIN = textwrap.dedent(
    '''
    """A family that exists only here: its spec, options and model are classes of this local plugin."""
    import os
    from dataclasses import dataclass

    import numpy as np

    from posezoo import hookimpl
    from posezoo.inference.model import Family, Pose, PoseModel, box_around, option

    DIGEST = "sha256:{digest}"
    SIZE = {size}


    @dataclass(frozen=True)
    class SynthSpec:
        name: str
        family: str = "synth"
        keypoint_names: tuple = ("left", "right")
        skeleton: tuple = ((0, 1),)
        max_poses: int = 2


    @dataclass(frozen=True)
    class SynthOptions:
        gain: float = option(1.0, help="multiplies the score")


    class SynthModel(PoseModel):
        family = "synth"
        options_type = SynthOptions

        def __init__(self, spec, files, *, variant=None, device="auto"):
            self.require_files(spec, files, ("model",))
            super().__init__(spec, {{}}, variant=variant)
            folder = os.environ.get("POSEZOO_TEST_PIDS")
            if folder:
                open(os.path.join(folder, str(os.getpid())), "w").close()

        def _predict(self, image, *, max_poses, threshold, options):
            h, w = image.shape[:2]
            mean = float(image.mean()) / 255.0
            pts = np.array([[w * 0.25, h * 0.5, mean], [w * 0.75, h * 0.5, mean]], np.float32)
            return [Pose(landmarks=pts, columns=("x", "y", "score"), names=self.keypoint_names,
                         score=mean * options.gain, box=box_around(pts))]

        def _tracker(self, *, max_poses, threshold, smooth, options):
            raise NotImplementedError


    @hookimpl
    def register_families(register):
        register(Family(name="synth", spec_type=SynthSpec, roles=("model",), build=SynthModel.from_files,
                        options=SynthOptions))


    @hookimpl
    def register_models(register):
        register(SynthSpec(name="synth-pose"))


    @hookimpl
    def registry_entries():
        weights = {{"name": "synth.onnx", "url": "https://example.invalid/synth.onnx", "digest": DIGEST,
                    "size": SIZE, "format": "onnx"}}
        return {{"synth-pose": {{"plugin": "synth", "description": "synthetic", "licence": "MIT",
                                "source": "https://example.invalid", "default_variant": "base",
                                "variants": {{"base": {{"files": {{"model": weights}}}}}}}}}}
    '''
)

SYNTH_RUN = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    from posezoo.drivers.frames import PredictOptions
    from posezoo.drivers.many import run_many
    from posezoo.drivers.run import RunOptions
    from posezoo.zoo.resolve import get_zoo

    images, mirror, out = (Path(a) for a in sys.argv[1:4])
    res = get_zoo().resolve("synth-pose")
    gain = res.capabilities.options(gain=2.0)  # a class of the local plugin, sent to the workers
    for jobs in (1, 2):
        opts = RunOptions(model="synth-pose", predict=PredictOptions(max_poses=2, options=gain), inputs=[images],
                          json_out=out / f"jobs{jobs}.jsonl", jobs=jobs, mirror=str(mirror), display=False)
        run_many(opts, res)
    if len(sys.argv) > 4:
        from posezoo.drivers.batch import batch

        result = batch("synth-pose", [str(images)], str(out / "ray"), ray="local", workers=1, options=gain, progress=False)
        assert result.rows == 6 and not result.failures, result
    """
)


@pytest.fixture
def synth(tmp_path):
    """A POSEZOO_PLUGINS_PATH plugin with its own family, its weights in a mirror, six photos."""
    weights = b"synthetic weights: the family reads none\n"
    plugins, mirror, images, pids = (tmp_path / n for n in ("plugins", "mirror", "images", "pids"))
    for folder in (plugins, mirror, images, pids):
        folder.mkdir()
    (plugins / "synth.py").write_text(SYNTH_PLUGIN.format(digest=hashlib.sha256(weights).hexdigest(), size=len(weights)))
    (mirror / "synth.onnx").write_bytes(weights)
    for i in range(6):
        cv2.imwrite(str(images / f"{i}.png"), np.full((24, 32, 3), 40 * i, np.uint8))
    env = posezoo_env(tmp_path, POSEZOO_PLUGINS_PATH=str(plugins), POSEZOO_TEST_PIDS=str(pids))
    return env, images, mirror, pids


def test_pool_workers_resolve_a_plugin_path_family_again(synth, tmp_path):
    env, images, mirror, pids = synth
    result = subprocess.run([sys.executable, "-c", SYNTH_RUN, images, mirror, tmp_path], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    one, two = ((tmp_path / f"jobs{j}.jsonl").read_text() for j in (1, 2))
    assert one == two and len(one.splitlines()) == 6
    scores = sorted(json.loads(line)["poses"][0]["score"] for line in one.splitlines())
    assert scores == pytest.approx([2 * 40 * i / 255 for i in range(6)], abs=1e-4)  # the typed option reached every worker
    assert len(list(pids.iterdir())) >= 2  # this process (jobs 1, and jobs 2's thread) and a worker process
    cli = run_posezoo("run", "synth-pose", "-i", images, "--jobs", "2", "--json", "cli.jsonl", "--mirror", mirror,
                      "--no-display", env=env, cwd=tmp_path)  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    plain = [json.loads(line)["poses"][0]["score"] for line in (tmp_path / "cli.jsonl").read_text().splitlines()]
    assert sorted(plain) == pytest.approx([s / 2 for s in scores], abs=1e-4)
    refused = run_posezoo("run", "synth-pose", "-i", images, "--jobs", "2", "--segmentation", "--json", "x.jsonl",
                          "--no-display", env=env, cwd=tmp_path)  # fmt: skip
    assert refused.returncode == 2 and "'synth-pose' has no segmentation output" in one_line_error(refused)


@pytest.mark.slow
def test_ray_actors_resolve_a_plugin_path_family_again(synth, tmp_path):
    pytest.importorskip("ray")
    env, images, mirror, pids = synth
    result = subprocess.run([sys.executable, "-c", SYNTH_RUN, images, mirror, tmp_path, "ray"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr
    import pyarrow.parquet as pq

    rows = pq.read_table(str(tmp_path / "ray")).to_pylist()
    assert sorted(r["score"] for r in rows) == pytest.approx([2 * 40 * i / 255 for i in range(6)], abs=1e-4)
