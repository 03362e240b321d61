"""Progress lines on stderr for the slow steps of first use: downloads and conversions.

``progress`` (an argument of :func:`posezoo.load`, of fetching and of conversion) is

- ``None`` (:func:`posezoo.load`'s default): on when stderr is a terminal, off otherwise;
- ``True`` (what the command line passes): on. On a terminal a download is a live bar (tqdm) and a
  conversion a line, ``posezoo: converting NAME to ONNX ...``, rewritten when it ends; elsewhere (a
  log, a pipe) each file is one line once it is done, ``posezoo: fetched NAME (2.8 MiB) in 0.4 s`` /
  ``posezoo: converted NAME to ONNX in 3.2 s``. Nothing is printed for a file already in the cache,
  nor for a step that fails (its error line says why);
- ``False``: off.

``$POSEZOO_PROGRESS`` decides over all three: ``0`` (what ``--quiet`` sets; workers inherit it) turns
every progress line off, ``1`` turns them on where ``progress`` is None. Nothing here writes to stdout.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from typing import Iterator

PROGRESS_ENV = "POSEZOO_PROGRESS"
_ON = ("1", "true", "yes", "on")
_OFF = ("0", "false", "no", "off")


def is_terminal(stream=None) -> bool:
    """Whether ``stream`` (default stderr) is a terminal."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # (no stream, or a closed one)
        return False


def enabled(progress: bool | None) -> bool:
    """Whether progress lines are shown for ``progress`` (see the module docstring)."""
    env = os.environ.get(PROGRESS_ENV, "").strip().lower()
    if env in _OFF or progress is False:
        return False
    if progress is None:
        return env in _ON or is_terminal()
    return True


def live(progress: bool) -> bool:
    """Whether an enabled progress may draw a live bar (stderr is a terminal)."""
    return progress and is_terminal()


def size_text(n: int | None) -> str:
    if not n:
        return "size unknown"
    if n < 1 << 20:
        return f"{n / 1024:.1f} KiB" if n >= 1024 else f"{n} bytes"
    return f"{n / (1 << 20):.1f} MiB"


@contextmanager
def step(progress: bool, doing: str, done: str) -> Iterator[None]:
    """A line on stderr for a step (``progress``: already :func:`enabled`). Off a terminal: one line
    when it ends well, ``posezoo: DONE in 3.2 s``, nothing when it fails (the error says why). On a
    terminal: ``posezoo: DOING ...`` while it runs, rewritten in place into the line above when it ends
    (and cleared when it fails)."""
    if not progress:
        yield
        return
    tty = is_terminal()
    start = time.monotonic()
    if tty:
        _write(f"posezoo: {doing} ...")
    try:
        yield
    except BaseException:
        if tty:
            _write(_CLEAR)
        raise
    _write(f"{_CLEAR if tty else ''}posezoo: {done} in {time.monotonic() - start:.1f} s\n")


_CLEAR = "\r\x1b[K"  # back to the start of the line, erase it


def _write(text: str) -> None:
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):  # (stderr closed or gone: progress is not worth failing for)
        pass
