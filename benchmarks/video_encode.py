"""Encoding cost of a saved video, per frame: posezoo's VideoSink (H.264 through PyAV for .mp4, Motion
JPEG through OpenCV for .avi), OpenCV's MPEG-4 Part 2 (what .mp4 was before, and the fallback without
PyAV) and, when it is installed, imageio-ffmpeg's libx264 (the alternative weighed against PyAV: an
FFmpeg executable fed through a pipe). Frames: the bundled sample panning and zooming at 640x480.
Prints the CPU, the file sizes and the medians of ``--repeat`` runs, and what each library's wheel
ships (H.264 encoders, installed size).

    python benchmarks/video_encode.py [--frames 150] [--repeat 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from posezoo.drivers.bench import pan_zoom_frames
from posezoo.io.sinks import VideoSink, h264_encoder
from posezoo.io.sources import sample_image_path
from machine import cpu_model  # benchmarks/machine.py

def cpu() -> str:
    return f"{cpu_model()} ({os.cpu_count()} logical CPUs)"


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def sink(path: Path, frames: list[np.ndarray]) -> None:
    out = VideoSink(path, 30.0, (frames[0].shape[1], frames[0].shape[0]))
    for f in frames:
        out.write(f)
    out.close()


def opencv_mp4v(path: Path, frames: list[np.ndarray]) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (frames[0].shape[1], frames[0].shape[0]))
    for f in frames:
        writer.write(f)
    writer.release()


def imageio_x264(path: Path, frames: list[np.ndarray]) -> None:
    import imageio_ffmpeg

    h, w = frames[0].shape[:2]
    writer = imageio_ffmpeg.write_frames(str(path), (w, h), fps=30, codec="libx264", pix_fmt_in="bgr24",
                                         output_params=["-preset", "veryfast", "-crf", "23"], macro_block_size=16)  # fmt: skip
    writer.send(None)
    for f in frames:
        writer.send(f)
    writer.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    image = cv2.imread(str(sample_image_path()))
    frames = [f for f in pan_zoom_frames(image, args.frames, reuse=False)]
    cases = [("VideoSink .mp4 (H.264, PyAV libx264 veryfast crf 23)", "a.mp4", sink),
             ("VideoSink .avi (Motion JPEG, OpenCV)", "b.avi", sink),
             ("OpenCV mp4v (MPEG-4 Part 2: before / fallback)", "c.mp4", opencv_mp4v)]  # fmt: skip
    if importlib.util.find_spec("imageio_ffmpeg"):
        cases.append(("imageio-ffmpeg libx264 veryfast crf 23 (a pipe)", "d.mp4", imageio_x264))
    print(f"CPU: {cpu()}; {len(frames)} frames of 640x480; medians of {args.repeat}")
    av, why = h264_encoder()
    if av is not None:
        root = Path(av.__file__).parent
        libs = root.parent / "av.libs"
        print(f"PyAV {av.__version__}: H.264 encoders {[c for c in ('libx264', 'libopenh264') if c in av.codecs_available]}, "
              f"installed {(folder_size(root) + (folder_size(libs) if libs.is_dir() else 0)) / 1e6:.0f} MB")  # fmt: skip
    else:
        print(f"PyAV: {why}")
    if importlib.util.find_spec("imageio_ffmpeg"):
        import imageio_ffmpeg

        print(f"imageio-ffmpeg {imageio_ffmpeg.__version__}: installed "
              f"{folder_size(Path(imageio_ffmpeg.__file__).parent) / 1e6:.0f} MB (an FFmpeg executable)")  # fmt: skip
    print("\n| writer | ms/frame | file KB |\n| --- | ---: | ---: |")
    with tempfile.TemporaryDirectory() as tmp:
        for name, file, write in cases:
            times = []
            for _ in range(args.repeat):
                path = Path(tmp) / file
                start = time.perf_counter()
                write(path, frames)
                times.append((time.perf_counter() - start) * 1000 / len(frames))
            print(f"| {name} | {statistics.median(times):.2f} | {path.stat().st_size // 1024} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
