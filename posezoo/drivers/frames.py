"""What every driver does with a model: one options type and one frame loop.

:class:`PredictOptions` is how a model runs, for ``posezoo run`` (one input or many), the process pool,
``posezoo batch`` (either engine) and ``posezoo eval``: ``max_poses``, ``threshold``, ``static``,
``smooth``, the family's options (its typed options object, or keyword options) and the features a
run asks for (``("segmentation",)``: the family's feature options for them are turned on).
:meth:`PredictOptions.check` checks all of it against a :class:`posezoo.zoo.resolve.Resolution` (at the
edge, before anything is fetched or read) or a loaded model, through the one
:meth:`posezoo.inference.model.Capabilities.check`.

:func:`frame_poses` is the one frame loop: ``(frame, poses)`` for every frame, from ``predict`` on
each image (and on each video frame with ``static``), from a fresh tracker over a video otherwise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from posezoo.errors import InputError
from posezoo.io.sources import Frame, read_image


@dataclass(frozen=True)
class PredictOptions:
    """How a model runs over frames.

    ``max_poses``: at most this many poses per frame (None: the model's limit, or every one found);
    ``threshold``: the family's person-score threshold in [0, 1] (None: the model's default);
    ``static``: video frames each go through ``predict`` (no tracking); ``smooth``: a tracker smooths
    landmarks; ``options``: the family's options, as its typed options object or as keywords (None:
    its defaults); ``features``: features the run asks for (e.g. ``("segmentation",)``): the model must
    have them, and the family's feature options for them are turned on.

    It pickles with the family's options as plain keywords (:meth:`check` makes them typed again), so
    it crosses to a worker before the worker has loaded the plugin that defines the options type.
    """

    max_poses: int | None = 1
    threshold: float | None = None
    static: bool = False
    smooth: bool = True
    options: Any = None
    features: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "features", tuple(self.features))

    def __hash__(self) -> int:  # (keyword options are a dict; Ray hashes an actor's constructor arguments)
        given = tuple(sorted((k, repr(v)) for k, v in self.keywords().items()))
        return hash((self.max_poses, self.threshold, self.static, self.smooth, given, self.features))

    def keywords(self) -> dict[str, Any]:
        """The family options given, as keywords (a typed options object's fields)."""
        return _keywords(self.options)

    def check(self, target: Any, *, needs: Sequence[str] = ()) -> PredictOptions:
        """These options with the family's options made typed, checked against ``target`` (a
        :class:`posezoo.zoo.resolve.Resolution`, or a loaded model: anything with a ``name`` and
        ``capabilities``) by :meth:`Capabilities.check`; ``needs``: more features the run needs without
        an option for them (e.g. ``world`` for a 3D plot). Raises :class:`posezoo.errors.UsageError`."""
        caps = target.capabilities
        given = self.keywords()
        for f in caps.option_fields():
            if f.metadata.get("feature") in self.features:
                given[f.name] = True
        typed = caps.check(
            target.name,
            max_poses=self.max_poses,
            threshold=self.threshold,
            options=given,
            features=tuple(dict.fromkeys((*self.features, *needs))),
        )
        return replace(self, options=typed)

    def __reduce__(self):
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        fields["options"] = self.keywords() or None
        return (_rebuild, (fields,))


def _rebuild(fields: dict) -> PredictOptions:
    return PredictOptions(**fields)


def _keywords(options: Any) -> dict[str, Any]:
    if options is None:
        return {}
    if dataclasses.is_dataclass(options) and not isinstance(options, type):
        return {f.name: getattr(options, f.name) for f in dataclasses.fields(options)}
    if isinstance(options, Mapping):
        return dict(options)
    raise TypeError(f"family options must be the family's options object or a mapping, not {type(options).__name__}")


def frame_poses(model, frames: Iterable[Frame], opts: PredictOptions, *, video: bool) -> Iterator[tuple[Frame, list]]:
    """``(frame, poses)`` for every frame of ``frames``: ``model.predict`` on each, or, for a
    ``video`` (unless ``opts.static``), one fresh tracker's ``update`` in frame order. ``opts`` is
    checked against the model first (once; typed options pass through unchanged)."""
    opts = opts.check(model)
    tracker = None
    if video and not opts.static:
        tracker = model.tracker(max_poses=opts.max_poses, threshold=opts.threshold, smooth=opts.smooth, options=opts.options)
    for frame in frames:
        if tracker is not None:
            poses = tracker.update(frame.image, timestamp=frame.timestamp)
        else:
            poses = model.predict(frame.image, max_poses=opts.max_poses, threshold=opts.threshold, options=opts.options)
        yield frame, poses


def image_frames(paths: Iterable[Path], skip: Callable[[Path, InputError], None] | None = None) -> Iterator[Frame]:
    """A frame per image file (index 0, timestamp 0). An image that cannot be read raises its
    :class:`InputError`, or, with ``skip``, is handed to ``skip(path, error)`` and passed over."""
    for path in paths:
        try:
            image = read_image(path)
        except InputError as exc:
            if skip is None:
                raise
            skip(path, exc)
            continue
        yield Frame(image, str(path), 0, 0.0)
