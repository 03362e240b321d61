"""``posezoo run`` over many inputs: folders of images and several videos, on every core.

``posezoo run MODEL -i DIR|FILE ... -v DIR|FILE ... [--jobs N] [--resume]`` lists the inputs
(:func:`posezoo.io.items.local_items`), groups them into units (a video whole, images in chunks) and runs
them on a process pool (:mod:`posezoo.drivers.pool`; ``--jobs 1``: in this process). Outputs are named per
input, mirroring the input tree below the inputs' common folder:

- ``-s DIR``: an annotated copy per input, ``DIR/<path>/<stem>.png`` for an image, ``.mp4`` for a video;
- ``--json FILE``: JSON Lines of every input, in input order (the parent writes it as units finish);
- ``--json DIR/``: one JSON Lines file per input, ``DIR/<path>/<stem>.jsonl``.

Every output is written atomically, so ``--resume`` skips the inputs whose per-input outputs all
exist. A failed input is one ``posezoo: skipped:`` line and the others go on; the run then ends with
one error line counting the failures (exit code 5).
"""

from __future__ import annotations

import errno
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from posezoo.supply.atomic import publish, temporary_path, write_atomically
from posezoo.io.draw import draw_poses
from posezoo.io.guard import refuse_overwriting
from posezoo.errors import InputError
from posezoo.io.items import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, Item, ItemReader, local_items, make_units
from posezoo.drivers.frames import frame_poses
from posezoo.drivers.pool import (
    ModelRef,
    Stopped,
    check_environment,
    default_workers,
    failure_line,
    prepare_model,
    run_units,
    say,
    threads_per_worker,
)
from posezoo.drivers.run import RunOptions
from posezoo.io.sinks import (
    VideoSink,
    check_folder,
    check_writable,
    data_stream,
    is_stdout,
    pose_record,
    stdout_error,
    write_image,
)

if TYPE_CHECKING:
    from posezoo.zoo.resolve import Resolution


def wants_many(opts: RunOptions) -> bool:
    """Whether a run goes through the many-input path: a folder, several inputs (images and videos
    together too), --resume or --json DIR/. One file, with or without --jobs, runs as always, and so
    do runs that gather one result over every input (--coco, --world-plot) unless --jobs asks for more
    than one worker (which :func:`run_many` then refuses)."""
    inputs = list(opts.inputs)
    several = (
        len(inputs) + len(opts.videos) > 1
        or any(Path(p).is_dir() for p in [*inputs, *opts.videos])
        or opts.resume
        or opts.json_dir
    )
    if _gathered(opts) and (opts.jobs or 1) == 1 and not opts.resume and not opts.json_dir:
        return False
    return several


def _gathered(opts: RunOptions) -> list[str]:
    """The options of ``opts`` that gather one result over the whole run."""
    return [flag for flag, value in (("--coco", opts.coco_out), ("--world-plot", opts.world_plot)) if value is not None]


@dataclass(frozen=True)
class OutputPlan:
    """Where the outputs of each input go."""

    save_dir: Path | None = None
    json_file: Path | None = None
    json_dir: Path | None = None

    def annotated(self, item: Item) -> Path | None:
        if self.save_dir is None:
            return None
        return self.save_dir / PurePosixPath(item.rel).with_suffix(".png" if item.kind == "image" else ".mp4")

    def json_path(self, item: Item) -> Path | None:
        return None if self.json_dir is None else self.json_dir / PurePosixPath(item.rel).with_suffix(".jsonl")

    def named_outputs(self, item: Item) -> list[tuple[str, Path]]:
        return [(flag, p) for flag, p in (("-s", self.annotated(item)), ("--json", self.json_path(item))) if p is not None]

    def per_input(self, item: Item) -> list[Path]:
        return [p for p in (self.annotated(item), self.json_path(item)) if p is not None]

    def complete(self, item: Item) -> bool:
        """Every per-input output of ``item`` exists (they are written atomically: whole or absent)."""
        outs = self.per_input(item)
        return bool(outs) and all(p.is_file() for p in outs)


def _plan(opts: RunOptions, items: list[Item]) -> OutputPlan:
    save_dir = None
    if opts.savepath is not None:
        save_dir = Path(opts.savepath)
        if not save_dir.is_dir() and save_dir.suffix.lower() in IMAGE_EXTENSIONS | VIDEO_EXTENSIONS:
            raise InputError(
                f"-s {save_dir}: with several inputs -s names a folder (one annotated file per input)",
                "give a folder, e.g. -s annotated/",
            )
        check_folder(save_dir)
    json_file = json_dir = None
    if opts.json_out is not None:
        if not is_stdout(opts.json_out) and (opts.json_dir or Path(opts.json_out).is_dir()):
            json_dir = Path(opts.json_out)
            check_folder(json_dir)
        else:
            json_file = Path(opts.json_out)
            if not is_stdout(json_file):
                check_writable(json_file)
    plan = OutputPlan(save_dir, json_file, json_dir)
    if save_dir is None and json_file is None and json_dir is None:
        given = [str(a) for a in [*opts.inputs, *opts.videos]]
        named = ", ".join(given[:3]) + (f" and {len(given) - 3} more" if len(given) > 3 else "")
        raise InputError(
            f"{len(items)} inputs ({named}) and no output: nothing would be kept (no window is shown for "
            "several inputs)",
            "give -s DIR and/or --json FILE or --json DIR/",
        )
    if opts.resume and json_file is not None:
        raise InputError(
            f"--resume cannot resume one JSON Lines file ({json_file})",
            "use --json DIR/ (one file per input), which --resume can check input by input",
        )
    seen: dict[Path, str] = {}
    for item in items:
        for out in plan.per_input(item):
            if out in seen:
                raise InputError(
                    f"inputs {seen[out]} and {item.source} would both write {out}",
                    "rename one of them, or run them separately",
                )
            seen[out] = item.source
    return plan


@dataclass(frozen=True)
class RunJob:
    """What every worker of ``posezoo run`` needs besides the model."""

    model: str
    variant: str
    plan: OutputPlan
    records: bool  # return the JSON records to the parent (one --json FILE)
    boxes: bool = False  # --draw-boxes
    mesh: bool = False  # --draw-mesh


def _discard(sink: VideoSink) -> None:
    """Drop a video that was not finished (its temporary file), never renaming it into place."""
    sink.writer.release()
    sink.tmp.unlink(missing_ok=True)


def _annotate_item(model, item: Item, ctx, job: RunJob) -> list[dict] | None:
    plan = job.plan
    save = plan.annotated(item)
    json_path = plan.json_path(item)
    want = job.records or json_path is not None
    records: list[dict] = []
    sink = None
    with ItemReader(item) as reader:
        try:
            for frame, poses in frame_poses(model, reader, ctx.opts, video=item.kind == "video"):
                if want:
                    records.append(pose_record(frame.source, frame.index, frame.image, job.model, job.variant, poses))
                if save is not None:
                    mesh = model.capabilities.mesh if job.mesh else ()
                    drawn = draw_poses(frame.image, poses, model.skeleton, boxes=job.boxes, mesh=mesh)
                    if item.kind == "image":
                        save.parent.mkdir(parents=True, exist_ok=True)
                        write_image(save, drawn)
                    else:
                        if sink is None:
                            save.parent.mkdir(parents=True, exist_ok=True)
                            sink = VideoSink(save, reader.fps, reader.size)
                        sink.write(drawn)
                ctx.tick()
                ctx.check()
        except BaseException:
            if sink is not None:
                _discard(sink)
            raise
    if sink is not None:
        sink.close()
    if json_path is not None:
        lines = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records)
        write_atomically(json_path, lambda f: f.write(lines.encode("utf-8")))
    return records if job.records else None


def annotate_unit(model, unit: list[Item], ctx, job: RunJob) -> tuple[list[str], list]:
    """The pool job of ``posezoo run``: each item's outputs; its records when one JSON file is asked for."""
    failures: list[str] = []
    out = []
    for item in unit:
        try:
            out.append(_annotate_item(model, item, ctx, job))
        except Stopped:
            raise
        except Exception as exc:
            failures.append(failure_line(item, exc))
            out.append(None)
    return failures, out


class _OrderedJsonl:
    """One JSON Lines file in input order, from units finishing in any order; written to a temporary
    file and renamed into place at the end."""

    def __init__(self, path: Path):
        self.path = path
        self.stdout = is_stdout(path)  # ``-``: the lines go to standard output as their turn comes
        if self.stdout:
            self.fh, self.tmp = data_stream(), None
        else:
            fd, self.tmp = temporary_path(path)
            self.fh = os.fdopen(fd, "w", encoding="utf-8")
        self.waiting: dict[int, list] = {}
        self.next = 0

    def put(self, index: int, per_item: list) -> None:
        self.waiting[index] = per_item or []
        try:
            while self.next in self.waiting:
                for records in self.waiting.pop(self.next):
                    for record in records or ():
                        self.fh.write(json.dumps(record, separators=(",", ":")) + "\n")
                self.next += 1
            if self.stdout:
                self.fh.flush()
        except OSError as exc:
            raise (stdout_error(exc) if self.stdout else self._error(exc)) from None

    def publish(self) -> None:
        if self.stdout:
            return
        try:
            self.fh.close()
            publish(self.tmp, self.path)
        except OSError as exc:
            self.tmp.unlink(missing_ok=True)
            raise self._error(exc) from None

    def _error(self, exc: OSError) -> InputError:
        """A failed write of the JSON Lines file, as one line naming it (the run stops: the file would
        miss records)."""
        why = "the disk is full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else (exc.strerror or str(exc))
        return InputError(f"cannot write {self.path}: {why}; it was not written", "free some space, or write it to another disk")

    def discard(self) -> None:
        if self.stdout:
            return
        try:
            self.fh.close()
        except OSError:  # (a full disk refuses the last buffered lines too)
            pass
        self.tmp.unlink(missing_ok=True)


def run_many(opts: RunOptions, resolution: Resolution | None = None) -> None:
    """Run one model over many inputs (see the module docstring); raises PosezooError.
    ``resolution``: the model resolved at the edge (default: resolved here)."""
    from posezoo.zoo.resolve import get_zoo

    # unknown model / variant / plugin / family, and every option the model cannot honour: refused
    # before any input is listed and before anything is fetched
    res = resolution or get_zoo().resolve(opts.model, opts.variant)
    popts = opts.predict.check(res, needs=opts.needs)
    check_environment()  # $POSEZOO_THREADS, the working folder: before any input is listed
    if opts.fps_overlay:
        from posezoo.errors import UsageError

        raise UsageError("--fps-overlay draws one video's speed; several inputs run on a pool", "run one video, or leave it out")
    if _gathered(opts):
        raise InputError(
            f"{' and '.join(_gathered(opts))} gather one result over the whole run, in one process",
            "run it with --jobs 1 (and without --resume or --json DIR/)",
        )
    if any(str(v).isdigit() and not Path(v).exists() for v in opts.videos):
        raise InputError("a camera cannot be one of several inputs", "run a camera alone: posezoo run MODEL -v 0")
    items = local_items(opts.inputs, opts.videos)
    outputs = [Path(p).absolute() for p in (opts.savepath, opts.json_out) if p is not None]
    items = [i for i in items if not any(o in Path(i.source).absolute().parents for o in outputs)]  # not our own outputs
    if not items:
        raise InputError("no inputs left: every file found is inside an output folder (-s / --json)")
    plan = _plan(opts, items)
    refuse_overwriting(
        [("--json", None if is_stdout(plan.json_file) else plan.json_file),
         *((flag, out) for item in items for flag, out in plan.named_outputs(item))],
        [Path(i.source) for i in items],
    )
    todo = items
    if opts.resume:
        todo = [i for i in items if not plan.complete(i)]
        say(f"resuming: {len(items) - len(todo)} of {len(items)} inputs already done")
    workers = opts.jobs if opts.jobs is not None else default_workers()
    workers = max(1, min(workers, len(todo) or 1))
    ref = prepare_model(ModelRef(res, device=opts.device, mirror=opts.mirror, offline=opts.offline))
    if opts.display:
        from posezoo.io.sinks import display_available

        if display_available():
            say("several inputs: no window is shown; results go to -s / --json")
    if plan.save_dir is not None:
        plan.save_dir.mkdir(parents=True, exist_ok=True)
    if plan.json_dir is not None:
        plan.json_dir.mkdir(parents=True, exist_ok=True)
    units = make_units(todo, workers)
    say(
        f"running {res.name} ({res.variant_name}) over {len(todo)} input(s) on {workers} worker(s), "
        f"{threads_per_worker(workers)} thread(s) each"
    )
    job = RunJob(res.name, res.variant_name, plan, records=plan.json_file is not None, boxes=opts.draw_boxes, mesh=opts.draw_mesh)
    writer = _OrderedJsonl(plan.json_file) if plan.json_file is not None else None
    try:
        failures = run_units(
            units, annotate_unit, job, ref, popts, workers=workers, on_result=writer.put if writer else None
        )
    except BaseException:
        if writer is not None:
            writer.discard()
        raise
    if writer is not None:
        writer.publish()
    done = len(todo) - len(failures)
    wrote = ", ".join("JSON Lines to standard output" if is_stdout(p) else str(p)
                      for p in (plan.save_dir, plan.json_file, plan.json_dir) if p is not None)
    print(f"posezoo: {done} of {len(todo)} input(s) done; wrote {wrote}", file=sys.stderr)
    if failures:
        raise InputError(f"{len(failures)} of {len(todo)} inputs failed (first: {failures[0]})")
