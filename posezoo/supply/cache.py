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
      locks/<name>.lock          per-file lock: one process at a time fetches, converts or removes a file

A member of an archive is extracted from the cached archive, which stays, so that its other members
need no download; a mirror holds what upstream publishes, so ``export`` writes the archive and not
the members extracted from it.

A file is *cached* when ``files/<name>`` exists, its manifest names the registry's digest and the
file has the manifest's size (a cheap check; :meth:`Cache.verify` re-hashes). A converted model is
used only when its bytes have the digest recorded when it was written (:meth:`Cache.verified_onnx`),
and a source file is re-hashed before every conversion (:meth:`Cache.require_verified`). A file shared
by several variants or models is stored once. Temporary files start with ``.`` (never a registry name)
and sit in the folder of their final file, so ``os.replace`` is atomic.

Reading needs no write access: a read-only cache serves every file it holds verified (``run
--offline``, ``cache list``, ``cache verify``). Whatever must write to it (a lock, a download, a
conversion, a removal) fails as a one-line :class:`FetchError` naming the folder and a fix.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from filelock import FileLock, Timeout

from posezoo.supply.atomic import write_atomically
from posezoo.errors import FetchError, InputError
from posezoo.supply import formats
from posezoo.supply.hashes import READ_CHUNK, file_digest

if TYPE_CHECKING:
    from posezoo.supply.registry import FileEntry, ModelEntry, Registry

HOME_ENV = "POSEZOO_HOME"


def cache_home() -> Path:
    """``$POSEZOO_HOME``, else ``platformdirs.user_cache_dir("posezoo")``."""
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("posezoo"))


# --------------------------------------------------------------------------------------------- helpers


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def _unlink(*paths: Path) -> None:
    for p in paths:
        p.unlink(missing_ok=True)


def _write_json(path: Path, data: dict) -> None:
    write_atomically(path, lambda f: f.write(json.dumps(data, indent=2).encode() + b"\n"))


MAX_MANIFEST = 1 << 16  # bytes: a manifest is a few hundred


def _read_json(path: Path) -> dict | None:
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read(MAX_MANIFEST + 1))  # (a longer file is cut, so invalid)
    except (OSError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _sha256(path: Path) -> str | None:
    try:
        return file_digest(path, "sha256")
    except OSError:
        return None


# --------------------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class CacheRecord:
    """One file of the cache, as ``posezoo cache list`` shows it."""

    name: str
    size: int  # bytes on disk
    digest: str  # from the manifest ("" without one)
    url: str  # where it was fetched from ("" without a manifest)
    models: tuple[str, ...]  # registry models that use it
    verified: bool  # manifest present, size matches, digest is the registry's (when the registry knows it)
    converted: bool  # a converted .onnx is present, of the size recorded with its digest
    converter_version: str | None = None
    fetched: str | None = None
    archive: str | None = None  # a member of an archive: the archive it was extracted from
    is_archive: bool = False  # an archive the registry's files are members of


@dataclass(frozen=True)
class VerifyProblem:
    """A cached file (or its converted model, ``name`` ending in ``.onnx``) that failed
    :meth:`Cache.verify`; ``removed`` is False when it could not be removed (``error`` says why)."""

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


# --------------------------------------------------------------------------------------------- cache


class Cache:
    """The cache folder (see the module docstring for its layout)."""

    def __init__(self, root: Path | str | None = None):
        self.root = Path(root) if root is not None else cache_home()

    def __repr__(self) -> str:
        return f"Cache({str(self.root)!r})"

    # ---- paths

    @property
    def files_dir(self) -> Path:
        return self.root / "files"

    def path(self, entry: FileEntry) -> Path:
        """Where the verified file lives (it may not exist)."""
        return self.files_dir / entry.name

    def onnx_path(self, entry: FileEntry) -> Path:
        """Where its converted .onnx lives; a file of a format without converter (onnx) is its own."""
        fmt = formats.FORMATS.get(entry.format)
        return self.path(entry) if fmt is not None and fmt.is_onnx else self._onnx(entry.name)

    def _onnx(self, name: str) -> Path:
        return self.root / "onnx" / f"{name}.onnx"

    def _manifest(self, name: str) -> Path:
        return self.root / "manifests" / f"{name}.json"

    def part_path(self, entry: FileEntry) -> Path:
        """The partial download of ``entry`` (its sidecar is ``<part>.json``)."""
        return self._part(entry.name)

    def _part(self, name: str) -> Path:
        return self.root / "partial" / f"{name}.part"

    def _part_sidecar(self, name: str) -> Path:
        return self.root / "partial" / f"{name}.part.json"

    @contextmanager
    def hold(self, entry: FileEntry, doing: str, progress: bool = True) -> Iterator[None]:
        """Hold the file's lock, saying on stderr when another process has it (``doing``: "fetching").

        A cache that cannot be written (read-only, not a folder) is a FetchError naming the folder.
        """
        try:
            lock = self.lock(entry)
            try:
                lock.acquire(timeout=0)
            except Timeout:
                if progress:
                    print(f"posezoo: waiting for another process {doing} {entry.name}", file=sys.stderr)
                lock.acquire()
        except OSError as exc:
            raise self.write_error(exc, f"{doing.removesuffix('ing')} {entry.name}") from None
        try:
            yield
        finally:
            lock.release()

    def write_error(self, exc: OSError, doing: str) -> FetchError:
        """The one-line error for an OSError met while writing to the cache (``doing``: "store x")."""
        self.check_home()
        where = f"the cache {self.root}"
        fix = f"make it writable, or set {HOME_ENV} to a writable folder"
        if exc.errno == errno.EROFS:
            return FetchError(f"cannot {doing}: {where} is on a read-only file system", fix)
        if exc.errno in (errno.EACCES, errno.EPERM):
            return FetchError(f"cannot {doing}: no permission to write in {where}", fix)
        if exc.errno == errno.ENOSPC:
            return FetchError(f"cannot {doing}: the disk of {where} is full",
                              f"free some space, or set {HOME_ENV} to a folder on a larger disk")
        return FetchError(f"cannot {doing} in {where}: {exc.strerror or exc}", fix)

    def check_home(self) -> None:
        """A FetchError when the cache folder (or a folder above it) exists but is not a folder."""
        for p in (self.root, *self.root.parents):
            if p.exists() or p.is_symlink():
                if not p.is_dir():
                    what = f"{HOME_ENV} {self.root}" if p == self.root else f"the cache {self.root}: {p}"
                    raise FetchError(f"{what} is a file, not a folder",
                                     f"set {HOME_ENV} to a folder (or unset it for the default cache)")
                return

    def require(self, entry: FileEntry) -> Path:
        """The cached file's path; a FetchError saying how to get it when it is not cached."""
        if not self.is_cached(entry):
            raise FetchError(f"{entry.name} is not in the cache", "fetch its model first: `posezoo fetch MODEL`")
        return self.path(entry)

    def require_verified(self, entry: FileEntry) -> Path:
        """The cached file's path after re-hashing it against the registry digest (before a conversion,
        or before running a file that is its own ONNX model). A file that no longer matches is removed
        (when the cache is writable) and is a FetchError."""
        path = self.require(entry)
        try:
            actual = file_digest(path, entry.algorithm)
        except OSError as exc:
            raise FetchError(f"cannot read the cached {entry.name}: {exc.strerror or exc}",
                             "check the cache folder's permissions") from None
        if actual == entry.digest:
            return path
        try:
            self._remove(entry.name)
            done = "it was removed"
        except OSError:
            done = "it could not be removed (read-only cache)"
        raise FetchError(
            f"the cached {entry.name} has changed since it was verified: expected {entry.digest}, got {actual}; {done}",
            "run the command again to download it again, or `posezoo cache verify`",
        )

    def lock(self, entry: FileEntry | str) -> FileLock:
        """The per-file lock (``with cache.lock(entry): ...``); OSError when the cache is not writable."""
        name = entry if isinstance(entry, str) else entry.name
        folder = self.root / "locks"
        folder.mkdir(parents=True, exist_ok=True)
        return FileLock(str(folder / f"{name}.lock"))

    @contextmanager
    def _lock_if_writable(self, name: str) -> Iterator[bool]:
        """The file's lock when the cache can be written; yields whether it is held (reading a
        read-only cache needs none: nobody can change it)."""
        try:
            lock = self.lock(name)
            lock.acquire()
        except OSError:
            yield False
            return
        try:
            yield True
        finally:
            lock.release()

    # ---- state

    def manifest(self, name: str) -> dict | None:
        """The manifest of a cached file, or None."""
        return _read_json(self._manifest(name))

    def _has_valid_file(self, name: str, manifest: dict | None) -> bool:
        try:
            return bool(manifest) and self.files_dir.joinpath(name).stat().st_size == manifest.get("size")
        except OSError:
            return False

    def is_cached(self, entry: FileEntry) -> bool:
        """The verified file is present: its manifest names the entry's digest and the size matches."""
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
            return isinstance(record.get("digest"), str) and self._onnx(name).stat().st_size == record.get("size")
        except OSError:
            return False

    def verified_onnx(self, entry: FileEntry, converter_version: str) -> Path | None:
        """The .onnx of ``entry`` when it was written by this converter version and its bytes still have
        the digest recorded then; None otherwise (convert it again)."""
        if not self.is_converted(entry, converter_version):
            return None
        record = (self.manifest(entry.name) or {}).get("onnx") or {}
        path = self.onnx_path(entry)
        return path if _sha256(path) == record.get("digest") else None

    # ---- writing (callers hold the file's lock)

    def open_partial(self, entry: FileEntry, url: str) -> int:
        """Prepare the partial download of ``entry`` from ``url``; returns how many bytes to resume from.

        A part left by a download of another URL or digest is discarded.
        """
        sidecar = self._part_sidecar(entry.name)
        wanted = {"url": url, "digest": entry.digest}
        if _read_json(sidecar) == wanted:
            return self.part_size(entry)
        self.drop_partial(entry)
        _write_json(sidecar, wanted)
        return 0

    def part_size(self, entry: FileEntry) -> int:
        """Bytes in the partial download of ``entry`` (0 without one)."""
        try:
            return self.part_path(entry).stat().st_size
        except FileNotFoundError:
            return 0

    def drop_partial(self, entry: FileEntry) -> None:
        _unlink(self.part_path(entry), self._part_sidecar(entry.name))

    def install(self, entry: FileEntry, url: str, **extra: str) -> Path:
        """Move the verified partial download into place and write its manifest (``extra``: more keys of
        it, ``archive`` and ``member`` for a member of an archive)."""
        final = self.path(entry)
        final.parent.mkdir(parents=True, exist_ok=True)
        _unlink(self._manifest(entry.name), self._onnx(entry.name))
        size = self.part_path(entry).stat().st_size
        os.replace(self.part_path(entry), final)
        try:
            _write_json(
                self._manifest(entry.name),
                {"name": entry.name, "digest": entry.digest, "size": size, "url": url, **extra, "fetched": _now(),
                 "onnx": None},
            )
        except BaseException:
            _unlink(final)
            raise
        finally:
            _unlink(self._part_sidecar(entry.name))
        return final

    def record_conversion(self, entry: FileEntry, converter_version: str) -> None:
        """Note in the manifest which converter version wrote the .onnx, and the .onnx's digest and size."""
        path = self.onnx_path(entry)
        m = self.manifest(entry.name) or {}
        m["onnx"] = {
            "converter_version": converter_version,
            "converted": _now(),
            "digest": file_digest(path, "sha256"),
            "size": path.stat().st_size,
        }
        _write_json(self._manifest(entry.name), m)

    def _drop_onnx(self, name: str) -> None:
        """Remove a converted model and its record (the source file stays)."""
        self._onnx(name).unlink(missing_ok=True)
        m = self.manifest(name)
        if m is not None and m.get("onnx") is not None:
            m["onnx"] = None
            _write_json(self._manifest(name), m)

    def _remove(self, name: str) -> None:
        """Remove a file with its manifest, its .onnx and any partial download of it."""
        _unlink(self.files_dir / name, self._manifest(name), self._onnx(name))
        _unlink(self._part(name), self._part_sidecar(name))

    # ---- commands

    def _names(self) -> list[str]:
        """Names of the files present (hidden temporaries excluded)."""
        self.check_home()
        if not self.files_dir.is_dir():
            return []
        try:
            return sorted(p.name for p in self.files_dir.iterdir() if p.is_file() and not p.name.startswith("."))
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
        return CacheRecord(
            name=name,
            size=(self.files_dir / name).stat().st_size,
            digest=m.get("digest", ""),
            url=m.get("url", ""),
            models=models,
            verified=self._has_valid_file(name, m) and (known is None or known.digest == m.get("digest")),
            converted=bool(onnx) and self._onnx_size_ok(name, onnx),
            converter_version=onnx.get("converter_version"),
            fetched=m.get("fetched"),
            archive=m.get("archive") if isinstance(m.get("archive"), str) else None,
            is_archive=known is not None and known.format in formats.names(formats.ARCHIVE),
        )

    def verify(self) -> list[VerifyProblem]:
        """Re-hash every cached file against its manifest, and every converted model against the digest
        recorded when it was written; remove the bad ones (a bad file with its .onnx; a bad .onnx alone,
        to be converted again on next use). A read-only cache is checked all the same; what is bad is
        reported with ``removed=False``."""
        problems = []
        for name in self._names():
            with self._lock_if_writable(name):
                if not (self.files_dir / name).is_file():
                    continue
                problem = self._check(name)
                if problem is not None:
                    problems.append(self._removing(name, problem, self._remove))
                    continue
                problem = self._check_onnx(name)
                if problem is not None:
                    problems.append(self._removing(f"{name}.onnx", problem, lambda _: self._drop_onnx(name)))
        return problems

    def _removing(self, name: str, problem: str, remove) -> VerifyProblem:
        try:
            remove(name)
        except OSError as exc:
            return VerifyProblem(name, problem, removed=False, error=exc.strerror or str(exc))
        return VerifyProblem(name, problem)

    def _check_onnx(self, name: str) -> str | None:
        m = self.manifest(name) or {}
        record = m.get("onnx")
        path = self._onnx(name)
        if not record:
            return "converted model without a record: cannot tell whether it is intact" if path.exists() else None
        if not isinstance(record, dict) or not isinstance(record.get("digest"), str):
            return "no digest recorded for the converted model: cannot tell whether it is intact"
        if not path.is_file():
            return "the converted model is missing"
        actual = _sha256(path)
        if actual != record["digest"]:
            return f"converted model digest mismatch: expected {record['digest']}, got {actual} (converted again on next use)"
        return None

    def _check(self, name: str) -> str | None:
        m = self.manifest(name)
        if m is None or not isinstance(m.get("digest"), str) or ":" not in m["digest"]:
            return "no valid manifest: cannot tell whether it is intact"
        path = self.files_dir / name
        if path.stat().st_size != m.get("size"):
            return f"size is {path.stat().st_size} bytes, expected {m.get('size')}"
        try:
            actual = file_digest(path, m["digest"].split(":", 1)[0])
        except FetchError as exc:
            return exc.message
        return None if actual == m["digest"] else f"digest mismatch: expected {m['digest']}, got {actual}"

    def clear(self, model: ModelEntry | None = None, registry: Registry | None = None) -> Cleared:
        """Remove everything, or the files of one model; a file another model of ``registry`` uses
        stays.

        Returns the names of the files removed and what could not be removed (with why). Lock files
        stay: another process may hold one.
        """
        failed: list[tuple[str, str]] = []

        def note(func, path, exc_info) -> None:
            exc = exc_info[1] if isinstance(exc_info, tuple) else exc_info
            failed.append((str(path), getattr(exc, "strerror", None) or str(exc)))

        if model is None:
            names = self._names()
            for sub in ("files", "manifests", "onnx", "partial"):
                if (self.root / sub).exists():
                    _rmtree(self.root / sub, note)
            gone = [n for n in names if not (self.files_dir / n).exists()]
            return Cleared(gone, failed)
        self.check_home()
        models = registry.models.values() if registry is not None else ()
        others = {f.name for m in models if m.name != model.name for f in m.files()}
        removed = []
        for f in model.files():
            if f.name in others:
                continue
            with self._lock_if_writable(f.name):
                present = self.path(f).exists()
                try:
                    self._remove(f.name)
                except OSError as exc:
                    note(None, exc.filename or self.path(f), exc)
                    continue
                if present:
                    removed.append(f.name)
        return Cleared(removed, failed)

    def export(self, dest: Path | str) -> list[Path]:
        """Write a mirror: ``dest/<registry file name>`` for each verified file, archives included and the
        members extracted from them left out (a mirror serves the archive, as upstream does). Returns the
        paths written."""
        dest = Path(dest)
        if dest.exists() and not dest.is_dir():
            raise InputError(f"cannot write the mirror to {dest}: it is not a folder", "give a folder (it is created)")
        written = []
        for name in self._names():
            m = self.manifest(name)
            if not self._has_valid_file(name, m) or m.get("archive"):
                continue
            src = self.files_dir / name
            try:
                write_atomically(dest / name, lambda f, src=src: _copy_into(src, f))
            except OSError as exc:
                raise InputError(f"cannot write the mirror {dest / name}: {exc.strerror or exc}",
                                 "give a folder you can write to, on a disk with room for the files") from None
            written.append(dest / name)
        return written


def _rmtree(path: Path, onerror) -> None:
    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=onerror)
    else:
        shutil.rmtree(path, onerror=onerror)


def _copy_into(src: Path, f) -> None:
    with open(src, "rb") as s:
        shutil.copyfileobj(s, f, READ_CHUNK)