"""``posezoo bench``: per-stage milliseconds of the video pipeline, static and tracking, against the
models' own onnxruntime time measured in the same run. Works for a model of any family.

Stages: ``read`` (decode a video frame, or render a synthetic pan-and-zoom frame from an image),
``preprocess`` (colour conversion, crops and letterboxes into input tensors), one stage per model file
role (the onnxruntime calls inside the pipeline, e.g. ``detector`` and ``landmark``, or ``model``),
``decode`` (the family's post-processing), ``other`` (everything else in the pipeline: ROIs,
smoothing, tracking, building poses), then ``draw``. ``pipeline`` is the time of one ``predict``
(static) or ``tracker.update`` (tracking) call. A family reports its stages through the clock of
:meth:`posezoo.inference.model.PoseModel.timed`; the sessions report their own runs.

After each pipeline frame the bench runs every model that frame ran, bare (``InferenceSession.run``
on a real input captured from the pipeline, fresh outputs every call), and times it. Interleaving the
two keeps the comparison fair on a busy machine. ``ort_ms`` = the sum over the models of their median
bare time times their runs per frame (in tracking mode the detector of a two-stage model runs on few
frames, so it counts little); ``ratio`` = median pipeline ms / ``ort_ms``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from posezoo.errors import InputError
from posezoo.inference.timing import StageClock

MODES = ("static", "tracking")
CLIP_SIZE = (640, 480)  # width, height of synthetic clips
MEASURED = ("preprocess", "decode")  # the family's own stages; the session roles come between them


def stages_of(model) -> tuple[str, ...]:
    """The bench stages of ``model``: read, preprocess, its session roles, decode, other, draw."""
    return ("read", "preprocess", *model.sessions, "decode", "other", "draw")


# ------------------------------------------------------------------------------------ frames


def pan_zoom_matrix(image_size: tuple[int, int], out_size: tuple[int, int], t: float) -> np.ndarray:
    """2x3 matrix (image -> frame) of a slow pan and zoom over an image at phase ``t`` in [0, 1]:
    the view starts on the whole image and zooms in to ~75 % while drifting left and right."""
    iw, ih = image_size
    ow, oh = out_size
    fit = min(ow / iw, oh / ih)
    zoom = fit * (1.0 + 0.35 * (0.5 - 0.5 * np.cos(2 * np.pi * t)))
    # the view centre wanders over the image (kept inside the image at this zoom)
    span_x = max(0.0, iw - ow / zoom) * 0.5
    span_y = max(0.0, ih - oh / zoom) * 0.5
    cx = iw * 0.5 + span_x * np.sin(2 * np.pi * t)
    cy = ih * 0.5 + span_y * np.sin(4 * np.pi * t) * 0.5
    return np.array([[zoom, 0.0, ow * 0.5 - zoom * cx], [0.0, zoom, oh * 0.5 - zoom * cy]])


def pan_zoom_frames(
    image: np.ndarray, count: int | None, size: tuple[int, int] = CLIP_SIZE, period: int = 300, reuse: bool = True
) -> Iterator[np.ndarray]:
    """Frames (BGR, ``size`` = (w, h)) panning and zooming over ``image``; one cycle every ``period``
    frames; endless when ``count`` is None. With ``reuse`` every frame is written into one buffer."""
    buf = np.empty((size[1], size[0], 3), np.uint8)
    ih, iw = image.shape[:2]
    i = 0
    while count is None or i < count:
        m = pan_zoom_matrix((iw, ih), size, (i % period) / period)
        out = buf if reuse else None
        yield cv2.warpAffine(image, m, size, dst=out, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        i += 1


def write_clip(path: Path, image: np.ndarray, count: int, size: tuple[int, int] = CLIP_SIZE, fps: float = 30.0) -> Path:
    """Write a pan-and-zoom clip over ``image`` (mp4v for .mp4, MJPG for .avi)."""
    path = Path(path)
    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if path.suffix.lower() == ".avi" else "mp4v"))
    writer = cv2.VideoWriter(str(path), fourcc, fps, size)
    if not writer.isOpened():
        raise InputError(f"cannot write video {path}", "use a .mp4 or .avi path in a writable folder")
    try:
        for frame in pan_zoom_frames(image, count, size):
            writer.write(frame)
    finally:
        writer.release()
    return path


def video_frames(path: str) -> Iterator[np.ndarray]:
    """Frames of a video file, looping from the start when it ends (endless)."""
    from posezoo.io.sources import VideoSource

    while True:
        source = VideoSource(path)
        try:
            for frame in source:
                yield frame.image
        finally:
            source.close()


# ------------------------------------------------------------------------------------ report


@dataclass
class ModeResult:
    mode: str
    frames: int
    stages_ms: dict[str, float]  # mean per frame
    pipeline_ms: float  # median per frame
    pipeline_mean_ms: float
    total_ms: float  # mean per frame: read + pipeline + draw
    bare_ms: dict[str, float | None]  # role -> median bare-model time, interleaved with this mode's frames
    runs: dict[str, int]  # role -> model runs over the timed frames
    poses: float  # mean poses per frame

    @property
    def ort_ms(self) -> float:
        """The bare time of the models one frame of this mode needs: sum of median bare time x runs
        per frame."""
        return sum((self.bare_ms.get(r) or 0.0) * n / self.frames for r, n in self.runs.items())

    @property
    def ratio(self) -> float:
        return self.pipeline_ms / self.ort_ms if self.ort_ms > 0 else float("nan")

    @property
    def fps(self) -> float:
        """Pipeline frames per second (median)."""
        return 1e3 / self.pipeline_ms if self.pipeline_ms > 0 else float("inf")

    @property
    def total_fps(self) -> float:
        """End to end, reading and drawing included (mean)."""
        return 1e3 / self.total_ms if self.total_ms > 0 else float("inf")

    def to_dict(self) -> dict:
        return {
            "mode": self.mode,
            "frames": self.frames,
            "stages_ms": {k: round(v, 3) for k, v in self.stages_ms.items()},
            "pipeline_ms": round(self.pipeline_ms, 3),
            "pipeline_mean_ms": round(self.pipeline_mean_ms, 3),
            "total_ms": round(self.total_ms, 3),
            "fps": round(self.fps, 2),
            "total_fps": round(self.total_fps, 2),
            "bare_ms": {k: None if v is None else round(v, 3) for k, v in self.bare_ms.items()},
            "runs": dict(self.runs),
            "ort_ms": round(self.ort_ms, 3),
            "ratio": round(self.ratio, 3),
            "poses_per_frame": round(self.poses, 3),
        }


@dataclass
class BenchReport:
    model: str
    variant: str | None
    provider: str
    source: str
    frame_size: tuple[int, int]
    threads: int
    stages: tuple[str, ...]
    roles: tuple[str, ...]
    modes: dict[str, ModeResult] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "variant": self.variant,
            "provider": self.provider,
            "source": self.source,
            "frame_size": list(self.frame_size),
            "threads": self.threads,
            "stages": list(self.stages),
            "modes": {k: v.to_dict() for k, v in self.modes.items()},
        }

    def table(self) -> str:
        """A markdown table: one row per mode."""
        head = ["mode", *self.stages, "pipeline", "fps", *(f"ORT {r}" for r in self.roles), "ORT/frame", "ratio", "runs"]
        rows = []
        for r in self.modes.values():
            bare = ["-" if r.bare_ms.get(role) is None else f"{r.bare_ms[role]:.2f}" for role in self.roles]
            runs = ", ".join(f"{role} {r.runs.get(role, 0)}/{r.frames}" for role in self.roles)
            rows.append(
                [r.mode, *(f"{r.stages_ms[s]:.2f}" for s in self.stages), f"{r.pipeline_ms:.2f}", f"{r.fps:.1f}",
                 *bare, f"{r.ort_ms:.2f}", f"{r.ratio:.3f}", runs]
            )  # fmt: skip
        lines = [
            f"{self.model} ({self.variant}) on {self.provider}, {self.threads} threads, "
            f"{self.frame_size[0]}x{self.frame_size[1]} frames from {self.source}; ms per frame "
            "(stages: mean; pipeline and ORT: median; ORT/frame: the bare models a frame ran; "
            "ratio = pipeline / ORT/frame)",
            "",
            "| " + " | ".join(head) + " |",
            "|" + "|".join("---" for _ in head) + "|",
        ]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)


# ------------------------------------------------------------------------------------ bench


def bench_mode(
    model,
    frames: Iterator[np.ndarray],
    mode: str,
    *,
    count: int = 200,
    warmup: int = 10,
    draw: bool = True,
    bare: bool = True,
    max_poses: int = 1,
) -> ModeResult:
    """Time ``count`` frames (after ``warmup``) of one mode, interleaving bare-model runs."""
    from posezoo.io.draw import draw_poses

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if count < 1:
        raise InputError(f"--frames must be at least 1, got {count}")
    stages = stages_of(model)
    sessions = model.sessions
    clock = StageClock()
    sums = dict.fromkeys(stages, 0.0)
    pipeline: list[float] = []
    totals: list[float] = []
    bare_times: dict[str, list[float]] = {role: [] for role in sessions}
    runs = dict.fromkeys(sessions, 0)
    n_poses = 0
    for s in sessions.values():
        s.last_input = None
    with model.timed(clock):
        tracker = model.tracker(max_poses=max_poses) if mode == "tracking" else None
        for i in range(warmup + count):
            clock.clear()
            before = {role: s.runs for role, s in sessions.items()}
            start = time.perf_counter()
            frame = next(frames, None)
            if frame is None:
                raise InputError("the input ran out of frames")
            t_read = time.perf_counter()
            if tracker is not None:
                poses = tracker.update(frame)
            else:
                poses = model.predict(frame, max_poses=max_poses)
            t_pipe = time.perf_counter()
            if draw:
                draw_poses(frame, poses, model.skeleton)
            end = time.perf_counter()
            ran = [role for role, s in sessions.items() if s.runs > before[role]]
            if i < warmup:
                continue
            frame_t = {s: clock.seconds.get(s, 0.0) for s in stages}
            frame_t["read"] = t_read - start
            frame_t["draw"] = end - t_pipe
            measured = sum(frame_t[s] for s in (*MEASURED, *sessions))
            frame_t["other"] = max(0.0, (t_pipe - t_read) - measured)
            for s in stages:
                sums[s] += frame_t[s]
            for role in sessions:
                runs[role] += sessions[role].runs - before[role]
            pipeline.append((t_pipe - t_read) * 1e3)
            totals.append((end - start) * 1e3)
            n_poses += len(poses)
            if bare:
                for role in ran:  # the models this frame ran, in the pipeline's order
                    bare_times[role].append(sessions[role].time_bare())
    return ModeResult(
        mode=mode,
        frames=count,
        stages_ms={s: sums[s] * 1e3 / count for s in stages},
        pipeline_ms=statistics.median(pipeline),
        pipeline_mean_ms=statistics.fmean(pipeline),
        total_ms=statistics.fmean(totals),
        bare_ms={role: statistics.median(t) if t else None for role, t in bare_times.items()},
        runs=runs,
        poses=n_poses / count,
    )


@dataclass
class FrameInput:
    """Where bench frames come from: ``frames()`` starts an endless iterator."""

    source: str
    size: tuple[int, int]  # (width, height)
    frames: Callable[[], Iterator[np.ndarray]]


def open_input(image: str | Path | np.ndarray | None = None, video: str | Path | None = None) -> FrameInput:
    """Check and open the bench input (raises InputError): a video file (looped), or a 640x480
    pan-and-zoom clip over an image (default: the bundled sample photo)."""
    from posezoo.io.sources import read_image, sample_image_path

    if image is not None and video is not None:
        raise InputError("give either an image or a video to bench, not both")
    if video is not None:
        probe = next(video_frames(str(video)))
        return FrameInput(str(video), (probe.shape[1], probe.shape[0]), lambda: video_frames(str(video)))
    if image is None:
        image = sample_image_path()
    if isinstance(image, np.ndarray):
        picture, source = image, "an image array"
    else:
        picture, source = read_image(Path(image)), f"a pan-and-zoom clip over {Path(image).name}"
    return FrameInput(source, CLIP_SIZE, lambda: pan_zoom_frames(picture, None, CLIP_SIZE))


def run_bench(
    model,
    frames_in: FrameInput | None = None,
    *,
    frames: int = 200,
    warmup: int = 10,
    modes: tuple[str, ...] = MODES,
    draw: bool = True,
    model_name: str | None = None,
) -> BenchReport:
    """Bench ``model`` (a :class:`posezoo.inference.model.PoseModel`) on ``frames_in`` (default: a clip over the
    bundled sample) in each of ``modes``, ``frames`` timed frames each after ``warmup`` untimed ones."""
    from posezoo.inference.runtime import session_options

    if frames_in is None:
        frames_in = open_input()
    report = BenchReport(
        model=model_name or model.name,
        variant=model.variant,
        provider=model.provider,
        source=frames_in.source,
        frame_size=frames_in.size,
        threads=session_options().intra_op_num_threads,
        stages=stages_of(model),
        roles=tuple(model.sessions),
    )
    for mode in modes:
        report.modes[mode] = bench_mode(model, frames_in.frames(), mode, count=frames, warmup=warmup, draw=draw)
    return report
