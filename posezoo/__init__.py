"""posezoo: pose-estimation models from a verified model zoo, on onnxruntime.

Python API::

    import posezoo
    posezoo.list_models()                       # ["blazepose-full", "blazepose-upper", ...]
    m = posezoo.load("blazepose-full", variant="full")
    poses = m.predict(image_bgr)                # list of posezoo.Pose
    drawn = posezoo.draw(image_bgr, poses, m)   # a copy with the poses drawn (posezoo.io.draw)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from posezoo.errors import PosezooError
from posezoo.zoo.hookspecs import hookimpl

if TYPE_CHECKING:
    from posezoo.inference.model import PoseModel

from posezoo.version import __version__

__all__ = ["__version__", "draw", "hookimpl", "list_models", "load", "PosezooError"]


def list_models() -> list[str]:
    """Names of the models in the zoo (built-in registry, plugins, user registry)."""
    from posezoo.zoo.resolve import get_zoo

    return list(get_zoo().registry.models)


def load(
    name: str,
    variant: str | None = None,
    *,
    device: str = "auto",
    mirror: str | None = None,
    offline: bool | None = None,
    progress: bool | None = None,
) -> "PoseModel":
    """Fetch (verified, converted) weights on first use and return a ready model of its family
    (a :class:`posezoo.inference.model.PoseModel`: ``predict``, ``tracker``, ``describe``). The name
    and variant are resolved once (:meth:`posezoo.zoo.resolve.Zoo.resolve`), before anything is fetched.

    ``progress``: a line on stderr for each download (a live bar on a terminal) and each conversion
    to ONNX, on first use only; None (the default): when stderr is a terminal; True: always; False:
    never ($POSEZOO_PROGRESS=0 silences it too)."""
    from posezoo.zoo.resolve import get_zoo

    return get_zoo().resolve(name, variant).load(device=device, mirror=mirror, offline=offline, progress=progress)


def draw(image_bgr, poses, skeleton=None, **options):
    """A copy of ``image_bgr`` (BGR) with ``poses`` drawn on it, one style for every model:
    :func:`posezoo.io.draw.draw_poses` (``skeleton``: ``model.skeleton`` or the model itself; options
    ``boxes``, ``mesh``, ``visibility_threshold``, ``faded_alpha``, ``mask_alpha``, ``fps``, ``names``).
    docs/drawing.md shows the style."""
    from posezoo.io.draw import draw_poses

    return draw_poses(image_bgr, poses, skeleton, **options)
