"""What the routes and the stream share: the error answer and reading an uploaded image."""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np

from posezoo.errors import InputError
from posezoo.io.sources import decode_image, header_size

IMAGE_TYPES = "JPEG, PNG or WebP"


class ApiError(Exception):
    """An error answer: ``status``, a one-line ``message``, extra ``headers``."""

    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = one_line(message)
        self.headers = headers or {}


def one_line(text: Any, limit: int = 500) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def error_body(status: int, message: str) -> bytes:
    return json.dumps({"error": one_line(message), "status": status}, separators=(",", ":")).encode()


def log_line(message: str) -> None:
    print(f"posezoo: serve: {one_line(message)}", file=sys.stderr, flush=True)


def sniff(data: bytes) -> str | None:
    """'jpeg', 'png' or 'webp' from the first bytes, else None."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def decode(data: bytes, name: str, max_pixels: int) -> np.ndarray:
    """The image of ``data`` (BGR), or an ApiError: 415 (not JPEG/PNG/WebP), 413 (header over the pixel
    limit: refused before any pixel is decoded), 400 (damaged)."""
    if not data:
        raise ApiError(400, f"no image: the body is empty (send a {IMAGE_TYPES} file)")
    if sniff(data) is None:
        raise ApiError(415, f"{name} is not a {IMAGE_TYPES} image")
    size = header_size(data)
    if size is not None and size[0] * size[1] > max_pixels:
        raise ApiError(413, f"image {name} claims {size[0]}x{size[1]} pixels, more than this server's limit of {max_pixels:,}")
    try:  # (decode_image's silencing of native stderr is safe from several threads at once)
        return decode_image(np.frombuffer(data, np.uint8), name)
    except InputError as exc:
        raise ApiError(413 if "pixels" in exc.message else 400, str(exc)) from None


def safe_name(name: str | None, default: str = "upload") -> str:
    """A client's file name as the record's ``source``: its last path part, printable, short."""
    base = str(name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(c for c in base if c.isprintable()).strip()[:200]
    return base or default
