"""Prometheus metrics of one server process (or one Ray Serve replica), in a registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """Requests by route, method and status; request latency; model time; queue depth; streams and
    their frames, dropped frames by reason."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self):
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.requests = Counter("posezoo_requests", "HTTP requests and WebSocket streams by route, method and status", ["route", "method", "status"], registry=r)
        self.latency = Histogram("posezoo_request_seconds", "Time from a request's arrival to its answer", ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.model_time = Histogram("posezoo_model_seconds", "Model time per image or frame (decoded image in, poses out)", ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.queue_depth = Gauge("posezoo_queue_depth", "Requests admitted and waiting for a model copy", registry=r)
        self.in_flight = Gauge("posezoo_requests_in_flight", "Requests admitted (waiting or running)", registry=r)
        self.streams = Gauge("posezoo_streams_open", "WebSocket streams open", registry=r)
        self.frames = Counter("posezoo_stream_frames", "Stream frames received, by model", ["model"], registry=r)
        self.processed = Counter("posezoo_stream_frames_processed", "Stream frames run through the model", ["model"], registry=r)
        self.dropped = Counter("posezoo_stream_frames_dropped", "Stream frames dropped: 'newer' (a newer frame came before the model was free) or 'rate' (over --max-fps)", ["model", "reason"], registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
