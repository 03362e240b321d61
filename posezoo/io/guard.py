"""Outputs that would overwrite an input, refused before anything runs.

``posezoo run -i mine.jpg --json mine.jpg`` (or ``-s mine.jpg``) would replace the photo with its own
results; so would an annotated copy or a per-input JSON file whose name falls on an input, through a
different spelling, a symlink or a hard link. :func:`refuse_overwriting` compares each output with
each input by real path (symlinks and ``..`` resolved, the output's folder too when the output does not
exist yet) and, where both exist, by device and inode (:func:`os.path.samefile`: hard links).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from posezoo.errors import InputError


def _key(path: str | os.PathLike) -> str:
    return os.path.realpath(os.path.abspath(os.fspath(path)))


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether ``a`` and ``b`` name one file (one of them may not exist yet)."""
    if _key(a) == _key(b):
        return True
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return False


def refuse_overwriting(outputs: Iterable[tuple[str, str | os.PathLike | None]], inputs: Iterable[str | os.PathLike]) -> None:
    """Raise InputError when an output (``(flag, path)``; a None path is skipped) is one of ``inputs``."""
    outs = [(flag, Path(path)) for flag, path in outputs if path is not None]
    if not outs:
        return
    by_key: dict[str, Path] = {}
    by_inode: dict[tuple[int, int], Path] = {}
    for p in inputs:
        p = Path(p)
        by_key.setdefault(_key(p), p)
        try:
            st = os.stat(p)
        except (OSError, ValueError):
            continue
        by_inode.setdefault((st.st_dev, st.st_ino), p)
    for flag, out in outs:
        hit = by_key.get(_key(out))
        if hit is None:
            try:
                st = os.stat(out)
                hit = by_inode.get((st.st_dev, st.st_ino))
            except (OSError, ValueError):
                hit = None
        if hit is not None:
            raise InputError(
                f"{flag} {out} would overwrite the input {hit}",
                "write the results to another file or folder",
            )


def inside(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """Whether ``path`` is ``folder`` or lies under it (real paths)."""
    p, f = _key(path), _key(folder)
    return p == f or p.startswith(f.rstrip(os.sep) + os.sep)
