"""The page at ``/`` in a real headless Chromium: a fake camera plays a clip made from a shared video,
the page streams it to the server, poses come back and the skeleton is drawn in posezoo's colours; a
photo given to the page's file input is sent to the REST route and drawn too.

Needs Debian's ``chromium`` (the README's test command installs it); skips, saying so, without it.
"""

from __future__ import annotations

import os
import shutil

import cv2
import pytest

pytest.importorskip("fastapi", reason="posezoo[serve] is not installed (the test extra installs it)")
pytest.importorskip("websockets", reason="posezoo[serve] is not installed (the test extra installs it)")

from browser import Chromium, chromium_path, write_y4m  # noqa: E402
from clitools import posezoo_env  # noqa: E402
from mirror import fetched_home  # noqa: E402
from servetools import ServerProcess  # noqa: E402


@pytest.fixture(scope="module")
def chromium_exe() -> str:
    exe = chromium_path()
    if exe is None:
        pytest.skip("needs Debian's chromium on PATH (apt-get install chromium; the README's test command does)")
    return exe


@pytest.fixture(scope="module")
def server(shared_models, tmp_path_factory, chromium_exe):
    root = fetched_home(shared_models, tmp_path_factory.mktemp("page"), ("blazepose-full", "--variant", "lite"), ("movenet-lightning",), link=True)
    srv = ServerProcess(["blazepose-full:lite", "movenet-lightning", "--workers", "1"], posezoo_env(root, POSEZOO_OFFLINE="1"))
    yield srv
    assert srv.stop() == 0, srv.stderr


@pytest.fixture(scope="module")
def camera(testdata, tmp_path_factory):
    """A Y4M clip, 640x360, 30 fps: the shared soccer clip's 5 frames forward and back, three times."""
    cap = cv2.VideoCapture(str(testdata / "video" / "soccer_5frames.mp4"))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(cv2.resize(frame, (640, 360), interpolation=cv2.INTER_AREA))
    cap.release()
    loop = (frames + frames[::-1]) * 3
    return write_y4m(tmp_path_factory.mktemp("camera") / "soccer.y4m", loop)


@pytest.fixture(scope="module")
def page(chromium_exe, camera, tmp_path_factory):
    browser = Chromium(chromium_exe, tmp_path_factory.mktemp("chromium"), camera)
    try:
        yield browser.page()
    finally:
        browser.close()


# pixels of the overlay canvas near a CSS colour (#rrggbb), counted in the page
COUNT = """(() => {{
  const c = document.getElementById('overlay');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const want = '{color}'.match(/[0-9a-f]{{2}}/g).map((h) => parseInt(h, 16));
  let n = 0;
  for (let i = 0; i < d.length; i += 4)
    if (d[i + 3] > 200 && Math.abs(d[i] - want[0]) < 24 && Math.abs(d[i + 1] - want[1]) < 24 && Math.abs(d[i + 2] - want[2]) < 24) n++;
  return n;
}})()"""


def _colors(page) -> dict:
    return page.evaluate("window.posezoo.colors")


def test_the_page_streams_the_camera_and_draws_the_skeleton(server, page, tmp_path):
    page.navigate(f"{server.url}/?model=blazepose-full:lite&autostart=1")
    page.wait_for("window.posezoo && window.posezoo.results >= 8 && window.posezoo.posesSeen >= 5", timeout=90, what="poses from the stream")
    state = page.evaluate("({sent: posezoo.sent, results: posezoo.results, latency: posezoo.latency, modelMs: posezoo.modelMs, error: posezoo.lastError, model: posezoo.model.id})")
    assert state["model"] == "blazepose-full:lite" and state["error"] == ""
    assert state["latency"] > 0 and state["modelMs"] > 0
    colors = _colors(page)
    left = page.evaluate(COUNT.format(color=colors["left"]))
    right = page.evaluate(COUNT.format(color=colors["right"]))
    assert left > 30 and right > 30, (left, right)
    assert page.evaluate("document.getElementById('fps').textContent") not in ("", "-")
    assert page.evaluate("document.getElementById('latency').textContent") not in ("", "-")
    shot = page.screenshot(tmp_path / "page.png")
    if os.environ.get("POSEZOO_SCREENSHOTS"):  # where a developer wants to look at it
        shutil.copy(shot, os.path.join(os.environ["POSEZOO_SCREENSHOTS"], "serve_page_camera.png"))
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[0] > 300


def test_a_photo_given_to_the_page_is_posted_and_drawn(server, page, testdata, tmp_path):
    before = page.evaluate("posezoo.photos || 0")
    page.set_files("#file", [testdata / "images" / "coco_000000000785.jpg"])
    page.wait_for(f"posezoo.photos > {before}", timeout=60, what="the photo's poses")
    assert page.evaluate("posezoo.lastPoses.length") == 1
    assert page.evaluate("posezoo.ws === null && posezoo.stream === null")  # the camera stopped
    size = page.evaluate("[document.getElementById('overlay').width, document.getElementById('overlay').height]")
    assert size == [640, 425]
    colors = _colors(page)
    assert page.evaluate(COUNT.format(color=colors["left"])) > 30
    assert page.evaluate(COUNT.format(color=colors["right"])) > 30
    shot = page.screenshot(tmp_path / "photo.png")
    if os.environ.get("POSEZOO_SCREENSHOTS"):
        shutil.copy(shot, os.path.join(os.environ["POSEZOO_SCREENSHOTS"], "serve_page_photo.png"))
