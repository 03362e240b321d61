"""The model interface: what every model family implements, and the one result type.

A *family* is a way of running pose models: the two-stage detector -> rotated crop -> landmark
models of MediaPipe (BlazePose, Hands), a single-stage heatmap model, a box detector + top-down
model, ... A plugin brings a family through the ``register_families`` hook (:class:`Family`: a
name, the spec type its models are described by, the file roles a registry variant must give, and a
factory), and models of that family through ``register_models`` (their specs) and
``registry_entries`` (their files). The core then runs any model the same way::

    model = family.build(spec, {role: onnx_path}, variant="full", device="auto")   # a PoseModel
    poses = model.predict(image_bgr)          # list[Pose]
    tracker = model.tracker(max_poses=2)      # .update(frame_bgr, timestamp) -> list[Pose]

Everything the CLI, the runner, the bench and the writers need goes through :class:`PoseModel`
and :class:`Pose`; none of them knows a family.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

from posezoo.inference.timing import NO_CLOCK, StageClock

# ------------------------------------------------------------------------------------ results


@dataclass(kw_only=True)
class Pose:
    """One person (or hand, ...) found in an image.

    ``landmarks`` float32 (K, C): x and y in image pixels, then the family's other columns, named
    by ``columns`` (e.g. ``("x", "y", "z", "visibility", "presence")`` for MediaPipe landmark
    models, ``("x", "y", "score")`` for a heatmap model). ``names`` the K keypoint names.
    ``score`` the person's score (a detector's, or the model's own), ``box`` [x0, y0, x1, y1] in
    pixels. Optional extras a family may fill: ``presence`` (the landmark model's confidence that the
    pose is there), ``world_landmarks`` (K, 3) metres, ``mask`` (H, W) segmentation probabilities,
    ``aux`` auxiliary points, ``roi`` the crop it was found in, ``track_id`` a person's identity over
    a video (stable while tracked).
    """

    landmarks: np.ndarray
    columns: tuple[str, ...]
    names: tuple[str, ...]
    score: float
    box: np.ndarray
    presence: float | None = None
    world_landmarks: np.ndarray | None = None
    mask: np.ndarray | None = None
    aux: np.ndarray | None = None
    roi: Any = None
    track_id: int | None = None

    @property
    def keypoints(self) -> np.ndarray:
        """(K, 2) x, y in image pixels."""
        return self.landmarks[:, :2]

    def column(self, name: str) -> np.ndarray | None:
        """The landmark column called ``name`` (K,), or None when the family has none."""
        return self.landmarks[:, self.columns.index(name)] if name in self.columns else None

    @property
    def keypoint_scores(self) -> np.ndarray:
        """(K,) a confidence per keypoint in [0, 1]: the ``score`` column, else ``visibility``, else
        the pose's presence (or score) for every keypoint."""
        for name in ("score", "visibility"):
            col = self.column(name)
            if col is not None:
                return col
        whole = self.presence if self.presence is not None else self.score
        return np.full(len(self.landmarks), whole, np.float32)


def box_around(points: np.ndarray) -> np.ndarray:
    """[x0, y0, x1, y1] float32 around (K, >=2) points (pixels)."""
    xy = np.asarray(points, np.float32)[:, :2]
    return np.concatenate([xy.min(axis=0), xy.max(axis=0)]).astype(np.float32)


# ------------------------------------------------------------------------------------ models


@runtime_checkable
class PoseTracker(Protocol):
    """Video: poses frame after frame, with state (crops, filters, identities) between frames."""

    frames: int  # updates so far

    def update(self, frame_bgr: np.ndarray, timestamp: float | None = None) -> list[Pose]:
        """Poses on the next frame (BGR); ``timestamp`` in seconds (default: frame count / fps)."""

    def reset(self) -> None:
        """Forget every track; the next update starts afresh."""


class PoseModel(ABC):
    """A ready model of some family: onnxruntime sessions plus the family's pre- and post-processing.

    Subclasses set ``family`` and implement :meth:`predict` and :meth:`tracker`. The base keeps the
    spec, the variant and the sessions by file role (``self.sessions``), and gives the bench its
    hooks: ``self.clock`` (stages) and each session's clock (model runs).

    ``features``: optional things the family can do (e.g. ``"segmentation"``, ``"world"``); the
    runner refuses an option the model lacks. ``max_poses_limit``: the most people one image can
    give (None: no limit).
    """

    family: ClassVar[str] = ""
    features: ClassVar[frozenset[str]] = frozenset()
    max_poses_limit: int | None = None

    def __init__(self, spec: Any, sessions: Mapping[str, Any], *, variant: str | None = None):
        self.spec = spec
        self.sessions = dict(sessions)
        self.variant = variant
        self.clock: StageClock = NO_CLOCK

    # -- what the model is

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def keypoint_names(self) -> tuple[str, ...]:
        return tuple(self.spec.keypoint_names)

    @property
    def skeleton(self) -> tuple[tuple[int, int], ...]:
        return tuple(tuple(e) for e in self.spec.skeleton)

    @property
    def provider(self) -> str:
        """The onnxruntime provider running the model (the first session's)."""
        return next(iter(self.sessions.values())).provider if self.sessions else "none"

    def describe(self) -> dict:
        """What ``posezoo info`` and the API show: the spec's description plus the sessions' I/O."""
        return {
            "family": self.family,
            **describe_spec(self.spec),
            "sessions": {role: s.describe() for role, s in self.sessions.items()},
        }

    # -- running

    @abstractmethod
    def predict(
        self, image_bgr: np.ndarray, *, max_poses: int | None = None, threshold: float | None = None, **options
    ) -> list[Pose]:
        """Poses on one BGR image, best first. ``threshold``: the family's person-score threshold
        (None: the model's default). ``options``: family features such as ``segmentation=True``."""

    @abstractmethod
    def tracker(
        self, *, max_poses: int = 1, threshold: float | None = None, smooth: bool = True, **options
    ) -> PoseTracker:
        """A video tracker on this model."""

    @contextmanager
    def timed(self, clock: StageClock) -> Iterator[StageClock]:
        """Time this model's stages and session runs into ``clock`` while the block runs."""
        saved = self.clock, {role: s.clock for role, s in self.sessions.items()}
        self.clock = clock
        for s in self.sessions.values():
            s.clock = clock
        try:
            yield clock
        finally:
            self.clock = saved[0]
            for role, s in self.sessions.items():
                s.clock = saved[1][role]


def describe_spec(spec: Any) -> dict:
    """A spec's own description (``spec.describe()`` when it has one) with its keypoints."""
    data = dict(spec.describe()) if callable(getattr(spec, "describe", None)) else {}
    data.setdefault("keypoint_names", list(spec.keypoint_names))
    data.setdefault("skeleton", [list(e) for e in spec.skeleton])
    return data


# ------------------------------------------------------------------------------------ families

Factory = Callable[..., PoseModel]  # factory(spec, files: {role: Path}, *, variant, device) -> PoseModel


@dataclass(frozen=True)
class Family:
    """A model family, as a plugin registers it (``register_families`` hook).

    ``spec_type``: the class of its models' specs (registered through ``register_models``);
    ``roles``: the file roles every registry variant of its models must give (e.g. detector,
    landmark); ``build(spec, files, *, variant, device)``: the factory making a :class:`PoseModel`
    from verified ONNX files by role.
    """

    name: str
    spec_type: type
    roles: tuple[str, ...]
    build: Factory
    description: str = ""
    plugin: str = ""  # filled in by the plugin manager

    def make(self, spec: Any, files: Mapping[str, Path], *, variant: str | None = None, device: str = "auto") -> PoseModel:
        return self.build(spec, dict(files), variant=variant, device=device)


def check_spec(spec: Any) -> None:
    """Raise TypeError/ValueError unless ``spec`` is usable as a model spec: a ``name``, a ``family``,
    keypoint names and a skeleton whose edges are inside them."""
    for attr in ("name", "family", "keypoint_names", "skeleton"):
        if not hasattr(spec, attr):
            raise TypeError(f"a model spec needs a {attr!r} attribute; {type(spec).__name__} has none")
    if not isinstance(spec.name, str) or not spec.name:
        raise TypeError("a model spec's name must be a non-empty string")
    if not isinstance(spec.family, str) or not spec.family:
        raise TypeError(f"model spec {spec.name!r}: family must be a non-empty string")
    names: Sequence = spec.keypoint_names
    if not names or not all(isinstance(n, str) for n in names):
        raise TypeError(f"model spec {spec.name!r}: keypoint_names must be a non-empty sequence of strings")
    k = len(names)
    for edge in spec.skeleton:
        a, b = edge
        if not (0 <= a < k and 0 <= b < k):
            raise ValueError(f"model spec {spec.name!r}: skeleton edge ({a}, {b}) is outside 0..{k - 1}")


__all__ = [
    "Family",
    "NO_CLOCK",
    "Pose",
    "PoseModel",
    "PoseTracker",
    "StageClock",
    "box_around",
    "check_spec",
    "describe_spec",
]
