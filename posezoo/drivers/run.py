"""``posezoo run``: frames from a source, through a model of any family, to drawings, files and a window."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from posezoo.drivers.frames import PredictOptions, frame_poses, image_frames

from posezoo.io.coco import (
    PERSON_CATEGORY,
    CocoResultsSink,
    assign_image_ids,
    ids_by_file_name,
    person_category,
    read_annotations,
)
from posezoo.io.wholebody import coco_format
from posezoo.io.draw import draw_poses
from posezoo.errors import InputError
from posezoo.io.sinks import (
    Display,
    JsonlSink,
    VideoSink,
    check_output,
    check_writable,
    image_output_path,
    is_stdout,
    pose_record,
    write_image,
)
from posezoo.io.guard import refuse_overwriting
from posezoo.io.sources import VideoSource, image_paths, sample_image_path

if TYPE_CHECKING:
    from posezoo.zoo.resolve import Resolution

DEFAULT_SAMPLE_OUTPUT = Path("output.png")


@dataclass
class RunOptions:
    """What ``posezoo run`` is asked: the model, how it runs (``predict``), the inputs, the outputs and,
    for several inputs, the workers (:mod:`posezoo.drivers.many`)."""

    model: str = ""  # the CLI fills in the zoo's default
    variant: str | None = None
    predict: PredictOptions = field(default_factory=PredictOptions)
    inputs: list[Path] = field(default_factory=list)
    videos: list[str] = field(default_factory=list)  # files, folders, or one camera index
    savepath: Path | None = None
    json_out: Path | None = None
    json_dir: bool = False  # --json names a folder: one file per input
    display: bool = True
    device: str = "auto"
    mirror: str | None = None
    offline: bool = False
    coco_out: Path | None = None
    coco_ann: Path | None = None
    draw_boxes: bool = False
    draw_mesh: bool = False  # also draw the model's surface mesh (Capabilities.mesh), e.g. a face's
    world_plot: Path | None = None
    jobs: int | None = None  # several inputs: workers (None: one per core)
    resume: bool = False  # several inputs: skip those whose outputs exist
    fps_overlay: bool = False  # burn the measured FPS into a saved video (the window always shows it)

    @property
    def video(self) -> str | None:
        """The one video (or camera) of a single-input run."""
        return self.videos[0] if len(self.videos) == 1 else None

    @property
    def needs(self) -> tuple[str, ...]:
        """Model features the outputs need (beyond those ``predict`` asks for)."""
        return ("world",) if self.world_plot is not None else ()


def _say(message: str) -> None:
    print(f"posezoo: {message}", file=sys.stderr)


def run_model(opts: RunOptions, resolution: Resolution | None = None) -> None:
    """Run one model over the chosen input; raises PosezooError for anything the user can fix.
    ``resolution``: the model resolved at the edge (default: ``opts.model`` and ``opts.variant``
    resolved here)."""
    from posezoo.zoo.resolve import get_zoo

    # unknown model / variant / plugin / family, and every option the model cannot honour: refused
    # before any input is read and before anything is fetched
    res = resolution or get_zoo().resolve(opts.model, opts.variant)
    predict = opts.predict.check(res, needs=opts.needs)
    inputs = list(opts.inputs)
    savepath = opts.savepath
    if not inputs and opts.video is None:
        inputs = [sample_image_path()]
        savepath = savepath or DEFAULT_SAMPLE_OUTPUT
        _say(f"no input given: running on the bundled sample {inputs[0].name} (COCO, CC BY 2.0)")
    if opts.fps_overlay and (opts.video is None or savepath is None):
        from posezoo.errors import UsageError

        raise UsageError("--fps-overlay draws the speed into a video saved with -s", "add -v VIDEO -s OUT.mp4, or leave it out")
    paths = image_paths(inputs) if inputs else []
    _refuse_overwriting_inputs(opts, savepath, paths)
    check_output(savepath, opts.json_out, video=opts.video is not None)  # before any model runs
    for out in (opts.coco_out, opts.world_plot):
        if out is not None:
            check_writable(Path(out))
    results = ResultFiles.prepare(opts, res, paths)
    source = VideoSource(opts.video) if opts.video is not None else None

    model = res.load(device=opts.device, mirror=opts.mirror, offline=opts.offline, progress=True)
    _say(f"running {res.name} ({model.variant}) on {model.provider}")
    json_sink = JsonlSink(opts.json_out) if opts.json_out else None
    display = Display(f"posezoo {res.name}", enabled=opts.display)
    results.model = model
    try:
        if source is not None:
            _run_video(model, source, predict, opts, savepath, json_sink, display, results)
        else:
            _run_images(model, paths, predict, opts, savepath, json_sink, display, results)
        results.finish()
    finally:
        display.close()
        if json_sink:
            json_sink.close()


def _refuse_overwriting_inputs(opts: RunOptions, savepath: Path | None, paths: list[Path]) -> None:
    """No output may be one of the inputs (the photo would be replaced by its results): every output's
    name, the annotated copy of each image included, checked before anything runs."""
    inputs: list[Path] = list(paths)
    if opts.video is not None and not str(opts.video).isdigit():
        inputs.append(Path(opts.video))
    outputs: list[tuple[str, Path | None]] = [
        ("--json", None if is_stdout(opts.json_out) else opts.json_out), ("--coco", opts.coco_out), ("--world-plot", opts.world_plot)
    ]
    if savepath is not None:
        savepath = Path(savepath)
        if opts.video is not None:
            outputs.append(("-s", savepath))
        elif savepath.is_dir() or not savepath.suffix:  # a folder: <stem>.png per image
            outputs += [("-s", savepath / f"{p.stem}.png") for p in paths]
        elif len(paths) <= 1:
            outputs.append(("-s", savepath))
        else:
            outputs += [("-s", savepath.with_name(f"{savepath.stem}_{p.stem}{savepath.suffix}")) for p in paths]
    refuse_overwriting(outputs, inputs)


class ResultFiles:
    """The files written once a run is over: COCO keypoint results (``--coco``) and the 3D plot of
    the first person's world landmarks (``--world-plot``). Checked before any model is loaded."""

    def __init__(self, opts: RunOptions, coco: CocoResultsSink | None):
        self.opts = opts
        self.coco = coco
        self.model = None
        self.world_pose = None
        self.done = False

    @classmethod
    def prepare(cls, opts: RunOptions, resolution: Resolution, paths: list[Path]) -> "ResultFiles":
        if opts.coco_out is None and opts.coco_ann is not None:
            raise InputError("--coco-ann gives image ids to --coco results, but no --coco file was given", "add --coco FILE")
        if opts.world_plot is not None:
            from posezoo.io.worldplot import check_plot_path

            check_plot_path(Path(opts.world_plot))
        if opts.coco_out is None:
            return cls(opts, None)
        if opts.video is not None:
            raise InputError("--coco writes COCO results for images, not for a video", "run it on images (-i)")
        mapping, records, kind = coco_format(resolution.name, resolution.spec)
        by_name, category = None, PERSON_CATEGORY
        if opts.coco_ann is not None:
            data = read_annotations(Path(opts.coco_ann))
            by_name, category = ids_by_file_name(data), person_category(data, str(opts.coco_ann))["id"]
        ids, how = assign_image_ids(paths, by_name)
        _say(f"--coco: {how}")
        return cls(opts, CocoResultsSink(Path(opts.coco_out), mapping, ids, category, records=records, kind=kind))

    def add(self, source, poses) -> None:
        if self.coco is not None:
            self.coco.add(Path(source), poses)
        if self.opts.world_plot is not None and self.world_pose is None:
            self.world_pose = next((p for p in poses if p.world_landmarks is not None), None)

    def finish(self) -> None:
        """Write the files (once; also when some images could not be read)."""
        if self.done:
            return
        self.done = True
        if self.coco is not None:
            self.coco.close()
            _say(f"wrote {self.coco.path} ({self.coco.kind} results: {len(self.coco.results)} pose(s))")
            if self.coco.unknown:
                _say(
                    f"warning: {len(self.coco.unknown)} image(s) are not in {self.opts.coco_ann} and have no COCO "
                    f"result (first: {self.coco.unknown[0]})"
                )
        if self.opts.world_plot is not None:
            from posezoo.io.worldplot import write_world_plot

            if self.world_pose is None:
                raise InputError(f"no person found: {self.opts.world_plot} not written")
            name = f"{self.opts.model} ({self.model.variant})" if self.model is not None else self.opts.model
            write_world_plot(Path(self.opts.world_plot), self.world_pose, self.model.skeleton, title=f"{name}: world landmarks (m)")
            _say(f"wrote {self.opts.world_plot}")


def _draw(model, image, poses, opts: RunOptions, fps=None):
    mesh = model.capabilities.mesh if opts.draw_mesh else ()
    return draw_poses(image, poses, model.skeleton, fps=fps, boxes=opts.draw_boxes, mesh=mesh)


def _run_images(model, paths: list[Path], predict: PredictOptions, opts: RunOptions, savepath, json_sink, display, results: ResultFiles) -> None:
    failed: list[str] = []
    many = len(paths) > 1

    def skip(path: Path, exc: InputError) -> None:
        if not many:
            raise exc
        failed.append(str(exc))
        tqdm.write(f"posezoo: skipped: {exc}", file=sys.stderr)

    with tqdm(paths, unit="image", disable=not many, file=sys.stderr) as bar:
        for frame, poses in frame_poses(model, image_frames(bar, skip), predict, video=False):
            path = Path(frame.source)
            if not many:
                _say(f"{path.name}: {len(poses)} pose(s)")
            if json_sink:
                json_sink.write(pose_record(frame.source, frame.index, frame.image, model.name, model.variant, poses))
            results.add(path, poses)
            if savepath is not None or display.enabled:
                drawn = _draw(model, frame.image, poses, opts)
                if savepath is not None:
                    out = image_output_path(savepath, path, len(paths))
                    write_image(out, drawn)
                    if not many:
                        _say(f"wrote {out}")
                if display.enabled and not display.show(drawn, wait_ms=0 if not many else 1):
                    break
    if failed:
        results.finish()
        raise InputError(f"{len(failed)} of {len(paths)} images could not be read (first: {failed[0]})")


def _run_video(model, source: VideoSource, predict: PredictOptions, opts: RunOptions, savepath, json_sink, display, results: ResultFiles) -> None:
    sink = VideoSink(savepath, source.fps, source.size) if savepath is not None else None
    fps = None
    last = time.perf_counter()
    bar = tqdm(total=source.frame_count, unit="frame", disable=source.is_camera, file=sys.stderr)
    try:
        for frame, poses in frame_poses(model, source, predict, video=True):
            now = time.perf_counter()
            fps = 1.0 / max(now - last, 1e-6) if fps is None else 0.9 * fps + 0.1 / max(now - last, 1e-6)
            last = now
            if json_sink:
                json_sink.write(pose_record(frame.source, frame.index, frame.image, model.name, model.variant, poses))
            results.add(frame.source, poses)
            if sink is not None or display.enabled:
                drawn = _draw(model, frame.image, poses, opts, fps=fps if opts.fps_overlay or sink is None else None)
                if sink is not None:
                    sink.write(drawn)
                    if display.enabled and not opts.fps_overlay:  # (the window shows the FPS)
                        drawn = _draw(model, frame.image, poses, opts, fps=fps)
                if display.enabled and not display.show(drawn):
                    break
            bar.update(1)
    finally:
        bar.close()
        source.close()
        if sink is not None:
            sink.close()
    if sink is not None:
        _say(f"wrote {sink.path} ({sink.frames} frames)")
