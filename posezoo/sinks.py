"""Where results go: annotated images and videos, JSON Lines, a window.

Writers never leave a half-written file under the final name: images are encoded in memory and
written through a temporary file; a video is written to a temporary name and renamed on close.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np

from posezoo.atomic import write_bytes
from posezoo.errors import InputError

VIDEO_CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}


def check_writable(path: Path) -> None:
    """Fail early, before any work, when ``path`` cannot be created (its folder is missing)."""
    parent = path.parent
    if not parent.exists():
        raise InputError(f"cannot write {path}: folder {parent} does not exist", "create it or choose another path")


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
        raise InputError(f"cannot write {path}: unknown image type {ext!r}", "use .png or .jpg")
    try:
        write_bytes(path, buf.tobytes())
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None


def image_output_path(savepath: Path, source: Path, count: int) -> Path:
    """Where the annotated copy of ``source`` goes: ``savepath`` itself for one image, else a file per
    image (inside ``savepath`` when it is a folder or has no extension, else ``<stem>_<source stem><ext>``)."""
    savepath = Path(savepath)
    if savepath.is_dir() or not savepath.suffix:
        savepath.mkdir(parents=True, exist_ok=True)
        return savepath / f"{source.stem}.png"
    if count == 1:
        return savepath
    return savepath.with_name(f"{savepath.stem}_{source.stem}{savepath.suffix}")


class VideoSink:
    """An annotated video, codec chosen by extension; renamed into place on close."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int]):
        self.path = Path(path)
        check_writable(self.path)
        ext = self.path.suffix.lower()
        if ext not in VIDEO_CODECS:
            raise InputError(f"cannot write video {self.path}: unknown type {ext!r}", f"use one of {', '.join(VIDEO_CODECS)}")
        self.tmp = self.path.with_name(f".{self.path.stem}.partial{ext}")
        self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*VIDEO_CODECS[ext]), fps, size)
        if not self.writer.isOpened():
            raise InputError(f"cannot write video {self.path}", "check the folder is writable")
        self.frames = 0

    def write(self, image: np.ndarray) -> None:
        self.writer.write(image)
        self.frames += 1

    def close(self) -> None:
        self.writer.release()
        if self.frames:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)


class JsonlSink:
    """JSON Lines: one object per image or frame, flushed as it goes."""

    def __init__(self, path: Path):
        self.path = Path(path)
        check_writable(self.path)
        try:
            self.fh = open(self.path, "w", encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot write {self.path}: {exc.strerror or exc}") from None

    def write(self, record: dict) -> None:
        self.fh.write(json.dumps(record, separators=(",", ":")) + "\n")
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()


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


def pose_record(frame_source: str, frame_index: int, image: np.ndarray, model: str, variant: str, poses) -> dict:
    """The JSON object for one image or frame (the --json schema, see docs/cli.md).

    Per pose: ``score``, ``presence`` (or null), ``box``, ``track_id`` (video; or null),
    ``columns`` (what each landmark row holds, x and y first, in pixels), ``landmarks`` (rows),
    ``world_landmarks`` (metres, or null).
    """
    h, w = image.shape[:2]
    return {
        "source": frame_source,
        "frame": frame_index,
        "width": w,
        "height": h,
        "model": model,
        "variant": variant,
        "poses": [
            {
                "score": round(float(p.score), 5),
                "presence": None if p.presence is None else round(float(p.presence), 5),
                "box": [round(float(v), 2) for v in p.box],
                "track_id": p.track_id,
                "columns": list(p.columns),
                "landmarks": np.round(p.landmarks.astype(np.float64), 4).tolist(),
                "world_landmarks": None
                if p.world_landmarks is None
                else np.round(p.world_landmarks.astype(np.float64), 5).tolist(),
            }
            for p in poses
        ],
    }
