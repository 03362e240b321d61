"""``posezoo eval``: which model is best on *your* photos, by COCO keypoint AP and PCK.

Any COCO-format person-keypoint annotation file (17 keypoints; datasets often ship one) and a folder
of its images. Each model runs on every image found; its poses become COCO keypoint results
(:mod:`posezoo.io.coco`, the same records ``posezoo run --coco`` writes), scored by pycocotools'
``COCOeval`` (the standard implementation: OKS with COCO's sigmas, AP over OKS 0.50:0.95, AP50,
AP75, AR). Images of the annotation file that are not in the folder are named and left out of the
scores (``params.imgIds``). Models mapping only some of COCO's 17 keypoints (the upper-body model)
are scored on all 17: the missing ones count as misses.

A COCO-WholeBody annotation file (133 keypoints: body, foot, face, left and right hand; found by its
``foot_kpts`` / ``face_kpts`` / ``lefthand_kpts`` / ``righthand_kpts``) is scored the way xtcocotools'
``COCOeval`` for it does (:mod:`posezoo.io.wholebody`), with pycocotools: AP per part, each with its own
sigmas, and whole-body AP over all 133 keypoints. Models are mapped to the 133 by their spec's
``wholebody_keypoints`` (else only COCO's 17): the keypoints a model lacks count as misses.

PCK@0.2 (torso): on the images with exactly one annotated person, the share of that person's
labelled keypoints that the model's best pose puts within 0.2 x the torso diameter (left shoulder
to right hip, else right shoulder to left hip) of the label.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from posezoo.supply.atomic import write_bytes
from posezoo.io.coco import COCO_KEYPOINTS, coco_results, person_category, read_annotations, require_coco
from posezoo.io.wholebody import (
    EVAL_GROUPS,
    check_wholebody_annotation,
    group_dataset,
    group_results,
    group_sigmas,
    is_wholebody,
    require_wholebody,
    wholebody_results,
)
from posezoo.drivers.frames import PredictOptions, frame_poses, image_frames
from posezoo.errors import InputError, MissingDependencyError

STAT_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")  # COCOeval.stats order
PCK_ALPHA = 0.2
DEFAULT_MAX_POSES = 20  # COCOeval's maxDets for keypoints
PIP_EXTRA = 'pip install "posezoo[eval]"'
LS, RS, LH, RH = (COCO_KEYPOINTS.index(n) for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip"))


def _pycocotools():
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise MissingDependencyError("posezoo eval needs pycocotools, which is not installed", PIP_EXTRA) from None
    return COCO, COCOeval


# ------------------------------------------------------------------------------------ the data set


@dataclass
class EvalSet:
    """An annotation file and the images of it found in a folder."""

    ann_path: Path
    images_dir: Path
    data: dict
    category_id: int
    images: list[tuple[int, Path]]  # (image id, file) found, in the annotation file's order
    missing: list[str]  # file names of the annotation file not found in the folder
    people: dict[int, list[dict]]  # image id -> its non-crowd person annotations with keypoints
    unreadable: list[str] = field(default_factory=list)  # paths of found images that could not be read
    wholebody: bool = False  # a COCO-WholeBody file (133 keypoints)

    @property
    def image_ids(self) -> list[int]:
        bad = set(self.unreadable)
        return [i for i, p in self.images if str(p) not in bad]

    @property
    def single_person_ids(self) -> list[int]:
        return [i for i in self.image_ids if len(self.people.get(i, ())) == 1]


def _find(images_dir: Path, file_name: str) -> Path | None:
    for cand in (images_dir / file_name, images_dir / Path(file_name).name):
        if cand.is_file():
            return cand
    return None


def load_eval_set(ann_path: Path, images_dir: Path) -> EvalSet:
    """Read and check the annotation file; find its images in ``images_dir`` (by file name)."""
    ann_path, images_dir = Path(ann_path), Path(images_dir)
    data = read_annotations(ann_path)
    category = person_category(data, str(ann_path))
    if not images_dir.is_dir():
        raise InputError(f"image folder {images_dir} does not exist", "give the folder holding the annotated images")
    found, missing = [], []
    for img in data["images"]:
        path = _find(images_dir, img["file_name"])
        if path is None:
            missing.append(img["file_name"])
        else:
            found.append((img["id"], path))
    if not found:
        raise InputError(
            f"none of the {len(data['images'])} images of {ann_path.name} is in {images_dir} "
            f"(first: {missing[0] if missing else 'the file lists no image'})",
            "give --images the folder holding them",
        )
    people: dict[int, list[dict]] = {}
    wholebody = is_wholebody(data)
    for i, ann in enumerate(data.get("annotations", [])):
        if not isinstance(ann, dict) or ann.get("category_id") != category["id"]:
            continue
        kps = ann.get("keypoints")
        if not isinstance(kps, list) or len(kps) != 3 * len(COCO_KEYPOINTS):
            raise InputError(
                f"{ann_path.name}: annotations[{i}] has {len(kps) // 3 if isinstance(kps, list) else 'no'} keypoints, "
                f"not COCO's {len(COCO_KEYPOINTS)}",
                "posezoo evaluates COCO's 17 person keypoints",
            )
        if wholebody:
            check_wholebody_annotation(ann, f"{ann_path.name}: annotations[{i}]")
        if not ann.get("iscrowd", 0) and ann.get("num_keypoints", 1) > 0:
            people.setdefault(ann.get("image_id"), []).append(ann)
    return EvalSet(ann_path, images_dir, data, category["id"], found, missing, people, wholebody=wholebody)


def describe_missing(evalset: EvalSet, limit: int = 5) -> str | None:
    """One line naming the annotation file's images that were not found (None when all were)."""
    if not evalset.missing:
        return None
    shown = ", ".join(evalset.missing[:limit]) + (f" and {len(evalset.missing) - limit} more" if len(evalset.missing) > limit else "")
    total = len(evalset.data["images"])
    return (
        f"{len(evalset.missing)} of {total} images of {evalset.ann_path.name} are not in {evalset.images_dir}, "
        f"scored without them: {shown}"
    )


# ------------------------------------------------------------------------------------ scoring


def coco_stats(evalset: EvalSet, results: list[dict], image_ids: Sequence[int] | None = None) -> dict[str, float]:
    """COCOeval (keypoints) of ``results`` against the annotation file, on ``image_ids`` (default:
    the images found and read). pycocotools' own printing is kept off the console."""
    return _cocoeval(evalset.data, evalset.category_id, results, evalset.image_ids if image_ids is None else image_ids)


def wholebody_stats(evalset: EvalSet, results: list[dict], image_ids: Sequence[int] | None = None) -> dict[str, dict[str, float]]:
    """COCO-WholeBody scores of COCO-WholeBody ``results``: ``{group: the ten COCOeval numbers}`` for
    body, foot, face, left_hand, right_hand (each with its own sigmas) and wholebody (all 133), as
    xtcocotools scores them: a person with no labelled keypoint in the group is ignored for it, a result
    with none of the group's keypoints is left out of it, and a result's area is measured on its body
    keypoints. -1: nothing to score (no person has the group labelled)."""
    ids = evalset.image_ids if image_ids is None else image_ids
    out = {}
    for group in EVAL_GROUPS:
        res, bodies = group_results(results, group)
        out[group] = _cocoeval(group_dataset(evalset.data, group), evalset.category_id, res, ids,
                               sigmas=group_sigmas(group), bodies=bodies)  # fmt: skip
    return out


def _cocoeval(data: dict, category_id: int, results: list[dict], image_ids: Sequence[int], *, sigmas=None, bodies=None) -> dict[str, float]:
    """pycocotools' COCOeval (keypoints) on ``image_ids``; ``sigmas``: the OKS sigmas (default COCO's);
    ``bodies``: each result's body keypoints, its area measured on them (default: on its keypoints)."""
    COCO, COCOeval = _pycocotools()
    ids = list(image_ids)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = data
        gt.createIndex()
        if results:
            dt = gt.loadRes([dict(r) for r in results])
        else:  # COCO.loadRes cannot take an empty list: no results, scored as such (0, or -1: nothing to find)
            dt = COCO()
            dt.dataset = {"images": list(data["images"]), "categories": list(data.get("categories", [])), "annotations": []}
            dt.createIndex()
        if bodies is not None:  # xtcocotools' loadRes: a result's area from its body keypoints
            for ann, body in zip(dt.dataset["annotations"], bodies):
                x, y = np.asarray(body[0::3], np.float64), np.asarray(body[1::3], np.float64)
                ann["area"] = float((x.max() - x.min()) * (y.max() - y.min()))
                ann["bbox"] = [float(x.min()), float(y.min()), float(x.max() - x.min()), float(y.max() - y.min())]
        e = COCOeval(gt, dt, iouType="keypoints")
        if sigmas is not None:
            e.params.kpt_oks_sigmas = np.asarray(sigmas, np.float64)
        e.params.imgIds = ids
        e.params.catIds = [category_id]
        e.evaluate()
        e.accumulate()
        e.summarize()
    # COCOeval reports -1 where there is nothing to score (e.g. no medium-sized person)
    return {name: float(v) for name, v in zip(STAT_NAMES, e.stats)}


def pck(evalset: EvalSet, results: list[dict], mapping: Sequence[int | None], alpha: float = PCK_ALPHA) -> tuple[float | None, int]:
    """(PCK@alpha of the torso, images scored) over the single-person images; None when there are none."""
    best: dict[int, dict] = {}
    for r in results:
        if r["image_id"] not in best or r["score"] > best[r["image_id"]]["score"]:
            best[r["image_id"]] = r
    mapped = np.array([i is not None for i in mapping])
    hits = total = images = 0
    for image_id in evalset.single_person_ids:
        gt = np.asarray(evalset.people[image_id][0]["keypoints"], np.float64).reshape(-1, 3)
        labelled = gt[:, 2] > 0
        if labelled[LS] and labelled[RH]:
            torso = np.linalg.norm(gt[LS, :2] - gt[RH, :2])
        elif labelled[RS] and labelled[LH]:
            torso = np.linalg.norm(gt[RS, :2] - gt[LH, :2])
        else:
            continue
        if torso <= 0:
            continue
        images += 1
        total += int(labelled.sum())
        if image_id not in best:
            continue  # nobody found: every labelled keypoint missed
        pred = np.asarray(best[image_id]["keypoints"], np.float64).reshape(-1, 3)
        dist = np.linalg.norm(pred[:, :2] - gt[:, :2], axis=1)
        hits += int((labelled & mapped & (dist <= alpha * torso)).sum())
    return (hits / total if total else None), images


# ------------------------------------------------------------------------------------ running models


@dataclass
class ModelScore:
    model: str
    variant: str
    max_poses: int
    stats: dict[str, float]
    pck: float | None
    pck_images: int
    poses: int
    images: int
    keypoints: int  # of COCO's 17 the model has (of the 133 on a COCO-WholeBody file)
    parts: dict[str, dict[str, float]] | None = None  # COCO-WholeBody: the ten numbers per group

    def to_dict(self) -> dict:
        return asdict(self)


def parse_model_arg(text: str, default_variant: str | None) -> tuple[str, str | None]:
    """``"blazepose-full:lite"`` -> ("blazepose-full", "lite"); ``"blazepose-full"`` -> (name, default)."""
    name, sep, variant = text.partition(":")
    return name, (variant if sep else default_variant)


def predict_results(model, evalset: EvalSet, mapping, opts: PredictOptions, *, label: str) -> list[dict]:
    """COCO results of ``model`` on every image of the set (a tqdm bar on stderr; COCO-WholeBody
    results on a COCO-WholeBody set, ``mapping`` then a :class:`posezoo.io.wholebody.WholebodyMapping`);
    images that cannot be read are added to ``evalset.unreadable`` (once) and skipped."""
    records = wholebody_results if evalset.wholebody else coco_results
    results: list[dict] = []
    bad = set(evalset.unreadable)
    ids: list[int] = []  # the image id of each frame, in the order they are read

    def skip(path: Path, exc: InputError) -> None:
        evalset.unreadable.append(str(path))
        bad.add(str(path))
        tqdm.write(f"posezoo: warning: skipped: {exc}", file=sys.stderr)

    def paths():
        for image_id, path in tqdm(evalset.images, desc=label, unit="image", file=sys.stderr, leave=True):
            if str(path) not in bad:
                ids.append(image_id)
                yield path

    for _frame, poses in frame_poses(model, image_frames(paths(), skip), opts, video=False):
        results.extend(records(ids[-1], poses, mapping, evalset.category_id))
    return results


def score_model(model, name: str, evalset: EvalSet, results: list[dict], mapping, max_poses: int) -> ModelScore:
    if evalset.wholebody:
        parts = wholebody_stats(evalset, results)
        value, pck_images = pck(evalset, results, mapping.sources[: len(COCO_KEYPOINTS)])
        stats, keypoints = parts["wholebody"], mapping.count()
    else:
        parts = None
        value, pck_images = pck(evalset, results, mapping)
        stats, keypoints = coco_stats(evalset, results), sum(i is not None for i in mapping)
    return ModelScore(
        model=name,
        variant=str(model.variant),
        max_poses=max_poses,
        stats=stats,
        pck=value,
        pck_images=pck_images,
        poses=len(results),
        images=len(evalset.image_ids),
        keypoints=keypoints,
        parts=parts,
    )


def evaluate(
    models: Sequence[str],
    ann: Path,
    images: Path,
    *,
    variant: str | None = None,
    max_poses: int | None = None,
    threshold: float | None = None,
    device: str = "auto",
    mirror: str | None = None,
    offline: bool | None = None,
    say=lambda line: print(f"posezoo: {line}", file=sys.stderr),
) -> tuple[EvalSet, list[ModelScore]]:
    """Run and score each model (``name`` or ``name:variant``) on the set. Every name and variant is
    resolved, its COCO mapping and the options checked, and the annotation file read, before any
    model is fetched; every model is loaded before any runs."""
    from posezoo.zoo.resolve import get_zoo

    _pycocotools()
    zoo = get_zoo()
    wholebody = _is_wholebody_file(ann)
    wanted = []
    for text in models:
        name, var = parse_model_arg(text, variant)
        res = zoo.resolve(name, var)
        mapping = require_wholebody(name, res.spec) if wholebody else require_coco(name, res.spec)
        limit = res.capabilities.max_poses
        n = max_poses or DEFAULT_MAX_POSES
        if limit is not None and n > limit:
            if max_poses is not None:
                say(f"{name} finds at most {limit} pose(s) per image: --max-poses {max_poses} lowered to {limit}")
            n = limit
        opts = PredictOptions(max_poses=n, threshold=threshold, static=True).check(res)
        wanted.append((res, mapping, opts))
    evalset = load_eval_set(ann, images)
    line = describe_missing(evalset)
    if line:
        say(f"warning: {line}")
    # every model fetched, converted and built before the first runs: a broken one fails in seconds
    loaded = [
        (res, res.load(device=device, mirror=mirror, offline=offline, progress=True), mapping, opts)
        for res, mapping, opts in wanted
    ]
    scores = []
    for res, model, mapping, opts in loaded:
        label = f"{res.name} ({model.variant})"
        results = predict_results(model, evalset, mapping, opts, label=label)
        scores.append(score_model(model, res.name, evalset, results, mapping, opts.max_poses))
    return evalset, scores


def _is_wholebody_file(ann: Path) -> bool:
    """A first look at the annotation file: is it COCO-WholeBody's? (False when it cannot be read:
    :func:`load_eval_set` says why, later.)"""
    try:
        return is_wholebody(read_annotations(Path(ann)))
    except InputError:
        return False


# ------------------------------------------------------------------------------------ reporting


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def _fmt(v: float | None) -> str:
    return "-" if v is None or v < 0 else f"{v:.3f}"


def table(evalset: EvalSet, scores: Sequence[ModelScore]) -> str:
    """One table for all models, with a line saying what was scored."""
    if evalset.wholebody:
        return _wholebody_table(evalset, scores)
    n = len(evalset.image_ids)
    singles = len(evalset.single_person_ids)
    people = sum(len(evalset.people.get(i, ())) for i in evalset.image_ids)
    head = (
        f"COCO keypoints, {evalset.ann_path.name}: {_count(n, 'image')}, {_count(people, 'annotated person', 'annotated people')}; "
        f"PCK@{PCK_ALPHA:g} (torso) on the {_count(singles, 'single-person image')}"
    )
    header = ["MODEL", "VARIANT", "KPTS", "AP", "AP50", "AP75", "AR", f"PCK@{PCK_ALPHA:g}", "POSES"]
    rows = [
        [s.model, s.variant, f"{s.keypoints}/17", _fmt(s.stats["AP"]), _fmt(s.stats["AP50"]), _fmt(s.stats["AP75"]),
         _fmt(s.stats["AR"]), _fmt(s.pck), str(s.poses)]
        for s in scores
    ]  # fmt: skip
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [head, ""] + ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows]]
    return "\n".join(lines)


WHOLEBODY_COLUMNS = (("BODY", "body"), ("FOOT", "foot"), ("FACE", "face"), ("LHAND", "left_hand"), ("RHAND", "right_hand"))


def _wholebody_table(evalset: EvalSet, scores: Sequence[ModelScore]) -> str:
    n = len(evalset.image_ids)
    people = sum(len(evalset.people.get(i, ())) for i in evalset.image_ids)
    head = (
        f"COCO-WholeBody keypoints, {evalset.ann_path.name}: {_count(n, 'image')}, "
        f"{_count(people, 'annotated person', 'annotated people')}; AP per part (its own sigmas), "
        f"WHOLE = all 133 keypoints; PCK@{PCK_ALPHA:g} (torso, body) on the "
        f"{_count(len(evalset.single_person_ids), 'single-person image')}"
    )
    header = ["MODEL", "VARIANT", "KPTS", "WHOLE", *[c for c, _ in WHOLEBODY_COLUMNS], "AR", f"PCK@{PCK_ALPHA:g}", "POSES"]
    rows = [
        [s.model, s.variant, f"{s.keypoints}/133", _fmt(s.stats["AP"]),
         *[_fmt((s.parts or {}).get(g, {}).get("AP")) for _, g in WHOLEBODY_COLUMNS],
         _fmt(s.stats["AR"]), _fmt(s.pck), str(s.poses)]
        for s in scores
    ]  # fmt: skip
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [head, ""] + ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows]]
    return "\n".join(lines)


def report(evalset: EvalSet, scores: Sequence[ModelScore]) -> dict:
    """The ``--json`` document."""
    return {
        "annotations": str(evalset.ann_path),
        "wholebody": evalset.wholebody,
        "images_dir": str(evalset.images_dir),
        "images": len(evalset.image_ids),
        "single_person_images": len(evalset.single_person_ids),
        "missing": list(evalset.missing),
        "unreadable": list(evalset.unreadable),
        "pck_alpha": PCK_ALPHA,
        "models": [s.to_dict() for s in scores],
    }


def write_report(path: Path, evalset: EvalSet, scores: Sequence[ModelScore]) -> None:
    try:
        write_bytes(Path(path), (json.dumps(report(evalset, scores), indent=2) + "\n").encode("utf-8"))
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
