"""Progress lines on stderr for the slow steps of first use: downloads and conversions.

``progress`` (an argument of :func:`posezoo.load`, of fetching and of conversion) is

- ``None`` (:func:`posezoo.load`'s default): on when stderr is a terminal, off otherwise;
- ``True`` (what the command line passes): on. On a terminal a download is a live bar (tqdm) and a
  conversion a line that ends in ``done in 3.2 s``; elsewhere (a log, a pipe) each file is one line,
  ``posezoo: fetching NAME (2.8 MiB) ... done in 0.4 s`` / ``posezoo: converting NAME to ONNX ... done
  in 3.2 s``, and nothing is printed for a file already in the cache;
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
def step(progress: bool, text: str) -> Iterator[None]:
    """One line on stderr for a step: ``posezoo: TEXT ...`` when it starts, completed with ``done in
    3.2 s`` (or ``failed``) on the same line when it ends. ``progress``: already :func:`enabled`."""
    if not progress:
        yield
        return
    start = time.monotonic()
    _write(f"posezoo: {text} ...")
    try:
        yield
    except BaseException:
        _write(" failed\n")
        raise
    _write(f" done in {time.monotonic() - start:.1f} s\n")


def _write(text: str) -> None:
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):  # (stderr closed or gone: progress is not worth failing for)
        pass
