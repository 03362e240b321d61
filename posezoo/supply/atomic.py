"""Atomic writes, temporary names, and files opened without following links.

Atomic writes: a file is written under a hidden temporary name beside its target, then renamed.
Readers see the old file or the whole new one, never a half-written one; a failure (disk full,
Ctrl-C) removes the temporary file. The result gets the permissions a plain ``open(path, "w")`` would
give it (``0666 & ~umask``), not the 0600 of a temporary file. A target that exists but is not a
regular file (a device such as /dev/full, a pipe, a folder) is refused: renaming over it would replace
the device itself.

Temporary names are unique per process and per call: ``.<name>.<pid>.<random><suffix>`` (suffix
``.tmp``, or ``.tmp.mp4`` where a writer needs the extension), created exclusively (``O_EXCL``: never
an existing file, never through a link). Two processes writing one target never share a temporary
file; the last to finish wins with a complete file. A process killed mid-write (SIGKILL, power loss)
leaves its temporary behind; :func:`clean_stale_temporaries` removes those whose process is gone.

Files in the folders posezoo owns (the cache) are opened with :func:`open_regular`: ``O_NOFOLLOW`` on
the last component (an ``lstat`` check before and an identity check after where the platform has no
``O_NOFOLLOW``), never blocking on a FIFO, and refused unless they are regular files (a symbolic link,
a device, a FIFO, a socket is an :class:`UnsafeFile`; with ``single=True`` a file with other hard links
too). The caller checks the folders above it (see :mod:`posezoo.supply.cache`).
"""

from __future__ import annotations

import errno
import os
import re
import stat
import tempfile
import time
from pathlib import Path
from typing import BinaryIO, Callable

try:
    import fcntl
except ImportError:  # (Windows)
    fcntl = None  # type: ignore[assignment]

STALE_AGE = 600  # seconds a dead process's temporary stays untouched before it is removed
_NAME_KEPT = 120  # characters of the target's name in a temporary name (NAME_MAX is 255)
# .<name>.<pid>.<8 random characters of mkstemp>.tmp[.ext]
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[a-z0-9_]{8}\.tmp(\.[A-Za-z0-9]{1,8})?$")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# --------------------------------------------------------------------------------------------- temporaries


def temporary_path(dest: Path, suffix: str = ".tmp") -> tuple[int, Path]:
    """A new hidden temporary file beside ``dest`` (its folder must exist): ``(fd, path)``, named
    ``.<name>.<pid>.<random><suffix>`` (``suffix`` must start with ``.tmp``), unique per call."""
    dest = Path(dest)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name[:_NAME_KEPT]}.{os.getpid()}.", suffix=suffix, dir=dest.parent)
    return fd, Path(tmp)


def temporary_owner(name: str) -> tuple[str, int] | None:
    """``(target name, pid)`` of a temporary file name made by :func:`temporary_path`, else None."""
    found = _TEMPORARY.match(name)
    return (found.group("name"), int(found.group("pid"))) if found else None


def process_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine (one of another user counts)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def clean_stale_temporaries(folder: Path, name: str | None = None, *, age: float = STALE_AGE) -> list[Path]:
    """Remove the temporaries in ``folder`` (of the target ``name`` only, when given) left by processes
    that are gone: the pid in the name is no process here, and the file has not changed for ``age``
    seconds (a pid of another machine or container sharing the folder is not known here: the age keeps
    a live writer's file). Folders are never touched; nothing raises. Returns what was removed."""
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    now = time.time()
    for entry in names:
        owner = temporary_owner(entry)
        if owner is None or (name is not None and owner[0] != name[:_NAME_KEPT]) or owner[1] == os.getpid():
            continue
        path = Path(folder) / entry
        try:
            st = os.lstat(path)
            if stat.S_ISDIR(st.st_mode) or now - st.st_mtime < age or process_alive(owner[1]):
                continue
            os.unlink(path)
        except OSError:
            continue
        removed.append(path)
    return removed


# --------------------------------------------------------------------------------------------- opening safely


class UnsafeFile(OSError):
    """A path that must be a regular file of posezoo's own and is not: ``what`` says what it is."""

    def __init__(self, path: Path | str, what: str):
        super().__init__(errno.ELOOP if "link" in what else errno.EINVAL, f"it is {what}", str(path))
        self.what = what


def describe(mode: int) -> str:
    """What a file of ``st_mode`` is, for a message: "a symbolic link", "a folder", ..."""
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def lstat_regular(path: Path | str, *, single: bool = False) -> os.stat_result | None:
    """``os.lstat(path)`` when ``path`` is a regular file (with ``single``: with no other hard link);
    None when it does not exist; an :class:`UnsafeFile` when it is anything else."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeFile(path, describe(st.st_mode))
    if single and st.st_nlink > 1:
        raise UnsafeFile(path, f"a file with {st.st_nlink - 1} other hard link(s)")
    return st


def open_regular(path: Path | str, flags: int = os.O_RDONLY, mode: int = 0o644, *, single: bool = False) -> int:
    """``os.open(path, flags, mode)`` that never follows a symbolic link at the last component and never
    blocks on a FIFO; anything but a regular file (with ``single``: one with other hard links, whose
    bytes are shared with a file elsewhere) is closed again and an :class:`UnsafeFile`. OSErrors of the
    open itself propagate (FileNotFoundError, EROFS, ...)."""
    nofollow = getattr(os, "O_NOFOLLOW", 0)
    before = None if nofollow else lstat_regular(path, single=single)  # (no O_NOFOLLOW: check, then compare)
    try:
        fd = os.open(path, flags | nofollow | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
                     | getattr(os, "O_BINARY", 0), mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP or (nofollow and exc.errno == errno.EMLINK):  # (EMLINK: FreeBSD)
            raise UnsafeFile(path, "a symbolic link") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFile(path, describe(st.st_mode))
        if single and st.st_nlink > 1:
            raise UnsafeFile(path, f"a file with {st.st_nlink - 1} other hard link(s)")
        if before is not None and (before.st_dev, before.st_ino) != (st.st_dev, st.st_ino):
            raise UnsafeFile(path, "a file that was replaced while it was opened")
        if fcntl is not None and hasattr(os, "O_NONBLOCK"):
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_file(path: Path | str, how: str = "rb", *, single: bool = False) -> BinaryIO:
    """:func:`open_regular` as a file object: ``how`` is "rb" (read), "r+b" (read and write, created
    when missing, never truncated) or "xb" (a new file: an existing one, or a link, is an error)."""
    flags = {"rb": os.O_RDONLY, "r+b": os.O_RDWR | os.O_CREAT, "xb": os.O_RDWR | os.O_CREAT | os.O_EXCL}[how]
    fd = open_regular(path, flags, single=single)
    return os.fdopen(fd, "rb" if how == "rb" else "r+b")


# --------------------------------------------------------------------------------------------- writing


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
