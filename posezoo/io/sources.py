"""Where frames come from: image files and folders, video files, cameras, the bundled sample.

Every failure to open or read is an :class:`posezoo.errors.InputError` naming the path (or camera)
and a fix; what OpenCV and the FFmpeg inside it would print about a broken file is silenced
(:func:`quiet_native_stderr`), so the error is the only line.
"""

from __future__ import annotations

import os
import sys
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
    if not path.exists():
        raise InputError(f"image {path} does not exist", "check the path given to -i")
    if path.is_dir():
        raise InputError(f"{path} is a folder where an image was expected")
    if not path.is_file():  # a FIFO would block, a device such as /dev/zero never end
        raise InputError(f"cannot read image {path}: not a regular file (a device, pipe or socket)",
                         "give an image file")
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise InputError(f"cannot read image {path}: {exc.strerror or exc}", "check its permissions") from None
    return decode_image(data, path)


def decode_image(data: np.ndarray, name: str | Path) -> np.ndarray:
    """The image in ``data`` (the bytes of an image file, as uint8) as BGR uint8, or an InputError
    naming ``name``."""
    with quiet_native_stderr():  # (libjpeg and libpng warn about damaged files on stderr)
        image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
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


@contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Silence what native code writes to the process's stderr (file descriptor 2) meanwhile: FFmpeg
    inside OpenCV logs about broken videos there, past OpenCV's own log level."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no stderr at all: nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


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
        if not self.is_camera and not Path(self.spec).exists():
            raise InputError(f"video {self.spec} does not exist", "check the path given to -v")
        if not self.is_camera and Path(self.spec).is_dir():
            raise InputError(f"{self.spec} is a folder where a video was expected", "give a video file to -v")
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
