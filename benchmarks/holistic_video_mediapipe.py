"""MediaPipe's own Holistic in video mode on a pan over a photo: the reference of
``benchmarks/holistic_parity.py --video-reference``.

Runs in an environment with ``mediapipe`` (0.10.14) and OpenCV installed, not posezoo's: the frames are
the photo shifted by ``(10 sin(i / 10), 5 cos(i / 13))`` pixels (OpenCV's warpAffine, border replicate),
the same frames holistic_parity.py makes; MediaPipe's Holistic (static_image_mode=False,
model_complexity=1, refine_face_landmarks=False) runs on them in order. Writes JSON: the photo, the
frame count and, per frame, each part's landmarks in pixels (x, y) or null.

    python benchmarks/holistic_video_mediapipe.py PHOTO --frames 30 --out mediapipe_video.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np


def pan(image: np.ndarray, i: int) -> np.ndarray:
    """Frame ``i`` of the pan over ``image`` (BGR)."""
    h, w = image.shape[:2]
    shift = np.float32([[1, 0, 10 * np.sin(i / 10)], [0, 1, 5 * np.cos(i / 13)]])
    return cv2.warpAffine(image, shift, (w, h), borderMode=cv2.BORDER_REPLICATE)


def main() -> None:
    import mediapipe as mp

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photo", type=Path)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    image = cv2.imread(str(args.photo))
    h, w = image.shape[:2]
    holistic = mp.solutions.holistic.Holistic(static_image_mode=False, model_complexity=1)
    frames = []
    for i in range(args.frames):
        result = holistic.process(cv2.cvtColor(pan(image, i), cv2.COLOR_BGR2RGB))
        frame = {}
        for attr, part in (("pose_landmarks", "body"), ("left_hand_landmarks", "left_hand"),
                           ("right_hand_landmarks", "right_hand"), ("face_landmarks", "face")):  # fmt: skip
            found = getattr(result, attr)
            frame[part] = None if found is None else [[round(p.x * w, 3), round(p.y * h, 3)] for p in found.landmark]
        frames.append(frame)
    args.out.write_text(json.dumps({"photo": args.photo.name, "mediapipe": mp.__version__, "frames": frames}))


if __name__ == "__main__":
    main()
