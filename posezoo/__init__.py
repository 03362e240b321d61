"""posezoo: pose-estimation models from a verified model zoo, on onnxruntime."""

from __future__ import annotations

from posezoo.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = ["__version__", "hookimpl"]
