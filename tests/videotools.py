"""Reading video files back in tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def read_frames(path: str | Path) -> list[np.ndarray]:
    """Every frame of the video at ``path`` (BGR, as OpenCV decodes it), in order."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                return frames
            frames.append(frame)
    finally:
        cap.release()
