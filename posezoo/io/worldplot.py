"""A 3D view of a pose's world landmarks (metres), drawn with matplotlib (``posezoo run --world-plot``).

World landmarks are what a family such as BlazePose gives besides the image keypoints: metres, with
the origin between the hips, x to the person's image-right, y down, z away from the camera. The plot
stands the person up (vertical axis = -y), keeps metres equal on every axis and colours the sides as
:mod:`posezoo.io.draw` does. matplotlib is an optional dependency (``pip install "posezoo[plot]"``);
only its object-oriented API is used (no pyplot, no window, no global state).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from posezoo.supply.atomic import write_bytes
from posezoo.io.draw import CENTRE, SIDE_COLORS, sides
from posezoo.errors import InputError, MissingDependencyError

PIP_EXTRA = 'pip install "posezoo[plot]"'
FORMATS = (".png", ".jpg", ".jpeg", ".svg", ".pdf")
# The centre colour of the image drawing is near-white (for photos); on a white plot use dark grey.
PLOT_CENTRE = (0.25, 0.25, 0.25)


def _matplotlib():
    try:
        import matplotlib  # noqa: F401
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from mpl_toolkits.mplot3d import Axes3D  # noqa: F401  (registers the 3d projection)
    except ImportError:
        raise MissingDependencyError("--world-plot needs matplotlib, which is not installed", PIP_EXTRA) from None
    return Figure, FigureCanvasAgg


def check_plot_path(path: Path) -> None:
    """Refuse, before any work, a file type matplotlib will not write."""
    ext = Path(path).suffix.lower()
    if ext not in FORMATS:
        raise InputError(f"cannot write the world plot {path}: unknown type {ext or '(none)'!r}", f"use one of {', '.join(FORMATS)}")
    _matplotlib()


def _rgb(side: int) -> tuple[float, float, float]:
    if side == CENTRE:
        return PLOT_CENTRE
    b, g, r = SIDE_COLORS[side]
    return (r / 255.0, g / 255.0, b / 255.0)


def render_world(
    world: np.ndarray,
    skeleton: Sequence[tuple[int, int]],
    names: Sequence[str] | None = None,
    *,
    visible: np.ndarray | None = None,
    title: str = "",
    size_px: int = 640,
    fmt: str = "png",
) -> bytes:
    """The image (``fmt``: png, jpg, svg, pdf) of one pose's world landmarks (K, 3) in metres."""
    Figure, FigureCanvasAgg = _matplotlib()
    pts = np.asarray(world, np.float64)[:, :3]
    shown = np.isfinite(pts).all(axis=1) & (np.ones(len(pts), bool) if visible is None else np.asarray(visible, bool))
    # plot axes: x (person's image-right), z (depth, away from the camera), -y (up)
    xyz = np.stack([pts[:, 0], pts[:, 2], -pts[:, 1]], axis=1)
    side_of = sides(names, len(pts))

    dpi = 100
    fig = Figure(figsize=(size_px / dpi, size_px / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(projection="3d")
    for a, b in skeleton:
        if shown[a] and shown[b]:
            color = _rgb(side_of[a]) if side_of[a] == side_of[b] else PLOT_CENTRE
            ax.plot(*xyz[[a, b]].T, color=color, linewidth=2.2)
    idx = np.flatnonzero(shown)
    if len(idx):
        ax.scatter(*xyz[idx].T, c=[_rgb(s) for s in side_of[idx]], s=22, depthshade=False, edgecolors="black", linewidths=0.5)
        lo, hi = xyz[idx].min(axis=0), xyz[idx].max(axis=0)
        centre, half = (lo + hi) / 2, max(float((hi - lo).max()) / 2, 0.05) * 1.1
        ax.set_xlim(centre[0] - half, centre[0] + half)
        ax.set_ylim(centre[1] - half, centre[1] + half)
        ax.set_zlim(centre[2] - half, centre[2] + half)
    ax.set_box_aspect((1, 1, 1), zoom=1.1)
    ax.set_xlabel("x (m)")
    ax.set_ylabel("z, depth (m)")
    ax.set_zlabel("up, -y (m)")
    ax.view_init(elev=12, azim=-70)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi)
    return buf.getvalue()


def write_world_plot(path: Path, pose, skeleton: Sequence[tuple[int, int]], *, title: str = "", visibility_threshold: float = 0.5) -> None:
    """Write ``pose``'s world landmarks as a 3D plot to ``path`` (atomically; type by extension).

    Keypoints whose confidence (:attr:`posezoo.inference.model.Pose.keypoint_scores`) is under the threshold
    are left out (the image drawing fades them instead).
    """
    path = Path(path)
    check_plot_path(path)
    if pose.world_landmarks is None:
        raise InputError("the pose has no world landmarks", "use a model with the 'world' feature (`posezoo info MODEL` lists its features)")
    visible = np.asarray(pose.keypoint_scores) >= visibility_threshold
    ext = path.suffix.lower().lstrip(".")
    data = render_world(
        pose.world_landmarks, skeleton, pose.names, visible=visible, title=title, fmt="jpeg" if ext == "jpg" else ext
    )
    try:
        write_bytes(path, data)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
