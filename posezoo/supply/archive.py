"""Reading one member out of an archive (.zip, .tar.gz): the post-fetch step of the archive formats.

:func:`open_zip_member` and :func:`open_tar_member` open the member a registry file names inside a
verified archive and hand back its size as the archive states it and a stream of its bytes; fetch
(:mod:`posezoo.supply.fetch`) checks that size against the registry's, streams the bytes into the
cache with the registry size as a hard limit, and verifies the digest. Nothing here writes a file:
no member is extracted to disk by an archive library, so no member path can point outside the cache.

Only the named member is read. It must be a regular file: a directory, a symbolic or hard link, a
device or a FIFO is refused, and so are encrypted zip members and zip compression methods other than
stored and deflate (the others decompress without a bound on memory). A leading ``./`` of an entry's
name is ignored (``tar -C dir -czf x.tgz .`` writes ``./model.json``), and so is the ``/`` ending a
folder's; nothing else is normalised. A tar archive is read as a stream, and reading stops where the
member would lie past ``scan_limit`` bytes into the uncompressed archive, so a hostile archive cannot
make posezoo decompress for ever.

Every problem is an :class:`ArchiveError` (a short reason); fetch turns it into a one-line FetchError
naming the archive, the member and a fix.
"""

from __future__ import annotations

import stat
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, ContextManager, Iterator, Union

Source = Union[Path, BinaryIO]  # the archive: a path, or a file open for reading (the cache hands one it
                                # opened without following links and verified: the bytes read are those)

CHUNK = 1 << 16
SHOWN = 5  # member names quoted when the one asked for is missing


class ArchiveError(Exception):
    """An archive that cannot give the member: ``reason`` says why; ``corrupt`` when the archive itself is
    broken (rather than the member missing or not a regular file)."""

    def __init__(self, reason: str, corrupt: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.corrupt = corrupt


@dataclass
class Member:
    """An open member: ``size`` as the archive states it, ``stream`` its bytes (read with :meth:`chunks`)."""

    name: str
    size: int
    stream: BinaryIO
    broken: tuple[type[BaseException], ...]  # what reading it raises when the archive is broken

    def chunks(self) -> Iterator[bytes]:
        """The member's bytes, ``CHUNK`` at a time (decompressed as they are read); a broken archive is an
        ArchiveError."""
        while True:
            try:
                data = self.stream.read(CHUNK)
            except self.broken as exc:
                raise _broken(exc) from None
            if not data:
                return
            yield data


OpenMember = ContextManager[Member]


def _plain(name: str) -> str:
    """An entry's name as a registry ``member`` gives it: no leading ``./``, no trailing ``/`` (folders)."""
    while name.startswith("./"):
        name = name[2:]
    return name.rstrip("/")


def _missing(seen: list[str], more: bool) -> ArchiveError:
    """The member is not there; ``seen``: the first names the archive holds, ``more``: it holds others."""
    held = ", ".join(repr(n[:80]) for n in seen[:SHOWN]) + (", ..." if more or len(seen) > SHOWN else "")
    return ArchiveError("the archive has no such member" + (f" (it holds {held})" if seen else " (it holds no file)"))


def _not_regular(what: str) -> ArchiveError:
    return ArchiveError(f"the member is {what}, not a regular file")


def _broken(exc: BaseException) -> ArchiveError:
    if isinstance(exc, OSError) and exc.strerror:
        why = exc.strerror
    else:
        why = " ".join(str(exc).split())[:120] or type(exc).__name__
    return ArchiveError(f"the archive is corrupt ({why})", corrupt=True)


@contextmanager
def open_zip_member(path: Source, member: str, scan_limit: int) -> Iterator[Member]:
    """The member ``member`` of the zip archive at ``path`` (a path or an open file; ``scan_limit`` is for
    tar, a zip has an index)."""
    import zipfile

    broken = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError, RuntimeError)
    try:
        zf = zipfile.ZipFile(path)
    except broken as exc:
        raise _broken(exc) from None
    with zf:
        infos = {}
        for info in zf.infolist():
            infos.setdefault(_plain(info.filename), info)  # the first of two same-named entries, as tar
        info = infos.get(member)
        if info is None:
            names = [n for n, i in infos.items() if n and not i.is_dir()]
            raise _missing(names, False)
        mode = info.external_attr >> 16
        if info.is_dir() or stat.S_ISDIR(mode):
            raise _not_regular("a folder")
        if stat.S_ISLNK(mode):
            raise _not_regular("a symbolic link")
        if stat.S_IFMT(mode) and not stat.S_ISREG(mode):
            raise _not_regular("a special file")
        if info.flag_bits & 0x1:
            raise ArchiveError("the member is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ArchiveError(f"the member uses zip compression method {info.compress_type}: "
                               "posezoo reads stored and deflated members only")
        try:
            stream = zf.open(info)
        except broken as exc:
            raise _broken(exc) from None
        with stream:
            yield Member(member, info.file_size, stream, broken)


@contextmanager
def open_tar_member(path: Source, member: str, scan_limit: int) -> Iterator[Member]:
    """The member ``member`` of the gzip-compressed tar archive at ``path`` (a path or an open file), read
    as a stream: the
    members before it are skipped (decompressed, not kept), and none past ``scan_limit`` bytes of the
    uncompressed archive is looked at."""
    import tarfile

    broken = (tarfile.TarError, zlib.error, EOFError, OSError, ValueError)
    try:
        tf = tarfile.open(fileobj=path, mode="r|gz") if hasattr(path, "read") else tarfile.open(path, mode="r|gz")
    except broken as exc:
        raise _broken(exc) from None
    with tf:
        seen: list[str] = []  # the first names, for a member that is missing
        more = False
        while True:
            try:
                info = tf.next()
            except broken as exc:
                raise _broken(exc) from None
            if info is None:
                raise _missing(seen, more)
            name = _plain(info.name)
            if name == member:
                break
            if name and not info.isdir():
                if len(seen) <= SHOWN:
                    seen.append(name)
                else:
                    more = True
            if info.offset_data + info.size > scan_limit:
                raise ArchiveError(f"the archive holds more than {scan_limit} bytes before the member", corrupt=True)
        if info.isdir():
            raise _not_regular("a folder")
        if info.issym():
            raise _not_regular("a symbolic link")
        if info.islnk():
            raise _not_regular("a hard link")
        if not info.isreg():
            raise _not_regular("a special file")
        try:
            stream = tf.extractfile(info)
        except broken as exc:
            raise _broken(exc) from None
        if stream is None:  # (isreg said otherwise; never yet)
            raise _not_regular("a special file")
        with stream:
            yield Member(member, info.size, stream, broken)

