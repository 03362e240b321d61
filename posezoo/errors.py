"""Errors users see: one line naming the thing and a fix, and an exit code.

Every failure a user can cause (bad input, bad registry, bad download, bad plugin, bad model) is raised
as a :class:`PosezooError`; the CLI prints ``posezoo: error: <message>`` and exits with ``exit_code``.
"""

from __future__ import annotations

try:  # (imported now: with no file descriptor left, importing it later would fail too)
    import resource as _RESOURCE
except ImportError:  # Windows
    _RESOURCE = None

MAX_MESSAGE = 1000  # characters: a message quoting untrusted text never grows past this


def shorten(value: object, limit: int = 80) -> str:
    """``value`` for a message: ``repr`` of a non-string, one line, cut to about ``limit`` characters.

    Untrusted text (a registry value, a URL a server sent) goes through this before it is quoted.
    """
    text = value if isinstance(value, str) else repr(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else f"{text[: limit - 20]}...({len(text)} characters)"


def _cut(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else f"{text[: limit - 30]}... (cut, {len(text)} characters)"


class PosezooError(Exception):
    """Base class: ``message`` says what went wrong, ``fix`` how to put it right."""

    exit_code = 1

    def __init__(self, message: str, fix: str | None = None):
        self.message = _cut(message, MAX_MESSAGE)
        self.fix = _cut(fix, MAX_MESSAGE // 2) if fix else None
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.message} ({self.fix})" if self.fix else self.message


class RegistryError(PosezooError):
    """An invalid registry file or entry."""

    exit_code = 2


class PluginError(PosezooError):
    """A plugin that cannot be used (its model spec is invalid or does not fit its files)."""

    exit_code = 2


class UsageError(PosezooError):
    """An option the model or machine cannot honour, or an argument out of range, refused before anything is read.

    ``--max-poses`` over the model's limit, ``--segmentation`` on a model without that output, an
    unknown family option, a threshold outside [0, 1]: each is known from the model's spec and family,
    so it is refused before anything is downloaded or read; so is ``--device cuda`` where onnxruntime
    has no CUDA."""

    exit_code = 2


class UnknownModelError(PosezooError):
    """A model or variant name that is not in the registry."""

    exit_code = 2


class FetchError(PosezooError):
    """A download, digest or cache failure."""

    exit_code = 3


class ConvertError(PosezooError):
    """A TFLite or TF.js model that cannot be converted (malformed, truncated, unsupported op)."""

    exit_code = 4


class InputError(PosezooError):
    """A missing or unreadable image, video or camera; an output path or cache folder (POSEZOO_HOME) that cannot be written."""

    exit_code = 5


class MissingDependencyError(PosezooError):
    """An optional dependency a command needs is not installed (the fix names the pip command)."""


def environment_error(exc: BaseException) -> PosezooError | None:
    """The one-line error for an OSError the machine caused rather than posezoo (a full disk, too few
    file descriptors, a deleted working folder, a read-only file system), or None for any other."""
    import errno
    import os

    if not isinstance(exc, OSError):
        return None
    where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
    if exc.errno in (errno.EMFILE, errno.ENFILE):
        limit = f" (the limit is {_RESOURCE.getrlimit(_RESOURCE.RLIMIT_NOFILE)[0]})" if _RESOURCE else ""
        return PosezooError(f"too many open files{limit}", "raise the limit (ulimit -n 1024), or use fewer --jobs / --workers")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return InputError(f"no space left on the device{where}", "free some space, or write to a folder on another disk")
    if exc.errno == errno.EROFS:
        return InputError(f"the file system is read-only{where}", "write to a folder you can write to")
    if exc.errno == errno.ENOENT:
        try:
            os.getcwd()
        except FileNotFoundError:
            return InputError("the working folder no longer exists (it was deleted)", "cd to an existing folder and run again")
    return None
