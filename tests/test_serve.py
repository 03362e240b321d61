"""``posezoo serve``: the real command on 127.0.0.1, real HTTP and WebSocket clients, real models.

One server (blazepose-full:lite and movenet-lightning, small limits) serves most tests of this module;
a second one with an API key and short timeouts, and a third one stopped by SIGTERM, test what needs
their own process. Weights come from a mirror of ../shared through the real ``posezoo fetch``.
"""

from __future__ import annotations

import json
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi", reason="posezoo[serve] is not installed (the test extra installs it)")
import requests  # noqa: E402
from websockets.exceptions import ConnectionClosed, InvalidStatus  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

from clitools import one_line_error, posezoo_env, run_posezoo  # noqa: E402
from mirror import fetched_home  # noqa: E402
from servetools import ServerProcess, assert_json_error, metric, raw_http  # noqa: E402
from videotools import read_frames  # noqa: E402

MODELS = ["blazepose-full:lite", "movenet-lightning"]
LIMITS = ["--workers", "2", "--max-queue", "2", "--max-body", "2000000", "--max-pixels", "20000000", "--max-fps", "10"]
PHOTOS = [
    "aic_ff945ae2e729f24eea992814639d59b3bdec8bd8.jpg",
    "coco_000000000785.jpg",
    "h36m_S1_Directions_1.54138969_000001.jpg",
    "mpii_052475643.jpg",
]


@pytest.fixture(scope="module")
def home(shared_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    return fetched_home(shared_models, root, ("blazepose-full", "--variant", "lite"), ("movenet-lightning",), link=True)


@pytest.fixture(scope="module")
def env(home):
    return posezoo_env(home, POSEZOO_OFFLINE="1")


@pytest.fixture(scope="module")
def server(env):
    srv = ServerProcess([*MODELS, *LIMITS], env)
    yield srv
    assert srv.stop() == 0, srv.stderr
    assert "Traceback" not in srv.stderr, srv.stderr


@pytest.fixture(scope="module")
def photos(testdata) -> Path:
    return testdata / "images"


@pytest.fixture(scope="module")
def clip_frames(testdata) -> list[np.ndarray]:
    frames = read_frames(testdata / "video" / "soccer_5frames.mp4")
    assert len(frames) == 5
    return frames


def post(server, model: str, data: bytes, **params):
    return requests.post(f"{server.url}/v1/models/{model}/predict", params=params, data=data, timeout=60)


# ------------------------------------------------------------------------------------------- REST


@pytest.fixture(scope="module")
def cli_records(env, photos, tmp_path_factory):
    """``posezoo run MODEL -i PHOTO... --json --jobs 1 -s DIR`` in the photos' folder: {model: {name: (line, drawing)}}."""
    out = {}
    for spec in MODELS:
        name, _, variant = spec.partition(":")
        work = tmp_path_factory.mktemp("cli")
        args = ["run", name, *sum((["-i", p] for p in PHOTOS), []), "--json", work / "out.jsonl", "-s", work / "drawn", "--jobs", "1", "--no-display"]
        if variant:
            args += ["--variant", variant]
        result = run_posezoo(*args, env=env, cwd=photos)
        assert result.returncode == 0, result.stderr
        lines = (work / "out.jsonl").read_text().splitlines()
        out[name] = {
            json.loads(line)["source"]: (line, cv2.imread(str(work / "drawn" / (Path(json.loads(line)["source"]).stem + ".png"))))
            for line in lines
        }
        assert sorted(out[name]) == sorted(PHOTOS)
    return out


@pytest.mark.parametrize("model", ["blazepose-full", "movenet-lightning"])
def test_rest_gives_exactly_the_records_of_posezoo_run_json(server, photos, cli_records, model):
    for name in PHOTOS:
        line, _ = cli_records[model][name]
        data = (photos / name).read_bytes()
        multipart = requests.post(
            f"{server.url}/v1/models/{model}/predict", files={"image": (name, data, "image/jpeg")}, timeout=60
        )
        assert multipart.status_code == 200, multipart.text
        assert multipart.text == line  # the same bytes as the --json line
        raw = requests.post(f"{server.url}/v1/models/{model}/predict", data=data, headers={"Content-Type": "image/jpeg"}, timeout=60)
        assert raw.status_code == 200 and raw.json() == {**json.loads(line), "source": "upload"}


def test_webp_and_png_bodies_give_the_same_poses_as_their_pixels(server, photos):
    image = cv2.imread(str(photos / PHOTOS[1]))
    png = cv2.imencode(".png", image)[1].tobytes()
    webp = cv2.imencode(".webp", image, [cv2.IMWRITE_WEBP_QUALITY, 101])[1].tobytes()  # >100: lossless
    a, b = post(server, "blazepose-full", png), post(server, "blazepose-full", webp)
    assert a.status_code == b.status_code == 200
    assert a.json()["poses"] and a.json()["poses"] == b.json()["poses"]
    assert (a.json()["width"], a.json()["height"]) == (image.shape[1], image.shape[0])


def test_annotated_image_is_what_posezoo_run_draws(server, photos, cli_records):
    name = PHOTOS[1]
    r = post(server, "blazepose-full", (photos / name).read_bytes(), annotated="true")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png" and r.headers["x-posezoo-poses"] == "1"
    drawn = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR)
    assert np.array_equal(drawn, cli_records["blazepose-full"][name][1])
    j = post(server, "blazepose-full", (photos / name).read_bytes(), annotated="true", format="jpeg")
    assert j.status_code == 200 and j.headers["content-type"] == "image/jpeg" and j.content[:3] == b"\xff\xd8\xff"


def test_models_lists_keypoints_skeleton_parts_features_and_the_drawing_colours(server):
    from posezoo.io.draw import LEFT_COLOR, RIGHT_COLOR

    body = requests.get(server.url + "/v1/models", timeout=10).json()
    assert [m["id"] for m in body["models"]] == ["blazepose-full:lite", "movenet-lightning:default"]
    assert body["default"] == "blazepose-full:lite"
    bp, mn = body["models"]
    assert bp["name"] == "blazepose-full" and bp["variant"] == "lite" and set(bp["variants"]) == {"lite", "full", "heavy"}
    assert len(bp["keypoint_names"]) == 33 and len(mn["keypoint_names"]) == 17
    assert [11, 13] in bp["skeleton"] or [13, 11] in bp["skeleton"]
    assert bp["parts"] == {"body": [0, 33]} and bp["keypoint_sides"][bp["keypoint_names"].index("left_wrist")] == "left"
    assert "world" in bp["features"] and mn["max_poses"] == 1
    b, g, r = LEFT_COLOR
    assert body["colors"]["left"] == f"#{r:02x}{g:02x}{b:02x}"
    b, g, r = RIGHT_COLOR
    assert body["colors"]["right"] == f"#{r:02x}{g:02x}{b:02x}"


def _png_claiming(width: int, height: int) -> bytes:
    """A small PNG file whose header claims width x height pixels (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(4096))) + chunk(b"IEND", b"")


ERRORS = {
    "unknown model": (lambda s, p: post(s, "no-such-model", p), 404),
    "max_poses not a number": (lambda s, p: post(s, "blazepose-full", p, max_poses="many"), 400),
    "max_poses over the model's": (lambda s, p: post(s, "movenet-lightning", p, max_poses=3), 400),
    "threshold out of range": (lambda s, p: post(s, "blazepose-full", p, threshold=2), 400),
    "format unknown": (lambda s, p: post(s, "blazepose-full", p, annotated="true", format="gif"), 400),
    "empty body": (lambda s, p: post(s, "blazepose-full", b""), 400),
    "not an image": (lambda s, p: post(s, "blazepose-full", b"GIF89a" + bytes(100)), 415),
    "damaged JPEG": (lambda s, p: post(s, "blazepose-full", p[:200]), 400),
    "30000x30000 PNG header": (lambda s, p: post(s, "blazepose-full", _png_claiming(30000, 30000)), 413),
    "multipart without a file": (lambda s, p: requests.post(f"{s.url}/v1/models/blazepose-full/predict", files={"x": (None, "y")}, timeout=10), 400),
    "unknown route": (lambda s, p: requests.get(f"{s.url}/v2/nothing", timeout=10), 404),
    "wrong method": (lambda s, p: requests.get(f"{s.url}/v1/models/blazepose-full/predict", timeout=10), 405),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_bad_requests_get_one_line_json_errors(server, photos, case):
    call, status = ERRORS[case]
    body = assert_json_error(call(server, (photos / PHOTOS[1]).read_bytes()), status)
    if case == "30000x30000 PNG header":
        assert "30000x30000" in body["error"] and "20,000,000" in body["error"]
    if case == "max_poses over the model's":
        assert "--" not in body["error"]  # the API's words, not the CLI's flags


def test_oversized_body_is_refused_before_it_is_read(server):
    head = b"POST /v1/models/blazepose-full/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 3000000\r\n\r\n"
    status, body = raw_http(server.port, head)
    assert status == 413 and b"2,000,000" in body and json.loads(body)["status"] == 413
    # a chunked body has no length to check: it is counted as it comes and refused past the limit
    chunks = (b"%x\r\n" % 500_000 + bytes(500_000) + b"\r\n" for _ in range(5))
    head = b"POST /v1/models/blazepose-full/predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    status, body = raw_http(server.port, head, list(chunks))
    assert status == 413 and json.loads(body)["status"] == 413
    assert requests.get(server.url + "/healthz", timeout=10).json() == {"status": "ok"}


def test_overload_answers_503_with_retry_after_not_timeouts(server, photos):
    data = (photos / PHOTOS[1]).read_bytes()
    barrier = threading.Barrier(24)

    def one(_):
        barrier.wait()
        return post(server, "blazepose-full", data)

    with ThreadPoolExecutor(24) as pool:
        answers = list(pool.map(one, range(24)))
    codes = sorted(r.status_code for r in answers)
    assert set(codes) == {200, 503}, codes  # workers 2 + queue 2: the rest are turned away at once
    assert codes.count(200) >= 4
    for r in answers:
        if r.status_code == 503:
            assert r.headers["retry-after"] == "1"
            assert "busy" in assert_json_error(r, 503)["error"]
    text = server.metrics()
    assert metric(text, "posezoo_requests_total", route="/v1/models/{model}/predict", status="503") >= 1
    assert metric(text, "posezoo_queue_depth") == 0 and metric(text, "posezoo_requests_in_flight") == 0


def test_a_client_that_disconnects_mid_request_leaves_the_server_serving(server, photos):
    data = (photos / PHOTOS[1]).read_bytes()
    head = (
        b"POST /v1/models/blazepose-full/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
        b"Content-Length: %d\r\n\r\n" % len(data)
    )
    import socket

    for cut in (len(data) // 2, len(data)):  # half the body; the whole body, gone before the answer
        with socket.create_connection(("127.0.0.1", server.port)) as s:
            s.sendall(head + data[:cut])
    time.sleep(0.5)
    r = post(server, "blazepose-full", data)
    assert r.status_code == 200 and r.json()["poses"]
    text = server.metrics()
    assert metric(text, "posezoo_requests_in_flight") == 0 and metric(text, "posezoo_queue_depth") == 0
    assert "Traceback" not in server.stderr


def test_health_ready_metrics_and_api_pages(server):
    assert requests.get(server.url + "/healthz", timeout=10).json() == {"status": "ok"}
    ready = requests.get(server.url + "/readyz", timeout=10).json()
    assert ready["status"] == "ready" and ready["models"] == ["blazepose-full:lite", "movenet-lightning:default"]
    spec = requests.get(server.url + "/openapi.json", timeout=10).json()
    assert {"/v1/models", "/v1/models/{model}/predict", "/healthz", "/readyz", "/metrics"} <= set(spec["paths"])
    params = {p["name"] for p in spec["paths"]["/v1/models/{model}/predict"]["post"]["parameters"]}
    assert {"model", "max_poses", "threshold", "annotated", "format"} <= params
    docs = requests.get(server.url + "/docs", timeout=10)
    assert docs.status_code == 200 and "/openapi.json" in docs.text
    page = requests.get(server.url + "/", timeout=10)
    assert page.status_code == 200 and "/static/app.js" in page.text
    script = requests.get(server.url + "/static/app.js", timeout=10).text
    for text in (page.text, script, docs.text):  # offline: nothing from another host
        assert "://" not in text and "cdn" not in text.lower()


# ------------------------------------------------------------------------------------------- WebSocket


def _recv(ws, timeout=30.0) -> dict:
    return json.loads(ws.recv(timeout=timeout))


def test_stream_is_posezoo_run_on_the_video_frame_by_frame(server, env, testdata, clip_frames, tmp_path):
    """With ``fps=30`` a frame's timestamp is n / 30 as ``posezoo run -v`` times the clip: the tracker's
    answers (smoothing, track ids, the crop carried over) are the records of ``posezoo run -v --json``."""
    result = run_posezoo(
        "run", "blazepose-full", "--variant", "lite", "-v", testdata / "video" / "soccer_5frames.mp4",
        "--json", tmp_path / "v.jsonl", "--no-display", env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    expected = [json.loads(line) for line in (tmp_path / "v.jsonl").read_text().splitlines()]
    with connect(f"{server.ws_url}/v1/models/blazepose-full/stream?fps=30", open_timeout=30) as ws:
        ready = _recv(ws)
        assert ready["type"] == "ready" and ready["model"] == "blazepose-full" and len(ready["keypoint_names"]) == 33
        got = []
        for frame in clip_frames:  # one at a time (PNG: the same pixels as the decoded video)
            ws.send(cv2.imencode(".png", frame)[1].tobytes())
            got.append(_recv(ws))
    for i, (g, e) in enumerate(zip(got, expected)):
        assert g["type"] == "poses" and g["frame"] == i and g["dropped"] == 0 and g["source"] == "stream"
        assert g["latency_ms"] >= g["model_ms"] > 0
        assert {k: g[k] for k in e if k != "source"} == {k: v for k, v in e.items() if k != "source"}, i
    assert got[0]["poses"][0]["track_id"] == got[-1]["poses"][0]["track_id"] is not None


def test_stream_flood_keeps_the_newest_frame_and_counts_the_dropped(server, clip_frames):
    jpeg = cv2.imencode(".jpg", cv2.resize(clip_frames[0], (640, 360)))[1].tobytes()
    rss = server.pid_rss()
    with connect(f"{server.ws_url}/v1/models/blazepose-full/stream", open_timeout=30, max_size=None) as ws:
        _recv(ws)
        start = time.monotonic()
        for _ in range(300):  # as fast as the socket takes them, answers unread
            ws.send(jpeg)
        flood_s = time.monotonic() - start
        # a REST request is answered meanwhile
        assert post(server, "blazepose-full", jpeg).status_code == 200
        time.sleep(0.5)  # the rate bucket refills: the next frame is taken
        ws.send(jpeg)
        answers = []
        while True:
            msg = _recv(ws)
            assert msg["type"] == "poses", msg
            answers.append(msg)
            if msg["frame"] == 300:
                break
    last = answers[-1]
    assert last["dropped"] + len(answers) == 301  # every frame is answered or counted as dropped
    assert last["dropped_rate"] > 0 and len(answers) <= 10 * (flood_s + 1.0) + 4  # --max-fps 10 (burst 10)
    assert [a["frame"] for a in answers] == sorted(a["frame"] for a in answers)
    assert server.pid_rss() - rss < 100 << 20  # nothing queued up
    text = server.metrics()
    assert metric(text, "posezoo_stream_frames_dropped_total", model="blazepose-full:lite", reason="rate") >= last["dropped_rate"]


def test_stream_newer_frame_replaces_the_waiting_one(server, clip_frames):
    """Under the rate limit but faster than the model: frames waiting are replaced by newer ones."""
    jpeg = cv2.imencode(".jpg", cv2.resize(clip_frames[0], (640, 360)))[1].tobytes()
    with connect(f"{server.ws_url}/v1/models/blazepose-full/stream", open_timeout=30, max_size=None) as ws:
        _recv(ws)
        for _ in range(6):  # 6 frames within the burst of 10, in far less than one model run
            ws.send(jpeg)
        answers = []
        while not answers or answers[-1]["frame"] != 5:
            answers.append(_recv(ws))
    assert answers[-1]["dropped_newer"] >= 1 and answers[-1]["dropped_rate"] == 0
    assert answers[-1]["dropped"] + len(answers) == 6


def test_stream_errors_keep_or_close_the_stream_as_they_should(server, clip_frames):
    jpeg = cv2.imencode(".jpg", clip_frames[0])[1].tobytes()
    with connect(f"{server.ws_url}/v1/models/movenet-lightning/stream", open_timeout=30, max_size=None) as ws:
        assert _recv(ws)["model"] == "movenet-lightning"
        ws.send(b"not an image at all")
        err = _recv(ws)
        assert err == {"type": "error", "status": 415, "frame": 0, "error": err["error"]} and "\n" not in err["error"]
        ws.send(_png_claiming(30000, 30000))
        assert _recv(ws)["status"] == 413
        ws.send("hello")
        assert _recv(ws)["status"] == 400
        ws.send(json.dumps({"type": "ping"}))
        assert _recv(ws) == {"type": "pong"}
        ws.send(json.dumps({"type": "reset"}))
        time.sleep(0.3)
        ws.send(jpeg)
        ok = _recv(ws)
        assert ok["type"] == "poses" and ok["frame"] == 2 and ok["model"] == "movenet-lightning"
    for path, status in [("no-such-model/stream", 404), ("blazepose-full/stream?max_poses=x", 400), ("movenet-lightning/stream?max_poses=4", 400)]:
        with connect(f"{server.ws_url}/v1/models/{path}", open_timeout=30) as ws:
            msg = _recv(ws)
            assert msg["type"] == "error" and msg["status"] == status, msg
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
            assert closed.value.rcvd.code == 1008
    with connect(f"{server.ws_url}/v1/models/blazepose-full/stream", open_timeout=30, max_size=None) as ws:
        _recv(ws)
        ws.send(bytes(2_000_001))  # over --max-body
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=10)
        assert closed.value.rcvd.code == 1009


# ------------------------------------------------------------------------------------------- key, timeouts


@pytest.fixture(scope="module")
def keyed(env):
    srv = ServerProcess(
        ["movenet-lightning", "--workers", "1", "--request-timeout", "2", "--idle-timeout", "2"],
        {**env, "POSEZOO_API_KEY": "s3cret-key-for-tests"},
    )  # fmt: skip
    yield srv
    assert srv.stop(signal.SIGINT) == 0, srv.stderr  # Ctrl-C: drained, exit 0
    assert "Traceback" not in srv.stderr and "s3cret" not in srv.stderr


def test_api_key_is_required_on_the_api_and_metrics(keyed, photos):
    data = (photos / PHOTOS[3]).read_bytes()
    url = f"{keyed.url}/v1/models/movenet-lightning/predict"
    missing = requests.post(url, data=data, timeout=30)
    assert "API key is required" in assert_json_error(missing, 401)["error"]
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert "wrong" in assert_json_error(requests.post(url, data=data, headers={"Authorization": "Bearer nope-nope-nope"}, timeout=30), 401)["error"]
    assert_json_error(requests.post(url, data=data, headers={"Authorization": "Basic czNjcmV0"}, timeout=30), 401)
    assert_json_error(requests.get(keyed.url + "/metrics", timeout=30), 401)
    assert_json_error(requests.get(keyed.url + "/v1/models", timeout=30), 401)
    ok = requests.post(url, data=data, headers={"Authorization": "Bearer s3cret-key-for-tests"}, timeout=30)
    assert ok.status_code == 200 and ok.json()["poses"]
    for public in ("/healthz", "/readyz", "/", "/docs", "/openapi.json"):
        assert requests.get(keyed.url + public, timeout=30).status_code == 200, public
    with pytest.raises(InvalidStatus):
        connect(f"{keyed.ws_url}/v1/models/movenet-lightning/stream", open_timeout=30)
    with pytest.raises(InvalidStatus):
        connect(f"{keyed.ws_url}/v1/models/movenet-lightning/stream?token=wrong-wrong", open_timeout=30)
    with connect(f"{keyed.ws_url}/v1/models/movenet-lightning/stream?token=s3cret-key-for-tests", open_timeout=30) as ws:
        assert _recv(ws)["type"] == "ready"
    with connect(
        f"{keyed.ws_url}/v1/models/movenet-lightning/stream", open_timeout=30,
        additional_headers={"Authorization": "Bearer s3cret-key-for-tests"},
    ) as ws:  # fmt: skip
        assert _recv(ws)["type"] == "ready"


def test_slow_body_gets_408_and_a_silent_stream_is_closed(keyed):
    head = (
        b"POST /v1/models/movenet-lightning/predict HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret-key-for-tests\r\n"
        b"Content-Length: 1000\r\n\r\n"
    )
    start = time.monotonic()
    status, body = raw_http(keyed.port, head + bytes(10), timeout=20)
    assert status == 408 and json.loads(body)["status"] == 408 and 1.5 < time.monotonic() - start < 10
    with connect(f"{keyed.ws_url}/v1/models/movenet-lightning/stream?token=s3cret-key-for-tests", open_timeout=30) as ws:
        _recv(ws)
        msg = _recv(ws, timeout=15)
        assert msg["status"] == 408 and "no frame" in msg["error"]
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)


def test_binding_another_address_without_a_key_is_refused(env):
    result = run_posezoo("serve", "movenet-lightning", "--host", "0.0.0.0", "--port", "0", env=env, timeout=60)
    line = one_line_error(result)
    assert result.returncode == 2 and "API key" in line and "POSEZOO_API_KEY" in line


def test_serve_without_the_extra_is_one_line_naming_it(env, tmp_path):
    block = (
        "import builtins, sys\n"
        "real = builtins.__import__\n"
        "def guard(name, *a, **k):\n"
        "    if name.split('.')[0] == 'fastapi': raise ImportError('blocked')\n"
        "    return real(name, *a, **k)\n"
        "builtins.__import__ = guard\n"
        "import importlib.util\n"
        "find = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda n, *a: None if n == 'fastapi' else find(n, *a)\n"
        "from posezoo.cli import main\n"
        "sys.argv = ['posezoo', *sys.argv[1:]]\n"
        "main()\n"
    )
    result = subprocess.run([sys.executable, "-c", block, "serve", "movenet-lightning"], env=env, capture_output=True, text=True, timeout=120)
    line = one_line_error(result)
    assert 'pip install "posezoo[serve]"' in line


def test_sigterm_drains_requests_in_flight_and_exits_0(env, photos, clip_frames):
    srv = ServerProcess(["movenet-lightning", "--workers", "1"], env)
    try:
        data = (photos / PHOTOS[3]).read_bytes()
        head = b"POST /v1/models/movenet-lightning/predict HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(data)
        answer = {}
        # a request whose body is still arriving when SIGTERM comes: it is answered, then the server exits
        sender = threading.Thread(target=lambda: answer.update(r=raw_http(srv.port, head, [data[:100], data[100:]], pause=1.0)))
        sender.start()
        with connect(f"{srv.ws_url}/v1/models/movenet-lightning/stream", open_timeout=30) as ws:
            _recv(ws)
            time.sleep(0.4)
            srv.proc.send_signal(signal.SIGTERM)
            sender.join(30)
            status, body = answer["r"]
            assert status == 200 and json.loads(body)["poses"], body[:200]
            with pytest.raises(ConnectionClosed) as closed:  # streams are closed as "service restart"
                ws.recv(timeout=30)
            assert closed.value.rcvd.code == 1012
        assert srv.proc.wait(30) == 0, srv.stderr
        assert "SIGTERM: draining" in srv.stderr and "Traceback" not in srv.stderr
        with pytest.raises(requests.ConnectionError):
            requests.get(srv.url + "/healthz", timeout=5)
    finally:
        srv.kill()


def test_metrics_count_requests_by_route_and_status_and_time_the_model(server):
    text = server.metrics()
    assert metric(text, "posezoo_requests_total", route="/v1/models/{model}/predict", method="POST", status="200") >= 8
    assert metric(text, "posezoo_requests_total", route="/v1/models/{model}/predict", method="POST", status="413") >= 2
    assert metric(text, "posezoo_requests_total", route="/v1/models/{model}/stream", method="WS", status="101") >= 3
    assert metric(text, "posezoo_request_seconds_count", route="/v1/models/{model}/predict") >= 8
    assert metric(text, "posezoo_model_seconds_count", model="blazepose-full:lite") >= 8
    assert metric(text, "posezoo_stream_frames_dropped_total", model="blazepose-full:lite", reason="newer") >= 1
    assert "posezoo_queue_depth" in text and "posezoo_streams_open" in text
