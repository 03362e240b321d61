"""``posezoo bench``: per-stage milliseconds of the video pipeline, static and tracking, against the
models' own onnxruntime time measured in the same run.

Stages: ``read`` (decode a video frame, or render a synthetic pan-and-zoom frame from an image),
``preprocess`` (BGR->RGB, the detector's letterbox, the landmark crop, into their tensors),
``detector`` / ``landmark`` (the onnxruntime calls inside the pipeline), ``decode`` (the detector's
decode + NMS, the landmark decode + heatmap refinement) and ``other`` (everything else in the
pipeline: ROIs, smoothing, building poses), then ``draw``. ``pipeline`` is the time of one
``predict`` (static) or ``Tracker.update`` (tracking) call.

Between pipeline frames the bench runs the bare models (``InferenceSession.run`` on a real input
captured from the pipeline, fresh outputs every call) and times them: ``ort_detector`` /
``ort_landmark``. Interleaving the two keeps the comparison fair on a busy machine. ``ratio`` =
median pipeline ms / median bare-model ms of the models a frame needs (detector + landmark in
static mode, landmark in tracking mode).
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

STAGES = ("read", "preprocess", "detector", "landmark", "decode", "other", "draw")
MODES = ("static", "tracking")
CLIP_SIZE = (640, 480)  # width, height of synthetic clips


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
    from posezoo.sources import VideoSource

    while True:
        source = VideoSource(path)
        try:
            for frame in source:
                yield frame.image
        finally:
            source.close()


# ------------------------------------------------------------------------------------ timing


class _Clock:
    """Accumulates seconds per stage for the current frame."""

    def __init__(self) -> None:
        self.frame: dict[str, float] = dict.fromkeys(STAGES, 0.0)

    def clear(self) -> None:
        for k in self.frame:
            self.frame[k] = 0.0

    def wrap(self, stage: str, fn: Callable) -> Callable:
        frame = self.frame

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                frame[stage] += time.perf_counter() - start

        return timed


class _TimedSession:
    """Stands in for a posezoo.runtime.Session: its ``run*`` methods are timed, the first input kept."""

    def __init__(self, session, clock: _Clock, stage: str):
        self._session = session
        self._clock = clock
        self._stage = stage
        self.last_input: np.ndarray | None = None

    def __getattr__(self, name):  # only for names not set on this object
        attr = getattr(self._session, name)
        if not (name.startswith("run") and callable(attr)):
            return attr
        frame, stage = self._clock.frame, self._stage

        def timed(tensor, *args, **kwargs):
            if self.last_input is None:
                self.last_input = np.array(tensor, copy=True)
            start = time.perf_counter()
            try:
                return attr(tensor, *args, **kwargs)
            finally:
                frame[stage] += time.perf_counter() - start

        return timed


class _Instrumented:
    """Context manager: time the stages of one PoseEstimator (instance attributes; removed on exit)."""

    def __init__(self, estimator, clock: _Clock):
        self.est = estimator
        self.clock = clock

    def __enter__(self):
        est, clock = self.est, self.clock
        self._saved = (est._det, est._lm)
        self.det = est._det = _TimedSession(est._det, clock, "detector")
        self.lm = est._lm = _TimedSession(est._lm, clock, "landmark")
        est.to_rgb = clock.wrap("preprocess", type(est).to_rgb.__get__(est))
        est._det_stage.preprocess = clock.wrap("preprocess", type(est._det_stage).preprocess.__get__(est._det_stage))
        est._lm_stage.preprocess = clock.wrap("preprocess", type(est._lm_stage).preprocess.__get__(est._lm_stage))
        est._det_stage.postprocess = clock.wrap("decode", type(est._det_stage).postprocess.__get__(est._det_stage))
        est._lm_stage.decode = clock.wrap("decode", type(est._lm_stage).decode.__get__(est._lm_stage))
        return self

    def __exit__(self, *exc):
        est = self.est
        est._det, est._lm = self._saved
        for obj, name in ((est, "to_rgb"), (est._det_stage, "preprocess"), (est._lm_stage, "preprocess"),
                          (est._det_stage, "postprocess"), (est._lm_stage, "decode")):  # fmt: skip
            obj.__dict__.pop(name, None)
        return False


def _bare_runner(session, tensor: np.ndarray) -> Callable[[], float]:
    """A closure timing one plain ``InferenceSession.run(None, feed)`` of a posezoo Session (ms)."""
    sess = session._sess
    feed = {session.input_name: np.ascontiguousarray(tensor)}

    def once() -> float:
        start = time.perf_counter()
        sess.run(None, feed)
        return (time.perf_counter() - start) * 1e3

    return once


# ------------------------------------------------------------------------------------ report


@dataclass
class ModeResult:
    mode: str
    frames: int
    stages_ms: dict[str, float]  # mean per frame
    pipeline_ms: float  # median per frame
    pipeline_mean_ms: float
    total_ms: float  # mean per frame: read + pipeline + draw
    ort_detector_ms: float | None  # median bare-model time, interleaved with this mode's frames
    ort_landmark_ms: float | None
    detector_runs: int
    landmark_runs: int
    poses: float  # mean poses per frame

    @property
    def ort_ms(self) -> float:
        """The bare time of the models one frame of this mode needs."""
        lm = self.ort_landmark_ms or 0.0
        return lm + (self.ort_detector_ms or 0.0) if self.mode == "static" else lm

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
            "ort_detector_ms": None if self.ort_detector_ms is None else round(self.ort_detector_ms, 3),
            "ort_landmark_ms": None if self.ort_landmark_ms is None else round(self.ort_landmark_ms, 3),
            "ort_ms": round(self.ort_ms, 3),
            "ratio": round(self.ratio, 3),
            "detector_runs": self.detector_runs,
            "landmark_runs": self.landmark_runs,
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
    modes: dict[str, ModeResult] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "variant": self.variant,
            "provider": self.provider,
            "source": self.source,
            "frame_size": list(self.frame_size),
            "threads": self.threads,
            "modes": {k: v.to_dict() for k, v in self.modes.items()},
        }

    def table(self) -> str:
        """A markdown table: one row per mode."""
        head = ["mode", *STAGES, "pipeline", "fps", "ORT det", "ORT lm", "ratio", "det runs"]
        rows = []
        for r in self.modes.values():
            det = "-" if r.ort_detector_ms is None or r.mode == "tracking" else f"{r.ort_detector_ms:.2f}"
            rows.append(
                [r.mode, *(f"{r.stages_ms[s]:.2f}" for s in STAGES), f"{r.pipeline_ms:.2f}", f"{r.fps:.1f}",
                 det, f"{r.ort_landmark_ms:.2f}", f"{r.ratio:.3f}", f"{r.detector_runs}/{r.frames}"]
            )  # fmt: skip
        lines = [
            f"{self.model} ({self.variant}) on {self.provider}, {self.threads} threads, "
            f"{self.frame_size[0]}x{self.frame_size[1]} frames from {self.source}; ms per frame "
            "(stages: mean; pipeline and ORT: median; ratio = pipeline / ORT of the models a frame needs)",
            "",
            "| " + " | ".join(head) + " |",
            "|" + "|".join("---" for _ in head) + "|",
        ]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)


# ------------------------------------------------------------------------------------ bench


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def bench_mode(
    estimator,
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
    from posezoo.draw import draw_poses

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if count < 1:
        raise InputError(f"--frames must be at least 1, got {count}")
    clock = _Clock()
    skeleton = estimator.spec.skeleton
    sums = dict.fromkeys(STAGES, 0.0)
    pipeline: list[float] = []
    totals: list[float] = []
    ort_det: list[float] = []
    ort_lm: list[float] = []
    n_poses = 0
    with _Instrumented(estimator, clock) as inst:
        tracker = estimator.tracker(max_poses=max_poses) if mode == "tracking" else None
        run_det = run_lm = None
        det_runs = lm_runs = 0
        for i in range(warmup + count):
            if tracker is not None and i == warmup:
                det_runs, lm_runs = -tracker.detector_runs, -tracker.landmark_runs
            clock.clear()
            start = time.perf_counter()
            frame = next(frames, None)
            if frame is None:
                raise InputError("the input ran out of frames")
            t_read = time.perf_counter()
            if tracker is not None:
                poses = tracker.update(frame)
            else:
                poses = estimator.predict(frame, max_poses=max_poses)
            t_pipe = time.perf_counter()
            if draw:
                draw_poses(frame, poses, skeleton)
            end = time.perf_counter()
            if i < warmup:
                continue
            frame_t = clock.frame
            frame_t["read"] = t_read - start
            frame_t["draw"] = end - t_pipe
            measured = sum(frame_t[s] for s in ("preprocess", "detector", "landmark", "decode"))
            frame_t["other"] = max(0.0, (t_pipe - t_read) - measured)
            for s in STAGES:
                sums[s] += frame_t[s]
            pipeline.append((t_pipe - t_read) * 1e3)
            totals.append((end - start) * 1e3)
            n_poses += len(poses)
            if bare:
                if run_lm is None and inst.lm.last_input is not None:
                    run_lm = _bare_runner(estimator._lm, inst.lm.last_input)
                if run_det is None and inst.det.last_input is not None:
                    run_det = _bare_runner(estimator._det, inst.det.last_input)
                # the pipeline's order: the detector (static), then the landmark model
                if run_det is not None and mode == "static":
                    ort_det.append(run_det())
                if run_lm is not None:
                    ort_lm.append(run_lm())
        if tracker is not None:
            det_runs += tracker.detector_runs
            lm_runs += tracker.landmark_runs
        else:
            det_runs, lm_runs = count, n_poses
    return ModeResult(
        mode=mode,
        frames=count,
        stages_ms={s: sums[s] * 1e3 / count for s in STAGES},
        pipeline_ms=statistics.median(pipeline),
        pipeline_mean_ms=statistics.fmean(pipeline),
        total_ms=statistics.fmean(totals),
        ort_detector_ms=_median(ort_det),
        ort_landmark_ms=_median(ort_lm),
        detector_runs=det_runs,
        landmark_runs=lm_runs,
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
    from posezoo.sources import read_image, sample_image_path

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
    estimator,
    frames_in: FrameInput | None = None,
    *,
    frames: int = 200,
    warmup: int = 10,
    modes: tuple[str, ...] = MODES,
    draw: bool = True,
    model_name: str | None = None,
) -> BenchReport:
    """Bench ``estimator`` on ``frames_in`` (default: a clip over the bundled sample) in each of
    ``modes``, ``frames`` timed frames each after ``warmup`` untimed ones."""
    from posezoo.runtime import session_options

    if frames_in is None:
        frames_in = open_input()
    report = BenchReport(
        model=model_name or estimator.spec.name,
        variant=estimator.variant,
        provider=estimator.provider,
        source=frames_in.source,
        frame_size=frames_in.size,
        threads=session_options().intra_op_num_threads,
    )
    for mode in modes:
        report.modes[mode] = bench_mode(estimator, frames_in.frames(), mode, count=frames, warmup=warmup, draw=draw)
    return report
