"""Image preprocessing shared by every family: colour conversion, rotated crops, letterboxing,
and scaling pixels into input tensors.

Mirrors the OpenCV path of MediaPipe's ``ImageToTensorCalculator``
(image_to_tensor_converter_opencv.cc): a rotated rect's corners, in ``cv::boxPoints`` order, map to
the output corners (0,H), (0,0), (W,0), (W,H); bilinear; border replicate, or zero for a letterbox.
The sampling is OpenCV 4's fixed-point ``warpAffine``, bit for bit, whatever OpenCV is installed
(:mod:`posezoo.inference.warp`). Everything works in image pixels. With ``pixel_centers`` a crop samples as MediaPipe's GPU path does
(image_to_tensor_converter_gl_texture.cc): each output pixel's centre is mapped through the rect and
the image is sampled there, half an output pixel further in than the OpenCV path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from posezoo.errors import InputError
from posezoo.inference.warp import BORDER_CONSTANT, BORDER_REPLICATE, INTER_NEAREST, warp_affine

# OpenCV's values of its colour conversions (cv2 is imported on first use, see posezoo.inference.warp)
COLOR_BGR2RGB, COLOR_BGRA2RGB, COLOR_GRAY2RGB = 4, 3, 8
_TO_RGB = {1: COLOR_GRAY2RGB, 3: COLOR_BGR2RGB, 4: COLOR_BGRA2RGB}


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
    import cv2

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
    border: int = BORDER_REPLICATE,
    out: np.ndarray | None = None,
    pixel_centers: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Cut the rotated ``roi`` out of ``image`` into an array of ``size`` = (height, width).

    Returns ``(crop, M)`` where M (2x3) maps image pixels to crop pixels (the indices of ``crop``).
    Bilinear, exactly as OpenCV 4's ``warpAffine`` samples (:func:`posezoo.inference.warp.warp_affine`;
    ``image`` uint8, or float32); ``border`` is BORDER_REPLICATE (landmark crops) or BORDER_CONSTANT
    with zeros (the detector's letterbox). ``out`` is reused when given (same dtype as ``image``).

    Sampling: crop pixel (i, j) is read at the image point the ROI puts at crop point (i, j)
    (MediaPipe's OpenCV path: corner-based crop coordinates read as pixel indices); with
    ``pixel_centers``, at the point of crop point (i + 0.5, j + 0.5), read in pixel-centre image
    coordinates (MediaPipe's GPU path: texture sampling at fragment centres).
    """
    fwd = crop_to_image_matrix(roi, size)
    if pixel_centers:
        fwd[:, 2] += fwd[:, :2] @ (0.5, 0.5) - 0.5
    res = warp_affine(image, fwd, tuple(size), border=border, out=out)
    import cv2

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


# ------------------------------------------------------------------------------------ TensorFlow's sampling
#
# Models published for TensorFlow get their inputs from tf.image ops, whose bilinear sampling differs from
# OpenCV's: source pixels sit at integer coordinates (no half-pixel shift), the interpolation is done in
# floating point (OpenCV's warps quantize positions to 1/32 pixel), x first and then y, and crop_and_resize
# fills points outside the image with a constant. The functions below sample exactly where TensorFlow's
# CPU kernels sample and interpolate in the same order, in float32 (TensorFlow computes in double and
# stores float32: the two differ by a few float32 steps at most, which changes a truncated int32 value
# only where it lies that close to an integer).

_MAX_REMAP = 32767  # cv2.remap works in int16 pixel coordinates


@lru_cache(maxsize=8)
def _row_map(rows: int, cols: int) -> np.ndarray:
    """float32 (rows, cols) holding each row's index: a remap that keeps rows and picks columns."""
    out = np.empty((rows, cols), np.float32)
    out[...] = np.arange(rows, dtype=np.float32)[:, None]
    out.flags.writeable = False
    return out


def _inside(coords: np.ndarray, n: int) -> slice:
    """The block of (monotonic) ``coords`` inside [0, n - 1]: they cross each border at most once."""
    lo, hi = min(coords[0], coords[-1]), max(coords[0], coords[-1])
    if lo >= 0 and hi <= n - 1:  # the usual case: all inside
        return slice(0, len(coords))
    inside = np.flatnonzero((coords >= 0) & (coords <= n - 1))
    return slice(int(inside[0]), int(inside[-1]) + 1) if inside.size else slice(0, 0)


@dataclass(frozen=True)
class SampleGrid:
    """Where a TensorFlow-style bilinear resample reads: the output block ``rows`` x ``cols`` (slices)
    of an output of ``size`` = (height, width) samples the source between its integer pixels; the rest
    of the output is the extrapolation value. Reusable while the source size and the box hold (e.g.
    every frame of a video for a fixed resize). Make one with :func:`crop_and_resize_grid` or
    :func:`resize_bilinear_grid`."""

    size: tuple[int, int]
    rows: slice
    cols: slice
    y01: np.ndarray  # (2, h) source rows above and below each output row
    x01: np.ndarray  # (2, w) source columns left and right of each output column
    wx: np.ndarray  # (w,) float32 weights of the right neighbours
    wy: np.ndarray  # (h, 1) float32 weights of the bottom neighbours
    map_x: np.ndarray | None  # (h, 2w) float32: the left, then the right columns, for cv2.remap

    @staticmethod
    def make(ys: np.ndarray, xs: np.ndarray, source_size: tuple[int, int], size: tuple[int, int]) -> "SampleGrid":
        """The grid sampling at ``ys`` (one per output row) and ``xs`` (one per column), in source pixel
        coordinates; samples outside [0, H - 1] x [0, W - 1] are left to the extrapolation value."""
        h, w = source_size
        rows, cols = _inside(ys, h), _inside(xs, w)
        if rows.start == rows.stop or cols.start == cols.stop:  # the box misses the image
            none = np.zeros((2, 0), np.intp)
            return SampleGrid(size, rows, cols, none, none, np.zeros(0, np.float32), np.zeros((0, 1), np.float32), None)
        ys, xs = ys[rows], xs[cols]
        y0, x0 = np.floor(ys), np.floor(xs)
        wy = (ys - y0).astype(np.float32).reshape(-1, 1)
        wx = (xs - x0).astype(np.float32)
        y01 = np.stack([y0, np.ceil(ys)]).astype(np.intp)
        x01 = np.concatenate([x0, np.ceil(xs)]).astype(np.float32)
        map_x = None
        if w <= _MAX_REMAP:  # whole-pixel float maps: cv2.remap's nearest neighbour is exact
            map_x = np.empty((len(ys), 2 * len(xs)), np.float32)
            map_x[...] = x01
        x01 = x01.astype(np.intp).reshape(2, -1)
        return SampleGrid(size, rows, cols, y01, x01, wx, wy, map_x)

    def _gather(self, image: np.ndarray, swap_rb: bool) -> tuple[np.ndarray, np.ndarray]:
        """The left neighbours of every sample, top row then bottom row, (2h, w * C); and the right ones."""
        h, w = self.wy.shape[0], self.wx.shape[0]
        if self.map_x is not None:  # the rows above and below (memory copies), then their columns
            import cv2

            both = np.empty((2 * h, 2 * w, *image.shape[2:]), image.dtype)
            keep_rows = _row_map(h, 2 * w)
            for k in (0, 1):
                rows = np.take(image, self.y01[k], axis=0)
                cv2.remap(rows, self.map_x, keep_rows, INTER_NEAREST, dst=both[k * h : (k + 1) * h])
            if swap_rb:
                cv2.cvtColor(both, COLOR_BGR2RGB, dst=both)
            return both[:, :w].reshape(2 * h, -1), both[:, w:].reshape(2 * h, -1)
        picked = image[self.y01.reshape(-1)][:, self.x01.reshape(-1)]  # (2h, 2w, ...)
        if swap_rb:
            picked = picked[..., ::-1]
        return picked[:, :w].reshape(2 * h, -1), picked[:, w:].reshape(2 * h, -1)

    def sample(
        self, image: np.ndarray, extrapolation: float = 0.0, out: np.ndarray | None = None, *, swap_rb: bool = False
    ) -> np.ndarray:
        """Samples of ``image`` (H, W, C or H, W; uint8 or float32): (height, width, C).

        Written into ``out`` when given ((height, width, C), any numeric dtype: float32 keeps the
        values, int32 truncates them toward zero as TensorFlow's cast does), else a new float32 array.
        ``swap_rb``: reverse the channels of a 3-channel image (BGR in, RGB out).
        """
        channels = image.shape[2] if image.ndim == 3 else 1
        shape = (*self.size, channels)
        if out is None:
            out = np.empty(shape, np.float32)
        elif out.shape != shape:
            raise ValueError(f"sample output must have shape {shape}, got {out.shape}")
        if swap_rb and channels != 3:
            raise ValueError(f"swap_rb needs a 3-channel image, got {channels} channel(s)")
        h, w = self.wy.shape[0], self.wx.shape[0]
        if self.wx.size == 0:
            out.fill(extrapolation)
            return out
        if h < self.size[0] or w < self.size[1]:  # the parts of the box outside the image
            out[: self.rows.start] = extrapolation
            out[self.rows.stop :] = extrapolation
            out[self.rows, : self.cols.start] = extrapolation
            out[self.rows, self.cols.stop :] = extrapolation
        left, right = self._gather(image, swap_rb)
        rows = right.astype(np.float32)  # top and bottom rows: left + (right - left) * wx
        rows -= left
        rows *= self.wx if channels == 1 else np.repeat(self.wx, channels)
        rows += left
        top, bottom = rows[:h], rows[h:]
        bottom -= top  # value = top + (bottom - top) * wy
        bottom *= self.wy
        block = out[self.rows, self.cols]
        if block.flags.c_contiguous:
            np.add(top, bottom, out=block.reshape(h, -1), casting="unsafe")
        else:
            block[...] = (top + bottom).reshape(h, w, channels)
        return out


def _box_axes(box, source_size: tuple[int, int], size: tuple[int, int]) -> tuple[tuple[float, float], ...]:
    """``((first y, step y), (first x, step x))``: where ``tf.image.crop_and_resize`` samples the source
    for one normalized ``box`` = (y0, x0, y1, x1), taken as float32 values as TensorFlow holds it. The
    box's corners map onto the output's corner pixels; a single output row or column samples the box's
    centre."""
    (h, w), (out_h, out_w) = source_size, size
    y0, x0, y1, x1 = (float(v) for v in np.asarray(box, np.float32))

    def axis(a: float, b: float, n_in: int, n_out: int) -> tuple[float, float]:
        if n_out == 1:
            return 0.5 * (a + b) * (n_in - 1), 0.0
        return a * (n_in - 1), (b - a) * (n_in - 1) / (n_out - 1)

    return axis(y0, y1, h, out_h), axis(x0, x1, w, out_w)


def crop_and_resize_grid(box, source_size: tuple[int, int], size: tuple[int, int]) -> SampleGrid:
    """The :class:`SampleGrid` of ``tf.image.crop_and_resize`` (bilinear) for one ``box`` = (y0, x0, y1,
    x1), normalized to the source (it may reach outside it). The box's corners map onto the output's
    corner pixels: ``src_y = y0 * (H - 1) + i * (y1 - y0) * (H - 1) / (height - 1)``; the box is taken as
    float32 values, as TensorFlow holds it."""
    (ay, sy), (ax, sx) = _box_axes(box, source_size, size)
    ys, xs = ay + np.arange(size[0]) * sy, ax + np.arange(size[1]) * sx
    return SampleGrid.make(ys, xs, tuple(source_size), tuple(size))


def crop_and_resize_warp(
    image: np.ndarray, box, size: tuple[int, int], out: np.ndarray | None = None, *, swap_rb: bool = False
) -> np.ndarray:
    """The box and corner mapping of :func:`crop_and_resize_grid`, sampled by OpenCV 4's fixed-point
    ``warpAffine`` instead (bilinear, zeros outside the image; :func:`posezoo.inference.warp.warp_affine`,
    the same whatever OpenCV is installed) of ``image`` (H, W, C uint8), about three times quicker
    than the exact sampler. It differs from TensorFlow's kernel in three ways: positions
    are quantized to 1/32 pixel, values are rounded to uint8 (TensorFlow keeps floats, which a cast to
    int32 then truncates), and a sample less than a pixel outside the image blends with zero instead
    of being zero. A fast path for video, where a model's input need not be TensorFlow's to the last
    level of grey; use the exact grid wherever outputs are compared with TensorFlow's. (Images over
    32767 pixels a side, past OpenCV's coordinates, are sampled exactly.)

    Written into ``out`` when given ((height, width, C), any numeric dtype), else a new uint8 array;
    ``swap_rb``: BGR in, RGB out.
    """
    (h, w), (out_h, out_w) = image.shape[:2], size
    if max(h, w) > _MAX_REMAP:  # past OpenCV's int16 coordinates: the exact sampler, truncated
        exact = crop_and_resize_grid(box, (h, w), size).sample(image, out=out, swap_rb=swap_rb)
        return exact if out is not None else exact.astype(image.dtype)
    (ay, sy), (ax, sx) = _box_axes(box, (h, w), size)
    to_source = np.array([[sx, 0.0, ax], [0.0, sy, ay]])
    warped = warp_affine(image, to_source, (out_h, out_w), border=BORDER_CONSTANT)
    if warped.ndim == 2:
        warped = warped[:, :, None]
    if swap_rb:
        if warped.shape[2] != 3:
            raise ValueError(f"swap_rb needs a 3-channel image, got {warped.shape[2]} channel(s)")
        import cv2

        cv2.cvtColor(warped, COLOR_BGR2RGB, dst=warped)
    if out is None:
        return warped
    if out.shape != warped.shape:
        raise ValueError(f"crop output must have shape {warped.shape}, got {out.shape}")
    np.copyto(out, warped, casting="unsafe")
    return out


def resize_bilinear_grid(source_size: tuple[int, int], size: tuple[int, int]) -> SampleGrid:
    """The :class:`SampleGrid` of ``tf.image.resize_bilinear`` with align_corners and half_pixel_centers
    off: output pixel ``i`` samples the source at ``i * H / height`` (its last row and column clamped), so
    the top-left pixels coincide and the scale is the ratio of the sizes."""
    (h, w), (out_h, out_w) = source_size, size
    ys = np.minimum(np.arange(out_h) * (h / out_h), h - 1)
    xs = np.minimum(np.arange(out_w) * (w / out_w), w - 1)
    return SampleGrid.make(ys, xs, (h, w), (out_h, out_w))


def crop_and_resize(image: np.ndarray, box, size: tuple[int, int], *, extrapolation: float = 0.0) -> np.ndarray:
    """``tf.image.crop_and_resize`` of ``image`` (H, W, C) for one normalized ``box`` = (y0, x0, y1, x1)
    to ``size`` = (height, width), bilinear: float32 (height, width, C). See :func:`crop_and_resize_grid`."""
    return crop_and_resize_grid(box, image.shape[:2], size).sample(image, extrapolation)


def resize_bilinear(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``tf.image.resize_bilinear`` of ``image`` (H, W, C) to ``size`` = (height, width): float32. See
    :func:`resize_bilinear_grid`."""
    return resize_bilinear_grid(image.shape[:2], size).sample(image)
