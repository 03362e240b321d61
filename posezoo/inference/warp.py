"""OpenCV 4's bilinear affine warp, bit for bit, whatever OpenCV is installed.

``cv2.warpAffine(src, M, size, flags=INTER_LINEAR | WARP_INVERSE_MAP)`` on 8-bit images samples in
fixed point in OpenCV 4 (and 3), as MediaPipe's CPU graph crops (its ImageToTensor converter: OpenCV
3.4's ``warpPerspective``, the same weights and rounding of values, positions rounded in one step; see
docs/models.md); OpenCV 5 brought other kernels, which differ by a few levels of grey on a few percent
of the pixels, so crops, and landmarks, moved with the installed release. This module is OpenCV 4's
algorithm (modules/imgproc/src/imgwarp.cpp: ``warpAffine``'s WarpAffineInvoker and ``remap``'s
remapBilinear) written down as posezoo's own:

1. **Coordinates.** For output pixel (x, y) and the matrix M taking output pixels to source pixels,
   ``X = (round(M[0,0] * x * 2^10) + round((M[0,1] * y + M[0,2]) * 2^10) + 16) >> 5`` (rounding half to even,
   as cvRound; 32-bit integer sums; ``>>`` floors), the same for Y with the second row. X and Y are
   source positions in 1/32 pixel: the integer part ``X >> 5`` (saturated to int16) picks the
   top-left neighbour, the fraction ``X & 31`` the weights. So positions are first quantised to
   1/1024 pixel per term, then to 1/32 pixel, rounding to nearest.
2. **Weights.** Fractions fx, fy (0..31) give the four weights ``(32 - fx)(32 - fy)``,
   ``fx (32 - fy)``, ``(32 - fx) fy``, ``fx fy``, times 32: OpenCV's 15-bit table (initInterTab2D),
   whose entries are exact in this case and sum to 2^15 (entry 0 is (32767, 0, 0, 1): see
   :func:`_tables`).
3. **Value.** ``(sum of neighbour x weight + 2^14) >> 15``: round half up, never out of 0..255.
4. **Borders.** Neighbours outside the image are the nearest edge pixel (BORDER_REPLICATE) or zero
   (BORDER_CONSTANT, value 0); a sample whose four neighbours are all outside is zero.

:func:`warp_maps` does step 1 in numpy (vectorised over the output) and returns OpenCV's fixed-point
map pair (int16 integer positions, uint16 fraction indices); :func:`remap` does steps 2-4. It hands
the maps to ``cv2.remap``, whose fixed-point path (int16 maps + table indices, remapBilinear) kept
OpenCV 4's code in 5.x (only ``warpAffine`` itself and float-map ``remap`` got new kernels), and
tests/test_warp.py holds both steps to a plain per-pixel port of OpenCV 4 on the installed OpenCV.
Images (or outputs) beyond OpenCV's int16 coordinates, or where ``cv2.remap`` is not wanted
(``engine="numpy"``), are sampled by the same arithmetic in numpy (positions in int32 there, so an
image past 32767 pixels is sampled where the arithmetic puts it rather than where int16 would clip it).

float32 images go through the same maps; OpenCV 4 then weighs in float32 with the table's float
weights (the products of (1 - f) and f for f = fx / 32 and fy / 32), summed in order; the numpy path
does the same.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from threading import Lock

import numpy as np

INTER_BITS = 5  # positions in 1/32 pixel
INTER_TAB_SIZE = 1 << INTER_BITS
AB_BITS = 10  # the affine terms in 1/1024 pixel
REMAP_COEF_BITS = 15  # 8-bit weights: 2^15 in all
_ROUND_DELTA = 1 << (AB_BITS - INTER_BITS - 1)  # 16: 1/64 pixel, rounds 1/1024 to the nearest 1/32
_INT16 = 32767  # cv2.remap's coordinates (and image sides) stay below this
# OpenCV's values of its constants (cv2 itself is imported on first use: `posezoo list` and --help need none of it)
BORDER_CONSTANT, BORDER_REPLICATE = 0, 1  # cv2.BORDER_CONSTANT, cv2.BORDER_REPLICATE
INTER_NEAREST, INTER_LINEAR = 0, 1  # cv2.INTER_NEAREST, cv2.INTER_LINEAR
BORDERS = (BORDER_REPLICATE, BORDER_CONSTANT)


def cv_round(values) -> np.ndarray:
    """cvRound of float64 values to int32, as compiled for x86-64 (SSE2's cvtsd2si): half to even, and
    INT_MIN for what does not fit (NaN included)."""
    r = np.rint(np.asarray(values, np.float64))
    with np.errstate(invalid="ignore"):
        fits = (r >= -(2.0**31)) & (r <= 2.0**31 - 1)
    return np.where(fits, r, -(2.0**31)).astype(np.int32)


def _affine_terms(matrix: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """WarpAffineInvoker's integer terms: per column ``adelta``, ``bdelta``; per row ``X0``, ``Y0``
    (with the rounding delta), all int32 in 1/1024 pixel (rounded in one call: a crop's are four short
    arrays, where numpy's per-call cost is most of the work)."""
    out_h, out_w = size
    m = matrix
    x = np.arange(out_w, dtype=np.float64)
    y = np.arange(out_h, dtype=np.float64)
    terms = cv_round(np.concatenate([m[0, 0] * x, m[1, 0] * x, m[0, 1] * y + m[0, 2], m[1, 1] * y + m[1, 2]]) * (1 << AB_BITS))
    adelta, bdelta = terms[:out_w], terms[out_w : 2 * out_w]
    with np.errstate(over="ignore"):  # int32 wraps as in C
        rows = terms[2 * out_w :] + np.int32(_ROUND_DELTA)
    return adelta, bdelta, rows[:out_h], rows[out_h:]


class _Scratch(threading.local):
    """Per-thread work arrays by output size, so a crop a frame allocates nothing large (fresh
    quarter-megabyte arrays each call can cost page faults, as much as the arithmetic)."""

    def __init__(self) -> None:
        self.arrays: dict[tuple, tuple[np.ndarray, ...]] = {}

    def get(self, size: tuple[int, int], wide: bool) -> tuple[np.ndarray, ...]:
        key = (tuple(size), wide)
        if key not in self.arrays:
            if len(self.arrays) >= 4:  # a pipeline's few input sizes
                self.arrays.pop(next(iter(self.arrays)))
            self.arrays[key] = _new_arrays(size, wide)
        return self.arrays[key]


def _new_arrays(size: tuple[int, int], wide: bool) -> tuple[np.ndarray, ...]:
    """(sx, sy, positions, tmp, fxy): int32 work arrays, the (h, w, 2) positions as int32 (``wide``) or
    as int16 pairs in one int32 per pixel, and the uint16 fractions."""
    h, w = size
    shape = (h, w, 2) if wide else (h, w)
    work = [np.empty((h, w), np.int32) for _ in range(3)]
    return work[0], work[1], np.empty(shape, np.int32), work[2], np.empty((h, w), np.uint16)


_SCRATCH = _Scratch()


def warp_maps(
    matrix, size: tuple[int, int], *, wide: bool = False, _arrays: tuple[np.ndarray, ...] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV 4's fixed-point sampling positions of ``warpAffine(..., WARP_INVERSE_MAP)`` for the 2x3
    ``matrix`` taking output pixels (x, y) to source pixels, into an output of ``size`` = (height,
    width): ``(xy, fxy)`` with ``xy`` int16 (height, width, 2) the top-left neighbours (x, y) and
    ``fxy`` uint16 (height, width) the fractions ``fy * 32 + fx`` in 1/32 pixel: ``cv2.remap``'s
    CV_16SC2 + CV_16UC1 map pair. ``wide``: int32 positions, not saturated to int16 (for images past
    OpenCV's reach; the same positions wherever int16 holds them).

    Positions within :data:`FLOAT_REACH` pixels go the short way (:func:`_float_maps`: two float
    sums and one ``cv2.convertMaps``), the same maps as the integer steps below give them."""
    m = np.asarray(matrix, np.float64).reshape(2, 3)
    out_h, out_w = size
    adelta, bdelta, x0, y0 = _affine_terms(m, size)
    sx, sy, pos, tmp, fxy = _arrays if _arrays is not None else _new_arrays(size, wide)
    if out_h and out_w and not wide:
        lo = min(int(x0.min()) + int(adelta.min()), int(y0.min()) + int(bdelta.min()))
        hi = max(int(x0.max()) + int(adelta.max()), int(y0.max()) + int(bdelta.max()))
        if -FLOAT_REACH << AB_BITS < lo and hi < FLOAT_REACH << AB_BITS:
            return _float_maps((adelta, bdelta, x0, y0), sx.view(np.float32), sy.view(np.float32),
                               pos.view(np.int16).reshape(out_h, out_w, 2), fxy)  # fmt: skip
    # (h, w) int32 sums in 1/1024 pixel (with the rounding delta), wrapping as C's ints
    np.add(x0[:, None], adelta[None, :], out=sx)
    np.add(y0[:, None], bdelta[None, :], out=sy)
    if wide:
        np.right_shift(sx, AB_BITS, out=pos[..., 0])
        np.right_shift(sy, AB_BITS, out=pos[..., 1])
        xy = pos
    elif out_h and out_w:  # the int16 pair (x, y) as one int32: y in the high half on a little-endian machine
        high, low = (sy, sx) if sys.byteorder == "little" else (sx, sy)
        limit = (_INT16 + 1) << AB_BITS  # |sum| below this: no int32 wrap and no int16 saturation
        saturate = not (-limit <= lo and hi < limit)  # far outside: saturated to int16, as OpenCV's maps
        for src, dst in ((high, pos), (low, tmp)):
            np.right_shift(src, AB_BITS, out=dst)
            if saturate:
                np.clip(dst, -_INT16 - 1, _INT16, out=dst)
        np.left_shift(pos, 16, out=pos)
        np.bitwise_and(tmp, 0xFFFF, out=tmp)
        pos |= tmp
        xy = pos.view(np.int16).reshape(out_h, out_w, 2)
    else:
        xy = np.empty((out_h, out_w, 2), np.int16)
    np.bitwise_and(sy, (INTER_TAB_SIZE - 1) << INTER_BITS, out=sy)  # fy * 32
    np.right_shift(sx, AB_BITS - INTER_BITS, out=sx)
    np.bitwise_and(sx, INTER_TAB_SIZE - 1, out=sx)  # fx
    sy |= sx
    np.copyto(fxy, sy, casting="unsafe")
    return xy, fxy


# Sampling positions within this many pixels of the image origin may go through float32 maps: a
# float32 there is finer than 2^-13 pixel, a quarter of the margin _float_maps leaves (2^-11).
FLOAT_REACH = 2048


def _float_maps(terms, mx: np.ndarray, my: np.ndarray, xy: np.ndarray, fxy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Step 1 of the module's docstring through ``cv2.convertMaps``: three calls instead of a dozen numpy
    passes (alone about as fast; beside another thread's work, a tracked Holistic frame 0.3-0.5 ms less).

    convertMaps takes float positions p to ``cvRound(32 p)`` (half to even), integer part and
    fraction as :func:`warp_maps` splits them. The fixed-point position is ``floor(T / 32)`` for the
    integer sum ``T`` (in 1/1024 pixel, with the rounding delta); the float map holds
    ``T / 1024 - (1/2 - 1/64) / 32``, so ``32 p`` lies 1/64 above ``floor(T / 32) - 1/2`` at the least and
    1/64 below ``floor(T / 32) + 1/2`` at the most: it rounds to ``floor(T / 32)``, never near a tie,
    while float32's error there (two roundings, within :data:`FLOAT_REACH`) stays under 2^-13 pixel.
    ``mx``, ``my``: float32 (h, w) work arrays; ``xy``, ``fxy``: the outputs (written in place)."""
    import cv2

    adelta, bdelta, x0, y0 = terms
    scale, offset = 1.0 / (1 << AB_BITS), (0.5 - 1.0 / 64.0) / INTER_TAB_SIZE
    np.add((x0 * scale - offset).astype(np.float32)[:, None], (adelta * scale).astype(np.float32)[None, :], out=mx)
    np.add((y0 * scale - offset).astype(np.float32)[:, None], (bdelta * scale).astype(np.float32)[None, :], out=my)
    got_xy, got_fxy = cv2.convertMaps(mx, my, cv2.CV_16SC2, dstmap1=xy, dstmap2=fxy, nninterpolation=False)
    if got_xy is not xy:  # an OpenCV that did not write in place
        np.copyto(xy, got_xy)
        np.copyto(fxy, got_fxy)
    return xy, fxy


class _MapCache:
    """Maps by (matrix, size): a matrix seen a second time (a letterbox, a fixed crop: the same every
    frame) has its maps kept, the last few of them; others (a tracked crop moves every frame) are
    computed into the thread's scratch arrays, which the next call overwrites."""

    def __init__(self, capacity: int = 4) -> None:
        self._maps: OrderedDict[tuple, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._seen: OrderedDict[tuple, None] = OrderedDict()
        self._capacity, self._lock = capacity, Lock()

    def get(self, matrix: np.ndarray, size: tuple[int, int], wide: bool) -> tuple[np.ndarray, np.ndarray]:
        key = (matrix.tobytes(), tuple(size), wide)
        with self._lock:
            hit = self._maps.get(key)
            if hit is not None:
                self._maps.move_to_end(key)
                return hit
            again = key in self._seen
            if again:
                del self._seen[key]
            else:
                self._seen[key] = None
                while len(self._seen) > 4 * self._capacity:
                    self._seen.popitem(last=False)
        if not again:
            return warp_maps(matrix, size, wide=wide, _arrays=_SCRATCH.get(size, wide))
        maps = warp_maps(matrix, size, wide=wide)
        for a in maps:
            a.flags.writeable = False
        with self._lock:
            self._maps[key] = maps
            while len(self._maps) > self._capacity:
                self._maps.popitem(last=False)
        return maps


_CACHE = _MapCache(4)


def _tables() -> tuple[np.ndarray, np.ndarray]:
    """OpenCV's bilinear tables (initInterTab2D), (1024, 4) by entry ``fy * 32 + fx``: the 15-bit one,
    ``(32 - fx)(32 - fy)``, ``fx (32 - fy)``, ``(32 - fx) fy``, ``fx fy``, times 32 (exact), and the
    float32 one, products of 1 - f and f for f in 1/32. Entry 0 of the 15-bit table is OpenCV's
    (32767, 0, 0, 1): 2^15 saturates to 32767 in int16, and the fix-up that restores the sum lands on
    the bottom-right weight (harmless: the value is still the top-left pixel's)."""
    f = np.arange(INTER_TAB_SIZE * INTER_TAB_SIZE)
    fx, fy = f & (INTER_TAB_SIZE - 1), f >> INTER_BITS
    gx, gy = INTER_TAB_SIZE - fx, INTER_TAB_SIZE - fy
    scale = 1 << (REMAP_COEF_BITS - 2 * INTER_BITS)
    fixed = np.stack([gy * gx, gy * fx, fy * gx, fy * fx], axis=1).astype(np.int32) * scale
    fixed[0] = (32767, 0, 0, 1)
    ax, ay = fx.astype(np.float32) / np.float32(INTER_TAB_SIZE), fy.astype(np.float32) / np.float32(INTER_TAB_SIZE)
    bx, by = np.float32(1) - ax, np.float32(1) - ay
    floats = np.stack([by * bx, by * ax, ay * bx, ay * ax], axis=1)
    for t in (fixed, floats):
        t.flags.writeable = False
    return fixed, floats


FIXED_TABLE, FLOAT_TABLE = _tables()


def bilinear_weights(fxy: np.ndarray, dtype=np.int32) -> tuple[np.ndarray, ...]:
    """The four weights (top-left, top-right, bottom-left, bottom-right) of table entries ``fxy``: from
    OpenCV's 15-bit table (int32), or with ``dtype=np.float32`` from its float table."""
    table = FLOAT_TABLE if np.dtype(dtype) == np.float32 else FIXED_TABLE
    picked = table[np.asarray(fxy, np.intp) & (INTER_TAB_SIZE * INTER_TAB_SIZE - 1)]
    return tuple(picked[..., k] for k in range(4))


def _remap_numpy(image: np.ndarray, xy: np.ndarray, fxy: np.ndarray, border: int, out: np.ndarray) -> np.ndarray:
    """remapBilinear (steps 2-4 of the module's docstring) in numpy: uint8 in integers, float32 in
    float32 (the four products summed in OpenCV's order)."""
    h, w = image.shape[:2]
    src = image.reshape(h * w, -1)
    sx, sy = xy[..., 0].reshape(-1).astype(np.intp), xy[..., 1].reshape(-1).astype(np.intp)
    c0, c1 = np.clip(sx, 0, w - 1), np.clip(sx + 1, 0, w - 1)  # replicate; zeros are weighed out below
    r0, r1 = np.clip(sy, 0, h - 1) * w, np.clip(sy + 1, 0, h - 1) * w
    floats = src.dtype == np.float32
    weights = (FLOAT_TABLE if floats else FIXED_TABLE)[fxy.reshape(-1)]  # (n, 4)
    if border == BORDER_CONSTANT:
        x0_in, x1_in = (sx >= 0) & (sx < w), (sx >= -1) & (sx < w - 1)
        y0_in, y1_in = (sy >= 0) & (sy < h), (sy >= -1) & (sy < h - 1)
        weights = weights * np.stack([y0_in & x0_in, y0_in & x1_in, y1_in & x0_in, y1_in & x1_in], axis=1)
    total = None
    for k, index in enumerate((r0 + c0, r0 + c1, r1 + c0, r1 + c1)):
        term = src.take(index, axis=0) * weights[:, k : k + 1]  # int32 or float32
        total = term if total is None else np.add(total, term, out=total)
    if not floats:
        total += 1 << (REMAP_COEF_BITS - 1)
        total >>= REMAP_COEF_BITS
    np.copyto(out.reshape(total.shape), total, casting="unsafe")
    return out


def remap(
    image: np.ndarray,
    xy: np.ndarray,
    fxy: np.ndarray,
    *,
    border: int = BORDER_REPLICATE,
    out: np.ndarray | None = None,
    engine: str = "auto",
) -> np.ndarray:
    """Sample ``image`` (H, W[, C], uint8 or float32) at OpenCV's fixed-point positions ``xy``, ``fxy``
    (from :func:`warp_maps`) as OpenCV 4's remapBilinear does. ``border``: BORDER_REPLICATE or
    BORDER_CONSTANT (zeros). ``out`` is reused when it fits. ``engine``: "opencv" (``cv2.remap`` on the
    fixed-point maps), "numpy", or "auto" (OpenCV where its int16 coordinates reach; int32 ``xy`` always
    takes numpy)."""
    if border not in BORDERS:
        raise ValueError(f"border must be BORDER_REPLICATE or BORDER_CONSTANT, not {border!r}")
    if image.dtype not in (np.uint8, np.float32):
        raise ValueError(f"warp takes uint8 or float32 images, not {image.dtype}")
    if engine not in ("auto", "opencv", "numpy"):
        raise ValueError(f"engine must be 'auto', 'opencv' or 'numpy', not {engine!r}")
    shape = xy.shape[:2] + image.shape[2:]
    if out is None or out.shape != shape or out.dtype != image.dtype:
        out = np.empty(shape, image.dtype)
    if engine == "auto":
        engine = "opencv" if xy.dtype == np.int16 and _within_opencv(image.shape, shape) else "numpy"
    if out.size == 0:
        return out
    if engine == "numpy":
        return _remap_numpy(image, xy, fxy, border, out)
    import cv2

    res = cv2.remap(image, xy, fxy, INTER_LINEAR, dst=out, borderMode=border, borderValue=0)
    return res.reshape(shape)


def _within_opencv(image_shape, out_shape) -> bool:
    """cv2.remap takes images and outputs under 32767 pixels a side."""
    return max(*image_shape[:2], *out_shape[:2]) < _INT16


def warp_affine(
    image: np.ndarray,
    matrix,
    size: tuple[int, int],
    *,
    border: int = BORDER_REPLICATE,
    out: np.ndarray | None = None,
    cache: bool = True,
    engine: str = "auto",
) -> np.ndarray:
    """OpenCV 4's ``cv2.warpAffine(image, matrix, (width, height), flags=INTER_LINEAR |
    WARP_INVERSE_MAP, borderMode=border, borderValue=0)``, exactly: ``matrix`` (2x3) takes output pixels
    to ``image`` pixels; ``size`` = (height, width). ``cache`` (default): keep the maps of a matrix seen
    before (a letterbox repeats every frame) and compute the others into per-thread scratch arrays;
    False: fresh maps every call. ``engine`` as :func:`remap`'s; images past OpenCV's
    int16 coordinates are sampled by numpy at the same, unsaturated positions. See :func:`warp_maps`
    and :func:`remap`."""
    m = np.asarray(matrix, np.float64).reshape(2, 3)
    if engine == "auto":
        engine = "opencv" if _within_opencv(image.shape, size) else "numpy"
    wide = engine == "numpy"
    xy, fxy = _CACHE.get(m, size, wide) if cache else warp_maps(m, size, wide=wide)
    return remap(image, xy, fxy, border=border, out=out, engine=engine)
