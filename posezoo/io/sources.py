"""Where frames come from: image files and folders, video files, cameras, the bundled sample.

Every failure to open or read is an :class:`posezoo.errors.InputError` naming the path (or camera)
and a fix; what OpenCV and the FFmpeg inside it would print about a broken file is silenced
(:func:`quiet_native_stderr`), so the error is the only line.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from posezoo.errors import InputError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".jp2", ".pgm", ".ppm"}
SAMPLE_IMAGE = "coco_000000000785.jpg"

MAX_PIXELS_ENV = "POSEZOO_MAX_PIXELS"
DEFAULT_MAX_PIXELS = 100_000_000  # 100 megapixels: a 12000 x 8000 photo; 300 MB once decoded to BGR


def max_pixels() -> int:
    """The most pixels an image may have (width x height, read from its header before decoding):
    ``$POSEZOO_MAX_PIXELS`` or :data:`DEFAULT_MAX_PIXELS`."""
    raw = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(float(raw))
    except ValueError:
        value = 0
    if value < 1:
        raise InputError(f"{MAX_PIXELS_ENV}={raw[:40]!r} is not a positive number of pixels", f"e.g. {MAX_PIXELS_ENV}=200000000")
    return value


def _opencv_limit() -> None:
    """OpenCV's own decoders refuse more than our limit too (they read it once, at their first use), so
    an image whose header Pillow cannot read is still bounded."""
    try:
        limit = max_pixels()
    except InputError:  # reported when an image is read
        limit = DEFAULT_MAX_PIXELS
    os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(limit))


_opencv_limit()


def header_size(data: bytes | np.ndarray) -> tuple[int, int] | None:
    """(width, height) from an image file's header without decoding its pixels, or None when the
    header cannot be read (Pillow reads the headers of every format posezoo reads)."""
    import io as _io
    import warnings

    from PIL import Image

    buf = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
    saved = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = None  # our limit, not Pillow's, decides (and Pillow's warning stays quiet)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(_io.BytesIO(buf)) as im:
                return int(im.size[0]), int(im.size[1])
    except Exception:  # Pillow raises many types for what it cannot identify: OpenCV then decides
        return None
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def check_pixels(data: bytes | np.ndarray, name: str | Path) -> None:
    """Refuse an image whose header claims more than :func:`max_pixels` (a decompression bomb: a few
    KB that would decode to gigabytes), before any pixel is decoded."""
    size = header_size(data)
    limit = max_pixels()
    if size is not None and size[0] * size[1] > limit:
        raise InputError(
            f"image {name} claims {size[0]}x{size[1]} pixels, more than the limit of {limit:,}",
            f"set {MAX_PIXELS_ENV} higher to read it, or resize it first",
        )


def check_regular_file(path: Path, what: str, flag: str) -> None:
    """Refuse a missing path, a folder, or a special file (a FIFO would block a reader for ever, a
    device such as /dev/zero never end) before any reader opens it."""
    if not path.exists():
        raise InputError(f"{what} {path} does not exist", f"check the path given to {flag}")
    if path.is_dir():
        raise InputError(f"{path} is a folder where {'an' if what[0] in 'aeiou' else 'a'} {what} was expected", f"give {what} files to {flag}")
    if not path.is_file():
        raise InputError(f"cannot read {what} {path}: not a regular file (a device, pipe or socket)", f"give {what} file to {flag}")


@dataclass
class Frame:
    image: np.ndarray  # BGR, uint8, (H, W, 3)
    source: str
    index: int  # frame number in a video; 0 for an image
    timestamp: float  # seconds


def sample_image_path() -> Path:
    """The bundled sample photo (COCO val2017 #785, CC BY 2.0; credit in posezoo/data/CREDITS.md)."""
    return Path(str(resources.files("posezoo").joinpath("data", SAMPLE_IMAGE)))


def read_image(path: Path) -> np.ndarray:
    """Read an image as BGR uint8, or raise InputError."""
    path = Path(path)
    check_regular_file(path, "image", "-i")
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise InputError(f"cannot read image {path}: {exc.strerror or exc}", "check its permissions") from None
    return decode_image(data, path)


def decode_image(data: np.ndarray, name: str | Path) -> np.ndarray:
    """The image in ``data`` (the bytes of an image file, as uint8) as BGR uint8, or an InputError
    naming ``name``. An image whose header claims more than :func:`max_pixels` is refused before
    decoding."""
    check_pixels(data, name)
    with quiet_native_stderr():  # (libjpeg and libpng warn about damaged files on stderr)
        try:
            image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        except cv2.error:  # OpenCV's own pixel limit (a header Pillow could not read)
            raise InputError(
                f"cannot read image {name}: its header claims more pixels than OpenCV decodes",
                f"set {MAX_PIXELS_ENV} (and OPENCV_IO_MAX_IMAGE_PIXELS) higher, or resize it first",
            ) from None
    if image is None:
        raise InputError(
            f"cannot read image {name}: not an image file or a format OpenCV cannot decode",
            "give a JPEG, PNG, BMP, WebP or TIFF file",
        )
    return image


def image_paths(inputs: list[Path]) -> list[Path]:
    """Expand ``-i`` arguments: files as given, folders to their image files (sorted)."""
    out: list[Path] = []
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
            if not found:
                raise InputError(f"folder {item} holds no image files", f"image types: {', '.join(sorted(IMAGE_EXTENSIONS))}")
            out.extend(found)
        elif item.is_file():
            out.append(item)
        elif item.exists():  # a FIFO would block, a device such as /dev/zero never end
            raise InputError(f"input {item} is not a regular file (a device, pipe or socket)", "give an image file")
        else:
            raise InputError(f"input {item} does not exist", "check the path given to -i")
    return out


def iter_images(paths: list[Path]) -> Iterator[Frame]:
    for path in paths:
        yield Frame(read_image(path), str(path), 0, 0.0)


_QUIET_LOCK = threading.Lock()
_quiet = {"depth": 0, "saved": None}  # threads inside quiet_native_stderr, and the real stderr meanwhile


@contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Silence what native code writes to the process's stderr (file descriptor 2) meanwhile: FFmpeg
    inside OpenCV logs about broken videos there, past OpenCV's own log level.

    Safe from several threads at once: the first to enter swaps descriptor 2 for /dev/null and the last
    to leave puts it back, so overlapping callers (a server decoding two uploads) never leave it swapped
    and need no lock around their decoding."""
    with _QUIET_LOCK:
        if _quiet["depth"] == 0:
            try:
                sys.stderr.flush()
                saved = os.dup(2)
            except (OSError, ValueError, AttributeError):  # no stderr at all: nothing to silence
                saved = None
            if saved is not None:
                devnull = os.open(os.devnull, os.O_WRONLY)
                try:
                    os.dup2(devnull, 2)
                finally:
                    os.close(devnull)
            _quiet["saved"] = saved
        _quiet["depth"] += 1
    try:
        yield
    finally:
        with _QUIET_LOCK:
            _quiet["depth"] -= 1
            saved = _quiet["saved"]
            if _quiet["depth"] == 0 and saved is not None:
                os.dup2(saved, 2)
                os.close(saved)
                _quiet["saved"] = None


@contextmanager
def quiet_opencv():
    """OpenCV's log silenced, and native stderr (:func:`quiet_native_stderr`), meanwhile."""
    logging = cv2.utils.logging
    level = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        with quiet_native_stderr():
            yield
    finally:
        logging.setLogLevel(level)


class VideoSource:
    """A video file or a camera (``"0"`` = the first webcam), iterated as frames."""

    def __init__(self, spec: str):
        self.spec = str(spec)
        self.is_camera = self.spec.isdigit()
        if not self.is_camera:
            check_regular_file(Path(self.spec), "video", "-v")
        target: int | str = int(self.spec) if self.is_camera else self.spec
        with quiet_opencv():  # OpenCV logs its own multi-line warnings for a missing camera
            self.cap = cv2.VideoCapture(target)
            ok = self.cap.isOpened()
            first = None
            if ok:
                ok, first = self.cap.read()
        if not ok or first is None:
            self.cap.release()
            if self.is_camera:
                raise InputError(
                    f"cannot open camera {self.spec}",
                    "check that a webcam is connected and free, or try another index (-v 1)",
                )
            raise InputError(
                f"cannot read video {self.spec}: not a video file, damaged, or a codec OpenCV cannot decode",
                "give an MP4, AVI, MKV or MOV file that plays elsewhere (`ffprobe FILE` shows what it holds)",
            )
        self._first = first
        fps = self.cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and 1.0 <= fps <= 1000.0 else 30.0
        count = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.frame_count = count if count > 0 and not self.is_camera else None
        self.size = (first.shape[1], first.shape[0])

    def __iter__(self) -> Iterator[Frame]:
        start = time.perf_counter()
        index = 0
        frame = self._first
        self._first = None
        while frame is not None:
            ts = (time.perf_counter() - start) if self.is_camera else index / self.fps
            yield Frame(frame, self.spec, index, ts)
            index += 1
            with quiet_opencv():  # (a damaged frame is skipped, not narrated by FFmpeg)
                ok, frame = self.cap.read()
            if not ok:
                frame = None

    def close(self) -> None:
        self.cap.release()
