"""Poses as Parquet rows: the schema of ``posezoo batch``, one row per person per frame, whatever the
family, and writing files to a local folder (atomically) or any URI pyarrow.fs understands.

Columns (:func:`schema`):

========================  ====================================  =============================================
column                    type                                  meaning
========================  ====================================  =============================================
``source``                string                                the image or video (absolute path, or URI)
``frame``                 int64                                 0 for an image, the frame index in a video
``timestamp``             float64                               seconds into the video (0 for an image)
``width``, ``height``     int32                                 the frame's size in pixels
``model``, ``variant``    string                                which model made the pose
``pose``                  int32                                 the pose's index in its frame (best first)
``track_id``              int64, null                           identity over a video while tracked
``score``                 float32                               the person's score
``presence``              float32, null                         the landmark model's presence (if any)
``box``                   list<float32> (4)                     x0, y0, x1, y1 in pixels
``columns``               list<string>                          what each keypoint row holds (x, y first)
``keypoints``             list<list<float32>> (K x C)           one row per keypoint: x, y pixels, then
                                                                the family's columns (z, visibility, ...)
``world_landmarks``       list<list<float32>> (K x 3), null     metres, when the family gives them
``label``                 string, null                          a classification of the pose (a hand's
                                                                handedness), when the family gives one
``label_score``           float32, null                         its confidence
``parts``                 map<string, list<int32>>              the pose's named keypoint groups (``body``,
                                                                ``left_hand``, ``right_hand``, ``face``):
                                                                part -> [start, stop], its rows of
                                                                ``keypoints`` (``keypoints[start:stop]``),
                                                                or null when the part was not found (its
                                                                rows are NaN)
========================  ====================================  =============================================

``parts`` gives row ranges, not a copy of the rows (the JSON output's ``parts`` holds the rows): a
whole-body row's keypoints are not stored twice. A model without parts has one, ``body`` (all rows).

pyarrow is imported only when a table is built or written (it comes with ``posezoo[parquet]``, which
``posezoo[ray]`` includes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from posezoo.supply.atomic import write_atomically

FIELDS: tuple[tuple[str, str], ...] = (
    ("source", "string"),
    ("frame", "int64"),
    ("timestamp", "float64"),
    ("width", "int32"),
    ("height", "int32"),
    ("model", "string"),
    ("variant", "string"),
    ("pose", "int32"),
    ("track_id", "int64"),
    ("score", "float32"),
    ("presence", "float32"),
    ("box", "list<float32>"),
    ("columns", "list<string>"),
    ("keypoints", "list<list<float32>>"),
    ("world_landmarks", "list<list<float32>>"),
    ("label", "string"),
    ("label_score", "float32"),
    ("parts", "map<string, list<int32>>"),
)


def schema():
    """The pyarrow schema of the pose rows."""
    import pyarrow as pa

    types = {
        "string": pa.string(),
        "int64": pa.int64(),
        "int32": pa.int32(),
        "float64": pa.float64(),
        "float32": pa.float32(),
        "list<float32>": pa.list_(pa.float32()),
        "list<string>": pa.list_(pa.string()),
        "list<list<float32>>": pa.list_(pa.list_(pa.float32())),
        "map<string, list<int32>>": parts_type(),
    }
    return pa.schema([(name, types[kind]) for name, kind in FIELDS])


def parts_type():
    """The ``parts`` column's type: part name -> [start, stop] rows, null when not found."""
    import pyarrow as pa

    return pa.map_(pa.string(), pa.list_(pa.int32()))


class PoseRows:
    """Rows gathered in plain Python and numpy (cheap to add), turned into one Arrow table at the end."""

    def __init__(self, model: str, variant: str):
        self.model = model
        self.variant = variant
        self.rows: list[tuple] = []

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, source: str, frame: int, timestamp: float, size: tuple[int, int], poses: Sequence) -> None:
        """The poses of one frame; ``size`` = (width, height)."""
        for index, p in enumerate(poses):
            world = None if p.world_landmarks is None else np.asarray(p.world_landmarks, np.float32)
            self.rows.append(
                (source, frame, timestamp, size, index, p.track_id, float(p.score),
                 None if p.presence is None else float(p.presence), np.asarray(p.box, np.float32),
                 tuple(p.columns), np.asarray(p.landmarks, np.float32), world, p.label,
                 None if p.label_score is None else float(p.label_score), p.part_ranges())
            )  # fmt: skip

    def truncate(self, length: int) -> None:
        """Forget the rows after the first ``length`` (those of an input that failed part-way)."""
        del self.rows[length:]

    def table(self):
        """A pyarrow Table of :func:`schema` (no rows when nothing was found)."""
        import pyarrow as pa

        sch = schema()
        if not self.rows:
            return sch.empty_table()
        cols = list(zip(*self.rows))
        (source, frame, timestamp, size, pose, track, score, presence, box, columns, keypoints, world, label,
         label_score, parts) = cols  # fmt: skip
        width = [s[0] for s in size]
        height = [s[1] for s in size]
        n = len(self.rows)
        data = {
            "source": pa.array(source, pa.string()),
            "frame": pa.array(frame, pa.int64()),
            "timestamp": pa.array(timestamp, pa.float64()),
            "width": pa.array(width, pa.int32()),
            "height": pa.array(height, pa.int32()),
            "model": pa.array([self.model] * n, pa.string()),
            "variant": pa.array([self.variant] * n, pa.string()),
            "pose": pa.array(pose, pa.int32()),
            "track_id": pa.array(track, pa.int64()),
            "score": pa.array(score, pa.float32()),
            "presence": pa.array(presence, pa.float32()),
            "box": _lists(box),
            "columns": pa.array([list(c) for c in columns], pa.list_(pa.string())),
            "keypoints": _matrices(keypoints),
            "world_landmarks": _matrices(world),
            "label": pa.array(label, pa.string()),
            "label_score": pa.array(label_score, pa.float32()),
            "parts": pa.array(
                [[(name, None if r is None else [int(r[0]), int(r[1])]) for name, r in p.items()] for p in parts],
                parts_type(),
            ),
        }
        return pa.Table.from_pydict(data, schema=sch)


def _offsets(lengths: Sequence[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int32)


def _lists(vectors: Sequence[np.ndarray]):
    """list<float32> from 1-D arrays."""
    import pyarrow as pa

    values = np.concatenate([v.ravel() for v in vectors]).astype(np.float32)
    return pa.ListArray.from_arrays(pa.array(_offsets([v.size for v in vectors])), pa.array(values, pa.float32()))


def _matrices(mats: Sequence[np.ndarray | None]):
    """list<list<float32>> from 2-D arrays (rows of rows), null where an entry is None."""
    import pyarrow as pa

    present = [m for m in mats if m is not None]
    if not present:
        return pa.nulls(len(mats), pa.list_(pa.list_(pa.float32())))
    values = np.concatenate([m.ravel() for m in present]).astype(np.float32)
    inner = pa.ListArray.from_arrays(
        pa.array(_offsets([m.shape[1] for m in present for _ in range(m.shape[0])])), pa.array(values, pa.float32())
    )
    outer_offsets = _offsets([0 if m is None else m.shape[0] for m in mats])
    mask = pa.array([m is None for m in mats]) if len(present) < len(mats) else None
    return pa.ListArray.from_arrays(pa.array(outer_offsets), inner, mask=mask)


# ------------------------------------------------------------------------------------ writing


def join(base: str, rel: str) -> str:
    """``base/rel`` for a folder or a URI prefix."""
    return f"{str(base).rstrip('/')}/{rel.lstrip('/')}"


def put_file(dest: str, write: Callable[[Any], object]) -> None:
    """Write a file at ``dest`` (a local path, or any URI pyarrow.fs understands) with
    ``write(fileobj)``: locally through a temporary file renamed into place; remotely as one upload
    (an object store shows an object only once its upload is complete)."""
    from posezoo.io.items import filesystem, is_uri

    if not is_uri(dest):
        write_atomically(Path(dest), write)
        return
    fs, path = filesystem(dest)
    parent = path.rsplit("/", 1)[0]
    if parent:
        fs.create_dir(parent, recursive=True)
    with fs.open_output_stream(path) as f:
        write(f)


def write_table(table, dest: str) -> None:
    """One Parquet file at ``dest``."""
    import pyarrow.parquet as pq

    put_file(dest, lambda f: pq.write_table(table, f))
