"""Work items of a run over many inputs: which image and video files, named how, grouped how.

A run over a data set lists its inputs once into :class:`Item` s: image and video files found in the
folders given (recursively, sorted) or named directly. ``posezoo run`` lists local paths
(:func:`local_items`); ``posezoo batch`` lists local folders and any URI that ``pyarrow.fs``
understands, such as ``s3://bucket/prefix`` (:func:`uri_items`). Each item keeps its path relative
to the common root of the inputs (``rel``), so outputs can mirror the input tree.

Items are then grouped into *units* (:func:`make_units`), what one worker does in one go: a video
whole (tracking is sequential within a video), or a chunk of images. :func:`item_frames` reads the
frames of an item, wherever it lives.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import cv2
import numpy as np

from posezoo.errors import InputError
from posezoo.io.sources import IMAGE_EXTENSIONS, Frame, VideoSource, decode_image, quiet_opencv, read_image

VIDEO_EXTENSIONS = {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv"}
MAX_CHUNK = 32  # images per unit at most


@dataclass(frozen=True)
class Item:
    """One input: ``source`` is its path or URI as records name it, ``kind`` "image" or "video",
    ``rel`` its posix path relative to the common root of the inputs, ``frames`` 1 for an image, the
    frame count its container declares for a video (0 when unknown; for progress only)."""

    source: str
    kind: str
    rel: str
    frames: int = 1

    @property
    def is_remote(self) -> bool:
        return is_uri(self.source)


def is_uri(text: str) -> bool:
    """``scheme://...`` with a scheme longer than one letter (``C:/`` is a Windows path)."""
    scheme, sep, _ = str(text).partition("://")
    return bool(sep) and len(scheme) > 1 and scheme.replace("+", "").replace("-", "").isalnum()


def kind_of(name: str) -> str | None:
    """"image", "video" or None, by file extension."""
    ext = PurePosixPath(name).suffix.lower()
    return "image" if ext in IMAGE_EXTENSIONS else "video" if ext in VIDEO_EXTENSIONS else None


def _common_root(roots: Sequence[str]) -> str:
    """The longest common ``/``-separated prefix of ``roots`` ("" when they share none)."""
    split = [r.rstrip("/").split("/") for r in roots]
    common: list[str] = []
    for parts in zip(*split):
        if any(p != parts[0] for p in parts):
            break
        common.append(parts[0])
    return "/".join(common)


def _relative(found: list[tuple[str, str, str]]) -> list[Item]:
    """(source, kind, root) -> items with ``rel`` = the source below the common root of all roots."""
    common = _common_root([root for _, _, root in found]) if found else ""
    items = []
    for source, kind, _ in found:
        full = source.replace(os.sep, "/")
        rel = full[len(common) :].lstrip("/") if common and full.startswith(common + "/") else full.split("://")[-1].lstrip("/")
        items.append(Item(source, kind, rel))
    return items


def _video_frames(path: str) -> int:
    with quiet_opencv():  # (a broken video is reported once, by the worker that reads it)
        cap = cv2.VideoCapture(path)
        try:
            return max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)) if cap.isOpened() else 0
        finally:
            cap.release()


# ------------------------------------------------------------------------------------ listing


def _walk_local(folder: Path) -> list[str]:
    """Regular files below ``folder`` (recursive; hidden files and folders, and special files such as
    FIFOs and devices, skipped), relative posix paths, sorted."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        base = Path(dirpath).relative_to(folder)
        out += [(base / f).as_posix() for f in filenames if not f.startswith(".") and (Path(dirpath) / f).is_file()]
    return sorted(out)


def local_items(images: Sequence[str | Path] = (), videos: Sequence[str | Path] = ()) -> list[Item]:
    """Items of ``posezoo run -i ... -v ...``: image files and folders of images (``-i``), video files
    and folders of videos (``-v``); folders are searched recursively. Images first, in argument order;
    files in a folder sorted by path. Raises InputError for a missing input or an empty folder."""
    found: list[tuple[str, str, str]] = []
    for args, kind, flag in ((images, "image", "-i"), (videos, "video", "-v")):
        for arg in args:
            path = Path(arg)
            if path.is_dir():
                names = [n for n in _walk_local(path) if kind_of(n) == kind]
                if not names:
                    exts = ", ".join(sorted(IMAGE_EXTENSIONS if kind == "image" else VIDEO_EXTENSIONS))
                    raise InputError(f"folder {path} holds no {kind} files", f"{kind} types: {exts}")
                root = str(path.absolute())
                found += [(str(path / n), kind, root) for n in names]
            elif path.is_file():
                found.append((str(path), kind, str(path.absolute().parent)))
            elif path.exists():  # a FIFO would block a reader for ever, a device never end
                raise InputError(f"input {path} is not a regular file (a device, pipe or socket)", f"give {kind} files to {flag}")
            else:
                raise InputError(f"input {path} does not exist", f"check the path given to {flag}")
    absolute = [(str(Path(s).absolute()), k, r) for s, k, r in found]
    items = [Item(s, k, it.rel) for (s, k, _), it in zip(found, _relative(absolute))]
    return [Item(i.source, i.kind, i.rel, _video_frames(i.source)) if i.kind == "video" else i for i in items]


def filesystem(uri: str):
    """``(pyarrow FileSystem, path)`` for a local path or any URI pyarrow.fs understands."""
    from pyarrow import fs as pafs

    if not is_uri(uri):
        return pafs.LocalFileSystem(), str(Path(uri).absolute())
    try:
        return pafs.FileSystem.from_uri(uri)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ... for a bad URI
        raise InputError(f"cannot open {uri}: {' '.join(str(exc).split())}", "give a folder or a URI pyarrow.fs understands") from None


def uri_items(inputs: Sequence[str]) -> list[Item]:
    """Items of ``posezoo batch``: image and video files, and folders (or URI prefixes) searched
    recursively for them, through pyarrow.fs. Sources are absolute paths for local files (workers on
    other machines or in other folders open them as they are) and URIs as given
    (``s3://bucket/data/a.jpg``)."""
    from pyarrow import fs as pafs

    found: list[tuple[str, str, str]] = []
    for arg in inputs:
        arg = str(arg)
        fs, path = filesystem(arg)
        try:
            info = fs.get_file_info(path)
            if info.type == pafs.FileType.Directory:
                selector = pafs.FileSelector(path, recursive=True)
                infos = [i for i in fs.get_file_info(selector) if i.type == pafs.FileType.File]
            else:
                infos = [info]
        except Exception as exc:
            raise InputError(f"cannot list {arg}: {' '.join(str(exc).split())}", "check the path or URI and its credentials") from None
        if info.type == pafs.FileType.NotFound:
            raise InputError(f"input {arg} does not exist", "check the path or URI")
        if info.type == pafs.FileType.Directory:
            base = path.rstrip("/")
            names = sorted(i.path[len(base) :].lstrip("/") for i in infos)
            names = [n for n in names if kind_of(n) and not any(p.startswith(".") for p in n.split("/"))]
            if not names:
                raise InputError(f"folder {arg} holds no image or video files", "give a folder of images or videos")
            root = arg.rstrip("/")
            found += [(f"{root}/{n}", kind_of(n), root) for n in names]
        else:
            kind = kind_of(path)
            if kind is None:
                raise InputError(f"{arg} is neither an image nor a video file (by its extension)", "give image or video files, or folders")
            found.append((arg, kind, arg.rsplit("/", 1)[0] if "/" in arg else "."))
    items = _relative([(s if is_uri(s) else str(Path(s).absolute()), k, r if is_uri(r) else str(Path(r).absolute())) for s, k, r in found])
    return [Item(i.source, i.kind, i.rel, _video_frames(i.source)) if i.kind == "video" and not i.is_remote else i for i in items]


# ------------------------------------------------------------------------------------ units


def make_units(items: Sequence[Item], workers: int, chunk: int | None = None) -> list[list[Item]]:
    """Group ``items`` (in their order) into units: each video alone, runs of consecutive images in
    chunks of ``chunk`` (default: about sixteen chunks per worker, so that the workers finish close
    together, and at most 32 images each)."""
    images = sum(1 for i in items if i.kind == "image")
    if chunk is None:
        chunk = max(1, min(MAX_CHUNK, math.ceil(images / max(1, 16 * workers))))
    units: list[list[Item]] = []
    run: list[Item] = []
    for item in items:
        if item.kind == "video":
            if run:
                units.append(run)
                run = []
            units.append([item])
            continue
        run.append(item)
        if len(run) == chunk:
            units.append(run)
            run = []
    if run:
        units.append(run)
    return units


# ------------------------------------------------------------------------------------ reading


def _read_remote(source: str) -> bytes:
    fs, path = filesystem(source)
    try:
        with fs.open_input_stream(path) as f:
            return f.read()
    except Exception as exc:
        raise InputError(f"cannot read {source}: {' '.join(str(exc).split())}", "check the URI and its credentials") from None


def read_item_image(item: Item) -> np.ndarray:
    """The image of an image item, BGR uint8 (InputError naming it when it cannot be decoded)."""
    if not item.is_remote:
        return read_image(Path(item.source))
    return decode_image(np.frombuffer(_read_remote(item.source), np.uint8), item.source)


class ItemReader:
    """The frames of an item, wherever it lives: one for an image, every frame of a video. A remote
    video is copied to a temporary file first (removed on close). ``fps`` and ``size`` (w, h) are
    known once open (an image counts as one frame at 30 fps)."""

    def __init__(self, item: Item):
        self.item = item
        self.fps = 30.0
        self.size: tuple[int, int] | None = None
        self._tmpdir: str | None = None
        self._video: VideoSource | None = None
        self._image: np.ndarray | None = None

    def __enter__(self) -> ItemReader:
        try:
            self._open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self) -> None:
        item = self.item
        if item.kind == "image":
            self._image = read_item_image(item)
            self.size = (self._image.shape[1], self._image.shape[0])
            return
        path = item.source
        if item.is_remote:
            self._tmpdir = tempfile.mkdtemp(prefix="posezoo-video-")
            path = os.path.join(self._tmpdir, "video" + PurePosixPath(item.source).suffix)
            fs, remote = filesystem(item.source)
            try:
                with fs.open_input_stream(remote) as src, open(path, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            except Exception as exc:
                raise InputError(f"cannot read {item.source}: {' '.join(str(exc).split())}", "check the URI and its credentials") from None
        try:
            self._video = VideoSource(path)
        except InputError as exc:
            if not item.is_remote:
                raise
            raise InputError(f"cannot read video {item.source}: not a video file or an unsupported codec") from exc
        self.fps, self.size = self._video.fps, self._video.size

    def __iter__(self) -> Iterator[Frame]:
        if self._image is not None:
            image, self._image = self._image, None
            yield Frame(image, self.item.source, 0, 0.0)
        elif self._video is not None:
            for frame in self._video:
                yield Frame(frame.image, self.item.source, frame.index, frame.timestamp)

    def close(self) -> None:
        if self._video is not None:
            self._video.close()
            self._video = None
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
