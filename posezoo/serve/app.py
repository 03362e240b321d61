"""The ASGI application of ``posezoo serve`` (FastAPI on Starlette; uvicorn or Ray Serve runs it).

Routes (all answers JSON unless said otherwise; every error is ``{"error": "<one line>", "status": N}``):

- ``GET /v1/models``: the served models (names, variants, keypoint names, skeleton, parts, features).
- ``POST /v1/models/{model}/predict``: one image (JPEG, PNG or WebP) as the body, or as the first file
  of a multipart form; ``max_poses`` (default 1, as ``posezoo run``), ``threshold``; the answer is the
  ``posezoo run --json`` record of the image (the same bytes), or with ``annotated=true`` the image
  drawn as ``posezoo run -s`` draws it (``format=png|jpeg``).
- ``WS /v1/models/{model}/stream``: frames in, poses out, a tracker per connection
  (:mod:`posezoo.serve.stream`).
- ``GET /healthz`` (alive), ``GET /readyz`` (models loaded and not draining), ``GET /metrics``
  (Prometheus), ``GET /openapi.json`` and ``GET /docs`` (the API, offline), ``GET /`` (the page).

Guards (:class:`Guard`, pure ASGI around everything): the bearer token on ``/v1/*`` and ``/metrics``
when an API key is set; the body limit (``Content-Length`` checked before reading, streamed bodies
counted) and the request deadline while reading (408); metrics of every request. Past the guard a
predict request is admitted only while ``workers + max_queue`` are not already in (503 with
Retry-After), decoded only when its header's pixels are within the limit (413), and answered within
``request_timeout`` (504).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Literal, Optional

import cv2
from fastapi import FastAPI, Query, Request, WebSocket  # (module level: FastAPI reads the routes' annotations here)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from posezoo.errors import InputError, PosezooError, UnknownModelError, UsageError
from posezoo.io.draw import CENTRE_COLOR, LEFT_COLOR, OUTLINE_COLOR, RIGHT_COLOR, draw_poses
from posezoo.io.sinks import pose_record
from posezoo.serve.common import ApiError, decode, error_body, log_line, one_line, safe_name
from posezoo.serve.config import ServeConfig
from posezoo.serve.metrics import Metrics
from posezoo.serve.models import ModelSet, Served
from posezoo.version import __version__

PUBLIC_PATHS = {"/", "/healthz", "/readyz", "/docs", "/openapi.json", "/favicon.ico"}


def static_dir() -> Path:
    return Path(str(resources.files("posezoo.serve").joinpath("static")))


def css_color(bgr) -> str:
    b, g, r = (int(v) for v in bgr)
    return f"#{r:02x}{g:02x}{b:02x}"


COLORS = {"left": css_color(LEFT_COLOR), "right": css_color(RIGHT_COLOR), "centre": css_color(CENTRE_COLOR), "outline": css_color(OUTLINE_COLOR)}


# ------------------------------------------------------------------------------------------- errors


def api_text(exc: PosezooError) -> str:
    """A model's refusal in the API's words (its fix names the CLI's flags)."""
    return str(exc).replace("--max-poses ", "max_poses=").replace("--threshold ", "threshold=")


def status_of(exc: PosezooError) -> int:
    if isinstance(exc, UnknownModelError):
        return 404
    if isinstance(exc, (UsageError, InputError)):
        return 400
    return 500


async def send_error(send, status: int, message: str, headers: dict | None = None) -> None:
    """A whole JSON error answer through raw ASGI ``send``."""
    body = error_body(status, message)
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), str(v).encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


# ------------------------------------------------------------------------------------------- state


class Runtime:
    """Everything the routes share: config, models, the worker threads, metrics, counters."""

    def __init__(self, config: ServeConfig, models: ModelSet):
        self.config = config
        self.limits = config.limits
        self.models = models
        self.metrics = Metrics()
        self.executor: ThreadPoolExecutor | None = None
        self.admitted = 0  # predict requests in (waiting or running)
        self.waiting = 0  # of those, waiting for a model copy
        self.streams = 0
        self.ready = False
        self.draining = False
        self.started = time.time()

    def start(self) -> None:
        if self.executor is None:
            self.executor = ThreadPoolExecutor(max_workers=self.limits.workers, thread_name_prefix="posezoo-serve")
        self.ready = True

    def stop(self) -> None:
        self.ready = False
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)
            self.executor = None

    def check_key(self, headers: dict[bytes, bytes], query: bytes = b"") -> str | None:
        """None when the request may pass, else why not (401)."""
        key = self.config.api_key
        if not key:
            return None
        auth = headers.get(b"authorization", b"").decode("latin-1").strip()
        given = None
        if auth:
            scheme, _, token = auth.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return "the Authorization header must be 'Bearer <API key>'"
            given = token.strip()
        else:  # a browser's WebSocket cannot set headers: ?token= there
            from urllib.parse import parse_qs

            given = (parse_qs(query.decode("latin-1")).get("token") or [None])[0]
        if given is None:
            return "an API key is required: send 'Authorization: Bearer <API key>'"
        if not hmac.compare_digest(given.encode(), key.encode()):
            return "the API key is wrong"
        return None

    async def run(self, fn, *args):
        """``fn(*args)`` on a worker thread."""
        loop = asyncio.get_running_loop()
        return await asyncio.wrap_future(self.executor.submit(fn, *args), loop=loop)

    async def on_copy(self, served: Served, index: int | None, fn, *args):
        """``fn(copy, *args)`` on a worker thread with one copy of the model lent to it (copy ``index``,
        or any free one). The copy comes back when the thread is done with it, even if the caller
        was cancelled meanwhile (a timeout, a client gone): never while it still runs."""
        loop = asyncio.get_running_loop()
        i = await served.slots.acquire(index)
        try:
            cf = self.executor.submit(fn, served.copies[i], *args)
        except BaseException:
            served.slots.release(i)
            raise
        cf.add_done_callback(lambda _f: loop.call_soon_threadsafe(served.slots.release, i))
        return await asyncio.wrap_future(cf, loop=loop)


# ------------------------------------------------------------------------------------------- images


# ------------------------------------------------------------------------------------------- guard


def _route_of(scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    if path:
        return path
    p = scope.get("path", "")
    return "/static" if p.startswith("/static/") else "(unmatched)"


class BodyTooLarge(ApiError):
    def __init__(self, limit: int):
        super().__init__(413, f"the body is more than this server's limit of {limit:,} bytes")


class BodyTimeout(ApiError):
    def __init__(self, seconds: float):
        super().__init__(408, f"the request was not read within {seconds:g} s")


class Guard:
    """Pure ASGI middleware: API key, body limit and read deadline, metrics (see the module docstring)."""

    def __init__(self, app, runtime: Runtime, replica: str | None = None):
        self.app = app
        self.rt = runtime
        self.replica = [(b"x-posezoo-replica", replica.encode())] if replica else []

    async def __call__(self, scope, receive, send):
        kind = scope["type"]
        if kind == "lifespan":
            return await self.app(scope, receive, send)
        rt, path = self.rt, scope.get("path", "")
        headers = dict(scope.get("headers") or [])
        protected = path.startswith("/v1/") or path == "/metrics"
        scope.setdefault("state", {})["posezoo_start"] = start = time.monotonic()
        if kind == "websocket":
            why = rt.check_key(headers, scope.get("query_string", b"")) if protected else None
            if why:
                rt.metrics.requests.labels("/v1/models/{model}/stream", "WS", "401").inc()
                await send({"type": "websocket.close", "code": 1008, "reason": why[:120]})
                return
            return await self.app(scope, receive, send)

        status = {"code": 500, "sent": False}

        async def send_wrapped(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                status["sent"] = True
                if self.replica:
                    message = {**message, "headers": [*message.get("headers", []), *self.replica]}
            await send(message)

        try:
            why = rt.check_key(headers) if protected else None
            if why:
                await send_error(send_wrapped, 401, why, {"WWW-Authenticate": 'Bearer realm="posezoo"'})
                return
            length = headers.get(b"content-length")
            limit = rt.limits.max_body_bytes
            if length is not None:
                try:
                    declared = int(length)
                except ValueError:
                    declared = -1
                if declared < 0:
                    await send_error(send_wrapped, 400, "the Content-Length header is not a number")
                    return
                if declared > limit:
                    await send_error(send_wrapped, 413, f"the body is {declared:,} bytes, more than this server's limit of {limit:,}")
                    return
            deadline = start + rt.limits.request_timeout
            seen = 0

            async def receive_guarded():
                nonlocal seen
                try:
                    message = await asyncio.wait_for(receive(), max(0.001, deadline - time.monotonic()))
                except asyncio.TimeoutError:
                    raise BodyTimeout(rt.limits.request_timeout) from None
                if message["type"] == "http.request":
                    seen += len(message.get("body", b""))
                    if seen > limit:
                        raise BodyTooLarge(limit)
                return message

            await self.app(scope, receive_guarded, send_wrapped)
        except ApiError as exc:  # (raised by receive_guarded outside a route)
            if not status["sent"]:
                await send_error(send_wrapped, exc.status, exc.message, exc.headers)
        except Exception as exc:  # a bug: one line in the log, a JSON 500 to the client, no traceback
            log_line(f"internal error on {scope.get('method')} {path[:100]}: {type(exc).__name__}: {exc}")
            if not status["sent"]:
                await send_error(send_wrapped, 500, "internal error (the server's log has the details)")
        finally:
            route = _route_of(scope)
            code = status["code"] if status["sent"] else 499  # (the client went away before an answer)
            rt.metrics.requests.labels(route, scope.get("method", "GET"), str(code)).inc()
            rt.metrics.latency.labels(route).observe(time.monotonic() - start)


# ------------------------------------------------------------------------------------------- app


def _predict_on(model, image, max_poses, threshold):
    t0 = time.perf_counter()
    poses = model.predict(image, max_poses=max_poses, threshold=threshold)
    return poses, time.perf_counter() - t0


def _render(model, image, poses, fmt: str) -> bytes:
    drawn = draw_poses(image, poses, model.skeleton)
    ok, buf = cv2.imencode(".jpg" if fmt == "jpeg" else ".png", drawn)
    if not ok:
        raise ApiError(500, "the annotated image could not be encoded")
    return buf.tobytes()


async def _watch_disconnect(receive) -> None:
    """Returns when the client hangs up (its body already read); never otherwise."""
    while True:
        try:
            message = await receive()
        except ApiError:  # (the read deadline: the request's own timeout answers)
            await asyncio.Event().wait()
        if message["type"] == "http.disconnect":
            return


def create_app(config: ServeConfig, models: ModelSet, *, replica: str | None = None):
    """The ASGI app serving ``models`` (already loaded) under ``config`` (already checked); a Ray Serve
    replica names itself in an ``X-Posezoo-Replica`` header on every answer."""
    from posezoo.serve.stream import run_stream

    rt = Runtime(config, models)

    @asynccontextmanager
    async def lifespan(app):
        rt.start()
        try:
            yield
        finally:
            rt.draining = True
            rt.stop()

    app = FastAPI(
        title="posezoo serve",
        version=__version__,
        description="Pose estimation over HTTP and WebSocket, from posezoo's verified model zoo.",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.runtime = rt

    def json_error(status: int, message: str, headers: dict | None = None) -> Response:
        return Response(error_body(status, message), status_code=status, media_type="application/json", headers=headers)

    @app.exception_handler(ApiError)
    async def _api_error(request, exc: ApiError):
        return json_error(exc.status, exc.message, exc.headers)

    @app.exception_handler(PosezooError)
    async def _posezoo_error(request, exc: PosezooError):
        return json_error(status_of(exc), api_text(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, exc):
        message = exc.detail if isinstance(exc.detail, str) else "error"
        if exc.status_code == 404:
            message = f"no route {request.method} {one_line(request.url.path, 100)}: see /docs"
        return json_error(exc.status_code, message, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request, exc):
        first = (exc.errors() or [{}])[0]
        where = ".".join(str(x) for x in first.get("loc", ())[1:]) or "request"
        return json_error(400, f"{where}: {first.get('msg', 'invalid')}")

    app.add_middleware(Guard, runtime=rt, replica=replica)

    # -- the API

    @app.get("/v1/models", summary="The served models")
    async def list_models():
        """Each served model: ``id`` (``name:variant``, usable as ``{model}``), name, variant, keypoint
        names, skeleton (index pairs), parts (keypoints by side), features, options; and the colours
        the page draws with (posezoo.io.draw's)."""
        return {"models": rt.models.list(), "default": rt.models.default, "colors": COLORS, "limits": _limits(rt)}

    @app.post(
        "/v1/models/{model}/predict",
        summary="Poses on one image",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
                    "image/png": {"schema": {"type": "string", "format": "binary"}},
                    "image/webp": {"schema": {"type": "string", "format": "binary"}},
                    "multipart/form-data": {
                        "schema": {"type": "object", "properties": {"image": {"type": "string", "format": "binary"}}}
                    },
                },
            }
        },
        responses={
            200: {"description": "The `posezoo run --json` record of the image (or the annotated image)"},
            400: {"description": "Bad parameters or an unreadable image"},
            401: {"description": "Missing or wrong API key"},
            404: {"description": "Model not served"},
            413: {"description": "Body or image too large"},
            415: {"description": "Not a JPEG, PNG or WebP image"},
            503: {"description": "Busy (Retry-After) or shutting down"},
            504: {"description": "Not answered within the request timeout"},
        },
    )
    async def predict(
        model: str,
        request: Request,
        max_poses: Optional[int] = Query(1, ge=0, description="At most this many people (default 1, as `posezoo run`)"),
        threshold: Optional[float] = Query(None, ge=0.0, le=1.0, description="Person-score threshold (default: the model's)"),
        annotated: bool = Query(False, description="Answer with the image drawn instead of JSON"),
        format: Literal["png", "jpeg"] = Query("png", description="The annotated image's format"),
    ):
        """One image as the body (``Content-Type: image/jpeg|png|webp`` or ``application/octet-stream``)
        or as the first file of a ``multipart/form-data`` form. Answers the ``posezoo run --json``
        record (``source`` is the uploaded file's name, ``upload`` for a bare body)."""
        served = rt.models.get(model)
        served.model.capabilities.check_max_poses(served.name, max_poses)
        if rt.draining or not rt.ready:
            raise ApiError(503, "the server is shutting down", {"Retry-After": "5"})
        data, name = await _read_image(request)
        lim = rt.limits
        if rt.admitted >= lim.workers + lim.max_queue:
            raise ApiError(503, f"busy: {rt.admitted} requests in, {lim.max_queue} may wait; try again", {"Retry-After": "1"})
        remaining = request.state.posezoo_start + lim.request_timeout - time.monotonic()
        work = asyncio.ensure_future(_process(served, data, name, max_poses, threshold, annotated, format))
        watch = asyncio.ensure_future(_watch_disconnect(request.receive))
        rt.admitted += 1
        rt.metrics.in_flight.set(rt.admitted)
        try:
            done, _ = await asyncio.wait({work, watch}, timeout=max(0.0, remaining), return_when=asyncio.FIRST_COMPLETED)
            if work in done:
                return work.result()
            work.cancel()
            if watch in done:  # the client hung up: nobody to answer
                return Response(status_code=499)
            raise ApiError(504, f"no answer within {lim.request_timeout:g} s (the server is overloaded)", {"Retry-After": "1"})
        finally:
            watch.cancel()
            rt.admitted -= 1
            rt.metrics.in_flight.set(rt.admitted)

    async def _process(served: Served, data: bytes, name: str, max_poses, threshold, annotated: bool, fmt: str):
        rt.waiting += 1
        rt.metrics.queue_depth.set(rt.waiting)
        try:
            image = await rt.run(decode, data, name, rt.limits.max_pixels)
        except BaseException:
            rt.waiting -= 1
            rt.metrics.queue_depth.set(rt.waiting)
            raise
        counted = [True]

        def job(model):
            rt_waiting_done()
            poses, secs = _predict_on(model, image, max_poses, threshold)
            return poses, secs, (_render(model, image, poses, fmt) if annotated else None)

        def rt_waiting_done():  # (on the worker thread: hand the count back to the loop)
            if counted[0]:
                counted[0] = False
                loop.call_soon_threadsafe(_left_queue)

        def _left_queue():
            rt.waiting -= 1
            rt.metrics.queue_depth.set(rt.waiting)

        loop = asyncio.get_running_loop()
        try:
            poses, secs, drawn = await rt.on_copy(served, None, job)
        finally:
            if counted[0]:  # never started (cancelled while waiting)
                counted[0] = False
                _left_queue()
        rt.metrics.model_time.labels(served.key).observe(secs)
        if drawn is not None:
            media = "image/jpeg" if fmt == "jpeg" else "image/png"
            return Response(drawn, media_type=media, headers={"X-Posezoo-Poses": str(len(poses))})
        record = pose_record(name, 0, image, served.name, served.variant, poses)
        return Response(json.dumps(record, separators=(",", ":")), media_type="application/json")

    async def _read_image(request: Request) -> tuple[bytes, str]:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "multipart/form-data":
            try:
                form = await request.form(max_files=1, max_fields=20)
            except ApiError:
                raise
            except Exception as exc:
                raise ApiError(400, f"the multipart form cannot be read: {exc}") from None
            try:
                upload = next((v for v in form.values() if hasattr(v, "read")), None)
                if upload is None:
                    raise ApiError(400, "the multipart form holds no file: send the image as a file field (e.g. 'image')")
                return await upload.read(), safe_name(upload.filename)
            finally:
                await form.close()
        # any other type is read as the image itself (curl's --data-binary says form-urlencoded)
        return await request.body(), "upload"

    @app.websocket("/v1/models/{model}/stream")
    async def stream(websocket: WebSocket, model: str):
        await run_stream(rt, websocket, model)

    # -- operations

    @app.get("/healthz", summary="Liveness")
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz", summary="Readiness: models loaded and not draining")
    async def readyz():
        if rt.ready and not rt.draining:
            return {"status": "ready", "models": list(rt.models.served)}
        return json_error(503, "shutting down" if rt.draining else "not ready")

    @app.get("/metrics", summary="Prometheus metrics")
    async def metrics():
        return Response(rt.metrics.render(), media_type=rt.metrics.content_type)

    # -- the page and the API page

    static = static_dir()

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(static / "index.html", media_type="text/html")

    @app.get("/docs", include_in_schema=False)
    async def docs_page():
        return FileResponse(static / "docs.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=static), name="static")
    return app


def _limits(rt: Runtime) -> dict:
    lim = rt.limits
    return {
        "max_body_bytes": lim.max_body_bytes,
        "max_pixels": lim.max_pixels,
        "workers": lim.workers,
        "max_queue": lim.max_queue,
        "max_streams": lim.max_streams,
        "max_fps": lim.max_fps,
        "request_timeout": lim.request_timeout,
        "idle_timeout": lim.idle_timeout,
        "api_key": bool(rt.config.api_key),
    }
