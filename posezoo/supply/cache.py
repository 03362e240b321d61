"""The model cache: where verified weight files and their converted ONNX models live.

Location: ``$POSEZOO_HOME`` if set, else the platform cache folder (``~/.cache/posezoo`` on Linux).

Layout (one folder per kind of file, so no registry file name can collide with anything else)::

    <home>/
      files/<name>               verified upstream bytes, named as in the registry; the same layout as a
                                 mirror folder (``Cache.export`` copies these); an archive a registry
                                 file is a member of is one of them, and so is the member extracted
      manifests/<name>.json      {"name", "digest", "size", "url" (where the bytes came from, after
                                 redirects), "fetched" (UTC), "onnx": null | {"converter_version",
                                 "converted", "digest" (sha256 of the .onnx), "size"}}; a member of an
                                 archive also has "archive" (its name) and "member" (the path in it),
                                 and "url" is the archive's
      onnx/<name>.onnx           the converted model of a TFLite file
      partial/<name>.part        an interrupted download, resumable with an HTTP Range request
      partial/<name>.part.json   {"url", "digest"} of that download: a part is resumed only from the same
                                 URL for the same digest, so bytes of two files never mix
      locks/<name>.lock          per-file lock: one process at a time fetches, converts or removes a file;
                                 while held it says who holds it ({"pid", "doing", "name", "since",
                                 "command"})

A member of an archive is extracted from the cached archive, which stays, so that its other members
need no download; a mirror holds what upstream publishes, so ``export`` writes the archive and not
the members extracted from it.

A file is *cached* when ``files/<name>`` is a regular file, its manifest names the registry's digest
and the file has the manifest's size (a cheap check; :meth:`Cache.verify` re-hashes against the
registry's digest). A converted model is used only when its bytes have the digest recorded when it
was written (:meth:`Cache.verified_onnx`), and a source file is re-hashed before every conversion
(:meth:`Cache.require_verified`). A file shared by several variants or models is stored once.
Temporary files start with ``.`` (never a registry name) and sit in the folder of their final file,
so ``os.replace`` is atomic.

Links are never followed inside the cache (posezoo often runs as root, and a link planted in a cache
folder must not make it write elsewhere): every file is opened with ``O_NOFOLLOW`` and must be a
regular file (:func:`posezoo.supply.atomic.open_regular`), the partial download also one with no other
hard link; the folders ``files``, ``manifests``, ``onnx``, ``partial`` and ``locks`` must be real
folders (a link there is a one-line error); a link or special file in place of a part, its sidecar or
a lock is removed with a warning, and one in ``files/`` is never cached (``verify`` removes it). The
cache folder itself may be a link.

Locks are ``flock`` locks on ``locks/<name>.lock`` (opened without following links); a wait for one is
bounded by ``$POSEZOO_LOCK_TIMEOUT`` seconds (default 600, 0: no bound), and ends at once, naming the
holder, when the holder is a stopped process (SIGSTOP, Ctrl-Z) for ``STOPPED_GRACE`` seconds.

Reading needs no write access: a read-only cache serves every file it holds verified (``run
--offline``, ``cache list``, ``cache verify``). Whatever must write to it (a lock, a download, a
conversion, a removal) fails as a one-line :class:`FetchError` naming the folder and a fix.
"""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import stat
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Iterator

from posezoo.supply.atomic import (
    UnsafeFile,
    clean_stale_temporaries,
    describe,
    lstat_regular,
    open_file,
    open_regular,
    process_alive,
    write_atomically,
)
from posezoo.errors import FetchError, InputError, PosezooError, shorten
from posezoo.supply import formats
from posezoo.supply.hashes import READ_CHUNK, file_digest, new_hasher

try:
    import fcntl
except ImportError:  # (Windows: filelock's locks, without holder details)
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from posezoo.supply.registry import FileEntry, ModelEntry, Registry

HOME_ENV = "POSEZOO_HOME"
LOCK_TIMEOUT_ENV = "POSEZOO_LOCK_TIMEOUT"
LOCK_TIMEOUT = 600.0  # seconds a process waits for another one's lock (0: no bound)
STOPPED_GRACE = 5.0  # seconds a stopped holder (SIGSTOP, Ctrl-Z) is waited for before giving up
FOLDERS = ("files", "manifests", "onnx", "partial", "locks")


def cache_home() -> Path:
    """``$POSEZOO_HOME``, else ``platformdirs.user_cache_dir("posezoo")``."""
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("posezoo"))


def lock_timeout() -> float:
    """``$POSEZOO_LOCK_TIMEOUT`` in seconds (default :data:`LOCK_TIMEOUT`; 0: wait for ever)."""
    raw = os.environ.get(LOCK_TIMEOUT_ENV, "").strip()
    if not raw:
        return LOCK_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not (0 <= value and math.isfinite(value)):
        raise FetchError(f"${LOCK_TIMEOUT_ENV} is {shorten(raw)}, not a non-negative number of seconds",
                         f"unset {LOCK_TIMEOUT_ENV} (default {LOCK_TIMEOUT:g}) or fix its value (0: no bound)")
    return value or math.inf


# --------------------------------------------------------------------------------------------- helpers


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def _unlink(*paths: Path) -> None:
    for p in paths:
        p.unlink(missing_ok=True)


def _warn(text: str) -> None:
    print(f"posezoo: warning: {text}", file=sys.stderr)


def _write_json(path: Path, data: dict) -> None:
    write_atomically(path, lambda f: f.write(json.dumps(data, indent=2).encode() + b"\n"))


MAX_MANIFEST = 1 << 16  # bytes: a manifest is a few hundred


def _read_json(path: Path) -> Any:
    """The JSON in a regular file of the cache (opened without following links); None when it is
    missing, unreadable, not a regular file or not JSON."""
    try:
        with open_file(path) as f:
            return json.loads(f.read(MAX_MANIFEST + 1))  # (a longer file is cut, so invalid)
    except (OSError, ValueError, RecursionError):
        return None


def _is_size(value: Any) -> bool:
    return type(value) is int and value >= 0


def _onnx_record(value: Any) -> dict | None:
    """A manifest's "onnx" record when it has the types it must have, else None (no usable record)."""
    if not isinstance(value, dict):
        return None
    if not (isinstance(value.get("digest"), str) and _is_size(value.get("size"))
            and isinstance(value.get("converter_version"), str)):
        return None
    return value


def _manifest_record(data: Any) -> dict | None:
    """A manifest as read from disk, with every field of the wrong JSON type left out (a digest or size
    left out makes the file unverified; a bad "onnx" record makes it unconverted); None when it is not a
    JSON object."""
    if not isinstance(data, dict):
        return None
    m = {k: v for k, v in data.items() if isinstance(k, str)}
    for key in ("name", "digest", "url", "fetched", "archive", "member"):
        if key in m and not isinstance(m[key], str):
            del m[key]
    if "size" in m and not _is_size(m["size"]):
        del m["size"]
    m["onnx"] = _onnx_record(m.get("onnx"))
    return m


def _sha256(path: Path) -> str | None:
    try:
        with open_file(path) as f:
            return file_digest(f, "sha256")
    except OSError:
        return None


def _process_state(pid: int) -> str | None:
    """The state letter of a process on Linux (R, S, D, T stopped, t traced, Z), None when unknown."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    rest = text.rpartition(")")[2].split()
    return rest[0] if rest else None


# --------------------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class CacheRecord:
    """One file of the cache, as ``posezoo cache list`` shows it."""

    name: str
    size: int  # bytes on disk
    digest: str  # from the manifest ("" without one)
    url: str  # where it was fetched from ("" without a manifest)
    models: tuple[str, ...]  # registry models that use it
    verified: bool  # a regular file, manifest present, size matches, digest is the registry's (when it knows it)
    converted: bool  # a converted .onnx is present, of the size recorded with its digest
    converter_version: str | None = None
    fetched: str | None = None
    archive: str | None = None  # a member of an archive: the archive it was extracted from
    is_archive: bool = False  # an archive the registry's files are members of


@dataclass(frozen=True)
class VerifyProblem:
    """A cached file (or its converted model, ``name`` ending in ``.onnx``; or a link or special file in a
    cache folder, ``name`` then ``<folder>/<name>``) that failed :meth:`Cache.verify`; ``removed`` is
    False when it could not be removed (``error`` says why)."""

    name: str
    problem: str
    removed: bool = True
    error: str = ""

    def __str__(self) -> str:
        return f"{self.name}: {self.problem}" + ("" if self.removed else f"; could not remove it: {self.error}")


@dataclass
class Cleared:
    """What :meth:`Cache.clear` did: the files it removed, and ``(path, reason)`` for what it could not."""

    removed: list[str]
    failed: list[tuple[str, str]]


class Exported(list):
    """The paths :meth:`Cache.export` wrote; ``skipped``: the files it left out because they do not
    verify (a :class:`VerifyProblem` each, ``removed`` False: export removes nothing)."""

    def __init__(self, paths=()):
        super().__init__(paths)
        self.skipped: list[VerifyProblem] = []


# --------------------------------------------------------------------------------------------- locks


class _FileLock:
    """An exclusive lock on one lock file of the cache: ``flock`` on the file opened without following
    links (a link, special file or file with other hard links there is removed with a warning and a
    fresh one made); while held, the file says who holds it. Without ``fcntl`` (Windows): filelock's
    lock, without holder details."""

    def __init__(self, path: Path):
        self.path = path
        self.fd: int | None = None
        self._fallback = None

    def _open(self) -> int:
        for _ in range(2):
            try:
                return open_regular(self.path, os.O_RDWR | os.O_CREAT, 0o644, single=True)
            except UnsafeFile as exc:
                self.path.unlink(missing_ok=True)  # (the link or node itself, never its target)
                _warn(f"removed {self.path}: it was {exc.what}, not a lock file of posezoo's")
        raise UnsafeFile(self.path, "replaced by something else than a file as soon as it was removed")

    def try_acquire(self, info: dict) -> bool:
        """Take the lock if it is free (writing ``info`` in it); OSError when the cache cannot be written."""
        if fcntl is None:
            from filelock import FileLock, Timeout

            lstat_regular(self.path, single=True)
            self._fallback = self._fallback or FileLock(str(self.path))
            try:
                self._fallback.acquire(timeout=0)
            except Timeout:
                return False
            return True
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                return False
            raise
        self.fd = fd
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
        except OSError:
            pass  # (the details are a courtesy; the lock is what matters)
        return True

    def holder(self) -> dict | None:
        """Who holds the lock, as the holder wrote it (untrusted: checked), None when it does not say."""
        try:
            fd = open_regular(self.path, os.O_RDONLY)
        except OSError:
            return None
        try:
            data = json.loads(os.pread(fd, 4096, 0) or b"null")
        except (OSError, ValueError, RecursionError):
            return None
        finally:
            os.close(fd)
        if not isinstance(data, dict) or type(data.get("pid")) is not int or not 0 < data["pid"] < 1 << 31:
            return None
        return {k: shorten(v, 100) if isinstance(v, str) else v for k, v in data.items() if k in _HOLDER_KEYS}

    def release(self) -> None:
        if self._fallback is not None:
            self._fallback.release()
            return
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


_HOLDER_KEYS = ("pid", "doing", "name", "since", "command")


def _holder_info(doing: str, name: str) -> dict:
    command = " ".join(["posezoo" if os.path.basename(sys.argv[0]) in ("__main__.py", "posezoo") else sys.argv[0],
                        *sys.argv[1:]]) if sys.argv and sys.argv[0] else "python"
    return {"pid": os.getpid(), "doing": doing, "name": name, "since": _now(), "command": shorten(command, 100)}


def _holder_text(info: dict | None) -> tuple[str, str | None]:
    """``(who holds a lock, its state)`` for a message; the state is "stopped", "gone" or None."""
    if not info:
        return "another process (it does not say which)", None
    pid = info["pid"]
    text = f"pid {pid}"
    if isinstance(info.get("command"), str):
        text += f" (`{info['command']}`)"
    if isinstance(info.get("doing"), str) and isinstance(info.get("name"), str):
        text += f", {info['doing']} {info['name']}"
    if isinstance(info.get("since"), str):
        text += f" since {info['since']}"
    if not process_alive(pid):
        return text, "gone"
    return text, "stopped" if _process_state(pid) in ("T", "t") else None


class _Wait:
    """One bounded wait for busy locks: says once on stderr whom it waits for, and ends in a one-line
    FetchError naming the holder when the bound is reached or the holder stays stopped."""

    def __init__(self, what: str, progress: bool):
        self.what = what  # "fetch pose_detection.tflite"
        self.progress = progress
        self.bound = lock_timeout()
        self.start = time.monotonic()
        self.told = False
        self.stopped_since: float | None = None
        self.pause = 0.02

    def busy(self, lock: _FileLock) -> None:
        """``lock`` is held by another process: wait a little, or raise."""
        now = time.monotonic()
        info = lock.holder()
        who, state = _holder_text(info)
        if self.progress and not self.told and now - self.start >= 0.2:
            print(f"posezoo: waiting for {who} to finish (up to {self._bound()})", file=sys.stderr)
            self.told = True
        if state == "stopped":
            self.stopped_since = self.stopped_since or now
            if now - self.stopped_since >= STOPPED_GRACE:
                raise FetchError(
                    f"cannot {self.what}: the cache lock is held by {who}, which is stopped (SIGSTOP or Ctrl-Z)",
                    f"resume it (`kill -CONT {info['pid'] if info else 'PID'}`, or `fg` in its terminal) or end "
                    "it, then run the command again",
                )
        else:
            self.stopped_since = None
        if now - self.start >= self.bound:
            gone = "; that process is gone, a process it started still holds the lock" if state == "gone" else ""
            raise FetchError(
                f"cannot {self.what}: the cache lock is held by {who}{gone}; gave up after {self.bound:g} s",
                f"wait for it to finish and run the command again, or raise {LOCK_TIMEOUT_ENV} (0: no bound)",
            )
        time.sleep(min(self.pause, max(0.0, self.bound - (now - self.start))))
        self.pause = min(self.pause * 2, 0.25)

    def _bound(self) -> str:
        return "without a bound" if math.isinf(self.bound) else f"{self.bound:g} s, {LOCK_TIMEOUT_ENV}"


# --------------------------------------------------------------------------------------------- cache


class Cache:
    """The cache folder (see the module docstring for its layout)."""

    def __init__(self, root: Path | str | None = None):
        self.root = Path(root) if root is not None else cache_home()

    def __repr__(self) -> str:
        return f"Cache({str(self.root)!r})"

    # ---- paths

    def _folder(self, kind: str, create: bool = False) -> Path:
        """``<root>/<kind>``, checked to be a real folder when it exists (created with ``create``); a
        link or anything else there is a FetchError: posezoo never follows links inside its cache."""
        path = self.root / kind
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            if not create:
                return path
            path.mkdir(parents=True, exist_ok=True)  # (OSError: a read-only cache; callers say so)
            st = os.lstat(path)
        except OSError:
            return path  # (the cache folder is not a folder: check_home says so)
        if not stat.S_ISDIR(st.st_mode):
            what = describe(st.st_mode)
            raise FetchError(f"the cache folder {path} is {what}, not a folder: posezoo never follows links "
                             "inside its cache", f"remove it (posezoo makes it again), or set {HOME_ENV} to a "
                             "folder of its own")
        return path

    def check_folders(self) -> None:
        """A FetchError when one of the cache's folders is a link or anything but a folder (before any
        work that would write into it)."""
        for kind in FOLDERS:
            self._folder(kind)

    @property
    def files_dir(self) -> Path:
        return self._folder("files")

    def path(self, entry: FileEntry) -> Path:
        """Where the verified file lives (it may not exist)."""
        return self.files_dir / entry.name

    def onnx_path(self, entry: FileEntry) -> Path:
        """Where its converted .onnx lives; a file of a format without converter (onnx) is its own."""
        fmt = formats.FORMATS.get(entry.format)
        return self.path(entry) if fmt is not None and fmt.is_onnx else self._onnx(entry.name)

    def _onnx(self, name: str) -> Path:
        return self._folder("onnx") / f"{name}.onnx"

    def _manifest(self, name: str) -> Path:
        return self._folder("manifests") / f"{name}.json"

    def part_path(self, entry: FileEntry) -> Path:
        """The partial download of ``entry`` (its sidecar is ``<part>.json``)."""
        return self._part(entry.name)

    def _part(self, name: str) -> Path:
        return self._folder("partial") / f"{name}.part"

    def _part_sidecar(self, name: str) -> Path:
        return self._folder("partial") / f"{name}.part.json"

    # ---- locks

    def lock(self, entry: FileEntry | str) -> _FileLock:
        """The per-file lock (not yet taken); OSError when the cache is not writable."""
        name = entry if isinstance(entry, str) else entry.name
        return _FileLock(self._folder("locks", create=True) / f"{name}.lock")

    @contextmanager
    def hold(self, entry: FileEntry, doing: str, progress: bool = True) -> Iterator[None]:
        """Hold the file's lock (``doing``: "fetching"), waiting for another process that has it at
        most ``$POSEZOO_LOCK_TIMEOUT`` seconds and saying on stderr whom it waits for; a wait that ends
        is a FetchError naming the holder. A cache that cannot be written (read-only, not a folder) is a
        FetchError naming the folder."""
        what = f"{doing.removesuffix('ing')} {entry.name}"
        self.check_folders()
        try:
            lock = self._take(entry.name, doing, what, progress)
        except OSError as exc:
            raise self.write_error(exc, what) from None
        try:
            yield
        finally:
            lock.release()

    def _take(self, name: str, doing: str, what: str, progress: bool) -> _FileLock:
        lock = self.lock(name)
        wait = _Wait(what, progress)
        while not lock.try_acquire(_holder_info(doing, name)):
            wait.busy(lock)
        return lock

    @contextmanager
    def _lock_if_writable(self, name: str, doing: str = "checking") -> Iterator[bool]:
        """The file's lock when the cache can be written (a bounded wait, as :meth:`hold`); yields whether
        it is held (reading a read-only cache needs none: nobody can change it)."""
        try:
            lock = self._take(name, doing, f"{doing.removesuffix('ing')} {name}", True)
        except OSError:
            yield False
            return
        try:
            yield True
        finally:
            lock.release()

    @contextmanager
    def _hold_all(self, doing: str) -> Iterator[None]:
        """Every lock of the cache at once (to clear it): taken all together or none, tried again until
        the bound, so a fetch or conversion under way ends first; a cache whose locks cannot be written
        (read-only) is cleared without them (nothing can change it)."""
        wait = _Wait(doing, True)
        while True:
            try:
                folder = self._folder("locks", create=True)
                names = sorted(n for n in os.listdir(folder) if n.endswith(".lock"))
            except OSError:
                yield
                return
            held: list[_FileLock] = []
            busy = None
            try:
                for n in names:
                    lock = _FileLock(folder / n)
                    if not lock.try_acquire(_holder_info(doing.split()[0] + "ing", "the cache")):
                        busy = lock
                        break
                    held.append(lock)
            except OSError:
                for lock in held:
                    lock.release()
                yield
                return
            if busy is None:
                try:
                    yield
                finally:
                    for lock in held:
                        lock.release()
                return
            for lock in held:
                lock.release()
            wait.busy(busy)

    # ---- errors

    def write_error(self, exc: OSError, doing: str) -> PosezooError:
        """The one-line error for an OSError met while writing to the cache (``doing``: "store x")."""
        self.check_home()
        where = f"the cache {self.root}"
        fix = f"make it writable, or set {HOME_ENV} to a writable folder"
        if isinstance(exc, UnsafeFile):
            return FetchError(f"cannot {doing}: {exc.filename} is {exc.what}; posezoo never follows links or "
                              "writes through them in its cache", "remove it, or run `posezoo cache verify`")
        if exc.errno == errno.EROFS:  # (the folder, not a download: an input/output error, exit 5)
            return InputError(f"cannot {doing}: {where} is on a read-only file system", fix)
        if exc.errno in (errno.EACCES, errno.EPERM):
            return InputError(f"cannot {doing}: no permission to write in {where}", fix)
        if exc.errno == errno.ENOSPC:
            return FetchError(f"cannot {doing}: the disk of {where} is full",
                              f"free some space, or set {HOME_ENV} to a folder on a larger disk")
        return FetchError(f"cannot {doing} in {where}: {exc.strerror or exc}", fix)

    def check_home(self) -> None:
        """An InputError (exit 5, an input/output error) when the cache folder cannot be one: it, or a
        folder above it, is a file, or a folder above it cannot be entered."""
        fix = f"set {HOME_ENV} to a folder you can write (or unset it for the default cache)"
        for p in (self.root, *self.root.parents):
            try:
                st = os.stat(p)
            except (FileNotFoundError, NotADirectoryError):
                if p.is_symlink():  # (a link to nothing)
                    what = f"{HOME_ENV} {self.root}" if p == self.root else f"the cache {self.root}: {p}"
                    raise InputError(f"{what} is a link to nothing, not a folder", fix) from None
                continue  # (missing, or under a file: a folder above says which)
            except OSError as exc:  # (EACCES: a folder above cannot be entered)
                raise InputError(f"the cache {self.root}: cannot enter {p.parent} ({exc.strerror or exc})",
                                 f"{fix}, or give yourself access to {p.parent}") from None
            if not stat.S_ISDIR(st.st_mode):
                what = f"{HOME_ENV} {self.root}" if p == self.root else f"the cache {self.root}: {p}"
                raise InputError(f"{what} is a file, not a folder", fix)
            return

    # ---- verified files

    def require(self, entry: FileEntry) -> Path:
        """The cached file's path; a FetchError saying how to get it when it is not cached."""
        if not self.is_cached(entry):
            raise FetchError(f"{entry.name} is not in the cache", "fetch its model first: `posezoo fetch MODEL`")
        return self.path(entry)

    def require_verified(self, entry: FileEntry) -> Path:
        """The cached file's path after re-hashing it against the registry digest (before a conversion,
        or before running a file that is its own ONNX model). A file that no longer matches is removed
        (when the cache is writable) and is a FetchError."""
        with self.open_verified(entry):
            return self.path(entry)

    @contextmanager
    def open_verified(self, entry: FileEntry) -> Iterator[BinaryIO]:
        """The cached file, open (without following links) and re-hashed against the registry digest:
        the bytes read from it are the bytes verified. A file that no longer matches is removed (when the
        cache is writable) and is a FetchError."""
        path = self.require(entry)
        try:
            f = open_file(path)
        except UnsafeFile as exc:
            actual = f"{exc.what}, not the file"
            f = None
        except OSError as exc:
            raise FetchError(f"cannot read the cached {entry.name}: {exc.strerror or exc}",
                             "check the cache folder's permissions") from None
        if f is not None:
            with f:
                try:
                    actual = file_digest(f, entry.algorithm)
                except OSError as exc:
                    raise FetchError(f"cannot read the cached {entry.name}: {exc.strerror or exc}",
                                     "check the cache folder's permissions") from None
                if actual == entry.digest:
                    f.seek(0)
                    yield f
                    return
        try:
            self._remove(entry.name)
            done = "it was removed"
        except OSError:
            done = "it could not be removed (read-only cache)"
        raise FetchError(
            f"the cached {entry.name} has changed since it was verified: expected {entry.digest}, got {actual}; {done}",
            "run the command again to download it again, or `posezoo cache verify`",
        )

    # ---- state

    def manifest(self, name: str) -> dict | None:
        """The manifest of a cached file (fields of the wrong JSON type left out), or None."""
        return _manifest_record(_read_json(self._manifest(name)))

    def _file_stat(self, name: str) -> os.stat_result | None:
        """lstat of ``files/<name>`` when it is a regular file; None otherwise (missing, a link, ...)."""
        try:
            return lstat_regular(self.files_dir / name)
        except OSError:
            return None

    def _has_valid_file(self, name: str, manifest: dict | None) -> bool:
        st = self._file_stat(name) if manifest else None
        return st is not None and st.st_size == manifest.get("size")

    def is_cached(self, entry: FileEntry) -> bool:
        """The verified file is present: a regular file, its manifest names the entry's digest and the
        size matches."""
        m = self.manifest(entry.name)
        return m is not None and m.get("digest") == entry.digest and self._has_valid_file(entry.name, m)

    def is_converted(self, entry: FileEntry, converter_version: str) -> bool:
        """The file is cached and its .onnx was written by this converter version, with the size
        recorded (a cheap check; :meth:`verified_onnx` re-hashes)."""
        if not self.is_cached(entry):
            return False
        onnx = (self.manifest(entry.name) or {}).get("onnx") or {}
        return onnx.get("converter_version") == converter_version and self._onnx_size_ok(entry.name, onnx)

    def _onnx_size_ok(self, name: str, record: dict) -> bool:
        try:
            st = lstat_regular(self._onnx(name))
        except OSError:
            return False
        return st is not None and isinstance(record.get("digest"), str) and st.st_size == record.get("size")

    def verified_onnx(self, entry: FileEntry, converter_version: str) -> Path | None:
        """The .onnx of ``entry`` when it was written by this converter version and its bytes still have
        the digest recorded then; None otherwise (convert it again)."""
        if not self.is_converted(entry, converter_version):
            return None
        record = (self.manifest(entry.name) or {}).get("onnx") or {}
        path = self.onnx_path(entry)
        return path if _sha256(path) == record.get("digest") else None

    # ---- writing (callers hold the file's lock)

    def _evict(self, path: Path, single: bool = False) -> None:
        """Remove ``path`` with a warning when it is a link, special file (or, with ``single``, a file with
        other hard links): the cache's own scratch files are never followed."""
        try:
            lstat_regular(path, single=single)
        except UnsafeFile as exc:
            path.unlink(missing_ok=True)  # (the link itself: its target is never touched)
            _warn(f"removed {path}: it was {exc.what}; posezoo never follows links in its cache")

    def open_partial(self, entry: FileEntry, url: str) -> int:
        """Prepare the partial download of ``entry`` from ``url``; returns how many bytes to resume from.

        A part left by a download of another URL or digest is discarded, and so is a part or sidecar that
        is a link or special file (with a warning).
        """
        sidecar = self._part_sidecar(entry.name)
        self._evict(self._part(entry.name), single=True)
        self._evict(sidecar)
        wanted = {"url": url, "digest": entry.digest}
        if _read_json(sidecar) == wanted:
            return self.part_size(entry)
        self.drop_partial(entry)
        _write_json(sidecar, wanted)
        return 0

    @contextmanager
    def part_file(self, entry: FileEntry, new: bool = False) -> Iterator[BinaryIO]:
        """The partial download of ``entry``, open for reading and writing without following links (a
        regular file with no other hard link, created when missing; with ``new`` it must not exist).
        :meth:`install` moves into place the very file written here (``os.fstat(f.fileno())``)."""
        part = self._part(entry.name)
        part.parent.mkdir(parents=True, exist_ok=True)
        with open_file(part, "xb" if new else "r+b", single=True) as f:
            yield f

    def part_size(self, entry: FileEntry) -> int:
        """Bytes in the partial download of ``entry`` (0 without one, or when it is no regular file)."""
        try:
            st = lstat_regular(self.part_path(entry))
        except OSError:
            return 0
        return st.st_size if st is not None else 0

    def drop_partial(self, entry: FileEntry) -> None:
        _unlink(self.part_path(entry), self._part_sidecar(entry.name))

    def install(self, entry: FileEntry, url: str, written: os.stat_result | None = None, **extra: str) -> Path:
        """Move the verified partial download into place and write its manifest (``written``: ``fstat`` of
        the part as it was written and hashed, checked to be the file moved; ``extra``: more keys of
        the manifest, ``archive`` and ``member`` for a member of an archive)."""
        final = self.path(entry)
        final.parent.mkdir(parents=True, exist_ok=True)
        _unlink(self._manifest(entry.name), self._onnx(entry.name))
        part = self._part(entry.name)
        st = lstat_regular(part, single=True)
        if st is None:
            raise FileNotFoundError(errno.ENOENT, "the partial download is gone", str(part))
        if written is not None and (st.st_dev, st.st_ino) != (written.st_dev, written.st_ino):
            raise UnsafeFile(part, "another file than the one written and verified")
        os.replace(part, final)
        after = os.lstat(final)
        if (after.st_dev, after.st_ino) != (st.st_dev, st.st_ino):
            _unlink(final)
            raise UnsafeFile(final, "another file than the one verified (replaced while it was moved)")
        try:
            _write_json(
                self._manifest(entry.name),
                {"name": entry.name, "digest": entry.digest, "size": st.st_size, "url": url, **extra,
                 "fetched": _now(), "onnx": None},
            )
        except BaseException:
            _unlink(final)
            raise
        finally:
            _unlink(self._part_sidecar(entry.name))
        return final

    def record_conversion(self, entry: FileEntry, converter_version: str) -> None:
        """Note in the manifest which converter version wrote the .onnx, and the .onnx's digest and size."""
        with open_file(self.onnx_path(entry)) as f:
            digest = file_digest(f, "sha256")
            size = os.fstat(f.fileno()).st_size
        m = self.manifest(entry.name)
        if m is None:  # (removed by hand meanwhile: `cache clear` waits for the lock)
            self._onnx(entry.name).unlink(missing_ok=True)
            raise FetchError(f"{entry.name} was removed from the cache while it was being converted",
                             "run the command again to fetch and convert it")
        m["onnx"] = {"converter_version": converter_version, "converted": _now(), "digest": digest, "size": size}
        _write_json(self._manifest(entry.name), m)

    def _drop_onnx(self, name: str) -> None:
        """Remove a converted model and its record (the source file stays)."""
        self._onnx(name).unlink(missing_ok=True)
        m = self.manifest(name)
        if m is not None and os.path.lexists(self._manifest(name)):
            m["onnx"] = None
            _write_json(self._manifest(name), m)

    def _remove(self, name: str) -> None:
        """Remove a file with its manifest, its .onnx and any partial download of it (links removed,
        never followed)."""
        _unlink(self.files_dir / name, self._manifest(name), self._onnx(name))
        _unlink(self._part(name), self._part_sidecar(name))

    # ---- commands

    def _names(self) -> list[str]:
        """Names of the entries of ``files/`` (hidden temporaries and folders excluded; links and special
        files included, for ``list`` to show unverified and ``verify`` to remove)."""
        self.check_home()
        files = self.files_dir
        if not files.is_dir():
            return []
        try:
            names = []
            for p in files.iterdir():
                if not p.name.startswith(".") and not stat.S_ISDIR(os.lstat(p).st_mode):
                    names.append(p.name)
            return sorted(names)
        except OSError as exc:
            raise FetchError(f"cannot read the cache {self.root}: {exc.strerror or exc}",
                             "check the folder's permissions") from None

    def entries(self, registry: Registry) -> list[CacheRecord]:
        """Every cached file, for ``posezoo cache list``; ``registry`` names the models using each."""
        reg = registry
        users: dict[str, list[str]] = {}
        for model in reg.models.values():
            for f in model.files():
                users.setdefault(f.name, []).append(model.name)
        return [self._record(name, reg, tuple(users.get(name, ()))) for name in self._names()]

    def _record(self, name: str, reg: Registry, models: tuple[str, ...]) -> CacheRecord:
        m = self.manifest(name) or {}
        known = reg.files.get(name)
        onnx = m.get("onnx") or {}
        try:
            size = os.lstat(self.files_dir / name).st_size
        except OSError:
            size = 0
        return CacheRecord(
            name=name,
            size=size,
            digest=m.get("digest", ""),
            url=m.get("url", ""),
            models=models,
            verified=self._cheap_problem(name, m or None, known) is None,
            converted=bool(onnx) and self._onnx_size_ok(name, onnx),
            converter_version=onnx.get("converter_version"),
            fetched=m.get("fetched"),
            archive=m.get("archive"),
            is_archive=known is not None and known.format in formats.names(formats.ARCHIVE),
        )

    def _cheap_problem(self, name: str, m: dict | None, known: FileEntry | None) -> str | None:
        """What is wrong with ``files/<name>`` short of hashing it (what ``cache list`` shows as VERIFIED
        NO): not a regular file, no valid manifest, a manifest digest other than the registry's, another
        size. None when nothing is."""
        path = self.files_dir / name
        try:
            st = os.lstat(path)
        except OSError as exc:
            return f"cannot read it: {exc.strerror or exc}"
        if not stat.S_ISREG(st.st_mode):
            return f"it is {describe(st.st_mode)}, not a file: posezoo never follows links in its cache"
        if m is None or not isinstance(m.get("digest"), str) or ":" not in m["digest"] or not _is_size(m.get("size")):
            return "no valid manifest: cannot tell whether it is intact"
        if known is not None and m["digest"] != known.digest:
            return f"its manifest says {m['digest']}, the registry's digest is {known.digest}"
        if st.st_size != m["size"]:
            return f"size is {st.st_size} bytes, expected {m['size']}"
        return None

    def verify(self, registry: Registry | None = None) -> list[VerifyProblem]:
        """Re-hash every cached file against the registry's digest (the manifest's for a file the
        registry does not know, which must then agree with the registry's when it knows one), and every
        converted model against the digest recorded when it was written; remove the bad ones (a bad file
        with its .onnx; a bad .onnx alone, to be converted again on next use), links and special files
        in the cache's folders, and temporaries of processes that are gone. What passes is what ``cache
        list`` shows as verified. A read-only cache is checked all the same; what is bad is reported with
        ``removed=False``."""
        self.check_home()
        problems = self._check_subfolders()
        for name in self._names():
            with self._lock_if_writable(name, "verifying"):
                if not os.path.lexists(self.files_dir / name):
                    continue
                known = registry.files.get(name) if registry is not None else None
                problem = self._check(name, known)
                if problem is not None:
                    problems.append(self._removing(name, problem, self._remove))
                    continue
                problem = self._check_onnx(name)
                if problem is not None:
                    problems.append(self._removing(f"{name}.onnx", problem, lambda _: self._drop_onnx(name)))
        problems.extend(self._check_folders())
        return problems

    def _check_subfolders(self) -> list[VerifyProblem]:
        """A link (or file) in place of one of the cache's folders: removed (the link, never what it
        points to), so the folder is made again on next use."""
        problems = []
        for kind in FOLDERS:
            path = self.root / kind
            try:
                mode = os.lstat(path).st_mode
            except OSError:
                continue
            if not stat.S_ISDIR(mode):
                problem = f"it is {describe(mode)}, not a folder: posezoo never follows links inside its cache"
                problems.append(self._removing(f"{kind}/", problem, lambda _, p=path: p.unlink()))
        return problems

    def _check_folders(self) -> list[VerifyProblem]:
        """Links and special files in the cache's other folders (removed: posezoo made none of them), and
        stale temporaries (removed silently)."""
        problems = []
        for kind in FOLDERS:
            folder = self._folder(kind)
            clean_stale_temporaries(folder)
            if kind == "files":
                continue
            try:
                names = sorted(os.listdir(folder))
            except OSError:
                continue
            for n in names:
                try:
                    mode = os.lstat(folder / n).st_mode
                except OSError:
                    continue
                if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
                    continue
                problem = f"it is {describe(mode)}: posezoo never follows links in its cache"
                problems.append(self._removing(f"{kind}/{n}", problem, lambda _, p=folder / n: p.unlink()))
        return problems

    def _removing(self, name: str, problem: str, remove) -> VerifyProblem:
        try:
            remove(name)
        except OSError as exc:
            return VerifyProblem(name, problem, removed=False, error=exc.strerror or str(exc))
        return VerifyProblem(name, problem)

    def _check_onnx(self, name: str) -> str | None:
        record = (self.manifest(name) or {}).get("onnx")
        path = self._onnx(name)
        try:
            st = os.lstat(path)
        except OSError:
            st = None
        if st is not None and not stat.S_ISREG(st.st_mode):
            return f"the converted model is {describe(st.st_mode)}: posezoo never follows links in its cache"
        if not record:
            return "converted model without a valid record: cannot tell whether it is intact" if st else None
        if st is None:
            return "the converted model is missing"
        actual = _sha256(path)
        if actual != record["digest"]:
            return f"converted model digest mismatch: expected {record['digest']}, got {actual} (converted again on next use)"
        return None

    def _check(self, name: str, known: FileEntry | None) -> str | None:
        m = self.manifest(name)
        problem = self._cheap_problem(name, m, known)
        if problem is not None:
            return problem
        assert m is not None
        expected = known.digest if known is not None else m["digest"]
        try:
            with open_file(self.files_dir / name) as f:
                actual = file_digest(f, expected.split(":", 1)[0])
        except FetchError as exc:
            return exc.message
        except UnsafeFile as exc:
            return f"it is {exc.what}, not a file: posezoo never follows links in its cache"
        except OSError as exc:
            return f"cannot read it: {exc.strerror or exc}"
        return None if actual == expected else f"digest mismatch: expected {expected}, got {actual}"

    def clear(self, model: ModelEntry | None = None, registry: Registry | None = None) -> Cleared:
        """Remove everything, or the files of one model; a file that another model of ``registry`` whose
        files of some variant are all cached uses stays. A fetch or conversion under way is waited for (its lock, a bounded wait naming the
        holder: a FetchError when it does not end).

        Returns the names of the files removed and what could not be removed (with why). Lock files
        stay: another process may hold one.
        """
        failed: list[tuple[str, str]] = []

        def note(func, path, exc_info) -> None:
            exc = exc_info[1] if isinstance(exc_info, tuple) else exc_info
            failed.append((str(path), getattr(exc, "strerror", None) or str(exc)))

        if model is None:
            self.check_home()
            with self._hold_all("clear the cache"):
                try:
                    names = self._names()
                except FetchError:  # (files/ is a link: it goes with the rest)
                    names = []
                for sub in ("files", "manifests", "onnx", "partial"):
                    path = self.root / sub
                    try:
                        mode = os.lstat(path).st_mode
                    except OSError:
                        continue
                    if stat.S_ISDIR(mode):
                        _rmtree(path, note)
                    else:  # a link or file planted in place of a folder: removed, never followed
                        try:
                            path.unlink()
                        except OSError as exc:
                            note(None, path, exc)
                gone = [n for n in names if not os.path.lexists(self.root / "files" / n)]
            return Cleared(gone, failed)
        self.check_home()
        models = registry.models.values() if registry is not None else ()
        # a shared file stays while another model with a whole variant in the cache still needs it (a
        # model that shares a file but was never fetched keeps nothing)
        others = {
            f.name
            for m in models
            if m.name != model.name
            for var in m.variants.values()
            if all(self.is_cached(x) for x in var.all_files())
            for f in var.all_files()
        }
        removed = []
        for f in model.files():
            if f.name in others:
                continue
            with self._lock_if_writable(f.name, "clearing"):
                present = os.path.lexists(self.path(f))
                try:
                    self._remove(f.name)
                except OSError as exc:
                    note(None, exc.filename or self.path(f), exc)
                    continue
                if present:
                    removed.append(f.name)
        return Cleared(removed, failed)

    def export(self, dest: Path | str, registry: Registry | None = None) -> Exported:
        """Write a mirror: ``dest/<registry file name>`` for each file that verifies, archives included and
        the members extracted from them left out (a mirror serves the archive, as upstream does).

        Each file is re-hashed as it is copied, against the registry's digest (the manifest's for a file
        the registry does not know), and written only when it matches: a file that does not verify is
        left out and listed in the result's ``skipped``. Returns the paths written."""
        dest = Path(dest)
        if dest.exists() and not dest.is_dir():
            raise InputError(f"cannot write the mirror to {dest}: it is not a folder", "give a folder (it is created)")
        written = Exported()
        for name in self._names():
            m = self.manifest(name)
            if m is not None and m.get("archive"):
                continue
            known = registry.files.get(name) if registry is not None else None
            problem = self._cheap_problem(name, m, known)
            if problem is None:
                assert m is not None
                problem = self._export_one(name, known.digest if known is not None else m["digest"], dest)
            if problem is not None:
                written.skipped.append(VerifyProblem(name, problem, removed=False, error="not exported"))
            else:
                written.append(dest / name)
        return written

    def _export_one(self, name: str, expected: str, dest: Path) -> str | None:
        """Copy ``files/<name>`` to ``dest/<name>``, hashing it; published only when the digest is
        ``expected``. Returns the problem, or None."""
        try:
            src = open_file(self.files_dir / name)
        except OSError as exc:
            return f"cannot read it: {getattr(exc, 'what', None) or exc.strerror or exc}"
        with src:
            hasher = new_hasher(expected.split(":", 1)[0], os.fstat(src.fileno()).st_size)
            try:
                write_atomically(dest / name, lambda f: _copy_checked(src, f, hasher, expected))
            except _Mismatch as exc:
                return f"digest mismatch: expected {expected}, got {exc.actual}"
            except OSError as exc:
                raise InputError(f"cannot write the mirror {dest / name}: {exc.strerror or exc}",
                                 "give a folder you can write to, on a disk with room for the files") from None
        return None


class _Mismatch(Exception):
    def __init__(self, actual: str):
        super().__init__(actual)
        self.actual = actual


def _rmtree(path: Path, onerror) -> None:
    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=onerror)
    else:
        shutil.rmtree(path, onerror=onerror)


def _copy_checked(src: BinaryIO, f: BinaryIO, hasher: Any, expected: str) -> None:
    """Copy ``src`` into ``f`` hashing it; a _Mismatch (the temporary is then removed) when the digest is
    not ``expected``."""
    for chunk in iter(lambda: src.read(READ_CHUNK), b""):
        hasher.update(chunk)
        f.write(chunk)
    actual = f"{expected.split(':', 1)[0]}:{hasher.hexdigest()}"
    if actual != expected:
        raise _Mismatch(actual)
