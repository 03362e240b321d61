"""Saved videos: H.264 in .mp4 (written by PyAV's libx264), no FPS counter unless --fps-overlay asks for
it, and a file that a real headless Chromium plays. Real CLI runs over the shared street clip, real
weights from a loopback mirror, the files read back with PyAV and OpenCV, and served from 127.0.0.1 to
Debian's ``chromium`` (the browser part skips, saying why, without it).
"""

from __future__ import annotations

import functools
import http.server
import threading

import cv2
import numpy as np
import pytest

from clitools import one_line_error, posezoo_env, run_posezoo
from mirror import fetched_home
from videotools import read_frames

av = pytest.importorskip("av", reason="PyAV (a core dependency) is not installed")

VIDEO = "street_5frames.mp4"


@pytest.fixture(scope="module")
def env(shared_models, tmp_path_factory):
    root = fetched_home(shared_models, tmp_path_factory.mktemp("videoout"), ("blazepose-full", "--variant", "lite"))
    return posezoo_env(root, POSEZOO_OFFLINE="1")


def read_av(path) -> tuple[str, str, list[np.ndarray]]:
    """(codec, pixel format, frames as BGR) read back with PyAV."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        codec, pix_fmt = stream.codec_context.name, stream.codec_context.pix_fmt
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(stream)]
    return codec, pix_fmt, frames


@pytest.fixture(scope="module")
def videos(env, testdata, tmp_path_factory):
    """The street clip run twice through the real CLI: plain.mp4 (the default) and overlay.mp4 (--fps-overlay)."""
    folder = tmp_path_factory.mktemp("videos")
    clip = testdata / "video" / VIDEO
    for name, extra in (("plain.mp4", []), ("overlay.mp4", ["--fps-overlay"])):
        result = run_posezoo("run", "blazepose-full", "--variant", "lite", "-v", clip, "-s", name, "--no-display",
                             *extra, env=env, cwd=folder)  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "warning" not in result.stderr and "libx264" not in result.stderr, result.stderr  # no encoder chatter
    return folder, read_frames(clip)


def test_saved_mp4_is_h264_with_every_frame_at_the_source_size(videos):
    folder, src = videos
    codec, pix_fmt, frames = read_av(folder / "plain.mp4")
    assert codec == "h264" and pix_fmt == "yuv420p"
    assert len(frames) == len(src) == 5
    assert all(f.shape == src[0].shape for f in frames)
    # OpenCV reads it too (the sink's own read-back check uses it)
    assert len(read_frames(folder / "plain.mp4")) == 5
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []  # no temporary left


def test_saved_video_has_no_fps_counter_unless_asked(videos):
    folder, src = videos
    _, _, plain = read_av(folder / "plain.mp4")
    _, _, overlay = read_av(folder / "overlay.mp4")
    h, w = src[0].shape[:2]
    scale = max(1.0, min(h, w) / 360.0)  # (the corner the counter is drawn in: draw.py's text origin and size)
    corner = (slice(0, int(40 * scale)), slice(0, int(130 * scale)))
    for k in range(5):
        clean = np.abs(plain[k][corner].astype(int) - src[k][corner].astype(int)).mean()
        marked = np.abs(overlay[k][corner].astype(int) - src[k][corner].astype(int)).mean()
        assert clean < 4.0, (k, clean)  # the source's corner, give or take the compression
        assert marked > clean + 8, (k, clean, marked)  # white text on a black outline
        white = ((overlay[k][corner] > 230).all(axis=2) & ~(src[k][corner] > 200).all(axis=2)).sum()
        assert white > 50, (k, white)
    # away from the corner the two runs drew the same poses
    rest = (slice(int(60 * scale), None), slice(None))
    assert np.abs(plain[2][rest].astype(int) - overlay[2][rest].astype(int)).mean() < 2.0


def test_fps_overlay_without_a_saved_video_is_a_usage_error(env, testdata, tmp_path):
    photo = testdata / "images" / "coco_000000000785.jpg"
    result = run_posezoo("run", "blazepose-full", "--variant", "lite", "-i", photo, "--fps-overlay", "--no-display",
                         env=env, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2 and "--fps-overlay" in one_line_error(result)


def test_odd_sized_frames_and_every_h264_container(tmp_path):
    """H.264 4:2:0 needs even sizes: an odd one gets one copied row/column; .m4v and .mov are H.264 too."""
    from posezoo.io.sinks import VideoSink

    for name, size in (("odd.mp4", (65, 49)), ("clip.m4v", (64, 48)), ("clip.mov", (64, 48))):
        sink = VideoSink(tmp_path / name, 12.5, size)
        for i in range(7):
            sink.write(np.full((size[1], size[0], 3), 30 * i, np.uint8))
        sink.close()
        codec, _, frames = read_av(tmp_path / name)
        assert codec == "h264" and len(frames) == 7, name
        assert frames[0].shape[:2] == (size[1] + size[1] % 2, size[0] + size[0] % 2), name
        assert abs(int(frames[6].mean()) - 180) <= 3, name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.m4v", "clip.mov", "odd.mp4"]


NO_AV_SITE = """
import importlib.abc, sys


class _NoAv(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "av":
            raise ImportError(f"No module named {name!r} (blocked by this test)")


sys.meta_path.insert(0, _NoAv())
"""


def test_without_pyav_an_mp4_is_mpeg4_part2_and_one_warning_line(env, testdata, tmp_path):
    """The fallback: PyAV missing (blocked in the run's process by a sitecustomize) still writes the video,
    with OpenCV's MPEG-4 Part 2, and says so in one line naming the fix."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(NO_AV_SITE)
    run_env = dict(env, PYTHONPATH=str(site))
    result = run_posezoo("run", "blazepose-full", "--variant", "lite", "-v", testdata / "video" / VIDEO, "-s", "out.mp4",
                         "--no-display", env=run_env, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and warnings[0].startswith("posezoo: warning: PyAV is not installed"), result.stderr
    assert "pip install" in warnings[0] and "browsers" in warnings[0]
    codec, _, frames = read_av(tmp_path / "out.mp4")  # (read here, where PyAV is not blocked)
    assert codec == "mpeg4" and len(frames) == 5


def test_batch_save_media_videos_are_h264_without_overlay(env, testdata, tmp_path):
    pytest.importorskip("pyarrow", reason="posezoo[parquet] is not installed (the test extra installs it)")
    clips = tmp_path / "clips"
    clips.mkdir()
    (clips / VIDEO).write_bytes((testdata / "video" / VIDEO).read_bytes())
    result = run_posezoo("batch", "blazepose-full", "--variant", "lite", clips, "--out", "out", "--save-media",
                         "--workers", "1", env=env, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    codec, pix_fmt, frames = read_av(tmp_path / "out" / "_media" / VIDEO)
    src = read_frames(clips / VIDEO)
    assert codec == "h264" and pix_fmt == "yuv420p" and len(frames) == len(src) == 5
    assert frames[0].shape == src[0].shape


# ---------------------------------------------------------------------------------------- browser

PAGE = """<!doctype html><html><body>
<video id="v" muted playsinline preload="auto" src="{src}"></video>
</body></html>"""

# what the page saw: loadeddata (or an error), then play() and currentTime moving
PROBE = """new Promise((resolve) => {
  const v = document.getElementById('v');
  const out = () => ({readyState: v.readyState, width: v.videoWidth, height: v.videoHeight,
                      time: v.currentTime, error: v.error ? v.error.code : null});
  const done = (extra) => resolve(Object.assign(out(), extra));
  setTimeout(() => done({timeout: true}), 20000);
  if (v.error) { done({}); return; }
  v.addEventListener('error', () => done({}));
  const start = () => {
    const loaded = out();
    v.addEventListener('timeupdate', () => { if (v.currentTime > 0) done({loaded}); });
    v.play().catch((e) => done({loaded, play: String(e)}));
  };
  if (v.readyState >= 2) start(); else v.addEventListener('loadeddata', start);
})"""


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    from browser import Chromium, chromium_path, write_y4m

    pytest.importorskip("websockets", reason="the browser helper talks DevTools over websockets (the test extra)")
    exe = chromium_path()
    if exe is None:
        pytest.skip("needs Debian's chromium on PATH (apt-get install chromium; the README's test command does)")
    work = tmp_path_factory.mktemp("chromium")
    camera = write_y4m(work / "camera.y4m", [np.zeros((48, 64, 3), np.uint8)] * 2)
    browser = Chromium(exe, work, camera)
    try:
        yield browser.page()
    finally:
        browser.close()


@pytest.fixture
def served(tmp_path):
    """An HTTP server on 127.0.0.1 serving ``tmp_path``."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_saved_mp4_plays_in_headless_chromium(videos, page, served):
    folder, src = videos
    root, url = served
    (root / "plain.mp4").write_bytes((folder / "plain.mp4").read_bytes())
    (root / "page.html").write_text(PAGE.format(src="plain.mp4"))
    page.navigate(f"{url}/page.html")
    page.wait_for("document.readyState === 'complete' && !!document.getElementById('v')", what="the page")
    seen = page.evaluate(PROBE)
    h, w = src[0].shape[:2]
    assert seen["error"] is None and not seen.get("timeout") and "play" not in seen, seen
    assert seen["loaded"]["readyState"] >= 2 and (seen["loaded"]["width"], seen["loaded"]["height"]) == (w, h), seen
    assert seen["time"] > 0, seen


def test_chromium_refuses_the_old_mpeg4_part2_mp4(videos, page, served):
    """The control: what the sink wrote before (OpenCV's mp4v) does not play, so the test above can fail."""
    folder, src = videos
    root, url = served
    h, w = src[0].shape[:2]
    writer = cv2.VideoWriter(str(root / "old.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (w, h))
    for frame in src:
        writer.write(frame)
    writer.release()
    (root / "page.html").write_text(PAGE.format(src="old.mp4"))
    page.navigate(f"{url}/page.html")
    page.wait_for("document.readyState === 'complete' && !!document.getElementById('v')", what="the page")
    seen = page.evaluate(PROBE)
    assert seen["error"] is not None or seen.get("timeout"), seen
