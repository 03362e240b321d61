"""posezoo: pose-estimation models from a verified model zoo, on onnxruntime.

Python API::

    import posezoo
    posezoo.list_models()                       # ["blazepose-full", "blazepose-upper", ...]
    m = posezoo.load("blazepose-full", variant="full")
    poses = m.predict(image_bgr)                # list of posezoo.Pose
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from posezoo.errors import PosezooError
from posezoo.hookspecs import hookimpl

if TYPE_CHECKING:
    from posezoo.estimator import PoseEstimator

__version__ = "0.1.0"

__all__ = ["__version__", "hookimpl", "list_models", "load", "PosezooError"]


def list_models() -> list[str]:
    """Names of the models in the zoo (built-in registry, plugins, user registry)."""
    from posezoo.zoo import get_zoo

    return list(get_zoo().registry.models)


def load(
    name: str,
    variant: str | None = None,
    *,
    device: str = "auto",
    mirror: str | None = None,
    offline: bool | None = None,
    progress: bool = False,
) -> "PoseEstimator":
    """Fetch (verified, converted) weights on first use and return a ready estimator."""
    from posezoo.estimator import PoseEstimator
    from posezoo.zoo import get_zoo, model_files

    zoo = get_zoo()
    entry = zoo.model(name)
    spec = zoo.spec(name)
    variant_name = entry.variant(variant).name
    files = model_files(entry, variant_name, mirror=mirror, offline=offline, progress=progress)
    return PoseEstimator(spec, files, variant=variant_name, device=device)
