"""Image preprocessing shared by every family: colour conversion, rotated crops, letterboxing,
and scaling pixels into input tensors.

Mirrors the OpenCV path of MediaPipe's ``ImageToTensorCalculator``
(image_to_tensor_converter_opencv.cc): a rotated rect's corners, in ``cv::boxPoints`` order, map to
the output corners (0,H), (0,0), (W,0), (W,H); bilinear; border replicate, or zero for a letterbox.
Everything works in image pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from posezoo.errors import InputError

_TO_RGB = {1: cv2.COLOR_GRAY2RGB, 3: cv2.COLOR_BGR2RGB, 4: cv2.COLOR_BGRA2RGB}


def to_rgb(image_bgr: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """BGR (or gray, or BGRA) uint8 -> RGB, into ``out`` when it has the right shape.

    Anything else is an :class:`InputError` (this is where a caller's array is first checked).
    """
    if not isinstance(image_bgr, np.ndarray) or image_bgr.dtype != np.uint8 or image_bgr.ndim not in (2, 3):
        raise InputError("expected an 8-bit image array (H x W x 3, BGR)", "read images with cv2.imread")
    channels = 1 if image_bgr.ndim == 2 else image_bgr.shape[2]
    if channels not in _TO_RGB or min(image_bgr.shape[:2]) < 1:
        raise InputError(f"unsupported image shape {image_bgr.shape}", "pass an H x W x 3 BGR image")
    shape = image_bgr.shape[:2] + (3,)
    if out is None or out.shape != shape:
        out = np.empty(shape, np.uint8)
    return cv2.cvtColor(image_bgr, _TO_RGB[channels], dst=out)


class RgbBuffer:
    """:func:`to_rgb` into one buffer reused while the frame size holds (one thread at a time)."""

    def __init__(self) -> None:
        self._rgb: np.ndarray | None = None

    def __call__(self, image_bgr: np.ndarray) -> np.ndarray:
        self._rgb = to_rgb(image_bgr, self._rgb)
        return self._rgb


@dataclass(frozen=True)
class Roi:
    """A rotated rectangle in image pixels: centre, size and rotation (radians, clockwise on screen)."""

    cx: float
    cy: float
    w: float
    h: float
    rotation: float = 0.0

    def corners(self) -> np.ndarray:
        """The four corners (4, 2) in ``cv::boxPoints`` order: bottom-left, top-left, top-right,
        bottom-right of the unrotated rect."""
        m = crop_to_image_matrix(self, (1, 1))
        unit = np.array([[0.0, 1.0, 1.0], [0.0, 0.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
        return unit @ m.T


def crop_to_image_matrix(roi: Roi, size: tuple[int, int]) -> np.ndarray:
    """2x3 matrix taking crop pixels (corner-based, crop of ``size`` = (height, width)) to image pixels.

    Crop corner (0, 0) lands on the ROI's top-left corner and (W, H) on its bottom-right corner;
    a normalized crop point (x, y) lands on ``R(rot) @ ((x - 0.5) * w, (y - 0.5) * h) + centre``,
    which is MediaPipe's LandmarkProjectionCalculator.
    """
    out_h, out_w = size
    c, s = math.cos(roi.rotation), math.sin(roi.rotation)
    sx, sy = roi.w / out_w, roi.h / out_h
    return np.array(
        [
            [c * sx, -s * sy, roi.cx - 0.5 * (c * roi.w - s * roi.h)],
            [s * sx, c * sy, roi.cy - 0.5 * (s * roi.w + c * roi.h)],
        ]
    )


def crop(
    image: np.ndarray,
    roi: Roi,
    size: tuple[int, int],
    *,
    border: int = cv2.BORDER_REPLICATE,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Cut the rotated ``roi`` out of ``image`` into an array of ``size`` = (height, width).

    Returns ``(crop, M)`` where M (2x3) maps image pixels to crop pixels. Bilinear; ``border`` is
    BORDER_REPLICATE (landmark crops) or BORDER_CONSTANT with zeros (the detector's letterbox).
    ``out`` is reused when given (same dtype as ``image``).
    """
    fwd = crop_to_image_matrix(roi, size)
    res = cv2.warpAffine(
        image,
        fwd,
        (size[1], size[0]),
        dst=out,
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=border,
        borderValue=0,
    )
    return res, cv2.invertAffineTransform(fwd)


def to_tensor(pixels: np.ndarray, value_range: tuple[float, float], out: np.ndarray) -> np.ndarray:
    """uint8 (H, W, C) -> float32 ``out`` (1, H, W, C) spanning ``value_range`` (convertTo's scale/offset)."""
    lo, hi = value_range
    np.multiply(pixels, np.float32((hi - lo) / 255.0), out=out[0], casting="unsafe")
    if lo:
        out += np.float32(lo)
    return out


def letterbox_roi(image_w: int, image_h: int, tensor_h: int, tensor_w: int) -> tuple[Roi, np.ndarray]:
    """The whole image padded (centred) to the tensor's aspect ratio, as ImageToTensorCalculator's
    keep_aspect_ratio does. Returns the ROI and the padding fractions (left, top, right, bottom) of
    the padded frame."""
    w, h = float(image_w), float(image_h)
    tensor_aspect = tensor_h / tensor_w
    if tensor_aspect > h / w:
        new_w, new_h = w, w * tensor_aspect
        pad_x, pad_y = 0.0, (1.0 - (h / w) / tensor_aspect) * 0.5
    else:
        new_w, new_h = h / tensor_aspect, h
        pad_x, pad_y = (1.0 - tensor_aspect / (h / w)) * 0.5, 0.0
    return Roi(w * 0.5, h * 0.5, new_w, new_h, 0.0), np.array([pad_x, pad_y, pad_x, pad_y])
