"""Digests of weight files: ``sha256`` and ``git-blob-sha1`` (git's object id of a file).

A registry digest is ``<algorithm>:<hex>``. ``git-blob-sha1`` is SHA-1 over ``b"blob <size>\\0"`` and
then the bytes, so its hasher needs the size before the first byte.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, BinaryIO, Iterator, Union

from posezoo.errors import FetchError

ALGORITHMS = ("sha256", "git-blob-sha1")
READ_CHUNK = 1 << 20


def new_hasher(algorithm: str, size: int | None = None) -> Any:
    """A hashlib object for a registry digest algorithm (``size`` is needed for git-blob-sha1)."""
    if algorithm == "sha256":
        return hashlib.sha256()
    if algorithm == "git-blob-sha1":
        if size is None:
            raise ValueError("a git-blob-sha1 digest needs the size up front")
        return hashlib.sha1(b"blob %d\0" % size)
    raise FetchError(f"unsupported digest algorithm {algorithm!r}", "use sha256 or git-blob-sha1")


Source = Union[Path, str, BinaryIO]  # a path, or a file open for reading (its bytes from where it stands)


def iter_file(path: Source, start: int = 0) -> Iterator[bytes]:
    """The bytes of a file (a path, or an open file: read from ``start``, which it is moved to) in chunks."""
    if hasattr(path, "read"):
        path.seek(start)  # type: ignore[union-attr]
        yield from iter(lambda: path.read(READ_CHUNK), b"")  # type: ignore[union-attr]
        return
    with open(path, "rb") as f:
        f.seek(start)
        yield from iter(lambda: f.read(READ_CHUNK), b"")


def hash_into(hasher: Any, path: Source) -> Any:
    """Feed the bytes of ``path`` (a path or an open file, from its start) to ``hasher``; returns it."""
    for chunk in iter_file(path):
        hasher.update(chunk)
    return hasher


def file_digest(path: Source, algorithm: str) -> str:
    """The ``<algorithm>:<hex>`` digest of a file (a path, or an open file: the cache opens its own files
    without following links, see :func:`posezoo.supply.atomic.open_file`)."""
    if hasattr(path, "read"):
        size = os.fstat(path.fileno()).st_size  # type: ignore[union-attr]
    else:
        path = Path(path)
        size = path.stat().st_size
    return f"{algorithm}:{hash_into(new_hasher(algorithm, size), path).hexdigest()}"
