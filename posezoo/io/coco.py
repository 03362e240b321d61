"""COCO keypoints: which of a model's keypoints are COCO's 17, and results in COCO's format.

Any family maps the same way: a model's keypoints are matched to COCO's 17 by *name*
(:data:`COCO_KEYPOINTS`), unless its spec says otherwise with a ``coco_keypoints`` attribute (a
mapping ``{coco name: the model's keypoint name or index}``, or pairs of them; empty: none). BlazePose's 33
include all 17 by name, the upper-body model the 13 above the knees, a hand model none.

``posezoo run --coco results.json`` writes the COCO keypoint *results* format that pycocotools'
``COCO.loadRes``, mmpose, FiftyOne and CVAT read::

    [{"image_id": 785, "category_id": 1, "keypoints": [x, y, v] * 17, "score": 0.98}, ...]

``x``, ``y`` are image pixels; ``v`` is the keypoint's confidence (:attr:`posezoo.inference.model.Pose.keypoint_scores`);
a COCO keypoint the model does not have is ``0, 0, 0``. ``score`` is the pose's score (``Pose.score``).
A model with keypoints beyond the body (feet, face, hands: its spec's ``wholebody_keypoints``) gets
COCO-WholeBody results instead, a superset of these (:mod:`posezoo.io.wholebody`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from posezoo.supply.atomic import write_bytes
from posezoo.errors import InputError

COCO_KEYPOINTS: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
    "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip

# COCO's person skeleton (0-based pairs of COCO_KEYPOINTS), as in person_keypoints_*.json.
COCO_SKELETON: tuple[tuple[int, int], ...] = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8), (7, 9),
    (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)  # fmt: skip

PERSON_CATEGORY = 1
DIGITS = 2  # decimals kept for x, y in the results file (0.01 px)


# ------------------------------------------------------------------------------------ mapping


def coco_mapping(spec: Any) -> tuple[int | None, ...]:
    """For each of COCO's 17 keypoints, the index of the model's keypoint that is it (or None).

    ``spec`` is a model spec (or a :class:`posezoo.inference.model.PoseModel`, whose spec is used): its
    ``keypoint_names`` are matched by name, or its ``coco_keypoints`` mapping (coco name -> keypoint
    name or index) is used when it has one. Raises ValueError for a mapping naming something unknown.
    """
    spec = getattr(spec, "spec", spec)
    names = tuple(spec.keypoint_names)
    override = getattr(spec, "coco_keypoints", None)
    if override is None:
        return tuple(names.index(c) if c in names else None for c in COCO_KEYPOINTS)
    if not isinstance(override, Mapping):
        try:
            override = dict(override)  # a frozen spec may hold ((coco name, keypoint), ...) pairs
        except (TypeError, ValueError):
            raise ValueError(
                f"model spec {spec.name!r}: coco_keypoints must map COCO names to keypoints (a dict or pairs)"
            ) from None
    out: list[int | None] = [None] * len(COCO_KEYPOINTS)
    for coco_name, ours in override.items():
        if coco_name not in COCO_KEYPOINTS:
            raise ValueError(f"model spec {spec.name!r}: coco_keypoints names {coco_name!r}, not a COCO keypoint")
        if ours is None:
            continue
        if isinstance(ours, str):
            if ours not in names:
                raise ValueError(f"model spec {spec.name!r}: coco_keypoints maps {coco_name!r} to unknown {ours!r}")
            ours = names.index(ours)
        if not isinstance(ours, (int, np.integer)) or not 0 <= ours < len(names):
            raise ValueError(f"model spec {spec.name!r}: coco_keypoints maps {coco_name!r} to {ours!r}")
        out[COCO_KEYPOINTS.index(coco_name)] = int(ours)
    return tuple(out)


def describe_mapping(spec: Any) -> dict:
    """``posezoo info``'s view: ``{"coco_keypoints": {coco name: keypoint name or None}, "coco_summary": str}``."""
    spec = getattr(spec, "spec", spec)
    mapping = coco_mapping(spec)
    names = tuple(spec.keypoint_names)
    by_name = {c: (names[i] if i is not None else None) for c, i in zip(COCO_KEYPOINTS, mapping)}
    have = [c for c, i in zip(COCO_KEYPOINTS, mapping) if i is not None]
    missing = [c for c in COCO_KEYPOINTS if c not in have]
    if not have:
        summary = "none of COCO's 17 keypoints (no COCO export or evaluation)"
    elif not missing:
        renamed = [f"{c}={n}" for c, n in by_name.items() if n != c]
        summary = "all 17 " + (f"({', '.join(renamed)})" if renamed else "by name")
    else:
        summary = f"{len(have)} of 17 (not: {', '.join(missing)})"
    return {"coco_keypoints": by_name, "coco_summary": summary}


def require_coco(model_name: str, spec: Any) -> tuple[int | None, ...]:
    """The mapping, or an InputError saying in one line that the model has no COCO keypoints."""
    try:
        mapping = coco_mapping(spec)
    except ValueError as exc:
        raise InputError(str(exc), "fix the plugin's coco_keypoints") from None
    if all(i is None for i in mapping):
        names = tuple(getattr(spec, "spec", spec).keypoint_names)
        shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
        raise InputError(
            f"model {model_name!r} has none of COCO's 17 person keypoints (its keypoints: {shown})",
            "COCO export and evaluation take body models; `posezoo info MODEL` shows the mapping",
        )
    return mapping


# ------------------------------------------------------------------------------------ results


def coco_keypoints(pose: Any, mapping: Sequence[int | None]) -> list[float]:
    """[x, y, v] x 17 for one pose (pixels; v = the keypoint's confidence; 0, 0, 0 where unmapped)."""
    xy = np.asarray(pose.landmarks, np.float64)[:, :2]
    conf = np.asarray(pose.keypoint_scores, np.float64)
    out: list[float] = []
    for i in mapping:
        if i is None or not np.isfinite(xy[i]).all():
            out += [0.0, 0.0, 0.0]
        else:
            v = float(np.clip(conf[i], 0.0, 1.0)) if np.isfinite(conf[i]) else 0.0
            out += [round(float(xy[i, 0]), DIGITS), round(float(xy[i, 1]), DIGITS), round(v, 4)]
    return out


def coco_results(image_id: int, poses: Sequence[Any], mapping: Sequence[int | None], category_id: int = PERSON_CATEGORY) -> list[dict]:
    """COCO keypoint results for the poses of one image."""
    return [
        {
            "image_id": int(image_id),
            "category_id": int(category_id),
            "keypoints": coco_keypoints(p, mapping),
            "score": round(float(p.score), 5),
        }
        for p in poses
    ]


# ------------------------------------------------------------------------------------ annotation files


def person_category(data: dict, source: str) -> dict:
    """The annotation file's person category (the one named "person", else the only one), checked to
    have COCO's 17 keypoints (by name when it lists them)."""
    cats = data.get("categories") or []
    cat = next((c for c in cats if isinstance(c, dict) and c.get("name") == "person"), None)
    if cat is None and len(cats) == 1 and isinstance(cats[0], dict):
        cat = cats[0]
    if cat is None or "id" not in cat:
        raise InputError(f"{source} has no person category", "use a COCO person_keypoints annotation file")
    names = cat.get("keypoints")
    if names is not None and list(names) != list(COCO_KEYPOINTS):
        raise InputError(
            f"{source}: the person category has {len(names)} keypoints that are not COCO's 17 in COCO's order "
            f"(first: {', '.join(map(str, names[:3]))})",
            "posezoo evaluates COCO's 17 person keypoints",
        )
    return cat


def read_annotations(path: Path) -> dict:
    """A COCO annotation file (``images``, ``annotations``, ``categories``), checked enough to use."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"annotation file {path} does not exist", "give a COCO person_keypoints JSON file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read annotation file {path}: {exc}", "give a COCO JSON file") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise InputError(f"{path} is not a COCO annotation file (no 'images' list)", "give a COCO JSON file")
    for i, img in enumerate(data["images"]):
        if not isinstance(img, dict) or "id" not in img or not isinstance(img.get("file_name"), str):
            raise InputError(f"{path}: images[{i}] has no id or file_name", "give a COCO JSON file")
    if not isinstance(data.get("annotations", []), list):
        raise InputError(f"{path}: 'annotations' is not a list", "give a COCO JSON file")
    return data


def ids_by_file_name(data: dict) -> dict[str, int]:
    """``{file name (no folders): image id}`` of an annotation file."""
    return {Path(img["file_name"]).name: img["id"] for img in data["images"]}


def image_id_from_name(path: Path) -> int | None:
    """COCO's own naming: ``000000000785.jpg`` -> 785; None for other names."""
    stem = Path(path).stem
    return int(stem) if stem.isdigit() else None


def assign_image_ids(paths: Sequence[Path], annotations: dict[str, int] | None = None) -> tuple[dict[Path, int], str]:
    """Image ids for the images of a run, and a line saying where they came from.

    From ``annotations`` (an annotation file's ``{file name: id}``) when given: an image it does not
    list gets no id. Else the numbers COCO-style names are (``785`` for ``000000000785.jpg``) when
    every name is one, else each image's position in the run (1, 2, ...).
    """
    paths = [Path(p) for p in paths]
    if annotations is not None:
        ids = {p: annotations[p.name] for p in paths if p.name in annotations}
        return ids, "image ids from the annotation file, by file name"
    numbers = [image_id_from_name(p) for p in paths]
    if all(n is not None for n in numbers) and len(set(numbers)) == len(numbers):
        return dict(zip(paths, numbers)), "image ids from the file names (COCO style)"
    return {p: i for i, p in enumerate(paths, 1)}, "image ids are the images' order in the run (1, 2, ...); give --coco-ann to take them from an annotation file"


# ------------------------------------------------------------------------------------ the writer


@dataclass
class CocoResultsSink:
    """Collects the COCO keypoint results of a run and writes them, whole, on :meth:`close`.

    ``ids``: ``{image path: image id}`` (:func:`assign_image_ids`); an image without one is left out
    and listed in :attr:`unknown`.
    """

    path: Path
    mapping: Any  # COCO's 17 (coco_mapping), or what ``records`` takes
    ids: dict[Path, int]
    category_id: int = PERSON_CATEGORY
    results: list[dict] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    # records(image_id, poses, mapping, category_id) -> results (COCO-WholeBody: posezoo.io.wholebody)
    records: Callable[..., list[dict]] | None = None
    kind: str = "COCO keypoint"

    def add(self, source: Path, poses: Sequence[Any]) -> None:
        image_id = self.ids.get(Path(source))
        if image_id is None:
            self.unknown.append(Path(source).name)
            return
        self.results.extend((self.records or coco_results)(image_id, poses, self.mapping, self.category_id))

    def close(self) -> None:
        text = json.dumps(self.results, separators=(",", ":"))
        try:
            write_bytes(self.path, text.encode("utf-8"))
        except OSError as exc:
            raise InputError(f"cannot write {self.path}: {exc.strerror or exc}") from None
