"""The model interface: what every model family implements, and the one result type.

A *family* is a way of running pose models: the two-stage detector -> rotated crop -> landmark
models of MediaPipe (BlazePose, Hands), a single-stage heatmap model, a box detector + top-down
model, ... A plugin brings a family through the ``register_families`` hook (:class:`Family`: a
name, the spec type its models are described by, the file roles a registry variant must give, and a
factory), and models of that family through ``register_models`` (their specs) and
``registry_entries`` (their files). The core then runs any model the same way::

    caps = family.capabilities(spec)          # what it can do, known before any file is fetched
    model = family.build(spec, {role: onnx_path}, variant="full", device="auto")   # a PoseModel
    poses = model.predict(image_bgr)          # list[Pose]
    tracker = model.tracker(max_poses=2)      # .update(frame_bgr, timestamp) -> list[Pose]

:class:`PoseModel` is a template: its ``predict`` and ``tracker`` check the image, ``max_poses``, the
threshold and the family's typed options (:class:`Capabilities`) once, then call the family's own
``_predict`` / ``_tracker``. Everything the CLI, the drivers and the writers need goes through
:class:`PoseModel`, :class:`Capabilities` and :class:`Pose`; none of them knows a family.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

from posezoo.errors import InputError, PluginError, PosezooError, UsageError
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

    Whole-body results are still one pose per person, its rows grouped into named *parts*:
    ``parts`` maps a part name (``body``, ``left_hand``, ``right_hand``, ``face``, ...) to the
    ``(start, stop)`` rows of ``landmarks`` / ``names`` it holds, or to None when the model looks for
    that part but did not find it in this image (those rows are then NaN). None: the whole pose is one
    part, ``body`` (see :meth:`part_ranges`). ``label`` / ``label_score``: a classification of the pose
    with its confidence, when the family gives one (e.g. a hand's handedness, "left" or "right").
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
    parts: dict[str, tuple[int, int] | None] | None = None
    label: str | None = None
    label_score: float | None = None

    def __repr__(self) -> str:
        """One readable line, no arrays: ``Pose(33 keypoints x,y,z,visibility,presence, score=0.98,
        box=[12.0, 40.5, 300.2, 610.0], track_id=1, parts=body)``."""
        items = [f"{len(self.landmarks)} keypoints {','.join(self.columns)}", f"score={_num(self.score)}"]
        if self.presence is not None:
            items.append(f"presence={_num(self.presence)}")
        if self.box is not None:
            items.append("box=[" + ", ".join(f"{float(v):.1f}" for v in np.asarray(self.box).ravel()) + "]")
        if self.track_id is not None:
            items.append(f"track_id={self.track_id}")
        items.append("parts=" + ",".join(n if r is not None else f"{n}(not found)" for n, r in self.part_ranges().items()))
        if self.label is not None:
            items.append(f"label={self.label}" + (f"({_num(self.label_score)})" if self.label_score is not None else ""))
        if self.world_landmarks is not None:
            items.append("world")
        if self.mask is not None:
            items.append("mask=" + "x".join(map(str, np.shape(self.mask))))
        return f"Pose({', '.join(items)})"

    def part_ranges(self) -> dict[str, tuple[int, int] | None]:
        """Part name -> (start, stop) rows, or None for a part not found; ``{"body": (0, K)}`` when the
        pose has no parts."""
        return dict(self.parts) if self.parts is not None else {"body": (0, len(self.landmarks))}

    def part(self, name: str) -> np.ndarray | None:
        """The landmark rows of part ``name`` (a view), or None when it was not found or is unknown."""
        rows = self.part_ranges().get(name)
        return None if rows is None else self.landmarks[rows[0] : rows[1]]

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


def _num(value: Any) -> str:
    """A score for a repr: two decimals (``nan`` as it is)."""
    try:
        return f"{float(value):.2f}"
    except (TypeError, ValueError):
        return repr(value)


def box_around(points: np.ndarray) -> np.ndarray:
    """[x0, y0, x1, y1] float32 around (K, >=2) points (pixels)."""
    xy = np.asarray(points, np.float32)[:, :2]
    return np.concatenate([xy.min(axis=0), xy.max(axis=0)]).astype(np.float32)


# ------------------------------------------------------------------------------------ capabilities


@dataclass(frozen=True)
class NoOptions:
    """The options of a family that takes none."""


def feature_option(default: bool = False, *, feature: str, help: str = ""):
    """A boolean family option that needs a model feature (e.g. ``segmentation``): asking for it on a
    model without the feature is refused before anything runs. Use as a dataclass field."""
    return field(default=default, metadata={"feature": feature, "help": help})


def option(default: Any, *, help: str = "", choices: Sequence[Any] | None = None):
    """A family option with a default (a dataclass field with its help text; ``choices``: the only
    values it takes, None always allowed when it is the default)."""
    meta: dict[str, Any] = {"help": help}
    if choices is not None:
        meta["choices"] = tuple(choices)
    return field(default=default, metadata=meta)


_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def _coerce(model: str, name: str, text: str, hint: Any) -> Any:
    """An option given as text (``posezoo run --option fps=25``) as its field's type: bool, int, float
    or str, or None (``none``) where the field takes None."""
    args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    if type(None) in args and text.strip().lower() in ("none", "default", ""):
        return None
    kinds = [a for a in args if a is not type(None)]
    if str in kinds or not kinds:
        return text
    low = text.strip().lower()
    if bool in kinds:
        if low in _TRUE | _FALSE:
            return low in _TRUE
        raise UsageError(f"model {model!r}: option {name!r} takes true or false, not {text!r}")
    for kind in (int, float):
        if kind in kinds:
            try:
                return kind(text)
            except ValueError:
                pass
    what = "a whole number" if kinds == [int] else "a number"
    raise UsageError(f"model {model!r}: option {name!r} takes {what}, not {text!r}")


@dataclass(frozen=True)
class Capabilities:
    """What a model can do, known from its spec and family before any file is fetched.

    ``features``: optional outputs (e.g. ``"segmentation"``, ``"world"``); ``max_poses``: the most
    poses one image can give (None: no limit); ``options``: the family's typed options, a frozen
    dataclass whose fields have defaults (:class:`NoOptions` when it takes none).
    """

    keypoint_names: tuple[str, ...]
    skeleton: tuple[tuple[int, int], ...]
    features: frozenset[str] = frozenset()
    max_poses: int | None = None
    options: type = NoOptions
    # the keypoint groups every pose of this model has: ((part name, start, stop), ...); () = one part, body
    parts: tuple[tuple[str, int, int], ...] = ()
    # a surface mesh over the keypoints (edges (a, b), e.g. a face mesh's tesselation); () = none
    mesh: tuple[tuple[int, int], ...] = ()

    @classmethod
    def of(cls, spec: Any, options: type = NoOptions) -> "Capabilities":
        """From a spec's ``keypoint_names``, ``skeleton`` and, when it has them, ``features``,
        ``max_poses``, ``parts`` and ``mesh``."""
        return cls(
            keypoint_names=tuple(spec.keypoint_names),
            skeleton=tuple(tuple(e) for e in spec.skeleton),
            features=frozenset(getattr(spec, "features", ()) or ()),
            max_poses=getattr(spec, "max_poses", None),
            options=options,
            parts=tuple((str(n), int(a), int(b)) for n, a, b in (getattr(spec, "parts", ()) or ())),
            mesh=tuple((int(a), int(b)) for a, b in (getattr(spec, "mesh", ()) or ())),
        )

    def option_fields(self) -> tuple[dataclasses.Field, ...]:
        return dataclasses.fields(self.options)

    def make_options(self, model: str, given: Mapping[str, Any] | Any = None) -> Any:
        """The family's options object from keyword options (or one already made): an unknown name,
        or a feature option the model lacks, is a :class:`UsageError`."""
        if isinstance(given, self.options):
            values = {f.name: getattr(given, f.name) for f in self.option_fields()}
        else:
            values = dict(given or {})
            known = {f.name for f in self.option_fields()}
            unknown = sorted(set(values) - known)
            if unknown:
                takes = ", ".join(sorted(known)) or "none"
                raise UsageError(f"model {model!r} has no option {unknown[0]!r}", f"its options: {takes}")
        hints = typing.get_type_hints(self.options) if any(isinstance(v, str) for v in values.values()) else {}
        for f in self.option_fields():
            value = values.get(f.name, f.default)
            if isinstance(value, str) and f.name in hints:
                value = values[f.name] = _coerce(model, f.name, value, hints[f.name])
            choices = f.metadata.get("choices")
            if choices is not None and value not in choices and not (value is None and f.default is None):
                raise UsageError(
                    f"model {model!r}: option {f.name!r} takes {', '.join(map(str, choices))}, not {value!r}"
                )
            need = f.metadata.get("feature")
            if need and values.get(f.name) and need not in self.features:
                raise UsageError(
                    f"model {model!r} has no {need} output",
                    f"run without --{f.name.replace('_', '-')}; `posezoo info {model}` lists its features",
                )
        return self.options(**values)

    def check_max_poses(self, model: str, max_poses: Any) -> int | None:
        """``max_poses`` as an int (None: the model's limit, or None where it has none), refused when it
        is not a whole number >= 0 or is over the model's limit."""
        if max_poses is None:
            return self.max_poses
        if isinstance(max_poses, bool) or not isinstance(max_poses, (int, np.integer)) or max_poses < 0:
            raise UsageError(f"max_poses must be a whole number >= 0, not {max_poses!r}")
        if self.max_poses is not None and max_poses > self.max_poses:
            raise UsageError(
                f"model {model!r} finds at most {self.max_poses} pose(s) per image, {max_poses} asked for",
                f"use --max-poses {self.max_poses} or less",
            )
        return int(max_poses)

    @staticmethod
    def check_threshold(threshold: Any) -> float | None:
        """None (the model's default) or a number in [0, 1]."""
        if threshold is None:
            return None
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating, np.integer)):
            raise UsageError(f"threshold must be a number in [0, 1], not {threshold!r}")
        value = float(threshold)
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise UsageError(f"threshold must be in [0, 1], not {threshold!r}", "use e.g. --threshold 0.5")
        return value

    def check(self, model: str, *, max_poses: Any = None, threshold: Any = None, options: Any = None, features: Sequence[str] = ()) -> Any:
        """Everything a run asks of the model, checked at once: ``max_poses``, ``threshold``, the
        family ``options`` (a mapping or the options object) and extra ``features`` it must have (e.g.
        ``world`` for a 3D plot). Returns the options object; raises :class:`UsageError`."""
        self.check_max_poses(model, max_poses)
        self.check_threshold(threshold)
        for need in features:
            if need not in self.features:
                raise UsageError(
                    f"model {model!r} has no {need} output", f"`posezoo info {model}` lists its features"
                )
        return self.make_options(model, options)

    def describe(self) -> dict:
        return {
            "keypoint_names": list(self.keypoint_names),
            "skeleton": [list(e) for e in self.skeleton],
            "features": sorted(self.features),
            "max_poses": self.max_poses,
            "parts": {n: [a, b] for n, a, b in self.parts} or {"body": [0, len(self.keypoint_names)]},
            "options": {
                f.name: {"default": f.default, "help": f.metadata.get("help", "")}
                | ({"choices": list(f.metadata["choices"])} if "choices" in f.metadata else {})
                for f in self.option_fields()
            },
        } | ({"mesh": [list(e) for e in self.mesh]} if self.mesh else {})


def check_image(image: Any) -> np.ndarray:
    """A caller's image, checked once: a non-empty uint8 array, H x W (gray) or H x W x 1, 3 (BGR) or 4
    (BGRA), C-contiguous (a strided view is copied). Anything else is an :class:`InputError`."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim not in (2, 3):
        what = f"a {image.dtype} array of {image.ndim} dimension(s)" if isinstance(image, np.ndarray) else type(image).__name__
        raise InputError(f"expected an 8-bit image array (H x W x 3, BGR), got {what}", "read images with cv2.imread")
    if (image.ndim == 3 and image.shape[2] not in (1, 3, 4)) or min(image.shape[:2]) < 1:
        raise InputError(f"unsupported image shape {image.shape}", "pass an H x W x 3 BGR image")
    return image if image.flags.c_contiguous else np.ascontiguousarray(image)


def to_bgr(image: np.ndarray, rgb: bool) -> np.ndarray:
    """A checked image in the colour order every family expects: BGR (or BGRA, gray) as
    ``cv2.imread`` and ``cv2.VideoCapture`` give. ``rgb=True``: the image is RGB (or RGBA; PIL,
    imageio, matplotlib, most deep-learning loaders) and is converted; gray images are left as they are."""
    if not isinstance(rgb, (bool, np.bool_)):
        raise UsageError(f"rgb must be True or False, not {rgb!r}")
    if not rgb or image.ndim == 2 or image.shape[2] == 1:
        return image
    order = [2, 1, 0] if image.shape[2] == 3 else [2, 1, 0, 3]
    return np.ascontiguousarray(image[:, :, order])


class ColourTracker:
    """A family's tracker behind the model template: ``update(frame, timestamp=None, *, rgb=False)``
    converts an RGB frame to BGR once, for every family, then calls the family's ``update``. Every
    other attribute is the family tracker's."""

    def __init__(self, tracker: Any):
        object.__setattr__(self, "_tracker", tracker)

    def update(self, frame_bgr: np.ndarray, timestamp: float | None = None, *, rgb: bool = False) -> list["Pose"]:
        """Poses on the next frame: BGR (``rgb=False``, what OpenCV gives) or RGB (``rgb=True``)."""
        if rgb is not False:
            frame_bgr = to_bgr(check_image(frame_bgr), rgb)
        return self._tracker.update(frame_bgr, timestamp)

    def reset(self) -> None:
        self._tracker.reset()

    @property
    def frames(self) -> int:
        return self._tracker.frames

    @property
    def wrapped(self) -> Any:
        """The family's own tracker."""
        return self._tracker

    def __getattr__(self, name: str) -> Any:
        return getattr(object.__getattribute__(self, "_tracker"), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._tracker, name, value)

    def __repr__(self) -> str:
        return f"<tracker {self._tracker!r}>"


class FrameClock:
    """The timestamps of a video tracker's updates, checked once for every family: a caller's
    ``timestamp`` (seconds) must be a real, finite number not before the previous frame's (a new video
    starts with the tracker's ``reset()``); ``None`` is the frame count / ``fps``. Anything else is a
    :class:`UsageError` here, not NaN landmarks or an error from deep inside a filter."""

    __slots__ = ("fps", "last")

    def __init__(self, fps: float):
        self.fps = float(fps)
        self.last: float | None = None

    def next(self, timestamp: Any, frames: int) -> float:
        """The timestamp of the update after ``frames`` frames, checked."""
        if timestamp is None:
            value = frames / self.fps
        else:
            if isinstance(timestamp, (bool, np.bool_)) or not isinstance(timestamp, (int, float, np.integer, np.floating)):
                raise UsageError(
                    f"timestamp must be a number of seconds, got {type(timestamp).__name__}",
                    "pass seconds as a float (or None: the frame count / fps)",
                )
            value = float(timestamp)
            if not math.isfinite(value):
                raise UsageError(f"timestamp must be a finite number of seconds, got {value}",
                                 "pass seconds as a float (or None: the frame count / fps)")
            if self.last is not None and value < self.last:
                raise UsageError(
                    f"timestamp {value} s is before the previous frame's ({self.last} s)",
                    "timestamps of one video must not go back; call reset() before a new video",
                )
        self.last = value
        return value

    def reset(self) -> None:
        self.last = None


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

    A template: :meth:`predict` and :meth:`tracker` check the image, ``max_poses``, the threshold and
    the family's options (``self.capabilities``) once, then call the family's :meth:`_predict` and
    :meth:`_tracker` with the checked values and the typed options object. Subclasses set ``family``
    and ``options_type`` and implement those two. The base keeps the spec, the variant, the sessions
    by file role (``self.sessions``) and gives the bench its hooks: ``self.clock`` (stages) and each
    session's clock (model runs).
    """

    family: ClassVar[str] = ""
    options_type: ClassVar[type] = NoOptions

    def __init__(self, spec: Any, sessions: Mapping[str, Any], *, variant: str | None = None, capabilities: Capabilities | None = None):
        self.spec = spec
        self.sessions = dict(sessions)
        self.variant = variant
        self.capabilities = capabilities or Capabilities.of(spec, self.options_type)
        self.clock: StageClock = NO_CLOCK

    @classmethod
    def from_files(cls, spec: Any, files: Mapping[str, Path], *, variant: str | None = None, device: str = "auto") -> "PoseModel":
        """The family's factory (``Family.build``): ``cls(spec, files, variant=, device=)``."""
        return cls(spec, dict(files), variant=variant, device=device)

    @staticmethod
    def require_files(spec: Any, files: Mapping[str, Path], roles: Sequence[str]) -> dict[str, Path]:
        """``{role: path}`` for ``roles``, each given and an existing file (:class:`PluginError` otherwise)."""
        from posezoo.errors import PluginError

        out = {}
        for role in roles:
            if role not in files:
                raise PluginError(f"model {spec.name!r}: no {role} file given (have: {', '.join(files) or 'none'})")
            if not Path(files[role]).is_file():
                raise PluginError(f"model {spec.name!r}: {role} file {files[role]} does not exist")
            out[role] = Path(files[role])
        return out

    # -- what the model is

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def keypoint_names(self) -> tuple[str, ...]:
        return self.capabilities.keypoint_names

    @property
    def skeleton(self) -> tuple[tuple[int, int], ...]:
        return self.capabilities.skeleton

    @property
    def features(self) -> frozenset[str]:
        return self.capabilities.features

    @property
    def max_poses_limit(self) -> int | None:
        return self.capabilities.max_poses

    @property
    def provider(self) -> str:
        """The onnxruntime provider running the model (the first session's)."""
        return next(iter(self.sessions.values())).provider if self.sessions else "none"

    def describe(self) -> dict:
        """What ``posezoo info`` and the API show: the spec's description plus the sessions' I/O."""
        return {
            "family": self.family,
            **describe_spec(self.spec),
            **{k: v for k, v in self.capabilities.describe().items() if k not in ("keypoint_names", "skeleton")},
            "sessions": {role: s.describe() for role, s in self.sessions.items()},
        }

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}:{self.variant} ({len(self.keypoint_names)} keypoints, {self.provider})>"

    # -- running (the template)

    def _options(self, options: Any, kw: dict) -> Any:
        if options is not None and kw:
            raise UsageError("give the family's options either as an options object or as keywords, not both")
        return self.capabilities.make_options(self.name, options if options is not None else kw)

    def predict(
        self,
        image_bgr: np.ndarray,
        *,
        max_poses: int | None = None,
        threshold: float | None = None,
        options: Any = None,
        rgb: bool = False,
        **kw,
    ) -> list[Pose]:
        """Poses on one image, best first. The image is a uint8 array in **BGR** order (what
        ``cv2.imread`` gives; also BGRA or gray); pass ``rgb=True`` for an RGB (or RGBA) array, as PIL
        (``np.asarray(Image.open(...))``), imageio or matplotlib give: an RGB array passed as BGR is
        not refused, it just gives worse poses. ``max_poses``: at most this many (None: the model's
        limit, or every one found); ``threshold``: the family's person-score threshold in [0, 1] (None:
        the model's default); the family's options as keywords (e.g. ``segmentation=True``) or as its
        options object (``options=``)."""
        image = to_bgr(check_image(image_bgr), rgb)
        caps = self.capabilities
        limit = caps.check_max_poses(self.name, max_poses)
        thr = caps.check_threshold(threshold)
        opts = self._options(options, kw)
        if limit == 0:
            return []
        return self._predict(image, max_poses=limit, threshold=thr, options=opts)

    __call__ = predict

    def tracker(
        self, *, max_poses: int = 1, threshold: float | None = None, smooth: bool = True, options: Any = None, **kw
    ) -> "PoseTracker":
        """A video tracker on this model: ``.update(frame, timestamp=s) -> list[Pose]`` (a BGR frame, as
        ``cv2.VideoCapture`` gives; ``.update(frame, rgb=True)`` for an RGB one), ``.reset()``."""
        caps = self.capabilities
        limit = caps.check_max_poses(self.name, max_poses)
        if limit is None or limit < 1:
            raise UsageError(f"a tracker follows at least one pose, max_poses={max_poses!r}")
        thr = caps.check_threshold(threshold)
        opts = self._options(options, kw)
        fps = getattr(opts, "fps", None)  # a family's frame rate for updates without timestamps
        if fps is not None and (isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps) or fps <= 0):
            raise UsageError(f"fps must be a finite number > 0, got {fps!r}", "e.g. --option fps=30")
        return ColourTracker(self._tracker(max_poses=limit, threshold=thr, smooth=bool(smooth), options=opts))

    @abstractmethod
    def _predict(self, image_bgr: np.ndarray, *, max_poses: int | None, threshold: float | None, options: Any) -> list[Pose]:
        """The family's prediction on a checked image (``max_poses`` >= 1 or None: no limit)."""

    @abstractmethod
    def _tracker(self, *, max_poses: int, threshold: float | None, smooth: bool, options: Any) -> "PoseTracker":
        """The family's video tracker, with checked arguments."""

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
    from verified ONNX files by role; ``options``: its typed options (a frozen dataclass with
    defaults); ``capabilities_of(spec)``: what a model can do, from its spec alone (default:
    :meth:`Capabilities.of`, reading the spec's ``features`` and ``max_poses`` when it has them).
    """

    name: str
    spec_type: type
    roles: tuple[str, ...]
    build: Factory
    description: str = ""
    options: type = NoOptions
    capabilities_of: Callable[[Any], Capabilities] | None = None
    plugin: str = ""  # filled in by the plugin manager

    def capabilities(self, spec: Any) -> Capabilities:
        if self.capabilities_of is not None:
            return self.capabilities_of(spec)
        return Capabilities.of(spec, self.options)

    def make(self, spec: Any, files: Mapping[str, Path], *, variant: str | None = None, device: str = "auto") -> PoseModel:
        """The family's model of ``spec`` from its ``files``: a :class:`PoseModel`, or a PluginError
        naming the plugin and family whose build failed or returned something else."""
        where = f"plugin {self.plugin or '?'!r}: family {self.name!r}"
        try:
            model = self.build(spec, dict(files), variant=variant, device=device)
        except PosezooError:
            raise
        except Exception as exc:  # a bug in the family's build: the plugin named, not an anonymous internal error
            raise PluginError(
                f"{where} failed to build model {getattr(spec, 'name', '?')!r}: {type(exc).__name__}: {' '.join(str(exc).split())}",
                f"report it to the plugin's authors (set POSEZOO_DEBUG=1 for the traceback)",
            ) from exc
        if not isinstance(model, PoseModel):
            raise PluginError(
                f"{where}: build returned {type(model).__name__} for model {getattr(spec, 'name', '?')!r}, not a PoseModel",
                "the family's build must return a posezoo.inference.model.PoseModel",
            )
        return model


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
    "Capabilities",
    "Family",
    "NoOptions",
    "NO_CLOCK",
    "Pose",
    "PoseModel",
    "PoseTracker",
    "StageClock",
    "box_around",
    "check_image",
    "check_spec",
    "to_bgr",
    "feature_option",
    "option",
    "describe_spec",
]
