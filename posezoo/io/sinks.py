"""Where results go: annotated images and videos, JSON Lines, a window.

Output targets are checked before any model runs (:func:`check_output`): the folder must exist and
take a new file (a probe file is created and removed, so a read-only mount is caught even for root),
the target must not be a device, pipe or folder where a file is meant, nor a file where a folder is
meant, and its extension must be one we can encode. Writers never leave a half-written file under the
final name: images are encoded in memory and written through a temporary file; a video and a JSON
Lines file are written to a hidden temporary name and renamed on close (the video after reading its
header back). Temporary names are unique per process and per call (``.<name>.<pid>.<random>.tmp``,
:mod:`posezoo.supply.atomic`), so two runs writing one output never touch each other's file (the last
to finish wins, whole); a video or JSON Lines sink removes the temporaries of its target left by
killed runs (their process gone, untouched for ``STALE_AGE`` seconds). A write that fails (disk full) is an :class:`InputError` (exit 5) and removes the
temporary file. Written files get ``0666 & ~umask`` permissions (see :mod:`posezoo.supply.atomic`).
"""

from __future__ import annotations

import errno
import json
import math
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np

from posezoo.supply.atomic import clean_stale_temporaries, publish, temporary_path, write_bytes
from posezoo.errors import InputError
from posezoo.io.sources import quiet_native_stderr, quiet_opencv

VIDEO_CODECS = {".mp4": "h264", ".m4v": "h264", ".mov": "h264", ".avi": "MJPG", ".mkv": "MJPG"}
IMAGE_OUTPUTS = ".png, .jpg"
STDOUT = "-"  # as an output path: standard output (JSON only; see data_stdout)


def is_stdout(path) -> bool:
    """``path`` is ``-``: standard output."""
    return path is not None and str(path) == STDOUT


_DATA: list = []  # the real standard output while data_stdout() holds it


@contextmanager
def data_stdout() -> Iterator[None]:
    """Keep standard output for data (``--json -``): meanwhile everything else this process and its
    children write to it (Python's ``print``, native code, pool workers) goes to stderr, so stdout is
    pure JSON. :func:`data_stream` is the real standard output."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    python_stdout = sys.stdout
    sys.stdout = sys.stderr
    stream = os.fdopen(saved, "w", encoding="utf-8", closefd=False)
    _DATA.append(stream)
    try:
        yield
    finally:
        _DATA.remove(stream)
        try:
            stream.flush()
        except OSError:
            pass
        sys.stdout = python_stdout
        os.dup2(saved, 1)
        os.close(saved)


def data_stream():
    """Where data for ``-`` goes: the real standard output (inside :func:`data_stdout`), else stdout."""
    return _DATA[-1] if _DATA else sys.stdout


def stdout_error(exc: OSError) -> InputError:
    if isinstance(exc, BrokenPipeError) or exc.errno == errno.EPIPE:
        return InputError("cannot write to standard output: the reader has closed it", "read the whole output, or write to a file")
    return InputError(f"cannot write to standard output: {exc.strerror or exc}")


def refuse_stdout(flag: str, path, what: str) -> None:
    """``-`` for an output that standard output cannot take: a usage error (exit 2)."""
    if is_stdout(path):
        from posezoo.errors import UsageError

        raise UsageError(f"{flag} -: {what} cannot go to standard output", f"give {flag} a path instead")


def _write_error(path: Path, exc: OSError) -> InputError:
    if exc.errno == errno.ENOSPC:
        return InputError(f"cannot write {path}: the disk is full; nothing was written",
                          "free some space, or write to a folder on another disk")
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return InputError(f"cannot write {path}: {exc.strerror}", "choose a folder you can write to")
    return InputError(f"cannot write {path}: {exc.strerror or exc}")


def _probe(folder: Path, path: Path) -> None:
    """Create and remove a hidden file in ``folder``: the only sure test that ``path`` can be written
    there (permissions, read-only mounts, quotas; ``os.access`` misses some for root)."""
    try:
        fd, tmp = temporary_path(folder / f".{path.name or 'out'}")
        os.close(fd)
        tmp.unlink()
    except OSError as exc:
        raise InputError(f"cannot write {path}: folder {folder}: {exc.strerror or exc}",
                         "choose a folder you can write to") from None


def check_writable(path: Path) -> None:
    """Fail early, before any work, when the file ``path`` cannot be created or replaced: its folder is
    missing, not a folder, or not writable, or ``path`` is a folder, a device, a pipe or a socket."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"cannot write {path}: it is a folder", "give the name of a file to write")
    if path.exists() and not path.is_file():  # (renaming a file over /dev/full would replace the device)
        raise InputError(f"cannot write {path}: it is not a regular file (a device, pipe or socket)",
                         "give the name of a file to write")
    parent = path.parent
    if not parent.exists():
        raise InputError(f"cannot write {path}: folder {parent} does not exist", "create it or choose another path")
    if not parent.is_dir():
        raise InputError(f"cannot write {path}: {parent} is a file, not a folder", "choose another path")
    _probe(parent, path)


def check_folder(folder: Path) -> None:
    """Fail early when ``folder`` (a folder to write files into, created when missing) cannot be."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        if not folder.is_file():
            raise InputError(f"cannot write {folder}: it is not a regular file (a device, pipe or socket)",
                             "give a folder, or the name of a file to write")
        raise InputError(f"cannot write images into {folder}: it is a file, not a folder",
                         f"give a folder, or a file name ending in {IMAGE_OUTPUTS}")
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        raise InputError(f"cannot write images into {folder}: {existing} is a file, not a folder",
                         "choose another path")
    _probe(existing, folder)


def is_folder_target(savepath: Path) -> bool:
    """Annotated images go into ``savepath`` as a folder (it is one, or has no extension)."""
    return savepath.is_dir() or not savepath.suffix


def check_output(savepath: Path | None, json_out: Path | None, *, video: bool) -> None:
    """Check every output target of a run before any model runs (see the module docstring)."""
    if savepath is not None:
        savepath = Path(savepath)
        if video:
            check_writable(savepath)
            if savepath.suffix.lower() not in VIDEO_CODECS:
                raise InputError(f"cannot write video {savepath}: unknown type {savepath.suffix.lower()!r}",
                                 f"use one of {', '.join(VIDEO_CODECS)}")
        elif is_folder_target(savepath):
            check_folder(savepath)
        else:
            check_writable(savepath)
            if not cv2.haveImageWriter(str(savepath)):
                raise InputError(f"cannot write image {savepath}: unknown type {savepath.suffix.lower()!r}",
                                 f"use {IMAGE_OUTPUTS}")
    if json_out is not None and not is_stdout(json_out):
        check_writable(Path(json_out))


def write_image(path: Path, image: np.ndarray) -> None:
    """Encode by extension and write atomically."""
    path = Path(path)
    check_writable(path)
    ext = path.suffix.lower() or ".png"
    try:
        ok, buf = cv2.imencode(ext, image)
    except cv2.error:
        ok = False
    if not ok:
        raise InputError(f"cannot write {path}: unknown image type {ext!r}", f"use {IMAGE_OUTPUTS}")
    try:
        write_bytes(path, buf.tobytes())
    except OSError as exc:
        raise _write_error(path, exc) from None


def image_output_path(savepath: Path, source: Path, count: int) -> Path:
    """Where the annotated copy of ``source`` goes: ``savepath`` itself for one image, else a file per
    image (inside ``savepath`` when it is a folder or has no extension, else ``<stem>_<source stem><ext>``)."""
    savepath = Path(savepath)
    if is_folder_target(savepath):
        try:
            savepath.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _write_error(savepath, exc) from None
        return savepath / f"{source.stem}.png"
    if count == 1:
        return savepath
    return savepath.with_name(f"{savepath.stem}_{source.stem}{savepath.suffix}")


class _OpenCVWriter:
    """OpenCV's own encoders (MJPG for .avi/.mkv; MPEG-4 Part 2 for .mp4 when PyAV is missing)."""

    def __init__(self, tmp: Path, fourcc: str, fps: float, size: tuple[int, int]):
        with quiet_native_stderr():
            self.writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*fourcc), fps, size)
        self.opened = self.writer.isOpened()

    def write(self, image: np.ndarray) -> None:
        with quiet_opencv():  # (a failed write is found on close; OpenCV would warn on every frame)
            self.writer.write(image)

    def release(self) -> None:
        with quiet_native_stderr():
            self.writer.release()


class _H264Writer:
    """H.264 (libx264, yuv420p, "fast start": the index first, so a browser plays while loading) in an
    MP4 or QuickTime file, through PyAV's own FFmpeg. H.264 4:2:0 needs even sizes: an odd width or
    height gets one more column or row, a copy of the last one."""

    def __init__(self, av, tmp: Path, fps: float, size: tuple[int, int]):
        from fractions import Fraction

        from posezoo.inference.runtime import session_threads

        self.size = size
        self.even = (size[0] + size[0] % 2, size[1] + size[1] % 2)
        self.av = av
        rate = Fraction(fps).limit_denominator(1001) if fps and np.isfinite(fps) and fps > 0 else Fraction(30)
        self.container = av.open(str(tmp), "w", format="mov" if tmp.suffix.lower() == ".mov" else "mp4",
                                 options={"movflags": "+faststart"})  # fmt: skip
        try:
            self.stream = self.container.add_stream("libx264", rate=rate)
            self.stream.width, self.stream.height = self.even
            self.stream.pix_fmt = "yuv420p"
            # (threads: as many as the models get, so a pool's workers do not each take every core)
            self.stream.options = {"preset": "veryfast", "crf": "23", "threads": str(session_threads())}
        except BaseException:
            self.container.close()
            raise
        self.opened = True

    def write(self, image: np.ndarray) -> None:
        h, w = image.shape[:2]
        if (w, h) != self.even:
            if (w, h) != self.size:
                image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
            image = cv2.copyMakeBorder(image, 0, self.even[1] - self.size[1], 0, self.even[0] - self.size[0],
                                       cv2.BORDER_REPLICATE)  # fmt: skip
        frame = self.av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def finish(self) -> None:
        """The frames the encoder still holds, then the index (written at close)."""
        try:
            for packet in self.stream.encode():
                self.container.mux(packet)
        finally:
            self.container.close()

    def release(self) -> None:
        """Close without caring whether the file is whole (it is being thrown away)."""
        try:
            self.container.close()
        except Exception:
            pass


_SAID: set[str] = set()


def _say_once(message: str) -> None:
    if message not in _SAID:
        _SAID.add(message)
        print(f"posezoo: {message}", file=sys.stderr)


def h264_encoder():
    """PyAV (``av``) when it is installed with the libx264 encoder, else None and why not."""
    try:
        import av
    except ImportError:
        return None, "PyAV is not installed"
    except Exception as exc:  # a broken install (a shared library missing)
        return None, f"PyAV cannot be loaded ({type(exc).__name__}: {exc})"
    if "libx264" not in getattr(av, "codecs_available", ()):
        return None, "this PyAV build has no libx264 encoder"
    return av, None


class VideoSink:
    """An annotated video, codec chosen by extension: H.264 (PyAV's libx264) in .mp4, .m4v and .mov,
    which browsers play; Motion JPEG in .avi and .mkv (OpenCV). Without PyAV an .mp4 falls back to
    OpenCV's MPEG-4 Part 2, saying so once. Written to a hidden temporary file, read back and renamed
    into place on close."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int]):
        self.path = Path(path)
        check_output(self.path, None, video=True)
        ext = self.path.suffix.lower()
        clean_stale_temporaries(self.path.parent, self.path.name)
        try:  # (a name of its own, ending in the extension that picks the container)
            fd, self.tmp = temporary_path(self.path, suffix=f".tmp{ext}")
            os.close(fd)
        except OSError as exc:
            raise _write_error(self.path, exc) from None
        self.codec = VIDEO_CODECS[ext]
        self.writer = None
        if self.codec == "h264":
            av, why = h264_encoder()
            if av is None:
                _say_once(f"warning: {why}: writing MPEG-4 Part 2 video, which web browsers do not play "
                          '(pip install "av>=14" for H.264)')  # fmt: skip
                self.codec = "mp4v"
            else:
                try:
                    self.writer = _H264Writer(av, self.tmp, fps, size)
                except OSError as exc:
                    self.tmp.unlink(missing_ok=True)
                    raise _write_error(self.path, exc) from None
                except av.FFmpegError as exc:
                    self.tmp.unlink(missing_ok=True)
                    raise InputError(f"cannot write video {self.path}: {exc}", "check the folder is writable") from None
        if self.writer is None:
            self.writer = _OpenCVWriter(self.tmp, self.codec, fps, size)
        if not self.writer.opened:
            self.tmp.unlink(missing_ok=True)
            raise InputError(f"cannot write video {self.path}", "check the folder is writable")
        self.frames = 0

    def write(self, image: np.ndarray) -> None:
        try:
            self.writer.write(image)
        except OSError as exc:  # (PyAV's errors carry errno: a full disk is ENOSPC)
            self.discard()
            raise _write_error(self.path, exc) from None
        except Exception as exc:
            if type(exc).__module__.split(".")[0] != "av":
                raise
            self.discard()
            raise InputError(f"cannot write video {self.path}: {exc}") from None
        self.frames += 1

    def discard(self) -> None:
        """Drop an unfinished video: its temporary file goes, nothing appears under the final name."""
        self.writer.release()
        self.tmp.unlink(missing_ok=True)

    def close(self) -> None:
        """Finish the file and rename it into place; a file that does not read back whole (the disk
        filled up: OpenCV does not say so while writing) is removed and an InputError."""
        if isinstance(self.writer, _H264Writer):
            try:
                self.writer.finish()
            except Exception as exc:
                self.tmp.unlink(missing_ok=True)
                if isinstance(exc, OSError):
                    raise _write_error(self.path, exc) from None
                if type(exc).__module__.split(".")[0] != "av":
                    raise
                raise InputError(f"cannot write video {self.path}: {exc}",
                                 "free some space, or write to a folder on another disk") from None  # fmt: skip
        else:
            self.writer.release()
        if not self.frames:
            self.tmp.unlink(missing_ok=True)
            return
        found = _frames_in(self.tmp)
        if found != self.frames:
            self.tmp.unlink(missing_ok=True)
            raise InputError(
                f"cannot write video {self.path}: the file written holds {found} of {self.frames} frames "
                "(is the disk full?); nothing was kept",
                "free some space, or write to a folder on another disk",
            )
        try:
            publish(self.tmp, self.path)
        except OSError as exc:
            self.tmp.unlink(missing_ok=True)
            raise _write_error(self.path, exc) from None


def _frames_in(path: Path) -> int:
    """The frame count a video file's index gives (0 when it cannot be opened)."""
    with quiet_native_stderr():
        cap = cv2.VideoCapture(str(path))
        found = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if cap.isOpened() else 0
        cap.release()
    return found


class JsonlSink:
    """JSON Lines: one object per image or frame, written to a hidden temporary file that is renamed
    into place on close (a run stopped early keeps the complete lines written so far)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.stdout = is_stdout(path)  # ``-``: lines go to standard output as they come
        if self.stdout:
            self.fh, self.tmp = data_stream(), None
            return
        check_writable(self.path)
        clean_stale_temporaries(self.path.parent, self.path.name)
        try:
            fd, self.tmp = temporary_path(self.path)
        except OSError as exc:
            raise _write_error(self.path, exc) from None
        self.fh = os.fdopen(fd, "w", encoding="utf-8")

    def write(self, record: dict) -> None:
        if self.fh is None:
            return
        try:
            self.fh.write(json.dumps(record, separators=(",", ":")) + "\n")
            self.fh.flush()
        except OSError as exc:
            self.discard()
            raise (stdout_error(exc) if self.stdout else _write_error(self.path, exc)) from None

    def close(self) -> None:
        if self.fh is None:
            return
        if self.stdout:
            self.fh = None
            return
        try:
            self.fh.close()
            self.fh = None
            publish(self.tmp, self.path)
        except OSError as exc:
            self.discard()
            raise _write_error(self.path, exc) from None

    def discard(self) -> None:
        """Drop the temporary file: nothing appears under the final name."""
        if self.stdout:
            self.fh = None
            return
        if self.fh is not None:
            try:
                self.fh.close()
            except OSError:
                pass
            self.fh = None
        self.tmp.unlink(missing_ok=True)


def display_available() -> bool:
    """A window can be opened: a display server on Linux; assumed elsewhere."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


class Display:
    """A window showing frames; ``show`` returns False when the user pressed q or Esc.

    With no display it stays headless and says so once.
    """

    def __init__(self, title: str, enabled: bool = True):
        self.title = title
        self.enabled = enabled and display_available()
        if enabled and not self.enabled:
            print("posezoo: no display found; running headless (results go to -s / --json)", file=sys.stderr)

    def show(self, image: np.ndarray, wait_ms: int = 1) -> bool:
        if not self.enabled:
            return True
        try:
            cv2.imshow(self.title, image)
            key = cv2.waitKey(wait_ms) & 0xFF
        except cv2.error:
            self.enabled = False
            print("posezoo: cannot open a window; running headless", file=sys.stderr)
            return True
        return key not in (ord("q"), 27)

    def close(self) -> None:
        if self.enabled:
            try:
                cv2.destroyAllWindows()
            except cv2.error:
                pass


def _number(value, digits: int):
    """A float for JSON: rounded, or None when it is not finite (JSON has no NaN or Infinity)."""
    value = float(value)
    return round(value, digits) if math.isfinite(value) else None


def _rows(array: np.ndarray, digits: int) -> list:
    """Rows of a (K, C) array for JSON: a row with no finite number (a part that was not found) is
    ``null``; any other NaN or infinity is ``null`` in its place."""
    values = np.round(np.asarray(array, np.float64), digits)
    finite = np.isfinite(values)
    if finite.all():
        return values.tolist()
    out: list = []
    for row, ok in zip(values.tolist(), finite):
        if not ok.any():
            out.append(None)
        elif ok.all():
            out.append(row)
        else:
            out.append([v if good else None for v, good in zip(row, ok)])
    return out


def pose_json(p) -> dict:
    """One pose as JSON (see :func:`pose_record`)."""
    landmarks = _rows(p.landmarks, 4)
    return {
        "score": _number(p.score, 5),
        "presence": None if p.presence is None else _number(p.presence, 5),
        "box": [_number(v, 2) for v in p.box],
        "track_id": p.track_id,
        "label": p.label,
        "label_score": None if p.label_score is None else _number(p.label_score, 5),
        "columns": list(p.columns),
        "landmarks": landmarks,
        "parts": {
            name: None if rows is None else landmarks[rows[0] : rows[1]] for name, rows in p.part_ranges().items()
        },
        "world_landmarks": None if p.world_landmarks is None else _rows(p.world_landmarks, 5),
    }


def pose_record(frame_source: str, frame_index: int, image: np.ndarray, model: str, variant: str, poses) -> dict:
    """The JSON object for one image or frame (the --json schema, see docs/cli.md).

    Per pose: ``score``, ``presence`` (or null), ``box``, ``track_id`` (video; or null), ``label`` and
    ``label_score`` (a classification of the pose, e.g. a hand's handedness; or null), ``columns``
    (what each landmark row holds, x and y first, in pixels), ``landmarks`` (rows), ``parts`` (part
    name -> its rows of ``landmarks``, or null for a part looked for and not found; a model without
    parts has one, ``body``), ``world_landmarks`` (metres, or null). JSON has no NaN: the rows of a
    part not found are ``null`` in ``landmarks`` too, and any other non-finite number is ``null``.
    """
    h, w = image.shape[:2]
    return {
        "source": frame_source,
        "frame": frame_index,
        "width": w,
        "height": h,
        "model": model,
        "variant": variant,
        "poses": [pose_json(p) for p in poses],
    }
