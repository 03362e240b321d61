"""Atomic writes: a file is written under a hidden temporary name beside its target, then renamed.

Readers see the old file or the whole new one, never a half-written one; a failure (disk full,
Ctrl-C) removes the temporary file. The result gets the permissions a plain ``open(path, "w")`` would
give it (``0666 & ~umask``), not the 0600 of a temporary file. A target that exists but is not a
regular file (a device such as /dev/full, a pipe, a folder) is refused: renaming over it would replace
the device itself.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def temporary_path(dest: Path) -> tuple[int, Path]:
    """A new hidden temporary file beside ``dest`` (its folder must exist): ``(fd, path)``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    return fd, Path(tmp)


def check_target(dest: Path) -> None:
    """OSError (EINVAL) when ``dest`` exists but is not a regular file (nor a link to one)."""
    if os.path.lexists(dest) and not Path(dest).is_file():
        what = "a folder" if Path(dest).is_dir() else "not a regular file (a device, pipe or socket)"
        raise OSError(errno.EINVAL, f"it is {what}", str(dest))


def publish(tmp: Path, dest: Path) -> None:
    """Give ``tmp`` normal permissions and rename it to ``dest`` (atomic on one file system)."""
    check_target(dest)
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, dest)


def write_atomically(dest: str | Path, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write(fileobj)`` on a temporary file beside ``dest``, then rename it to ``dest``.

    The folder is created when missing. OSErrors propagate (callers turn them into one-line errors).
    """
    dest = Path(dest)
    check_target(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temporary_path(dest)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        publish(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes(dest: str | Path, data: bytes) -> None:
    """Write ``data`` to ``dest`` atomically."""
    write_atomically(dest, lambda f: f.write(data))
