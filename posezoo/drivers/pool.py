"""A process pool over work units: every core of one machine, one model per worker.

The parent fetches, verifies and converts the model's files once (:func:`prepare_model`) before any
worker starts, so workers never race to convert; each worker then loads the model once, offline from
the cache, with onnxruntime threads = physical cores / workers, and runs the units (a video whole,
or a chunk of images; see :mod:`posezoo.io.items`) the parent hands out. ``concurrent.futures`` runs
them: N workers are one thread of the parent process, which starts at once, and N - 1 processes
forked from multiprocessing's fork server (a fresh process that imported posezoo once: this process,
which may hold threads and sessions, is never forked). With one worker the units run in this
process, the same way.

The model comes as a :class:`ModelRef`: the parent's resolution (made once, at the edge), which a
worker process receives pickled by name and resolves again in its own zoo (workers inherit the
environment: plugins on ``POSEZOO_PLUGINS_PATH`` load there too), and the run's
:class:`posezoo.drivers.frames.PredictOptions`, checked in the parent before anything was fetched and
made typed again in each worker against its loaded model.

A *job* is a top-level function ``job(model, unit, ctx, args) -> (failures, payload)``: it runs
``model`` over the items of ``unit`` (:func:`posezoo.drivers.frames.frame_poses` with ``ctx.opts``),
writes what it writes, counts each image or video frame with ``ctx.tick()`` and calls ``ctx.check()``
between frames; a failed item becomes one line of ``failures`` and the job goes on with the next. The
parent shows one progress bar over images and frames, prints each failure as it arrives, and hands
each payload to ``on_result``.

Ctrl-C (and SIGTERM, which the command line turns into the same stop): worker processes ignore both;
the parent sets a shared stop flag, which makes every running job stop at its next frame (its outputs
being atomic, nothing half-written stays), cancels the units not started, waits for the workers to end
and raises KeyboardInterrupt. A parent that dies without a word (SIGKILL, out of memory) takes its
workers with it: each watches the parent's process and stops, then exits (:func:`_die_with_parent`);
the fork server and multiprocessing's resource tracker end once no worker holds them.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import (
    FIRST_COMPLETED,
    Executor,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from posezoo.drivers.frames import PredictOptions
from posezoo.errors import InputError, PosezooError, environment_error
from posezoo.inference.runtime import THREADS_ENV, physical_cores, session_threads
from posezoo.io.items import Item

if TYPE_CHECKING:
    from posezoo.zoo.resolve import Resolution


@dataclass(frozen=True)
class ModelRef:
    """Which model a worker loads (a resolution, made once at the edge), on which device and from where.
    It pickles with the resolution by name (:class:`posezoo.zoo.resolve.Resolution`), so a worker
    resolves it again in its own zoo."""

    resolution: Resolution
    device: str = "auto"
    mirror: str | None = None
    offline: bool | None = None

    @property
    def name(self) -> str:
        return self.resolution.name

    @property
    def variant(self) -> str:
        return self.resolution.variant_name

    def load(self):
        """The worker's model (loaded once per worker)."""
        return self.resolution.load(device=self.device, mirror=self.mirror, offline=self.offline)


class Stopped(BaseException):
    """Raised by :meth:`UnitContext.check` once the run is being stopped (not an item failure)."""


def default_workers() -> int:
    """One worker per physical core."""
    return physical_cores()


def threads_per_worker(workers: int) -> int:
    """onnxruntime intra-op threads for each of ``workers`` workers: ``$POSEZOO_THREADS`` when set
    (checked: a whole number >= 1, else an InputError), else this machine's cores shared among them."""
    if os.environ.get(THREADS_ENV, "").strip():
        return session_threads()
    return max(1, physical_cores() // max(1, workers))


def check_environment() -> None:
    """What a pool needs of its surroundings, checked before any work: ``$POSEZOO_THREADS`` and a
    working folder that still exists (worker processes start in it)."""
    threads_per_worker(1)
    try:
        os.getcwd()
    except FileNotFoundError:
        raise InputError("the working folder no longer exists (it was deleted)", "cd to an existing folder and run again") from None


def prepare_model(ref: ModelRef, *, progress: bool = True) -> ModelRef:
    """In the parent, before any worker starts: fetch, verify and convert the model's files into the
    cache. Returns the reference workers use: offline, no mirror."""
    ref.resolution.files(mirror=ref.mirror, offline=ref.offline, progress=progress)
    return replace(ref, mirror=None, offline=True)


def failure_line(item: Item, exc: BaseException) -> str:
    """One line for a failed item, naming it."""
    if isinstance(exc, PosezooError):
        text = str(exc)
        return text if item.source in text else f"{item.source}: {text}"
    return f"{item.source}: internal error: {type(exc).__name__}: {' '.join(str(exc).split())}"


# ------------------------------------------------------------------------------------ workers


class UnitContext:
    """What a job sees of the pool: the unit's ``index`` (its place in input order), the run's
    options (``opts``, checked against the worker's model), progress ticks and the stop flag."""

    def __init__(self, stop, tick: Callable[[int], None], index: int = 0, opts: PredictOptions | None = None):
        self._stop = stop
        self._tick = tick
        self.index = index
        self.opts = opts if opts is not None else PredictOptions()

    def tick(self, n: int = 1) -> None:
        self._tick(n)

    def check(self) -> None:
        if self._stop.is_set() or _ORPHANED.is_set():
            raise Stopped()


_WORKER: dict[str, Any] = {}


_ORPHANED = threading.Event()  # set in a worker process whose parent (the run) has ended
ORPHAN_GRACE = 2.0  # seconds an orphaned worker has to stop at its next frame before it exits anyway


def _die_with_parent(parent: int) -> None:
    """Make this worker process end when the run's process ``parent`` ends, however it ends (SIGKILL
    included): a thread waits on a pidfd of the parent (polling where there is none), then sets
    :data:`_ORPHANED`, which stops the running job at its next frame (its outputs being atomic, nothing
    half-written stays), and exits the process after :data:`ORPHAN_GRACE` seconds. The worker's own
    parent is the fork server; a parent-death signal (Linux) kills the worker if that one dies."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass

    def gone() -> bool:
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass
        return False

    def watch() -> None:
        fd = None
        try:
            fd = os.pidfd_open(parent)  # (Linux 5.3+): readable once the parent has ended
        except (AttributeError, OSError):
            fd = None
        if fd is not None:
            import select

            select.select([fd], [], [])
            os.close(fd)
        else:
            while not gone():
                time.sleep(0.5)
        _ORPHANED.set()
        time.sleep(ORPHAN_GRACE)
        os._exit(1)

    if gone():
        os._exit(1)
    threading.Thread(target=watch, name="posezoo-parent-watch", daemon=True).start()


def _init_worker(ref: bytes, opts: PredictOptions, threads: int, stop, counter, parent: int | None = None) -> None:
    """Pool initializer: quiet SIGINT and SIGTERM (the parent decides, and stops its workers), a worker
    that dies with ``parent`` (the run's process), threads, the shared flag and counter.
    ``ref``: the pickled :class:`ModelRef`, unpickled (resolved again) with the model's first load,
    where a failure is the run's one error line instead of a worker that dies starting."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if parent is not None:
        _die_with_parent(parent)
    _setup_state(ref, opts, threads, stop, counter)


def _setup_state(ref: ModelRef | bytes, opts: PredictOptions, threads: int, stop, counter) -> None:
    import cv2

    os.environ[THREADS_ENV] = str(threads)
    cv2.setNumThreads(threads)
    _WORKER.clear()
    _WORKER.update(ref=ref, opts=opts, stop=stop, counter=counter, model=None)


def _tick(n: int = 1) -> None:
    counter = _WORKER["counter"]
    with counter.get_lock():
        counter.value += n


def _run_unit(job: Callable, index: int, unit: list[Item], args: Any) -> tuple[str, Any, Any]:
    """Run ``job`` on one unit in a worker: ("ok", failures, payload), ("setup", error, None) when the
    model cannot be loaded or refuses the options, ("stopped", None, None)."""
    if _WORKER.get("model") is None:
        try:
            ref = _WORKER["ref"]
            model = (pickle.loads(ref) if isinstance(ref, bytes) else ref).load()
            opts = _WORKER["opts"].check(model)
        except PosezooError as exc:
            return "setup", exc, None
        _WORKER.update(model=model, opts=opts)
    ctx = UnitContext(_WORKER["stop"], _WORKER.get("tick", _tick), index, _WORKER["opts"])
    try:
        failures, payload = job(_WORKER["model"], unit, ctx, args)
    except Stopped:
        return "stopped", None, None
    except Exception as exc:  # a bug in a job or a family: every item of the unit failed, the rest go on
        found = environment_error(exc)
        if found is not None:  # a full disk, no file descriptors left: the whole run stops, with its cause
            return "setup", found, None
        return "ok", [failure_line(item, exc) for item in unit], None
    return "ok", failures, payload


# ------------------------------------------------------------------------------------ parent


_MESSAGES: list = []  # the stream of the run in progress (see _message_stream)


def say(line: str) -> None:
    """A ``posezoo:`` line on stderr that does not break the progress bar."""
    stream = _MESSAGES[-1] if _MESSAGES else sys.stderr
    tqdm.write(f"posezoo: {line}", file=stream)
    stream.flush()


@contextmanager
def _message_stream() -> Iterator[Any]:
    """Stderr for the lines and the bar of a run, on a duplicate of its file descriptor taken before
    the worker thread starts: the reading code silences descriptor 2 for a moment around each native
    call (:func:`posezoo.io.sources.quiet_native_stderr`), which would swallow a line the main thread
    wrote meanwhile."""
    try:
        stream = os.fdopen(os.dup(sys.stderr.fileno()), "w", buffering=1, encoding="utf-8", errors="replace")
    except (OSError, ValueError, AttributeError):  # no file descriptor behind sys.stderr
        stream = None
    _MESSAGES.append(stream or sys.stderr)
    try:
        yield _MESSAGES[-1]
    finally:
        _MESSAGES.pop()
        if stream is not None:
            stream.close()


def run_units(
    units: Sequence[list[Item]],
    job: Callable,
    args: Any,
    ref: ModelRef,
    opts: PredictOptions,
    *,
    workers: int,
    on_result: Callable[[int, Any], None] | None = None,
    progress: bool = True,
) -> list[str]:
    """Run ``job`` over ``units`` on ``workers`` processes (in this process for one worker); returns
    the failure lines (already printed, one per failed item). ``ref`` must be prepared
    (:func:`prepare_model`) and ``opts`` checked against its resolution (:meth:`PredictOptions.check`);
    each job sees them, checked against its worker's model, as ``ctx.opts``. A model that cannot be loaded in a worker raises its PosezooError;
    Ctrl-C stops the workers and raises KeyboardInterrupt."""
    total = sum(item.frames for unit in units for item in unit)
    failures: list[str] = []

    def take(index: int, outcome: tuple[str, Any, Any]) -> None:
        status, value, payload = outcome
        if status == "setup":
            raise value
        if status != "ok":
            return
        for line in value:
            say(f"skipped: {line}")
        failures.extend(value)
        if on_result is not None:
            on_result(index, payload)

    with _message_stream() as stream, tqdm(
        total=total or None, unit="frame", desc="posezoo", file=stream,
        disable=not (progress and sys.stderr.isatty()), dynamic_ncols=True,
    ) as bar:  # fmt: skip
        if workers <= 1:
            _run_inline(units, job, args, ref, opts, bar, take)
        else:
            _run_processes(units, job, args, ref, opts, workers, bar, take)
    return failures


class _Flag:
    """A stop flag for the inline run (never set: Ctrl-C interrupts it directly)."""

    def is_set(self) -> bool:
        return False


def _run_inline(units, job, args, ref, opts, bar, take) -> None:
    saved = os.environ.get(THREADS_ENV)
    _setup_state(ref, opts, threads_per_worker(1), _Flag(), None)
    _WORKER["tick"] = bar.update
    try:
        for index, unit in enumerate(units):
            take(index, _run_unit(job, index, unit, args))
    finally:
        _WORKER.clear()
        if saved is None:
            os.environ.pop(THREADS_ENV, None)
        else:
            os.environ[THREADS_ENV] = saved


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    """SIGINT ignored while helper processes start: they inherit an ignored SIGINT (across exec too),
    so a Ctrl-C while the fork server imports posezoo interrupts only this process."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, saved)


@contextmanager
def _sigint_deferred() -> Iterator[None]:
    """A Ctrl-C during the block raises KeyboardInterrupt once the block is done: starting a worker
    process (inside ``submit``) is not cut in half, which would leave a process nobody waits for."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    saved = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, saved)
    if caught:
        raise KeyboardInterrupt


def _start_helpers(ctx) -> tuple[Any, Any]:
    """Start the fork server (and multiprocessing's resource tracker) with SIGINT ignored; returns the
    shared stop flag and progress counter."""
    with _sigint_ignored():
        if ctx.get_start_method() == "forkserver":
            from multiprocessing import forkserver

            forkserver.ensure_running()
        return ctx.Event(), ctx.Value("q", 0)


def _context(job: Callable):
    """Where workers come from: forked from a fresh server process that imported posezoo once (no fork
    of this process, which may hold threads and sessions; no re-import per worker), or spawned where
    there is no fork (Windows)."""
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    ctx = multiprocessing.get_context(method)
    if method == "forkserver":
        # the main script too (as multiprocessing's default preload does): imported once in the server,
        # not again in every worker
        ctx.set_forkserver_preload(["__main__", "posezoo.drivers.pool", "posezoo.zoo.resolve", job.__module__])
    return ctx


def _init_local(ref: ModelRef | bytes, opts: PredictOptions, threads: int, stop, counter) -> None:
    """Initializer of the worker thread of this process (no signal handling: that is the main thread's)."""
    _setup_state(ref, opts, threads, stop, counter)


def _run_processes(units, job, args, ref, opts, workers, bar, take) -> None:
    """``workers - 1`` worker processes, and one worker thread in this process, which starts on the
    first unit at once while the processes start. Units go to whichever frees up first."""
    import cv2

    ctx = _context(job)
    stop, counter = _start_helpers(ctx)
    threads = threads_per_worker(workers)
    saved = os.environ.get(THREADS_ENV), cv2.getNumThreads()
    # longest first: videos, then image chunks, each in input order
    order = deque(sorted(range(len(units)), key=lambda i: (units[i][0].kind != "video", i)))
    local = ThreadPoolExecutor(max_workers=1, initializer=_init_local, initargs=(ref, opts, threads, stop, counter))
    processes = ProcessPoolExecutor(
        max_workers=workers - 1, mp_context=ctx, initializer=_init_worker,
        initargs=(pickle.dumps(ref), opts, threads, stop, counter, os.getpid()),
    )  # fmt: skip
    # units in flight: one queued behind each process's running unit keeps it fed, until the last
    # units, which go to whichever worker frees up first (a queued one would leave another worker idle)
    slots = {local: 1, processes: 2 * (workers - 1)}
    tail = {local: 1, processes: workers - 1}
    running: dict[Future, tuple[Executor, int]] = {}

    def feed(executor: Executor) -> None:
        def room() -> bool:
            limit = (slots if len(order) > workers else tail)[executor]
            return sum(1 for e, _ in running.values() if e is executor) < limit

        while order and room():
            index = order.popleft()
            with _sigint_deferred():  # (a submit may start a worker process)
                running[executor.submit(_run_unit, job, index, units[index], args)] = (executor, index)

    try:
        try:
            feed(local)
            feed(processes)
        except OSError as exc:  # starting a worker process: too few file descriptors, a deleted folder
            found = environment_error(exc)
            if found is None:
                raise
            raise found from None
        while running:
            done, _ = wait(running, timeout=0.2, return_when=FIRST_COMPLETED)
            bar.update(counter.value - bar.n)
            for future in done:
                executor, index = running.pop(future)  # (a finished unit's results are not kept)
                try:
                    outcome = future.result()
                except BrokenProcessPool:
                    raise PosezooError(
                        "a worker process ended abruptly (killed, out of memory, or it could not start)",
                        "try fewer --jobs",
                    ) from None
                take(index, outcome)
                feed(executor)
        bar.update(counter.value - bar.n)
    except BaseException:
        stop.set()  # running units end at their next frame; the others never start
        for future in running:
            future.cancel()
        raise
    finally:
        local.shutdown(wait=True, cancel_futures=True)
        processes.shutdown(wait=True, cancel_futures=True)
        _WORKER.clear()
        if saved[0] is None:
            os.environ.pop(THREADS_ENV, None)
        else:
            os.environ[THREADS_ENV] = saved[0]
        cv2.setNumThreads(saved[1])
