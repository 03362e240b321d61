"""Small numeric helpers shared by the decoders."""

from __future__ import annotations

import numpy as np


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function in float32; logits are clipped to +-88 (where float32's result saturates
    anyway) so exp never overflows."""
    x = np.clip(np.asarray(x, np.float32), -88.0, 88.0)
    return 1.0 / (1.0 + np.exp(-x))
