"""posezoo.inference.warp against a plain, per-pixel port of OpenCV 4's ``warpAffine`` (INTER_LINEAR,
WARP_INVERSE_MAP, BORDER_REPLICATE / BORDER_CONSTANT 0) on 8-bit images of 1, 3 and 4 channels (and
float32): boxes inside, across and outside the image, rotated, flipped and scaled; both engines
(``cv2.remap`` on the fixed-point maps, and numpy); and, where the installed OpenCV is a 4.x release,
``cv2.warpAffine`` itself.

The port follows modules/imgproc/src/imgwarp.cpp of OpenCV 4.x line by line, in Python integers:
``warpAffine`` (the adelta/bdelta columns, WarpAffineInvoker's X0/Y0 rows and warpAffineBlockline),
``initInterTab2D`` (the 15-bit bilinear table built from float32 products, with its sum fix-up) and
``remapBilinear`` (inlier and outlier pixels, border handling, FixedPtCast rounding).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from posezoo.inference.preprocess import Roi, crop, crop_to_image_matrix
from posezoo.inference.warp import bilinear_weights, cv_round, remap, warp_affine, warp_maps

OPENCV4 = cv2.__version__.startswith("4.")

# ------------------------------------------------------------------------------------ the plain port

INTER_BITS, INTER_TAB_SIZE, AB_BITS, COEF_BITS = 5, 32, 10, 15
INT_MIN = -(2**31)


def plain_cv_round(v: float) -> int:
    """cvRound (x86-64): nearest, ties to even; INT_MIN when it does not fit in an int."""
    if v != v:
        return INT_MIN
    r = round(v)  # Python rounds half to even
    return r if -(2**31) <= r < 2**31 else INT_MIN


def wrap32(v: int) -> int:
    return (v + 2**31) % 2**32 - 2**31


def saturate_short(v: int) -> int:
    return max(-32768, min(32767, v))


def plain_bilinear_table() -> tuple[np.ndarray, np.ndarray]:
    """initInterTab2D(INTER_LINEAR): 1024 entries (fy * 32 + fx) of 2x2 weights, float32 and 15-bit,
    in one flat, zero-initialised table as OpenCV's static arrays are."""
    f32 = np.float32
    ksize, n = 2, INTER_TAB_SIZE * INTER_TAB_SIZE
    tab1d = []
    scale = f32(1.0) / f32(INTER_TAB_SIZE)
    for i in range(INTER_TAB_SIZE):
        x = f32(i) * scale
        tab1d += [f32(1.0) - x, x]
    ftab, itab = [f32(0)] * (n * 4 + 16), [0] * (n * 4 + 16)
    base = 0
    for i in range(INTER_TAB_SIZE):
        for j in range(INTER_TAB_SIZE):
            isum = 0
            for k1 in range(ksize):
                vy = tab1d[i * ksize + k1]
                for k2 in range(ksize):
                    v = f32(vy * tab1d[j * ksize + k2])
                    ftab[base + k1 * ksize + k2] = v
                    iv = saturate_short(plain_cv_round(float(f32(v * f32(1 << COEF_BITS)))))
                    itab[base + k1 * ksize + k2] = iv
                    isum += iv
            if isum != 1 << COEF_BITS:
                # the fix-up searches rows and columns ksize/2 .. ksize/2 + 1, written for the bigger
                # kernels: for 2x2 it reads past the entry into the next one, still zero. Only entry 0
                # gets here (1.0 * 2^15 saturates to 32767), and its bottom-right weight becomes 1.
                diff = isum - (1 << COEF_BITS)
                k0 = ksize // 2
                big = small = (k0, k0)
                for k1 in range(k0, k0 + 2):
                    for k2 in range(k0, k0 + 2):
                        if itab[base + k1 * ksize + k2] < itab[base + small[0] * ksize + small[1]]:
                            small = (k1, k2)
                        elif itab[base + k1 * ksize + k2] > itab[base + big[0] * ksize + big[1]]:
                            big = (k1, k2)
                if diff < 0:
                    itab[base + big[0] * ksize + big[1]] -= diff
                else:
                    itab[base + small[0] * ksize + small[1]] -= diff
            base += ksize * ksize
    return np.array(ftab[: n * 4], np.float32).reshape(n, 4), np.array(itab[: n * 4], np.int64).reshape(n, 4)


FTAB, ITAB = plain_bilinear_table()
FTAB_ROWS, ITAB_ROWS = FTAB.tolist(), ITAB.tolist()


def plain_warp_affine(image: np.ndarray, m, size: tuple[int, int], border: int) -> np.ndarray:
    """cv2.warpAffine(image, m, (w, h), INTER_LINEAR | WARP_INVERSE_MAP, border, 0) of OpenCV 4.x,
    pixel by pixel."""
    m = [float(v) for v in np.asarray(m, np.float64).reshape(-1)]
    out_h, out_w = size
    src = image.reshape(image.shape[0], image.shape[1], -1)
    h, w, cn = src.shape
    is8u = src.dtype == np.uint8
    out = np.zeros((out_h, out_w, cn), src.dtype)
    ab_scale, round_delta = 1 << AB_BITS, (1 << AB_BITS) // INTER_TAB_SIZE // 2
    adelta = [plain_cv_round(m[0] * x * ab_scale) for x in range(out_w)]
    bdelta = [plain_cv_round(m[3] * x * ab_scale) for x in range(out_w)]
    for y in range(out_h):
        x0 = wrap32(plain_cv_round((m[1] * y + m[2]) * ab_scale) + round_delta)
        y0 = wrap32(plain_cv_round((m[4] * y + m[5]) * ab_scale) + round_delta)
        for x in range(out_w):
            # warpAffineBlockline
            big_x = wrap32(x0 + adelta[x]) >> (AB_BITS - INTER_BITS)
            big_y = wrap32(y0 + bdelta[x]) >> (AB_BITS - INTER_BITS)
            sx, sy = saturate_short(big_x >> INTER_BITS), saturate_short(big_y >> INTER_BITS)
            a = (big_y & (INTER_TAB_SIZE - 1)) * INTER_TAB_SIZE + (big_x & (INTER_TAB_SIZE - 1))
            # remapBilinear
            wt = ITAB_ROWS[a] if is8u else FTAB_ROWS[a]
            if 0 <= sx < w - 1 and 0 <= sy < h - 1:  # an inlier: all four neighbours inside
                v = [src[sy, sx], src[sy, sx + 1], src[sy + 1, sx], src[sy + 1, sx + 1]]
            elif border == cv2.BORDER_CONSTANT and (sx >= w or sx + 1 < 0 or sy >= h or sy + 1 < 0):
                continue  # the border value, 0
            else:
                v = []
                for yy in (sy, sy + 1):
                    for xx in (sx, sx + 1):
                        if border == cv2.BORDER_REPLICATE:
                            v.append(src[min(max(yy, 0), h - 1), min(max(xx, 0), w - 1)])
                        elif 0 <= xx < w and 0 <= yy < h:
                            v.append(src[yy, xx])
                        else:
                            v.append(np.zeros(cn, src.dtype))
            for k in range(cn):
                if is8u:
                    total = sum(int(v[i][k]) * wt[i] for i in range(4))
                    out[y, x, k] = min(255, max(0, (total + (1 << (COEF_BITS - 1))) >> COEF_BITS))
                else:
                    f = np.float32
                    total = f(f(v[0][k]) * f(wt[0]))
                    for i in (1, 2, 3):
                        total = f(total + f(f(v[i][k]) * f(wt[i])))
                    out[y, x, k] = total
    return out.reshape((out_h, out_w) + image.shape[2:])


def opencv_warp(image, m, size, border):
    """The installed OpenCV's own warpAffine (compared only where it is a 4.x release)."""
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    return cv2.warpAffine(image, m, size[::-1], flags=flags, borderMode=border, borderValue=0)


# ------------------------------------------------------------------------------------ cases


def roi_matrix(roi: Roi, size, pixel_centers: bool = False) -> np.ndarray:
    m = crop_to_image_matrix(roi, size)
    if pixel_centers:
        m[:, 2] += m[:, :2] @ (0.5, 0.5) - 0.5
    return m


H, W = 37, 53
ROIS = {
    "inside": Roi(26.0, 18.0, 30.0, 24.0, 0.0),
    "inside rotated": Roi(27.3, 17.9, 21.7, 25.1, math.radians(33.0)),
    "across rotated": Roi(5.5, 30.2, 40.0, 40.0, math.radians(-71.0)),
    "across, larger than the image": Roi(26.0, 18.0, 80.0, 60.0, math.radians(10.0)),
    "outside": Roi(-60.0, -30.0, 20.0, 20.0, math.radians(45.0)),
    "outside but for a corner": Roi(-9.7, -9.2, 20.0, 20.0, 0.0),
    "upside down": Roi(30.0, 15.0, 25.0, 20.0, math.pi),
}
FLIPS = {
    "mirror": np.array([[-0.7, 0.0, 50.2], [0.0, 0.65, 3.1]]),
    "flipped and sheared": np.array([[0.31, -0.9, 30.0], [-0.6, -0.2, 33.3]]),
    "upscale 7x, between pixels": np.array([[1 / 7, 0.0, 20.03], [0.0, 1 / 7, 10.97]]),
    "last row and column": np.array([[0.0, 0.0, W - 1.0], [0.0, 0.0, H - 1.0]]) + [[0.01, 0, 0], [0, 0.01, 0]],
    "ties of the 1/1024 and 1/32 roundings": np.array([[1 / 2048, 0.0, 3 / 64], [0.0, 3 / 2048, 1 / 2048 + 5]]),
    "far outside: int16 saturation": np.array([[3.0, 0.5, -40000.0], [0.0, -2.0, 50000.5]]),
}
OUT = (19, 23)


def images(channels: int, dtype=np.uint8) -> np.ndarray:
    rng = np.random.default_rng(channels)
    if dtype == np.uint8:
        img = rng.integers(0, 256, (H, W, channels), dtype=np.uint8)
        img[:2] = 255  # saturated rows and columns: the rounding at the top of the range
        img[:, -2:] = 0
    else:
        img = rng.uniform(-3, 300, (H, W, channels)).astype(np.float32)
    return img[:, :, 0] if channels == 1 else img


def matrices():
    for name, roi in ROIS.items():
        for centers in (False, True):
            yield f"{name}{' (pixel centres)' if centers else ''}", roi_matrix(roi, OUT, centers)
    yield from FLIPS.items()


CASES = list(matrices())


@pytest.fixture(scope="module")
def expected():
    """The plain port's output for every case, channel count and border (computed once: it is slow)."""
    cache = {}

    def get(name, channels, border, dtype=np.uint8):
        key = (name, channels, border, np.dtype(dtype).name)
        if key not in cache:
            m = dict(CASES)[name]
            cache[key] = plain_warp_affine(images(channels, dtype), m, OUT, border)
        return cache[key]

    return get


BORDER_IDS = {cv2.BORDER_REPLICATE: "replicate", cv2.BORDER_CONSTANT: "zeros"}


@pytest.mark.parametrize("border", list(BORDER_IDS), ids=BORDER_IDS.get)
@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("name", [n for n, _ in CASES])
def test_warp_is_opencv4s_pixel_for_pixel(name, channels, border, expected):
    image, m = images(channels), dict(CASES)[name]
    want = expected(name, channels, border)
    for engine in ("opencv", "numpy"):
        got = warp_affine(image, m, OUT, border=border, engine=engine)
        assert got.dtype == np.uint8 and got.shape == want.shape, engine
        np.testing.assert_array_equal(got, want, err_msg=f"{engine}: {name}")
    if OPENCV4:  # and the installed OpenCV 4 itself
        ref = opencv_warp(image, m, OUT, border)
        np.testing.assert_array_equal(ref.reshape(want.shape), want)


@pytest.mark.parametrize("border", list(BORDER_IDS), ids=BORDER_IDS.get)
@pytest.mark.parametrize("name", ["inside rotated", "across rotated", "mirror", "outside but for a corner"])
def test_float32_images_weigh_in_float32_like_opencv4(name, border, expected):
    image, m = images(3, np.float32), dict(CASES)[name]
    want = expected(name, 3, border, np.float32)
    for engine in ("opencv", "numpy"):
        np.testing.assert_array_equal(warp_affine(image, m, OUT, border=border, engine=engine), want, err_msg=engine)
    if OPENCV4:
        np.testing.assert_array_equal(opencv_warp(image, m, OUT, border), want)


def test_the_table_is_opencvs_and_its_weights_are_exact_products():
    """The fast code's closed form of initInterTab2D: (32 - f) and f products times 32, summing to 2^15,
    but for entry 0; the float table is the products of (1 - f) and f."""
    fxy = np.arange(1024, dtype=np.uint16)
    got = np.stack(bilinear_weights(fxy), axis=1)
    np.testing.assert_array_equal(got, ITAB)
    np.testing.assert_array_equal(np.stack(bilinear_weights(fxy, np.float32), axis=1), FTAB)
    assert (got.sum(axis=1) == 1 << 15).all()
    assert list(ITAB[0]) == [32767, 0, 0, 1]  # OpenCV's quirk at a whole pixel (harmless: the value is S[0])


def test_maps_are_opencvs_positions_and_fractions():
    """warp_maps' integer positions and 1/32 fractions are warpAffine's, including far outside the image
    (int16 saturation) and past the int32 range of the 1/1024 terms (cvRound's INT_MIN)."""
    for m in [
        dict(CASES)["across rotated"],
        np.array([[3.0, 0.0, -40000.0], [0.0, -2.0, 50000.5]]),  # saturates to int16
        np.array([[1e7, 0.0, 0.0], [0.0, 1.0, 3e6]]),  # past int32 in 1/1024 pixel: wraps as C does
    ]:
        xy, fxy = warp_maps(m, (6, 9))
        for y in range(6):
            x0 = wrap32(plain_cv_round((m[0, 1] * y + m[0, 2]) * 1024) + 16)
            y0 = wrap32(plain_cv_round((m[1, 1] * y + m[1, 2]) * 1024) + 16)
            for x in range(9):
                bx = wrap32(x0 + plain_cv_round(m[0, 0] * x * 1024)) >> 5
                by = wrap32(y0 + plain_cv_round(m[1, 0] * x * 1024)) >> 5
                assert tuple(xy[y, x]) == (saturate_short(bx >> 5), saturate_short(by >> 5)), (m, y, x)
                assert fxy[y, x] == (by & 31) * 32 + (bx & 31)
    rounded = cv_round([0.5, 1.5, -0.5, -2.5, 2.0**31, np.nan, -(2.0**31)])
    assert list(rounded) == [0, 2, 0, -2, INT_MIN, INT_MIN, INT_MIN]


def test_float_maps_are_the_integer_steps_maps(monkeypatch):
    """Positions within FLOAT_REACH go through float32 maps and cv2.convertMaps; they are the integer
    steps' maps exactly: random crops (rotated, scaled, sheared, shifted), matrices of exact eighths
    (sums landing on OpenCV's rounding ties) and positions near the reach."""
    from posezoo.inference import warp

    rng = np.random.default_rng(22)
    cases = []
    for i in range(400):
        a, s = rng.uniform(-math.pi, math.pi), rng.uniform(0.05, 8.0)
        m = np.array([[math.cos(a) * s, -math.sin(a) * s * rng.uniform(0.8, 1.2), rng.uniform(-600, 1500)],
                      [math.sin(a) * s, math.cos(a) * s, rng.uniform(-600, 1500)]])  # fmt: skip
        cases.append(np.round(m * 8) / 8 if i % 3 == 0 else m)
    cases += [np.array([[0.5, 0.0, 2047.0 - 0.5 * 255], [0.0, 1.0, -2047.5]]), np.array([[1.0, 0.0, 1000.25], [0.0, 1.0, 1000.75]])]
    sizes = [(256, 256), (224, 224), (192, 192), (128, 128), (7, 13)]
    floats = 0
    for i, m in enumerate(cases):
        size = sizes[i % len(sizes)]
        fast = warp.warp_maps(m, size)
        with monkeypatch.context() as mp:
            mp.setattr(warp, "FLOAT_REACH", 0)  # the integer steps
            slow = warp.warp_maps(m, size)
        np.testing.assert_array_equal(fast[0], slow[0], err_msg=str(m))
        np.testing.assert_array_equal(fast[1], slow[1], err_msg=str(m))
        terms = warp._affine_terms(m, size)
        reach = warp.FLOAT_REACH << warp.AB_BITS
        floats += all(-reach < int(t0.min()) + int(d.min()) and int(t0.max()) + int(d.max()) < reach for d, t0 in ((terms[0], terms[2]), (terms[1], terms[3])))
    assert floats > 300  # most cases took the float path


def test_remap_takes_out_and_checks_its_arguments():
    image = images(3)
    m = dict(CASES)["inside rotated"]
    out = np.full(OUT + (3,), 7, np.uint8)
    got = warp_affine(image, m, OUT, out=out)
    assert got is out or np.shares_memory(got, out)
    np.testing.assert_array_equal(out, warp_affine(image, m, OUT, cache=True))
    np.testing.assert_array_equal(out, warp_affine(image, m, OUT, cache=True))  # from the cache
    xy, fxy = warp_maps(m, OUT)
    with pytest.raises(ValueError, match="border"):
        remap(image, xy, fxy, border=cv2.BORDER_REFLECT)
    with pytest.raises(ValueError, match="uint8 or float32"):
        remap(image.astype(np.uint16), xy, fxy)
    with pytest.raises(ValueError, match="engine"):
        remap(image, xy, fxy, engine="gpu")
    assert warp_affine(image[..., :1], m, OUT).shape == OUT + (1,)
    assert warp_affine(image, m, (0, 5)).shape == (0, 5, 3)


def test_images_past_opencvs_int16_coordinates_take_the_numpy_engine():
    """Past 32767 pixels (where OpenCV's maps saturate and cv2.remap refuses) the same arithmetic in
    int32: the 1/1024 terms shift by whole pixels, so the strip's tail warps as the same tail cut out."""
    rng = np.random.default_rng(1)
    strip = rng.integers(0, 256, (3, 40000, 3), dtype=np.uint8)
    m = np.array([[1.37, 0.0, 33000.3], [0.0, 0.11, 0.4]])
    got = warp_affine(strip, m, (4, 5200), border=cv2.BORDER_CONSTANT)
    tail = m - [[0, 0, 33000.0], [0, 0, 0]]
    np.testing.assert_array_equal(got, plain_warp_affine(strip[:, 33000:], tail, (4, 5200), cv2.BORDER_CONSTANT))
    assert (got[:, -10:] == 0).all() and (got[:, :5000] != 0).any()  # past the right edge: zeros


def test_crop_samples_with_the_warp_whatever_opencv_is_installed(coco_photo):
    """crop() (BlazePose's landmark crop and the detector's letterbox) is warp_affine of its matrix: on a
    real photo, a rotated ROI across the border, both samplings, both borders."""
    photo = coco_photo
    roi = Roi(300.0, 200.0, 420.0, 420.0, math.radians(-25.0))
    for centers in (False, True):
        for border in (cv2.BORDER_REPLICATE, cv2.BORDER_CONSTANT):
            got, _ = crop(photo, roi, (256, 256), border=border, pixel_centers=centers)
            m = roi_matrix(roi, (256, 256), centers)
            np.testing.assert_array_equal(got, warp_affine(photo, m, (256, 256), border=border, engine="numpy"))
            if OPENCV4:
                np.testing.assert_array_equal(got, opencv_warp(photo, m, (256, 256), border))
    small = cv2.resize(photo, (64, 43), interpolation=cv2.INTER_AREA)
    roi = Roi(30.0, 20.0, 50.0, 50.0, 0.4)
    patch, _ = crop(small, roi, (21, 21))
    want = plain_warp_affine(small, roi_matrix(roi, (21, 21)), (21, 21), cv2.BORDER_REPLICATE)
    np.testing.assert_array_equal(patch, want)


def test_movenets_fast_crop_is_the_warp(coco_photo):
    """crop_and_resize_warp (MoveNet's fast video crop) samples with the same warp: TensorFlow's box
    mapping as a scale-and-shift matrix, zeros outside."""
    from posezoo.inference.preprocess import crop_and_resize_warp

    h, w = coco_photo.shape[:2]
    for box in [(0.1, 0.2, 0.8, 0.7), (-0.25, 0.17, 1.25, 0.83), (0.9, 0.8, 0.2, 0.1)]:
        y0, x0, y1, x1 = (float(v) for v in np.asarray(box, np.float32))
        sx, sy = (x1 - x0) * (w - 1) / 191, (y1 - y0) * (h - 1) / 191
        m = np.array([[sx, 0.0, x0 * (w - 1)], [0.0, sy, y0 * (h - 1)]])
        want = warp_affine(coco_photo, m, (192, 192), border=cv2.BORDER_CONSTANT, engine="numpy")
        np.testing.assert_array_equal(crop_and_resize_warp(coco_photo, box, (192, 192)), want)
        if OPENCV4:
            np.testing.assert_array_equal(want, opencv_warp(coco_photo, m, (192, 192), cv2.BORDER_CONSTANT))


def test_repeated_matrices_keep_their_maps_and_others_share_scratch_arrays():
    """warp_affine keeps the maps of a matrix it sees again (a letterbox) and computes the others (a
    tracked crop, new every frame) into per-thread scratch arrays: every result is the fresh maps'."""
    from posezoo.inference import warp

    image = images(3)
    letterbox = dict(CASES)["inside"]
    want = warp_affine(image, letterbox, OUT, cache=False)
    for frame in range(4):
        for name in ("inside rotated", "across rotated", "mirror"):
            m = dict(CASES)[name] + [[0, 0, 0.013 * frame], [0, 0, -0.007 * frame]]  # moves every frame
            np.testing.assert_array_equal(warp_affine(image, m, OUT), warp_affine(image, m, OUT, cache=False))
        np.testing.assert_array_equal(warp_affine(image, letterbox, OUT), want)
        zeros = cv2.BORDER_CONSTANT
        np.testing.assert_array_equal(
            warp_affine(image, letterbox, OUT, border=zeros, engine="numpy"),
            warp_affine(image, letterbox, OUT, border=zeros, cache=False),
        )
    kept = warp._CACHE._maps[(np.asarray(letterbox, np.float64).tobytes(), OUT, False)]  # seen again: kept
    assert not kept[0].flags.writeable and kept[0].dtype == np.int16 and kept[1].dtype == np.uint16


@pytest.mark.parametrize("shape", [(1, 1, 3), (1, 7, 3), (6, 1, 1), (2, 2, 4)])
def test_images_of_one_row_or_column(shape):
    """No pixel of such an image has four neighbours inside it: every sample takes OpenCV's border path."""
    image = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    m = np.array([[0.37, -0.11, -1.3], [0.13, 0.29, -0.8]])
    for border in BORDER_IDS:
        want = plain_warp_affine(image, m, (9, 11), border)
        for engine in ("opencv", "numpy"):
            np.testing.assert_array_equal(warp_affine(image, m, (9, 11), border=border, engine=engine), want)
        if OPENCV4:
            np.testing.assert_array_equal(opencv_warp(image, m, (9, 11), border).reshape(want.shape), want)
