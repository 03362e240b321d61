"""MediaPipe Face Mesh (``mediapipe-face-mesh``): work in progress."""

from __future__ import annotations
