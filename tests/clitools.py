"""Run the real ``posezoo`` command in a subprocess, with a clean, isolated environment."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path


def posezoo_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSEZOO_") or k == "POSEZOO_SHARED"}
    env.update(
        POSEZOO_HOME=str(tmp_path / "home"),
        POSEZOO_REGISTRY=os.pathsep,  # no user registry unless a test gives one
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        PYTHONIOENCODING="utf-8",
    )
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    env.update(extra)
    return env


def default_sigint() -> None:
    """``preexec_fn`` for a child that a test interrupts as Ctrl-C would: SIGINT back to its default.

    A test run started in the background of a non-interactive shell (``cmd &``) inherits SIGINT
    ignored, and Python then never turns SIGINT into KeyboardInterrupt: the child would run on and
    finish as though no Ctrl-C came. A process started from a terminal has the default, as here."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_posezoo(*args: str, env: dict[str, str], cwd: Path | None = None, script: bool = False, timeout: float = 300):
    """``python -m posezoo ARGS`` (or the installed console script with ``script=True``)."""
    exe = [shutil.which("posezoo")] if script else [sys.executable, "-m", "posezoo"]
    assert exe[0], "the posezoo console script is not installed (pip install -e .)"
    return subprocess.run(
        [*exe, *map(str, args)], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def one_line_error(result) -> str:
    """A failed run: non-zero exit, no traceback, and stderr ends with exactly one `posezoo: error:`
    line; anything before it is posezoo's own one-line progress or warning messages."""
    lines = [l for l in result.stderr.splitlines() if l.strip()]
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr, result.stderr
    errors = [l for l in lines if l.startswith("posezoo: error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    assert all(l.startswith("posezoo: ") for l in lines), result.stderr
    return errors[0]
