"""posezoo's version: one place, imported by the package and by every layer that records it."""

__version__ = "0.1.0"
