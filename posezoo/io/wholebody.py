"""COCO-WholeBody: its 133 keypoints, which of a model's keypoints are them, and results in its format.

COCO-WholeBody (Jin et al., ECCV 2020) labels each COCO person with 133 keypoints in five groups:
body (COCO's 17), foot (6), face (68, the iBUG / 300-W layout), left hand and right hand (21 each, in
OpenPose's hand order: wrist, then thumb, index, middle, ring and little finger from base to tip). Its
annotations keep COCO's ``keypoints`` (the body) and add ``foot_kpts``, ``face_kpts``,
``lefthand_kpts``, ``righthand_kpts`` ([x, y, v] each), ``*_valid`` flags and ``face_box``,
``lefthand_box``, ``righthand_box``. Results (mmpose's ``CocoWholeBodyMetric``, xtcocotools) have the
same five keypoint lists, a ``score``, and here the ``*_valid`` / ``*_box`` fields too.

Which of a model's keypoints are which of the 133 is data on the plugin side: a spec's optional
``wholebody_keypoints``, pairs ``(COCO-WholeBody name, source)``, where the source is the model's
keypoint name, its row index, or ``(part, row)``: a row of a named part of the pose
(:attr:`posezoo.inference.model.Pose.parts`), looked up in each pose, so a pose that lacks the part (a
hand model's right hand, a face not found) gives nothing for those keypoints. A spec without it maps
COCO's 17 the way ``--coco`` does (:func:`posezoo.io.coco.coco_mapping`) and nothing more.

Scoring (:func:`wholebody_eval_parts`) follows xtcocotools' ``COCOeval`` for COCO-WholeBody: OKS with
each group's own sigmas (:data:`WHOLEBODY_SIGMAS`), the person's ``area``; a person with no labelled
keypoint in the group is ignored for that group; a result with no keypoint of the group is left out of
it; whole-body uses all 133 together.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from posezoo.errors import InputError
from posezoo.io.coco import COCO_KEYPOINTS, DIGITS, PERSON_CATEGORY, coco_mapping, coco_results, require_coco

_FINGERS = ("thumb", "forefinger", "middle_finger", "ring_finger", "pinky_finger")


def _hand(side: str) -> tuple[str, ...]:
    return (f"{side}_hand_root",) + tuple(f"{side}_{finger}{i}" for finger in _FINGERS for i in range(1, 5))


FOOT_KEYPOINTS: tuple[str, ...] = (
    "left_big_toe", "left_small_toe", "left_heel", "right_big_toe", "right_small_toe", "right_heel",
)  # fmt: skip
FACE_KEYPOINTS: tuple[str, ...] = tuple(f"face-{i}" for i in range(68))
LEFT_HAND_KEYPOINTS: tuple[str, ...] = _hand("left")
RIGHT_HAND_KEYPOINTS: tuple[str, ...] = _hand("right")

# (group, the annotation's key, its keypoint names), in COCO-WholeBody's order (mmpose's names)
GROUPS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("body", "keypoints", COCO_KEYPOINTS),
    ("foot", "foot_kpts", FOOT_KEYPOINTS),
    ("face", "face_kpts", FACE_KEYPOINTS),
    ("left_hand", "lefthand_kpts", LEFT_HAND_KEYPOINTS),
    ("right_hand", "righthand_kpts", RIGHT_HAND_KEYPOINTS),
)
WHOLEBODY_KEYPOINTS: tuple[str, ...] = tuple(n for _, _, names in GROUPS for n in names)
GROUP_SLICES: dict[str, slice] = {}
_start = 0
for _group, _key, _names in GROUPS:
    GROUP_SLICES[_group] = slice(_start, _start + len(_names))
    _start += len(_names)
del _start, _group, _key, _names
GROUP_KEYS: dict[str, str] = {group: key for group, key, _ in GROUPS}
# the groups that have a *_box in COCO-WholeBody's annotations (the foot has none)
BOX_KEYS: dict[str, str] = {"face": "face_box", "left_hand": "lefthand_box", "right_hand": "righthand_box"}
VALID_KEYS: dict[str, str] = {"foot": "foot_valid", "face": "face_valid", "left_hand": "lefthand_valid",
                              "right_hand": "righthand_valid"}  # fmt: skip

# COCO-WholeBody's OKS sigmas (the paper's; xtcocotools, mmpose's coco_wholebody.py), in the order above
WHOLEBODY_SIGMAS: tuple[float, ...] = (
    # body: COCO's
    0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087, 0.087,
    0.089, 0.089,
    # foot
    0.068, 0.066, 0.066, 0.092, 0.094, 0.094,
    # face
    0.042, 0.043, 0.044, 0.043, 0.040, 0.035, 0.031, 0.025, 0.020, 0.023, 0.029, 0.032, 0.037, 0.038, 0.043,
    0.041, 0.045, 0.013, 0.012, 0.011, 0.011, 0.012, 0.012, 0.011, 0.011, 0.013, 0.015, 0.009, 0.007, 0.007,
    0.007, 0.012, 0.009, 0.008, 0.016, 0.010, 0.017, 0.011, 0.009, 0.011, 0.009, 0.007, 0.013, 0.008, 0.011,
    0.012, 0.010, 0.034, 0.008, 0.008, 0.009, 0.008, 0.008, 0.007, 0.010, 0.008, 0.009, 0.009, 0.009, 0.007,
    0.007, 0.008, 0.011, 0.008, 0.008, 0.008, 0.010, 0.008,
    # left hand
    0.029, 0.022, 0.035, 0.037, 0.047, 0.026, 0.025, 0.024, 0.035, 0.018, 0.024, 0.022, 0.026, 0.017, 0.021,
    0.021, 0.032, 0.020, 0.019, 0.022, 0.031,
    # right hand
    0.029, 0.022, 0.035, 0.037, 0.047, 0.026, 0.025, 0.024, 0.035, 0.018, 0.024, 0.022, 0.026, 0.017, 0.021,
    0.021, 0.032, 0.020, 0.019, 0.022, 0.031,
)  # fmt: skip
assert len(WHOLEBODY_KEYPOINTS) == len(WHOLEBODY_SIGMAS) == 133

# the groups scored by `posezoo eval` on a COCO-WholeBody file, and whole-body (all 133)
EVAL_GROUPS: tuple[str, ...] = ("body", "foot", "face", "left_hand", "right_hand", "wholebody")


def group_sigmas(group: str) -> np.ndarray:
    """The OKS sigmas of a group (``wholebody``: all 133)."""
    sig = np.asarray(WHOLEBODY_SIGMAS, np.float64)
    return sig if group == "wholebody" else sig[GROUP_SLICES[group]]


# ------------------------------------------------------------------------------------ mapping


@dataclass(frozen=True)
class WholebodyMapping:
    """For each of the 133 keypoints where a pose's value comes from: None (the model has none), a row
    index, or ``(part, row)``: that row of the pose's part (looked up in each pose)."""

    sources: tuple[int | tuple[str, int] | None, ...]

    def rows(self, pose: Any) -> list[int | None]:
        """The 133 row indices into ``pose.landmarks`` (None: not mapped, or its part not in this pose)."""
        ranges = pose.part_ranges() if callable(getattr(pose, "part_ranges", None)) else {"body": (0, len(pose.landmarks))}
        out: list[int | None] = []
        for src in self.sources:
            if src is None or isinstance(src, int):
                out.append(src)
                continue
            part, row = src
            span = ranges.get(part)
            out.append(span[0] + row if span is not None and span[0] + row < span[1] else None)
        return out

    def groups(self) -> list[str]:
        """The groups with at least one keypoint mapped (in COCO-WholeBody's order)."""
        return [g for g, _, _ in GROUPS if any(s is not None for s in self.sources[GROUP_SLICES[g]])]

    def count(self, group: str | None = None) -> int:
        """Keypoints mapped (of a group, or of all 133)."""
        chosen = self.sources if group is None else self.sources[GROUP_SLICES[group]]
        return sum(s is not None for s in chosen)

    @property
    def beyond_body(self) -> bool:
        """Does it map anything but COCO's 17 (a foot, face or hand keypoint)?"""
        return any(s is not None for s in self.sources[len(COCO_KEYPOINTS):])


def wholebody_mapping(spec: Any) -> WholebodyMapping:
    """The model's COCO-WholeBody mapping: its spec's ``wholebody_keypoints`` (see the module docstring),
    else COCO's 17 as ``--coco`` maps them. ``spec`` may be a model (its spec is used). Raises ValueError
    for a mapping naming something unknown."""
    spec = getattr(spec, "spec", spec)
    names = tuple(spec.keypoint_names)
    given = getattr(spec, "wholebody_keypoints", None)
    if given is None:
        body = coco_mapping(spec)
        return WholebodyMapping(tuple(body) + (None,) * (len(WHOLEBODY_KEYPOINTS) - len(body)))
    what = f"model spec {spec.name!r}: wholebody_keypoints"
    if isinstance(given, Mapping):
        pairs = list(given.items())
    else:
        try:
            pairs = [(a, b) for a, b in given]
        except (TypeError, ValueError):
            raise ValueError(f"{what} must be (COCO-WholeBody name, keypoint) pairs") from None
    sizes = {str(n): int(b) - int(a) for n, a, b in (getattr(spec, "parts", ()) or ())}
    sources: list[int | tuple[str, int] | None] = [None] * len(WHOLEBODY_KEYPOINTS)
    for wb_name, src in pairs:
        if wb_name not in WHOLEBODY_KEYPOINTS:
            raise ValueError(f"{what} names {wb_name!r}, not a COCO-WholeBody keypoint (e.g. left_big_toe, face-0)")
        if src is None:
            continue
        if isinstance(src, str):
            if src not in names:
                raise ValueError(f"{what} maps {wb_name!r} to unknown keypoint {src!r}")
            src = names.index(src)
        elif isinstance(src, (int, np.integer)) and not isinstance(src, bool):
            if not 0 <= src < len(names):
                raise ValueError(f"{what} maps {wb_name!r} to row {src}, outside 0..{len(names) - 1}")
            src = int(src)
        elif (
            isinstance(src, (tuple, list)) and len(src) == 2 and isinstance(src[0], str)
            and isinstance(src[1], (int, np.integer)) and not isinstance(src[1], bool) and src[1] >= 0
        ):  # fmt: skip
            src = (src[0], int(src[1]))
            if src[0] in sizes and src[1] >= sizes[src[0]]:
                raise ValueError(f"{what} maps {wb_name!r} to row {src[1]} of part {src[0]!r}, which has {sizes[src[0]]}")
        else:
            raise ValueError(f"{what} maps {wb_name!r} to {src!r} (give a keypoint name, a row, or (part, row))")
        sources[WHOLEBODY_KEYPOINTS.index(wb_name)] = src
    return WholebodyMapping(tuple(sources))


def describe_wholebody(spec: Any) -> dict:
    """``posezoo info``'s view: ``{"wholebody_summary": str}`` (keypoints mapped per group)."""
    try:
        mapping = wholebody_mapping(spec)
    except ValueError as exc:
        return {"wholebody_summary": f"invalid mapping: {exc}"}
    total = {g: len(names) for g, _, names in GROUPS}
    counts = [f"{g} {mapping.count(g)}/{total[g]}" for g in total if mapping.count(g)]
    return {"wholebody_summary": f"{mapping.count()} of 133 ({', '.join(counts)})" if counts else "none of its 133 keypoints"}


def require_wholebody(model_name: str, spec: Any) -> WholebodyMapping:
    """The mapping, or an InputError saying in one line that the model has none of the 133 keypoints."""
    try:
        mapping = wholebody_mapping(spec)
    except ValueError as exc:
        raise InputError(str(exc), "fix the plugin's wholebody_keypoints") from None
    if not mapping.count():
        names = tuple(getattr(spec, "spec", spec).keypoint_names)
        shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
        raise InputError(
            f"model {model_name!r} has none of COCO-WholeBody's 133 keypoints (its keypoints: {shown})",
            "`posezoo info MODEL` shows the mapping",
        )
    return mapping


def coco_format(model_name: str, spec: Any) -> tuple[Any, Any, str]:
    """What ``posezoo run --coco`` writes for a model: ``(mapping, records, kind)``, ``records(image_id,
    poses, mapping, category_id)`` making the results. COCO-WholeBody results when the model has any
    keypoint beyond COCO's 17 (its ``keypoints`` are still COCO's 17: pycocotools and every COCO reader
    take the file as it is), else COCO keypoint results (an InputError for a model with neither)."""
    try:
        mapping = wholebody_mapping(spec)
    except ValueError as exc:
        raise InputError(str(exc), "fix the plugin's wholebody_keypoints") from None
    if mapping.beyond_body:
        return mapping, wholebody_results, "COCO-WholeBody"
    return require_coco(model_name, spec), coco_results, "COCO keypoint"


# ------------------------------------------------------------------------------------ results


def _box(xy: np.ndarray) -> list[float]:
    """[x, y, w, h] around points (pixels)."""
    x0, y0 = xy.min(axis=0)
    x1, y1 = xy.max(axis=0)
    return [round(float(v), DIGITS) for v in (x0, y0, x1 - x0, y1 - y0)]


def wholebody_keypoints(pose: Any, mapping: WholebodyMapping) -> np.ndarray:
    """(133, 3) x, y, v for one pose (pixels; v = the keypoint's confidence; 0, 0, 0 where the model has
    no such keypoint, its part is not in this pose, or its value is not finite)."""
    xy = np.asarray(pose.landmarks, np.float64)[:, :2]
    conf = np.asarray(pose.keypoint_scores, np.float64)
    out = np.zeros((len(WHOLEBODY_KEYPOINTS), 3), np.float64)
    for k, i in enumerate(mapping.rows(pose)):
        if i is None or not np.isfinite(xy[i]).all():
            continue
        v = float(np.clip(conf[i], 0.0, 1.0)) if np.isfinite(conf[i]) else 0.0
        out[k] = (round(float(xy[i, 0]), DIGITS), round(float(xy[i, 1]), DIGITS), round(v, 4))
    return out


def wholebody_result(image_id: int, pose: Any, mapping: WholebodyMapping, category_id: int = PERSON_CATEGORY) -> dict:
    """One pose as a COCO-WholeBody result: ``keypoints`` (the body's 17), ``foot_kpts``, ``face_kpts``,
    ``lefthand_kpts``, ``righthand_kpts`` ([x, y, v] each), ``score``, and for each group but the body
    ``*_valid`` (the model gave at least one of its keypoints) and for face and hands ``*_box``
    ([x, y, w, h] around them, zeros when not valid), as in COCO-WholeBody's annotations."""
    kps = wholebody_keypoints(pose, mapping)
    rec: dict[str, Any] = {"image_id": int(image_id), "category_id": int(category_id)}
    for group, key, _ in GROUPS:
        rec[key] = [float(v) for v in kps[GROUP_SLICES[group]].ravel()]
    for group, key, _ in GROUPS:
        if group == "body":
            continue
        part = kps[GROUP_SLICES[group]]
        found = part[:, 2] > 0
        rec[VALID_KEYS[group]] = bool(found.any())
        if group in BOX_KEYS:
            rec[BOX_KEYS[group]] = _box(part[found, :2]) if found.any() else [0.0, 0.0, 0.0, 0.0]
    rec["score"] = round(float(pose.score), 5)
    return rec


def wholebody_results(image_id: int, poses: Sequence[Any], mapping: WholebodyMapping, category_id: int = PERSON_CATEGORY) -> list[dict]:
    """COCO-WholeBody results for the poses of one image."""
    return [wholebody_result(image_id, p, mapping, category_id) for p in poses]


# ------------------------------------------------------------------------------------ annotation files


def is_wholebody(data: dict) -> bool:
    """Is this annotation file COCO-WholeBody's (its person annotations have the extra keypoint lists)?"""
    anns = [a for a in data.get("annotations", []) if isinstance(a, dict) and "keypoints" in a]
    return bool(anns) and all(all(k in a for k in GROUP_KEYS.values()) for a in anns)


def check_wholebody_annotation(ann: dict, where: str) -> None:
    """An InputError unless each keypoint list of a COCO-WholeBody annotation has its group's length."""
    for group, key, names in GROUPS:
        kps = ann.get(key)
        if not isinstance(kps, list) or len(kps) != 3 * len(names):
            have = f"{len(kps) // 3} keypoints" if isinstance(kps, list) else "none"
            raise InputError(f"{where}: {key} has {have}, not COCO-WholeBody's {len(names)}",
                             "give a COCO-WholeBody annotation file (133 keypoints)")  # fmt: skip


def group_keypoints(record: dict, group: str) -> list:
    """A group's [x, y, v] list of an annotation or result (``wholebody``: all five joined)."""
    if group == "wholebody":
        return [v for g, key, _ in GROUPS for v in record[key]]
    return list(record[GROUP_KEYS[group]])


def group_dataset(data: dict, group: str) -> dict:
    """The annotation file as a plain COCO keypoint file of one group: each annotation's ``keypoints``
    is the group's and ``num_keypoints`` counts its labelled ones (a person with none is ignored)."""
    anns = []
    for ann in data.get("annotations", []):
        if not isinstance(ann, dict) or "keypoints" not in ann:
            anns.append(ann)
            continue
        kps = group_keypoints(ann, group)
        anns.append({**ann, "keypoints": kps, "num_keypoints": int(np.count_nonzero(np.asarray(kps[2::3]) > 0))})
    return {**data, "annotations": anns}


def group_results(results: Sequence[dict], group: str) -> tuple[list[dict], list[list[float]]]:
    """The results of one group as plain COCO keypoint results, and each one's body keypoints (xtcocotools
    measures a result's area on them). A result with no keypoint of the group is left out."""
    out, bodies = [], []
    for r in results:
        kps = group_keypoints(r, group)
        if not np.any(np.asarray(kps[2::3]) > 0):
            continue
        out.append({"image_id": r["image_id"], "category_id": r["category_id"], "keypoints": kps, "score": r["score"]})
        bodies.append(list(r["keypoints"]))
    return out, bodies


__all__ = [
    "EVAL_GROUPS",
    "GROUPS",
    "WHOLEBODY_KEYPOINTS",
    "WHOLEBODY_SIGMAS",
    "WholebodyMapping",
    "describe_wholebody",
    "group_dataset",
    "group_results",
    "group_sigmas",
    "is_wholebody",
    "require_wholebody",
    "wholebody_mapping",
    "wholebody_result",
    "wholebody_results",
]
