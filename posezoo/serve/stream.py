"""``WS /v1/models/{model}/stream``: frames in, poses out, one tracker per connection.

The protocol (docs/serving.md has it with examples):

- Query parameters: ``max_poses`` (default 1), ``threshold``, ``smooth`` (default true), ``fps`` (the
  frames are a video of this rate: frame n's timestamp is n / fps, as ``posezoo run -v`` times a video
  file; default: the time each frame arrived), and ``token`` (the API key, for browsers, which cannot
  set headers on a WebSocket).
- On connecting the server sends ``{"type": "ready", "model", "variant", "keypoint_names", "skeleton",
  "keypoint_sides", "max_fps", "max_body_bytes"}``.
- The client sends frames as binary messages (each a JPEG, PNG or WebP image) and may send text
  messages ``{"type": "reset"}`` (forget every track) or ``{"type": "ping"}`` (answered ``pong``).
- For each frame it runs, the server sends the frame's ``posezoo run --json`` record (``source`` is
  ``"stream"``, ``frame`` the frame's number counting every frame the client sent, from 0) with
  ``"type": "poses"``, ``dropped`` (frames dropped so far on this connection), ``dropped_newer``,
  ``dropped_rate``, ``latency_ms`` (server time from the frame's arrival to this message) and
  ``model_ms`` (the model's part of it).
- Frames are not queued: while the model runs, the newest frame waits in one slot and a frame already
  waiting there is dropped (``dropped_newer``); frames over ``max_fps`` are dropped on arrival
  (``dropped_rate``). So nothing grows, whatever a client sends.
- A frame that cannot be read gets ``{"type": "error", "status": 400|413|415, "frame": n, "error"}``
  and the stream goes on. Closing codes: 1000 (idle past the idle timeout, or the client's own
  close), 1008 (an unknown model or a bad parameter; the reason says which), 1009 (a message over the
  body limit), 1013 (too many streams, or shutting down: try again later).

The tracker lives on the model copy the connection is pinned to (:meth:`Served.pin`); each frame
borrows that copy while it runs (:meth:`Runtime.on_copy`).
"""

from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import parse_qs

from posezoo.errors import PosezooError
from posezoo.io.sinks import pose_record
from posezoo.serve.common import ApiError, decode, log_line, one_line

ROUTE = "/v1/models/{model}/stream"


def _param(query: dict, name: str, kind, default):
    raw = (query.get(name) or [None])[0]
    if raw is None or raw == "":
        return default
    if kind is bool:
        low = raw.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{name} must be true or false, not {raw[:20]!r}")
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(f"{name} must be a {'whole number' if kind is int else 'number'}, not {raw[:20]!r}") from None


class _Bucket:
    """Frames per second: a token bucket holding up to one second's worth (at least 2)."""

    def __init__(self, rate: float):
        self.rate = rate
        self.capacity = max(2.0, rate)
        self.tokens = self.capacity
        self.last = time.monotonic()

    def take(self, now: float) -> bool:
        self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


async def run_stream(rt, ws, model_key: str) -> None:
    metrics, lim = rt.metrics, rt.limits
    sent_lock = asyncio.Lock()

    async def send(message: dict) -> None:
        async with sent_lock:
            await ws.send_text(json.dumps(message, separators=(",", ":")))

    async def refuse(code: int, status: int, message: str) -> None:
        metrics.requests.labels(ROUTE, "WS", str(status)).inc()
        await ws.accept()
        await send({"type": "error", "status": status, "error": one_line(message)})
        await ws.close(code=code, reason=one_line(message, 120))

    try:
        served = rt.models.get(model_key)
    except PosezooError as exc:
        return await refuse(1008, 404, str(exc))
    query = parse_qs(ws.scope.get("query_string", b"").decode("latin-1"))
    try:
        max_poses = _param(query, "max_poses", int, 1)
        threshold = _param(query, "threshold", float, None)
        smooth = _param(query, "smooth", bool, True)
        fps = _param(query, "fps", float, None)
        if fps is not None and not (0 < fps <= 1000):
            raise ValueError(f"fps must be in (0, 1000], not {fps}")
        served.model.capabilities.check_max_poses(served.name, max_poses)
        served.model.capabilities.check_threshold(threshold)
    except (ValueError, PosezooError) as exc:
        return await refuse(1008, 400, str(exc))
    if rt.draining or not rt.ready:
        return await refuse(1013, 503, "the server is shutting down; try again later")
    if rt.streams >= lim.max_streams:
        return await refuse(1013, 503, f"busy: {rt.streams} streams open, the limit is {lim.max_streams}; try again later")
    pin = served.pin()
    try:
        track = served.copies[pin].tracker(max_poses=max_poses, threshold=threshold, smooth=smooth)
    except PosezooError as exc:
        return await refuse(1008, 400, str(exc))
    await ws.accept()
    metrics.requests.labels(ROUTE, "WS", "101").inc()
    rt.streams += 1
    metrics.streams.set(rt.streams)
    label = served.key
    t0 = time.monotonic()
    state = {"slot": None, "received": 0, "newer": 0, "rate": 0, "reset": False, "closed": False}
    ready = asyncio.Event()
    bucket = _Bucket(lim.max_fps)
    await send(
        {
            "type": "ready",
            "model": served.name,
            "variant": served.variant,
            "keypoint_names": served.info["keypoint_names"],
            "skeleton": served.info["skeleton"],
            "keypoint_sides": served.info["keypoint_sides"],
            "max_poses": max_poses,
            "max_fps": lim.max_fps,
            "max_body_bytes": lim.max_body_bytes,
        }
    )

    def step(copy, image, timestamp: float, reset: bool):
        if reset:
            track.reset()
        start = time.perf_counter()
        poses = track.update(image, timestamp=timestamp)
        return poses, time.perf_counter() - start

    async def process() -> None:
        while True:
            await ready.wait()
            ready.clear()
            item, state["slot"] = state["slot"], None
            if item is None:
                continue
            index, data, arrived = item
            try:
                image = await rt.run(decode, data, f"frame {index}", lim.max_pixels)
            except ApiError as exc:
                await send({"type": "error", "status": exc.status, "frame": index, "error": exc.message})
                continue
            reset, state["reset"] = state["reset"], False
            timestamp = index / fps if fps else arrived - t0
            poses, secs = await rt.on_copy(served, pin, step, image, timestamp, reset)
            metrics.processed.labels(label).inc()
            metrics.model_time.labels(label).observe(secs)
            record = pose_record("stream", index, image, served.name, served.variant, poses)
            dropped = state["newer"] + state["rate"]
            await send(
                {
                    "type": "poses",
                    **record,
                    "dropped": dropped,
                    "dropped_newer": state["newer"],
                    "dropped_rate": state["rate"],
                    "latency_ms": round((time.monotonic() - arrived) * 1000.0, 2),
                    "model_ms": round(secs * 1000.0, 2),
                }
            )

    worker = asyncio.ensure_future(process())
    code, reason = 1000, ""
    try:
        while True:
            receive = asyncio.ensure_future(ws.receive())
            done, _ = await asyncio.wait({receive, worker}, timeout=lim.idle_timeout, return_when=asyncio.FIRST_COMPLETED)
            if worker in done:  # the processor failed (a bug, or the socket went away while sending)
                receive.cancel()
                worker.result()
                return
            if receive not in done:
                receive.cancel()
                message = f"no frame for {lim.idle_timeout:g} s: closing the stream"
                await send({"type": "error", "status": 408, "error": message})
                code, reason = 1000, "idle"
                return
            message = receive.result()
            if message["type"] == "websocket.disconnect":
                state["closed"] = True
                return
            data = message.get("bytes")
            text = message.get("text")
            if data is not None:
                now = time.monotonic()
                index = state["received"]
                state["received"] += 1
                metrics.frames.labels(label).inc()
                if len(data) > lim.max_body_bytes:
                    await send({"type": "error", "status": 413, "frame": index, "error": f"frame of {len(data):,} bytes, over the limit of {lim.max_body_bytes:,}"})
                    code, reason = 1009, "frame too large"
                    return
                if not bucket.take(now):
                    state["rate"] += 1
                    metrics.dropped.labels(label, "rate").inc()
                    continue
                if state["slot"] is not None:
                    state["newer"] += 1
                    metrics.dropped.labels(label, "newer").inc()
                state["slot"] = (index, data, now)
                ready.set()
            elif text is not None:
                try:
                    control = json.loads(text)
                    kind = control.get("type") if isinstance(control, dict) else None
                except ValueError:
                    kind = None
                if kind == "reset":
                    state["reset"] = True
                elif kind == "ping":
                    await send({"type": "pong"})
                else:
                    await send({"type": "error", "status": 400, "error": "text messages are JSON: {\"type\": \"reset\"} or {\"type\": \"ping\"}; frames are binary"})
    except asyncio.CancelledError:
        state["closed"] = True
        raise
    except Exception as exc:
        from starlette.websockets import WebSocketDisconnect

        if isinstance(exc, (WebSocketDisconnect, OSError)):
            state["closed"] = True
        else:  # a bug or a model failure: one line in the log, the stream closed as an internal error
            log_line(f"stream {served.key}: {type(exc).__name__}: {exc}")
            code, reason = 1011, "internal error"
    finally:
        worker.cancel()
        rt.streams -= 1
        metrics.streams.set(rt.streams)
        if not state["closed"]:
            try:
                await ws.close(code=code, reason=reason)
            except Exception:
                pass
