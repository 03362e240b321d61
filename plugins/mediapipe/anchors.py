"""SSD anchors for keypoint detectors (BlazePose, BlazePalm).

Mirrors MediaPipe's ``SsdAnchorsCalculator`` (calculators/tflite/ssd_anchors_calculator.cc): layers
that share a stride share one feature map; each layer adds one anchor per aspect ratio plus, when
``interpolated_scale_aspect_ratio`` > 0, one anchor at the geometric mean of its scale and the next
layer's (1.0 after the last). Cells are visited row by row, every cell emitting all anchors of its
group in order. :class:`AnchorOptions` lives here (the spec module re-exports it), so the spec
imports the anchors and not the other way round.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AnchorOptions:
    """SSD anchor options, as MediaPipe's SsdAnchorsCalculator takes them."""

    input_size: tuple[int, int]  # (height, width) of the detector input
    num_layers: int
    strides: tuple[int, ...]
    min_scale: float
    max_scale: float
    aspect_ratios: tuple[float, ...] = (1.0,)
    fixed_anchor_size: bool = True
    offset_x: float = 0.5
    offset_y: float = 0.5
    interpolated_scale_aspect_ratio: float = 1.0
    reduce_boxes_in_lowest_layer: bool = False


def _layer_scale(opts: AnchorOptions, index: int) -> float:
    n = len(opts.strides)
    if n == 1:
        return (opts.min_scale + opts.max_scale) * 0.5
    return opts.min_scale + (opts.max_scale - opts.min_scale) * index / (n - 1)


def generate_anchors(opts: AnchorOptions) -> np.ndarray:
    """Anchors as a float32 array (N, 4) of [x_center, y_center, width, height], normalized.

    With ``fixed_anchor_size`` (BlazePose, BlazePalm) every width and height is 1.0.
    """
    if opts.num_layers != len(opts.strides):
        raise ValueError(f"anchor options: num_layers {opts.num_layers} but {len(opts.strides)} strides")
    in_h, in_w = opts.input_size
    blocks: list[np.ndarray] = []
    layer = 0
    n = len(opts.strides)
    while layer < n:
        # Collect the (scale, aspect ratio) pairs of every layer that shares this stride.
        scales: list[float] = []
        ratios: list[float] = []
        last = layer
        while last < n and opts.strides[last] == opts.strides[layer]:
            scale = _layer_scale(opts, last)
            if last == 0 and opts.reduce_boxes_in_lowest_layer:
                scales += [0.1, scale, scale]
                ratios += [1.0, 2.0, 0.5]
            else:
                for ratio in opts.aspect_ratios:
                    scales.append(scale)
                    ratios.append(ratio)
                if opts.interpolated_scale_aspect_ratio > 0.0:
                    nxt = 1.0 if last == n - 1 else _layer_scale(opts, last + 1)
                    scales.append(math.sqrt(scale * nxt))
                    ratios.append(opts.interpolated_scale_aspect_ratio)
            last += 1

        stride = opts.strides[layer]
        fm_h = math.ceil(in_h / stride)
        fm_w = math.ceil(in_w / stride)
        per_cell = len(scales)
        ys, xs = np.meshgrid(
            (np.arange(fm_h) + opts.offset_y) / fm_h, (np.arange(fm_w) + opts.offset_x) / fm_w, indexing="ij"
        )
        block = np.empty((fm_h, fm_w, per_cell, 4), np.float32)
        block[..., 0] = xs[..., None]
        block[..., 1] = ys[..., None]
        if opts.fixed_anchor_size:
            block[..., 2:] = 1.0
        else:
            root = np.sqrt(np.asarray(ratios, np.float64))
            block[..., 2] = np.asarray(scales) * root
            block[..., 3] = np.asarray(scales) / root
        blocks.append(block.reshape(-1, 4))
        layer = last
    return np.concatenate(blocks, axis=0)
