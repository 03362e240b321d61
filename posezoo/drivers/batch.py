"""``posezoo batch``: poses of whole data sets into Parquet, on this machine's cores or on a Ray cluster.

    posezoo batch MODEL INPUT... --out DIR_OR_URI [--ray local|ADDRESS] [--workers N] [--save-media]

The inputs (image and video files, folders, any URI pyarrow.fs understands such as ``s3://``) are
listed once (:func:`posezoo.io.items.uri_items`) and grouped into units: a video whole (tracking is
sequential within a video), images in chunks. Each unit runs through :func:`batch_unit`, which turns
every pose of every frame into a row of :mod:`posezoo.io.parquet`'s schema, whichever engine runs it:

- without ``--ray``: the local process pool (:mod:`posezoo.drivers.pool`);
- with ``--ray``: a Ray Data pipeline, ``from_items(units) -> map_batches(callable class holding one
  model per actor, actor pool of N)``, consumed by the driver. ``--ray local`` starts Ray on this machine
  (or uses the one ``ray.init`` started in this process); any other value is the address of a running
  cluster (``auto``, ``ray://head:10001``).

Either way the worker (process or actor) that ran a unit writes its Parquet file,
``OUT/_incomplete/part-<run>-<unit>.parquet`` (atomically: a retried unit replaces it whole), and returns one small
summary row; the rows and the files are the same. (Handing the pose tables to Ray's ``write_parquet``
instead cost a stage of its own: on 2 cores, 300 images took 8.1 s against 6.2 s, with 30 % more
CPU.)

Beside the Parquet files: ``OUT/_posezoo.json`` (the model, its keypoint names and skeleton,
counts), ``OUT/_errors/`` (one JSON file per failed input) and, with ``--save-media``, annotated
copies under ``OUT/_media/`` (mirroring the input tree). Readers of the folder (pyarrow, pandas,
DuckDB, Ray) skip names starting with ``_``: the parts are moved from ``_incomplete/`` into ``OUT/``
once every unit is done, and the sidecar, written last, marks the run complete; a killed run leaves
its parts under ``_incomplete/``, which ``--resume`` finishes (:func:`_check_out`).

Weights: the model is fetched, verified and converted once here before any worker starts; workers on
this machine then open it offline from the cache. On a cluster every node fetches it into its own
cache through the same verified fetch (file locks keep its actors from racing), from the registry
URLs or from ``--mirror`` (a folder every node sees, or an http mirror: ``posezoo cache export``).
Ray and pyarrow are imported only here, lazily: pyarrow (all a local run needs) comes with
``pip install "posezoo[parquet]"``, Ray with ``pip install "posezoo[ray]"`` (which includes it).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import pickle
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import cv2

from posezoo.version import __version__
from posezoo.io.draw import draw_poses
from posezoo.io.guard import inside
from posezoo.errors import InputError, PosezooError, environment_error
from posezoo.io.items import Item, ItemReader, filesystem, is_uri, make_units, uri_items
from posezoo.io.parquet import FIELDS, PoseRows, join, put_file, write_table
from posezoo.drivers.frames import PredictOptions, frame_poses
from posezoo.drivers.pool import (
    ModelRef,
    Stopped,
    UnitContext,
    check_environment,
    default_workers,
    failure_line,
    prepare_model,
    run_units,
    say,
    threads_per_worker,
)
from posezoo.inference.runtime import THREADS_ENV, physical_cores
from posezoo.io.sinks import VideoSink
from posezoo.io.sources import quiet_native_stderr

RAY_EXTRA = 'pip install "posezoo[ray]"'
PARQUET_EXTRA = 'pip install "posezoo[parquet]"'
RAY_LOG_LEVEL_ENV = "RAY_BACKEND_LOG_LEVEL"
SIDECAR = "_posezoo.json"
ERRORS = "_errors"
MEDIA = "_media"
INCOMPLETE = "_incomplete"  # the parts of a run not finished yet (readers skip names starting with _)
MIN_FREE = 1 << 20  # bytes free under a local --out, checked before any work


def need(module: str, what: str, extra: str = RAY_EXTRA) -> None:
    """Import ``module`` or raise one PosezooError naming the extra that brings it."""
    try:
        importlib.import_module(module)
    except ImportError:
        raise PosezooError(f"{what} needs the Python package {module!r}, which is not installed", extra) from None


@dataclass(frozen=True)
class BatchJob:
    """What every worker needs besides the model."""

    model: str
    variant: str
    out: str
    media: bool = False
    run: str = "0"  # this run's id: part names of a resumed run never meet the earlier run's

    @property
    def parts(self) -> str:
        """Where the workers write the Parquet parts until the run is complete."""
        return join(self.out, INCOMPLETE)


@dataclass
class BatchResult:
    """What a batch run did."""

    out: str
    engine: str  # "local" or "ray"
    workers: int
    inputs: int
    rows: int
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0  # the whole run, listing to the last file
    run_seconds: float = 0.0  # from the engine's start (Ray started) to the last file


# ------------------------------------------------------------------------------------ one unit


class _MediaWriter:
    """The annotated copy of one input under ``OUT/_media/``: a PNG per image, an MP4 per video
    (written to a temporary file first: renamed into place, or uploaded, when complete)."""

    def __init__(self, out: str, item: Item, reader: ItemReader):
        rel = PurePosixPath(item.rel).with_suffix(".png" if item.kind == "image" else ".mp4")
        self.dest = join(join(out, MEDIA), rel.as_posix())
        self.kind = item.kind
        self.tmpdir = None
        self.sink = None
        if item.kind == "video":
            local = self.dest
            if is_uri(self.dest):
                self.tmpdir = tempfile.mkdtemp(prefix="posezoo-media-")
                local = os.path.join(self.tmpdir, "annotated.mp4")
            Path(local).parent.mkdir(parents=True, exist_ok=True)
            self.sink = VideoSink(Path(local), reader.fps, reader.size)

    def write(self, image) -> None:
        if self.sink is not None:
            self.sink.write(image)
            return
        ok, buf = cv2.imencode(".png", image)
        if not ok:
            raise InputError(f"cannot encode the annotated copy {self.dest}")
        put_file(self.dest, lambda f: f.write(buf.tobytes()))

    def close(self) -> None:
        if self.sink is not None:
            self.sink.close()
            if self.tmpdir:
                put_file(self.dest, lambda f: f.write(Path(self.sink.path).read_bytes()))
        self._cleanup()

    def discard(self) -> None:
        if self.sink is not None:
            self.sink.writer.release()
            self.sink.tmp.unlink(missing_ok=True)
        self._cleanup()

    def _cleanup(self) -> None:
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)


def _item_rows(model, item: Item, ctx: UnitContext, job: BatchJob, rows: PoseRows) -> None:
    with ItemReader(item) as reader:
        media = _MediaWriter(job.out, item, reader) if job.media else None
        try:
            for frame, poses in frame_poses(model, reader, ctx.opts, video=item.kind == "video"):
                height, width = frame.image.shape[:2]
                rows.add(item.source, frame.index, frame.timestamp, (width, height), poses)
                if media is not None:
                    media.write(draw_poses(frame.image, poses, model.skeleton))
                ctx.tick()
                ctx.check()
        except BaseException:
            if media is not None:
                media.discard()
            raise
        if media is not None:
            media.close()


def _error_file(out: str, index: int, position: int, item: Item, line: str) -> None:
    record = json.dumps({"source": item.source, "kind": item.kind, "error": line}) + "\n"
    put_file(join(join(out, ERRORS), f"{index:06d}-{position:04d}.json"), lambda f: f.write(record.encode("utf-8")))


def batch_unit(model, unit: list[Item], ctx: UnitContext, job: BatchJob):
    """Run one unit (either engine) and write its rows to ``_incomplete/part-<run>-<unit>.parquet``: ``(failures, rows
    written)``. A failed input leaves no rows, one failure line and one file under ``_errors/``."""
    rows = PoseRows(job.model, job.variant)
    failures: list[str] = []
    for position, item in enumerate(unit):
        mark = len(rows)
        try:
            _item_rows(model, item, ctx, job, rows)
        except Stopped:
            raise
        except Exception as exc:
            rows.truncate(mark)
            line = failure_line(item, exc)
            failures.append(line)
            _error_file(job.out, ctx.index, position, item, line)
    if len(rows):
        write_table(rows.table(), join(job.parts, f"part-{job.run}-{ctx.index:06d}.parquet"))
    return failures, len(rows)


# ------------------------------------------------------------------------------------ Ray


class _Never:
    def is_set(self) -> bool:
        return False


class RayPredictor:
    """The callable class of ``map_batches``: one model per actor, loaded once; each call gets one
    unit (a row: index, sources, kinds, rels), writes its Parquet file and returns a summary row
    (index, rows written, failed inputs). ``ref``: the pickled :class:`ModelRef` (its resolution is
    resolved again here, in the actor's zoo)."""

    def __init__(self, ref: bytes, opts: PredictOptions, job: BatchJob, threads: int):
        os.environ[THREADS_ENV] = str(threads)
        cv2.setNumThreads(threads)
        self.model = pickle.loads(ref).load()
        self.opts = opts.check(self.model)
        self.job = job

    def __call__(self, batch):
        summaries = []
        for row in batch.to_pylist():
            unit = [Item(s, k, r) for s, k, r in zip(row["sources"], row["kinds"], row["rels"])]
            ctx = UnitContext(_Never(), lambda n: None, row["index"], self.opts)
            try:
                failures, written = batch_unit(self.model, unit, ctx, self.job)
            except OSError as exc:  # the output cannot be written (read-only, full): the run's one cause
                raise environment_error(exc) or InputError(
                    f"cannot write under {self.job.out}: {exc.strerror or exc}", "check --out"
                ) from None
            summaries.append({"index": row["index"], "rows": written, "failed": len(failures)})
        import pyarrow as pa

        return pa.Table.from_pylist(summaries)


def _posezoo_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith("POSEZOO_") and k != THREADS_ENV}


def _start_ray(address: str) -> bool:
    """Connect to Ray (``local``: start it here unless this process already did); True when this
    call started it (and must shut it down)."""
    import ray

    if ray.is_initialized():
        return False
    quiet = dict(include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    # Ray's C++ core logs its errors (an actor's arguments in the object store...) to this process's
    # stderr: only fatal ones now (the level is read once, at init; a level the user set is kept). The
    # one line saying the level was set, and the start's own chatter, go to /dev/null with init's stderr;
    # a failed start is an exception, said below in one line. (The workers' logs stay in Ray's files.)
    saved = os.environ.get(RAY_LOG_LEVEL_ENV)
    os.environ.setdefault(RAY_LOG_LEVEL_ENV, "fatal")
    try:
        with quiet_native_stderr():
            if address == "local":
                ray.init(num_cpus=physical_cores(), runtime_env={"env_vars": _posezoo_env()}, **quiet)
            else:
                ray.init(address=address, **quiet)
    except Exception as exc:
        raise PosezooError(f"cannot start or reach Ray at {address!r}: {_first_line(exc)}", "check --ray (local, auto, ray://HOST:10001)") from None
    finally:
        if saved is None:
            os.environ.pop(RAY_LOG_LEVEL_ENV, None)
    return True


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _root_error(exc: BaseException) -> PosezooError | None:
    """The PosezooError a Ray task or actor raised, found through Ray's wrappers."""
    seen = set()
    stack = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, PosezooError):
            return PosezooError(e.message, e.fix) if type(e).__module__.startswith("ray") else e
        stack += [getattr(e, "cause", None), e.__cause__, e.__context__]
    return None


def _run_ray(address: str, units: list[list[Item]], job: BatchJob, ref: ModelRef, opts: PredictOptions, workers: int | None, progress: bool) -> tuple[int, float]:
    """Run the units on Ray Data; returns (actors, seconds after Ray's start)."""
    import ray
    import ray.data

    logging.getLogger("ray.data").setLevel(logging.ERROR)
    started = _start_ray(address)
    try:
        begin = time.perf_counter()
        if address == "local":
            actors = workers or default_workers()
            threads = threads_per_worker(actors)
        else:
            cpus = int(ray.cluster_resources().get("CPU", 1))
            actors = workers or max(1, cpus)
            threads = max(1, cpus // actors)
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = progress and sys.stderr.isatty()
        if hasattr(context, "memory_usage_poll_interval_s"):  # its per-second reads of every actor's memory
            context.memory_usage_poll_interval_s = None  # (/proc smaps) slow the actors; nothing here shows them
        rows = [
            {"index": i, "sources": [it.source for it in unit], "kinds": [it.kind for it in unit], "rels": [it.rel for it in unit]}
            for i, unit in enumerate(units)
        ]
        ds = ray.data.from_items(rows, override_num_blocks=max(1, len(rows)))
        ds = ds.map_batches(
            RayPredictor,
            fn_constructor_kwargs={"ref": pickle.dumps(ref), "opts": opts, "job": job, "threads": threads},
            batch_size=1,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=threads,
        )
        try:
            for _ in ds.iter_batches(batch_size=None):  # the actors wrote the files: pull the summaries
                pass
        except Exception as exc:
            root = _root_error(exc)
            if root is not None:
                raise root from None
            raise PosezooError(f"the Ray job failed: {_first_line(exc)}", "see the Ray logs (ray logs, or /tmp/ray)") from None
        return actors, time.perf_counter() - begin
    finally:
        if started:
            ray.shutdown()


# ------------------------------------------------------------------------------------ the command


def _names(out: str) -> list[str] | None:
    """The names in the folder ``out`` (None when it does not exist); InputError when it is a file."""
    from pyarrow import fs as pafs

    fs, path = filesystem(out)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.File:
        raise InputError(f"--out {out} is a file", "give a folder (or a URI prefix) for the Parquet files")
    if info.type != pafs.FileType.Directory:
        return None
    return [PurePosixPath(i.path).name for i in fs.get_file_info(pafs.FileSelector(path))]


def _check_out(out: str, resume: bool = False) -> bool:
    """Check the output folder before any work; returns True when it holds an interrupted run to
    resume. Refused: a finished run (rows of two runs would mix), an interrupted one without
    ``--resume``, files that are not a batch run's (readers of the folder would take them for rows;
    hidden names, starting with ``.`` or ``_``, are tolerated: readers skip them), and, locally, a
    folder that cannot be written or a disk that is full."""
    names = _names(out)
    interrupted = False
    if names is not None:
        if SIDECAR in names:
            raise InputError(f"--out {out} already holds the results of a finished batch run",
                             "choose a new --out, or delete it")  # fmt: skip
        stray = sorted(n for n in names if not n.endswith(".parquet") and not n.startswith((".", "_")))
        if stray:
            shown = ", ".join(stray[:3]) + (f" and {len(stray) - 3} more" if len(stray) > 3 else "")
            raise InputError(
                f"--out {out} holds files that are not a batch run's ({shown}): readers of the folder would take them for rows",
                "choose an empty or new folder for --out",
            )
        interrupted = any(n.endswith(".parquet") or n in (INCOMPLETE, ERRORS, MEDIA) for n in names)
        if interrupted and not resume:
            raise InputError(
                f"--out {out} holds an interrupted batch run (Parquet parts, no {SIDECAR})",
                "add --resume to finish it, or choose a new --out",
            )
    if is_uri(out):
        if names is None:
            fs, path = filesystem(out)
            fs.create_dir(path, recursive=True)
        return interrupted
    folder = Path(out)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".posezoo-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
        stat = os.statvfs(folder)
    except OSError as exc:
        raise InputError(f"cannot write into --out {out}: {exc.strerror or exc}", "choose a folder you can write to") from None
    if stat.f_bavail * stat.f_frsize < MIN_FREE:
        raise InputError(f"cannot write into --out {out}: the disk is full ({stat.f_bavail * stat.f_frsize} bytes free)",
                         "free some space, or write to a folder on another disk")  # fmt: skip
    return interrupted


def _parts(out: str) -> list[str]:
    """The Parquet parts of ``out``: those published (in the folder) and those of a run not finished
    (under ``_incomplete/``), as paths of its file system."""
    from pyarrow import fs as pafs

    fs, path = filesystem(out)
    found = []
    for folder in (path, f"{path.rstrip('/')}/{INCOMPLETE}"):
        if fs.get_file_info(folder).type == pafs.FileType.Directory:
            found += [i.path for i in fs.get_file_info(pafs.FileSelector(folder)) if i.path.endswith(".parquet")]
    return sorted(found)


def _done_sources(out: str) -> set[str]:
    """The inputs an interrupted run finished: those with rows in its parts (a part is written whole,
    for every input of its unit; an input without poses has no rows and simply runs again)."""
    import pyarrow.parquet as pq

    fs, _ = filesystem(out)
    done: set[str] = set()
    for part in _parts(out):
        done.update(pq.read_table(part, columns=["source"], filesystem=fs).column("source").to_pylist())
    return done


def _publish_parts(out: str) -> list[str]:
    """Move the run's parts from ``_incomplete/`` into the folder (the run is complete); returns every
    part of the folder."""
    from pyarrow import fs as pafs

    fs, path = filesystem(out)
    pending = f"{path.rstrip('/')}/{INCOMPLETE}"
    if fs.get_file_info(pending).type == pafs.FileType.Directory:
        for info in fs.get_file_info(pafs.FileSelector(pending)):
            if info.path.endswith(".parquet"):
                fs.move(info.path, f"{path.rstrip('/')}/{PurePosixPath(info.path).name}")
        fs.delete_dir(pending)
    return _parts(out)


def _remove_errors(out: str) -> None:
    from pyarrow import fs as pafs

    fs, path = filesystem(join(out, ERRORS))
    if fs.get_file_info(path).type == pafs.FileType.Directory:
        fs.delete_dir(path)


def _read_errors(out: str) -> list[str]:
    from pyarrow import fs as pafs

    fs, path = filesystem(join(out, ERRORS))
    if fs.get_file_info(path).type != pafs.FileType.Directory:
        return []
    lines = []
    for info in sorted(fs.get_file_info(pafs.FileSelector(path)), key=lambda i: i.path):
        with fs.open_input_stream(info.path) as f:
            lines.append(json.loads(f.read().decode("utf-8"))["error"])
    return lines


def count_rows(out: str, parts: list[str] | None = None) -> int:
    """Rows in the Parquet parts of ``out`` (read from their footers; only the run's own parts)."""
    import pyarrow.dataset as pads

    fs, _ = filesystem(out)
    parts = _parts(out) if parts is None else parts
    return pads.dataset(parts, filesystem=fs, format="parquet").count_rows() if parts else 0


def _inside(source: str, folder: str) -> bool:
    return source.startswith(folder.rstrip("/") + "/")


def _absolute(out: str) -> str:
    return out if is_uri(out) else str(Path(out).absolute())


def batch(
    model: str,
    inputs: list[str],
    out: str,
    *,
    ray: str | None = None,
    workers: int | None = None,
    save_media: bool = False,
    variant: str | None = None,
    max_poses: int = 1,
    threshold: float | None = None,
    static: bool = False,
    device: str = "auto",
    mirror: str | None = None,
    offline: bool | None = None,
    options: Any = None,
    chunk: int | None = None,
    progress: bool = True,
    resume: bool = False,
) -> BatchResult:
    """Poses of every image and video frame of ``inputs`` into Parquet under ``out`` (see the module
    docstring). ``ray``: None (the local process pool), ``"local"`` or a Ray address. ``max_poses``,
    ``threshold``, ``static`` and the family's ``options`` (its options object or keywords) are a
    :class:`posezoo.drivers.frames.PredictOptions`, checked before anything is fetched. Failed inputs
    are listed in the result (and under ``out/_errors/``); the others are written. The parts stay
    under ``out/_incomplete/`` (which readers skip) until every unit is done; ``_posezoo.json``, written
    last, marks the run complete. ``resume``: finish an interrupted run in ``out`` (the inputs with
    rows there are skipped). Raises PosezooError for anything that stops the whole run."""
    from posezoo.zoo.resolve import get_zoo

    start = time.perf_counter()
    need("pyarrow", "posezoo batch", PARQUET_EXTRA)
    if ray is not None:
        need("ray", "posezoo batch --ray")
        need("ray.data", "posezoo batch --ray")
    # the model resolved once, and every option it cannot honour refused, before anything is fetched
    res = get_zoo().resolve(model, variant)
    opts = PredictOptions(max_poses=max_poses, threshold=threshold, static=static, options=options).check(res)
    check_environment()  # $POSEZOO_THREADS, the working folder: before any input is listed
    if not inputs:
        raise InputError("no inputs given", "name image or video files, folders or URIs")
    out = _absolute(out)
    if not is_uri(out):
        for arg in inputs:
            if not is_uri(str(arg)) and inside(str(arg), out):
                raise InputError(f"--out {out} would write over the input {arg}", "choose an --out folder outside the inputs")
    interrupted = _check_out(out, resume)  # before the inputs are listed: a refused --out costs nothing
    items = [i for i in uri_items(inputs) if not _inside(i.source, out)]  # never read our own output back
    total = len(items)
    if interrupted:
        done = _done_sources(out)
        items = [i for i in items if i.source not in done]
        _remove_errors(out)  # the inputs that failed run again
        say(f"resuming: {total - len(items)} of {total} inputs already done")
    ref = ModelRef(res, device=device, mirror=mirror, offline=offline)
    local = ray is None or ray == "local"
    if local:
        ref = prepare_model(ref, progress=progress)  # once, before any worker starts
    n = workers or default_workers()
    units = make_units(items, n, chunk)
    engine = "local" if ray is None else "ray"
    say(f"running {res.name} ({res.variant_name}) over {len(items)} input(s) on {engine if ray is None else 'Ray (' + ray + ')'}")
    job = BatchJob(res.name, res.variant_name, out, media=save_media, run=f"{int(time.time()):x}{os.getpid() % 4096:03x}")
    if ray is None:
        begin = time.perf_counter()
        failures = run_units(units, batch_unit, job, ref, opts, workers=min(n, len(units)) or 1, progress=progress)
        run_seconds = time.perf_counter() - begin
    else:
        n, run_seconds = _run_ray(ray, units, job, ref, opts, workers, progress)
        failures = _read_errors(out)
        for line in failures:
            say(f"skipped: {line}")
    rows = count_rows(out, _publish_parts(out))
    sidecar = {
        "posezoo": __version__,
        "model": res.name,
        "variant": res.variant_name,
        "keypoint_names": list(res.capabilities.keypoint_names),
        "skeleton": [list(e) for e in res.capabilities.skeleton],
        "schema": [f"{name}: {kind}" for name, kind in FIELDS],
        "inputs": total,
        "failed": len(failures),
        "rows": rows,
        "engine": engine,
        "workers": n,
    }
    put_file(join(out, SIDECAR), lambda f: f.write((json.dumps(sidecar, indent=2) + "\n").encode("utf-8")))
    result = BatchResult(out, engine, n, total, rows, failures, time.perf_counter() - start, run_seconds)
    say(f"{total - len(failures)} of {total} input(s) done; wrote {rows} pose rows to {out}")
    return result

