"""Digests of weight files: ``sha256`` and ``git-blob-sha1`` (git's object id of a file).

A registry digest is ``<algorithm>:<hex>``. ``git-blob-sha1`` is SHA-1 over ``b"blob <size>\\0"`` and
then the bytes, so its hasher needs the size before the first byte.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Iterator

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


def iter_file(path: Path, start: int = 0) -> Iterator[bytes]:
    """The bytes of a file from ``start`` on, in chunks."""
    with open(path, "rb") as f:
        f.seek(start)
        yield from iter(lambda: f.read(READ_CHUNK), b"")


def hash_into(hasher: Any, path: Path) -> Any:
    """Feed the bytes of ``path`` to ``hasher``; returns it."""
    for chunk in iter_file(path):
        hasher.update(chunk)
    return hasher


def file_digest(path: Path, algorithm: str) -> str:
    """The ``<algorithm>:<hex>`` digest of a file."""
    path = Path(path)
    return f"{algorithm}:{hash_into(new_hasher(algorithm, path.stat().st_size), path).hexdigest()}"
