"""Real file-system faults for tests: a small tmpfs (a disk that fills up) and a read-only view of a
folder (a read-only bind mount as root, where chmod stops nothing; chmod otherwise). Mounting needs
root and permission to mount; where either is missing the test is skipped, saying why. Every mount is
undone when the block ends."""

from __future__ import annotations

import os
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest


def _run(*cmd) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=30)


@contextmanager
def mounted(*args, target: Path, why: str):
    """``mount ARGS TARGET`` for the block (unmounted after it), or a skip saying why it cannot be."""
    if os.geteuid() != 0:
        pytest.skip(f"{why} needs root to mount (running as uid {os.geteuid()})")
    result = _run("mount", *args, target)
    if result.returncode != 0:
        pytest.skip(f"{why}: mounting is not permitted here ({result.stderr.strip()})")
    try:
        yield target
    finally:
        _run("umount", "-l", target)


@contextmanager
def small_disk(folder: Path, size: str, why: str = "a full disk"):
    """A tmpfs of ``size`` (mount syntax: 64k, 1m) at ``folder`` (created)."""
    folder.mkdir(parents=True, exist_ok=True)
    with mounted("-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", target=folder, why=why):
        yield folder


@contextmanager
def read_only_view(folder: Path, target: Path):
    """``folder`` seen read-only at ``target``: a read-only bind mount as root, else chmod (which stops
    a user who is not root)."""
    target.mkdir()
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")]}
        for p in modes:
            p.chmod(modes[p] & ~0o222)
        try:
            target.rmdir()
            target.symlink_to(folder)
            yield target
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
        return
    with mounted("--bind", "-o", "ro", folder, target=target, why="a read-only file system"):
        probe = _run("touch", target / ".probe")
        if probe.returncode == 0:  # an old mount(8) that ignores ro with --bind: remount
            (target / ".probe").unlink()
            _run("mount", "-o", "remount,bind,ro", target)
        assert _run("touch", target / ".probe").returncode != 0, "the bind mount is not read-only"
        yield target
