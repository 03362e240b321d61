"""SSD anchors: counts and first/last values for the pose (224, 128) and palm (192) detectors."""

from __future__ import annotations

import numpy as np
import pytest

from posezoo_plugins.mediapipe.anchors import generate_anchors
from posezoo_plugins.mediapipe.spec import AnchorOptions


def _opts(size: int, strides: tuple[int, ...], **kw) -> AnchorOptions:
    return AnchorOptions((size, size), len(strides), strides, 0.1484375, 0.75, **kw)


@pytest.mark.parametrize(
    ("size", "strides", "count", "last"),
    [
        (224, (8, 16, 32, 32, 32), 2254, 6.5 / 7),  # BlazePose HEAD
        (128, (8, 16, 16, 16), 896, 7.5 / 8),  # BlazePose v0.7.12
        (192, (8, 16, 16, 16), 2016, 11.5 / 12),  # BlazePalm
    ],
)
def test_counts_and_ends(size, strides, count, last):
    a = generate_anchors(_opts(size, strides))
    assert a.shape == (count, 4) and a.dtype == np.float32
    first = 0.5 / (size // strides[0])
    # two anchors per cell in the first map (one per aspect ratio + one interpolated), same centre
    np.testing.assert_allclose(a[0], [first, first, 1, 1], rtol=1e-6)
    np.testing.assert_allclose(a[1], a[0])
    np.testing.assert_allclose(a[2], [3 * first, first, 1, 1], rtol=1e-6)  # next cell along x
    np.testing.assert_allclose(a[-1], [last, last, 1, 1], rtol=1e-6)


def test_224_layer_boundaries():
    a = generate_anchors(_opts(224, (8, 16, 32, 32, 32)))
    # 28x28x2, then 14x14x2, then 7x7x6 (three stride-32 layers share one map)
    np.testing.assert_allclose(a[28 * 28 * 2 - 1, :2], [27.5 / 28, 27.5 / 28], rtol=1e-6)
    np.testing.assert_allclose(a[28 * 28 * 2, :2], [0.5 / 14, 0.5 / 14], rtol=1e-6)
    tail = a[28 * 28 * 2 + 14 * 14 * 2 :]
    assert len(tail) == 7 * 7 * 6
    np.testing.assert_allclose(tail[:6, :2], np.full((6, 2), 0.5 / 7), rtol=1e-6)


def test_anchor_sizes_when_not_fixed():
    a = generate_anchors(_opts(128, (8, 16, 16, 16), fixed_anchor_size=False))
    s = [0.1484375 + (0.75 - 0.1484375) * i / 3 for i in range(4)] + [1.0]
    np.testing.assert_allclose(a[0, 2:], [s[0], s[0]], rtol=1e-6)
    np.testing.assert_allclose(a[1, 2:], [np.sqrt(s[0] * s[1])] * 2, rtol=1e-6)
    group = a[16 * 16 * 2 : 16 * 16 * 2 + 6, 2]  # one cell of the shared stride-16 map
    expect = [s[1], np.sqrt(s[1] * s[2]), s[2], np.sqrt(s[2] * s[3]), s[3], np.sqrt(s[3] * s[4])]
    np.testing.assert_allclose(group, expect, rtol=1e-6)


def test_layer_count_must_match_strides():
    with pytest.raises(ValueError, match="num_layers"):
        generate_anchors(AnchorOptions((128, 128), 3, (8, 16, 16, 16), 0.1, 0.75))
