"""The 128-detector pipelines against MediaPipe's own output: its web solution of Feb 2021
(``@mediapipe/pose`` 0.1.1612239201, WebGL) on the four photos, ../shared/testdata/
mediapipe_web2021_reference.json: ``upper`` through blazepose-upper, ``full2021`` through
blazepose-full-2020.

The measure (per photo) is the full-body parity test's: the mean distance between our landmarks and
the reference's, over the landmarks it saw (visibility > 0.5), as a percentage of the diagonal of its
box around those landmarks.

That reference ran MediaPipe's GPU graph, whose crops sample the image at output pixel centres; the
CPU graph, which posezoo follows by default (and which the full-body models match to 0.3 %), samples
half an output pixel off that. The 128x128 detector is sensitive to that shift (on h36m its ROI turns
by 13 degrees), so the two graphs' ROIs differ and the landmarks with them. Hence two bars:
``sampling="gpu"`` (the reference's own crops): 2 %, the WebGL float16 arithmetic; the default
``"cpu"``: 3.5 %.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

PIPELINES = {"blazepose-upper": "upper", "blazepose-full-2020": "full2021"}  # model -> reference key
BARS = {"gpu": 2.0, "cpu": 3.5}  # % of the reference box diagonal, per photo


@pytest.fixture(scope="module")
def reference(testdata: Path) -> dict:
    return json.loads((testdata / "mediapipe_web2021_reference.json").read_text())["images"]


def with_sampling(spec, sampling: str):
    return dataclasses.replace(
        spec,
        detector=dataclasses.replace(spec.detector, sampling=sampling),
        landmark=dataclasses.replace(spec.landmark, sampling=sampling),
    )


@pytest.mark.parametrize("sampling", sorted(BARS))
@pytest.mark.parametrize("model", sorted(PIPELINES))
def test_parity_with_mediapipe_web_2021(model: str, sampling: str, make_estimator, reference: dict, testdata: Path):
    plain = make_estimator("default", model=model)
    estimator = make_estimator("default", model=model, spec=with_sampling(plain.spec, sampling))
    key = PIPELINES[model]
    rows, failures = [], []
    for name, by_mode in sorted(reference.items()):
        ref = by_mode[key]
        assert ref is not None, f"the reference has no {key} pose on {name}"
        image = cv2.imread(str(testdata / "images" / name))
        poses = estimator.predict(image, max_poses=1)
        assert poses, f"{model} ({sampling}): no pose on {name}"
        pose = poses[0]
        want = np.array([[np.nan if v is None else v for v in row] for row in ref["landmarks"]], np.float64)
        assert want.shape == (estimator.spec.landmark.num_keypoints, 4)
        seen = want[:, 3] > 0.5
        diag = float(np.hypot(*np.ptp(want[seen, :2], axis=0)))
        dist = np.linalg.norm(pose.landmarks[seen, :2] - want[seen, :2], axis=1)
        pct = 100.0 * dist.mean() / diag
        vis = np.abs(pose.landmarks[:, 3] - want[:, 3]).max()
        rows.append(
            f"{key:8s} {sampling} {name[:40]:40s} mean {dist.mean():5.2f}px = {pct:.2f}% of diag {diag:6.1f}"
            f" | max {dist.max():5.1f}px | vis {vis:.3f} | detector {pose.score:.3f}"
        )
        if pct > BARS[sampling] or (sampling == "gpu" and vis > 0.25):
            failures.append(rows[-1])
    print("\n" + "\n".join(rows))
    assert not failures, "over the bar:\n" + "\n".join(failures)
