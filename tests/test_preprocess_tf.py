"""TensorFlow-style resampling (posezoo.inference.preprocess): crop_and_resize and resize_bilinear against a plain,
per-pixel port of TensorFlow's CPU kernels (float64, as the kernels compute), on real photos and on
synthetic images with boxes inside, across and outside the image."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from posezoo.inference.preprocess import (
    crop_and_resize,
    crop_and_resize_grid,
    crop_and_resize_warp,
    resize_bilinear,
    resize_bilinear_grid,
)


def plain_lerp(image, top, bottom, left, right, x_lerp, y_lerp):
    """Both TensorFlow kernels' interpolation of one pixel, in float64: x first, then y."""
    tl, tr = image[top, left].astype(np.float64), image[top, right].astype(np.float64)
    bl, br = image[bottom, left].astype(np.float64), image[bottom, right].astype(np.float64)
    t = tl + (tr - tl) * x_lerp
    b = bl + (br - bl) * x_lerp
    return t + (b - t) * y_lerp


def plain_crop_and_resize(image, box, size, extrapolation=0.0):
    """tensorflow/core/kernels/image/crop_and_resize_op.cc (bilinear), written out pixel by pixel."""
    h, w = image.shape[:2]
    out_h, out_w = size
    y1, x1, y2, x2 = (float(v) for v in np.asarray(box, np.float32))
    hs = (y2 - y1) * (h - 1) / (out_h - 1) if out_h > 1 else 0.0
    ws = (x2 - x1) * (w - 1) / (out_w - 1) if out_w > 1 else 0.0
    out = np.full((out_h, out_w, image.shape[2]), extrapolation, np.float64)
    for y in range(out_h):
        in_y = y1 * (h - 1) + y * hs if out_h > 1 else 0.5 * (y1 + y2) * (h - 1)
        if in_y < 0 or in_y > h - 1:
            continue
        top, bottom = math.floor(in_y), math.ceil(in_y)
        y_lerp = in_y - top
        for x in range(out_w):
            in_x = x1 * (w - 1) + x * ws if out_w > 1 else 0.5 * (x1 + x2) * (w - 1)
            if in_x < 0 or in_x > w - 1:
                continue
            left, right = math.floor(in_x), math.ceil(in_x)
            out[y, x] = plain_lerp(image, top, bottom, left, right, in_x - left, y_lerp)
    return out.astype(np.float32)


def plain_resize_bilinear(image, size):
    """tf.image.resize_bilinear (align_corners=False, half_pixel_centers=False), pixel by pixel."""
    h, w = image.shape[:2]
    out_h, out_w = size
    out = np.zeros((out_h, out_w, image.shape[2]), np.float64)
    for r in range(out_h):
        fy = h / out_h * r
        y0 = max(0, math.floor(fy))
        y1 = min(h - 1, math.ceil(fy))
        dy = fy - y0
        for c in range(out_w):
            fx = w / out_w * c
            x0 = max(0, math.floor(fx))
            x1 = min(w - 1, math.ceil(fx))
            out[r, c] = plain_lerp(image, y0, y1, x0, x1, fx - x0, dy)
    return out.astype(np.float32)


def assert_same_as_tensorflow(got, want):
    """float32 agreement up to the float32 rounding of the value, and the same int32 values after
    TensorFlow's cast (truncation) except where a value sits within that rounding of an integer."""
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)  # a few float32 steps at 255
    truncated_differ = got.astype(np.int32) != want.astype(np.int32)
    near_integer = np.abs(want - np.round(want)) < 1e-4
    assert not (truncated_differ & ~near_integer).any()


@pytest.fixture(scope="module")
def photo(coco_photo):
    return cv2.resize(coco_photo, (160, 106))  # small: the plain port is slow


BOXES = [
    (0.0, 0.0, 1.0, 1.0),  # the whole image
    (0.1, 0.2, 0.8, 0.7),  # inside
    (-0.25, 0.17, 1.25, 0.83),  # a padded square around a landscape image (MoveNet's fallback crop)
    (0.3, -0.4, 0.9, 0.5),  # across the left border
    (1.2, 1.3, 1.5, 1.9),  # outside: all extrapolation
    (0.9, 0.8, 0.2, 0.1),  # flipped
]


@pytest.mark.parametrize("box", BOXES)
def test_crop_and_resize_is_tensorflows_on_a_photo(photo, box):
    want = plain_crop_and_resize(photo, box, (24, 31))
    got = crop_and_resize(photo, box, (24, 31))
    assert got.shape == (24, 31, 3) and got.dtype == np.float32
    assert_same_as_tensorflow(got, want)


def test_crop_and_resize_extrapolation_value_size_one_and_one_channel():
    rng = np.random.default_rng(3)
    gray = rng.integers(0, 256, (40, 50, 1), dtype=np.uint8)
    box = (-0.5, -0.5, 0.6, 0.4)
    assert_same_as_tensorflow(crop_and_resize(gray, box, (9, 7), extrapolation=17.0), plain_crop_and_resize(gray, box, (9, 7), 17.0))
    assert (crop_and_resize(gray, box, (9, 7), extrapolation=17.0)[0] == 17.0).all()  # the first row lies above the image
    for size in [(1, 1), (1, 5), (5, 1)]:
        assert_same_as_tensorflow(crop_and_resize(gray, (0.1, 0.2, 0.7, 0.9), size), plain_crop_and_resize(gray, (0.1, 0.2, 0.7, 0.9), size))


def test_crop_and_resize_takes_the_box_as_float32():
    """A box coordinate between two float32 values samples where float32 puts it (TensorFlow holds
    boxes as float32)."""
    image = np.tile(np.arange(101, dtype=np.uint8)[None, :, None], (3, 1, 1))  # value = x
    x = 0.3 + 1e-9  # float64 -> float32 rounds it to 0.30000001192...
    got = crop_and_resize(image, (0.0, x, 1.0, x), (1, 1))
    assert got[0, 0, 0] == np.float32(float(np.float32(x)) * 100)


def test_corner_pixels_map_to_corner_pixels():
    """crop_and_resize of the whole image to its own size is the identity; resize_bilinear to the same
    size too; a 2x upsample by resize_bilinear keeps the top-left pixel and halves steps."""
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (13, 17, 3), dtype=np.uint8)
    np.testing.assert_array_equal(crop_and_resize(image, (0, 0, 1, 1), (13, 17)), image.astype(np.float32))
    np.testing.assert_array_equal(resize_bilinear(image, (13, 17)), image.astype(np.float32))
    up = resize_bilinear(image, (26, 34))
    np.testing.assert_array_equal(up[::2, ::2], image.astype(np.float32))
    np.testing.assert_allclose(up[0, 1], (image[0, 0].astype(np.float32) + image[0, 1]) / 2)


@pytest.mark.parametrize("size", [(37, 59), (72, 96), (106, 160), (150, 211)])
def test_resize_bilinear_is_tensorflows_down_and_up(photo, size):
    want = plain_resize_bilinear(photo, size)
    got = resize_bilinear(photo, size)
    assert got.shape == (*size, 3)
    assert_same_as_tensorflow(got, want)


def test_a_grid_is_reusable_and_writes_into_a_given_buffer(photo):
    grid = resize_bilinear_grid(photo.shape[:2], (48, 64))
    out = np.full((48, 64, 3), -1.0, np.float32)
    first = grid.sample(photo, out=out)
    assert first is out
    assert_same_as_tensorflow(out, plain_resize_bilinear(photo, (48, 64)))
    other = photo[::-1].copy()
    grid.sample(other, out=out)
    assert_same_as_tensorflow(out, plain_resize_bilinear(other, (48, 64)))
    crop_grid = crop_and_resize_grid((-0.2, 0.1, 0.9, 0.8), photo.shape[:2], (20, 20))
    buf = np.zeros((20, 20, 3), np.float32)
    crop_grid.sample(photo, extrapolation=0.0, out=buf)
    crop_grid.sample(photo[::-1].copy(), extrapolation=0.0, out=buf)  # the extrapolated rows are refilled
    assert_same_as_tensorflow(buf, plain_crop_and_resize(photo[::-1].copy(), (-0.2, 0.1, 0.9, 0.8), (20, 20)))


def test_images_wider_than_opencv_maps_reach_take_the_numpy_path():
    rng = np.random.default_rng(11)
    strip = rng.integers(0, 256, (3, 40000, 3), dtype=np.uint8)  # cv2.remap maps stop at 32767
    box = (0.1, 0.8, 0.9, 0.99)
    grid = crop_and_resize_grid(box, strip.shape[:2], (3, 9))
    assert grid.map_x is None  # numpy indexing, not cv2.remap
    assert_same_as_tensorflow(grid.sample(strip), plain_crop_and_resize(strip, box, (3, 9)))
    rgb = grid.sample(strip, swap_rb=True)
    assert_same_as_tensorflow(rgb, plain_crop_and_resize(strip[:, :, ::-1], box, (3, 9)))


def test_sample_into_int32_truncates_like_tensorflows_cast_and_swaps_channels(photo):
    grid = crop_and_resize_grid((-0.1, 0.05, 0.95, 0.9), photo.shape[:2], (30, 40))
    want = plain_crop_and_resize(photo[:, :, ::-1], (-0.1, 0.05, 0.95, 0.9), (30, 40))
    out = np.full((30, 40, 3), -7, np.int32)
    grid.sample(photo, out=out, swap_rb=True)
    differ = out != want.astype(np.int32)  # TF: float32 -> int32 truncates toward zero
    assert not (differ & (np.abs(want - np.round(want)) >= 1e-4)).any()
    assert (out[:3] == 0).all()  # above the image: the extrapolation value
    with pytest.raises(ValueError, match="shape"):
        grid.sample(photo, out=np.zeros((30, 41, 3), np.float32))
    with pytest.raises(ValueError, match="3-channel"):
        grid.sample(photo[:, :, :1], swap_rb=True)


@pytest.mark.parametrize("box", [(0.1, 0.2, 0.8, 0.7), (-0.25, 0.17, 1.25, 0.83), (0.9, 0.8, 0.2, 0.1)])
def test_the_opencv_warp_crop_is_close_to_tensorflows(photo, box):
    """crop_and_resize_warp: the same box and corners as TensorFlow's kernel, sampled by OpenCV 4's
    fixed-point warp (positions rounded to 1/32 px, values to uint8): a third of a level of grey off on
    average, a few levels at the steepest edges (1/64 px times a gradient of up to 255 a pixel).
    (OpenCV 5's own warpAffine, float positions, was within half a level: no longer what is used.)"""
    want = plain_crop_and_resize(photo, box, (48, 40))
    got = crop_and_resize_warp(photo, box, (48, 40))
    assert got.dtype == np.uint8 and got.shape == (48, 40, 3)
    diff = np.abs(got.astype(np.float32) - want)
    assert diff.mean() < 0.35
    assert diff.max() <= 5.0


def test_the_opencv_warp_crop_into_int32_swaps_channels_and_checks_shapes(photo):
    box = (0.1, 0.2, 0.8, 0.7)
    out = np.full((48, 40, 3), -7, np.int32)
    crop_and_resize_warp(photo, box, (48, 40), out=out, swap_rb=True)
    np.testing.assert_array_equal(out, crop_and_resize_warp(photo, box, (48, 40))[:, :, ::-1])
    assert (crop_and_resize_warp(photo, (1.2, 1.3, 1.5, 1.9), (5, 5)) == 0).all()  # off the image: zeros
    single = crop_and_resize_warp(photo, box, (1, 1))  # one sample: the box's centre, as TensorFlow
    assert np.abs(single.astype(np.float32) - plain_crop_and_resize(photo, box, (1, 1))).max() <= 2
    with pytest.raises(ValueError, match="shape"):
        crop_and_resize_warp(photo, box, (48, 40), out=np.zeros((48, 41, 3), np.int32))
    with pytest.raises(ValueError, match="3-channel"):
        crop_and_resize_warp(photo[:, :, 0], box, (4, 4), swap_rb=True)
    strip = np.random.default_rng(3).integers(0, 256, (3, 40000, 3), dtype=np.uint8)  # past OpenCV's maps
    wide = crop_and_resize_warp(strip, (0.1, 0.8, 0.9, 0.99), (3, 9))
    np.testing.assert_array_equal(wide, plain_crop_and_resize(strip, (0.1, 0.8, 0.9, 0.99), (3, 9)).astype(np.uint8))
