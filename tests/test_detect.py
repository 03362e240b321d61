"""Detector stage: letterbox, raw decode, score clip + sigmoid, weighted NMS, letterbox removal."""

from __future__ import annotations

import numpy as np
import pytest

from posezoo.inference.tracking import box_iou
from posezoo_plugins.mediapipe.detect import DetectorStage, decode_raw, letterbox_roi, remove_letterbox, weighted_nms
from posezoo_plugins.mediapipe.spec import AnchorOptions, DetectorSpec, RoiRule

SPEC = DetectorSpec(
    input_size=(224, 224),
    anchors=AnchorOptions((224, 224), 5, (8, 16, 32, 32, 32), 0.1484375, 0.75),
    roi=RoiRule(),
    input_range=(-1.0, 1.0),
    num_coords=12,
    num_keypoints=4,
    box_scale=(224.0, 224.0),
)


def test_iou_of_one_box_against_many_is_the_cores_box_iou():
    a = np.array([0.0, 0.0, 1.0, 1.0])  # weighted NMS compares one box with the rest through box_iou
    boxes = np.array([[0, 0, 1, 1], [0.5, 0, 1.5, 1], [2, 2, 3, 3], [1, 0, 2, 1]], float)
    np.testing.assert_allclose(box_iou(a, boxes)[0], [1.0, 0.5 / 1.5, 0.0, 0.0])


def test_weighted_nms_merges_by_score_weighted_mean():
    boxes = np.array(
        [
            [0.0, 0.0, 1.0, 1.0],  # best
            [0.5, 0.0, 1.5, 1.0],  # IoU 1/3 > 0.3 with the best: merged
            [0.6, 0.0, 1.6, 1.0],  # IoU 0.25 with the best: survives
            [5.0, 5.0, 6.0, 6.0],  # far away
        ],
        np.float32,
    )
    kps = np.array([[[0, 0]], [[1, 1]], [[2, 2]], [[9, 9]]], np.float32)
    scores = np.array([0.9, 0.6, 0.7, 0.8], np.float32)
    b, k, s = weighted_nms(boxes, kps, scores, 0.3)
    # order of the output: 0.9 (merged with 0.6), 0.8 (alone), 0.7 (alone)
    np.testing.assert_allclose(s, [0.9, 0.8, 0.7])
    w = np.array([0.9, 0.6]) / 1.5
    np.testing.assert_allclose(b[0], w @ boxes[:2], rtol=1e-6)
    np.testing.assert_allclose(k[0], (w @ kps[:2].reshape(2, 2)).reshape(1, 2), rtol=1e-6)
    np.testing.assert_allclose(b[1], boxes[3])
    np.testing.assert_allclose(b[2], boxes[2])


def test_weighted_nms_second_round_merges_the_rest():
    # 0.7 box overlaps the 0.5 box (IoU 1/3) but not the best one: they merge in round two.
    boxes = np.array([[0, 0, 1, 1], [3, 0, 4, 1], [3.5, 0, 4.5, 1]], np.float32)
    kps = np.zeros((3, 2, 2), np.float32)
    b, _, s = weighted_nms(boxes, kps, np.array([0.9, 0.7, 0.5], np.float32), 0.3)
    np.testing.assert_allclose(s, [0.9, 0.7])
    np.testing.assert_allclose(b[1, 0], (3 * 0.7 + 3.5 * 0.5) / 1.2, rtol=1e-6)


def test_weighted_nms_empty():
    b, k, s = weighted_nms(np.zeros((0, 4), np.float32), np.zeros((0, 4, 2), np.float32), np.zeros(0, np.float32), 0.3)
    assert b.shape == (0, 4) and k.shape == (0, 4, 2) and s.shape == (0,)


def test_letterbox_roi_and_removal():
    roi, pad = letterbox_roi(200, 100, 224, 224)  # wide image: padded top and bottom
    assert (roi.cx, roi.cy, roi.w, roi.h, roi.rotation) == (100, 50, 200, 200, 0)
    np.testing.assert_allclose(pad, [0, 0.25, 0, 0.25])
    roi, pad = letterbox_roi(100, 400, 224, 224)  # tall image: padded left and right
    assert (roi.w, roi.h) == (400, 400)
    np.testing.assert_allclose(pad, [0.375, 0, 0.375, 0])

    boxes = np.array([[0.5, 0.25, 1.0, 0.75]], np.float32)
    kps = np.array([[[0.5, 0.25], [0.25, 0.5]]], np.float32)
    b, k = remove_letterbox(boxes, kps, np.array([0, 0.25, 0, 0.25]))
    np.testing.assert_allclose(b, [[0.5, 0.0, 1.0, 1.0]])
    np.testing.assert_allclose(k, [[[0.5, 0.0], [0.25, 0.5]]])


def test_preprocess_letterbox_pads_with_the_range_bottom():
    stage = DetectorStage(SPEC)
    image = np.full((100, 200, 3), 255, np.uint8)
    tensor, pad = stage.preprocess(image)
    assert tensor.shape == (1, 224, 224, 3) and tensor.dtype == np.float32
    np.testing.assert_allclose(pad, [0, 0.25, 0, 0.25])
    assert np.all(tensor[0, :55] == -1.0) and np.all(tensor[0, 169:] == -1.0)  # zero pixels -> -1
    # inside, white -> 1.0; the last column samples past the image edge (corner-to-corner mapping)
    # and blends with the zero border, as in MediaPipe
    assert np.all(tensor[0, 57:167, :222] == 1.0)
    assert -1.0 < tensor[0, 100, 223, 0] < 1.0


def test_decode_raw_relative_to_anchors():
    anchors = np.array([[0.5, 0.25, 1.0, 1.0]], np.float32)
    raw = np.zeros((1, 12), np.float32)
    raw[0, :4] = [22.4, -22.4, 44.8, 22.4]  # dx, dy, w, h (x before y), scale 224
    raw[0, 4:6] = [0.0, 11.2]
    b, k = decode_raw(raw, anchors, SPEC)
    np.testing.assert_allclose(b, [[0.5, 0.1, 0.7, 0.2]], atol=1e-6)
    np.testing.assert_allclose(k[0, 0], [0.5, 0.3], atol=1e-6)
    np.testing.assert_allclose(k[0, 1:], [[0.5, 0.25]] * 3, atol=1e-6)


def test_postprocess_end_to_end_in_pixels():
    stage = DetectorStage(SPEC)
    n = len(stage.anchors)
    raw_boxes = np.zeros((1, n, 12), np.float32)
    raw_boxes[0, :, 2:4] = 22.4  # every box 0.1 x 0.1 around its anchor
    logits = np.full((1, n, 1), -1000.0, np.float32)  # clipped to -100
    i = 28 * 28 * 2 + 7 * 14 * 2 + 7 * 2  # stride-16 map, cell (7, 7): centre (7.5/14, 7.5/14)
    logits[0, i] = 1000.0  # clipped to 100 -> score 1.0
    logits[0, i + 1] = 0.0  # same centre, score 0.5: kept (>= 0.5), then merged
    image_size = (200, 100)
    _, pad = letterbox_roi(*image_size, 224, 224)
    dets = stage.postprocess(raw_boxes, logits, pad, image_size)
    assert len(dets) == 1
    d = dets[0]
    assert d.score == pytest.approx(1.0)
    c = 7.5 / 14
    np.testing.assert_allclose(d.keypoints[0], [c * 200, (c - 0.25) / 0.5 * 100], rtol=1e-5)
    np.testing.assert_allclose(d.box, [(c - 0.05) * 200, (c - 0.05 - 0.25) * 200, (c + 0.05) * 200, (c + 0.05 - 0.25) * 200], rtol=1e-5)
    assert stage.postprocess(raw_boxes, logits, pad, image_size, min_score=0.99)[0].score == pytest.approx(1.0)
    logits[0, i] = -1.0
    assert stage.postprocess(raw_boxes, logits, pad, image_size, min_score=0.6) == []
