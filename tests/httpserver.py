"""Test helpers for fetching: a mirror folder built from ../shared and a loopback HTTP server.

``MirrorServer`` serves such a folder on 127.0.0.1 with Range support, records every request,
and injects faults on demand::

    server.inject("pose_detection.tflite", "cut", "500")  # the next two GETs of that file misbehave

Faults: ``wrong`` (one byte flipped), ``cut`` (the body stops half-way), ``cut=N`` (the connection
closes after N bytes of the body), ``404``, ``500``, ``no-length`` (no Content-Length: the body ends
when the connection closes), ``stall`` (no answer for ``STALL`` seconds, then the connection closes),
``hang=N`` (N bytes, then silence for ``HANG`` seconds), ``trickle`` (one byte every ``TRICKLE``
seconds), ``huge`` (a Content-Length 100 times the file's, then the file and zeros without end),
``endless`` (the same without a Content-Length), ``redirect=URL`` (302 to URL, absolute or relative).
Endless bodies stop when the client hangs up, or after ``ENDLESS_LIMIT`` bytes. ``server.delay`` slows
every response (seconds per 64 KiB), ``server.honour_range = False`` answers Range requests with 200.
``MirrorServer(folder, tls=(cert, key))`` serves https (see :func:`make_certificate`); each
``Request`` records the body bytes ``sent``.

The fixtures ``home`` (POSEZOO_HOME in tmp_path), ``mirror_dir`` and ``server`` are imported by the test
modules that use them.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from mirror import build_mirror

CHUNK = 1 << 16
STALL = 0.5
HANG = 3.0
TRICKLE = 0.05
ENDLESS_LIMIT = 256 << 20


@dataclass
class Request:
    name: str
    range: str | None
    sent: int = 0  # body bytes written to the socket


class MirrorServer:
    """A ThreadingHTTPServer on 127.0.0.1 (port 0) serving ``folder``; use as a context manager."""

    def __init__(self, folder: Path, tls: tuple[Path, Path] | None = None):
        self.folder = Path(folder)
        self.scheme = "https" if tls else "http"
        self.requests: list[Request] = []
        self.delay = 0.0
        self.honour_range = True
        self._faults: dict[str, deque[str]] = defaultdict(deque)
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.owner = self  # type: ignore[attr-defined]
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*map(str, tls))
            self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"{self.scheme}://{host}:{port}"

    def __enter__(self) -> MirrorServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def inject(self, name: str, *faults: str) -> None:
        """Misbehave on the next ``len(faults)`` requests of ``name``, one fault each."""
        with self._lock:
            self._faults[name].extend(faults)

    def gets(self, name: str) -> list[Request]:
        """The requests seen for ``name``."""
        return [r for r in self.requests if r.name == name]

    def _take(self, name: str, rng: str | None) -> tuple[Request, str | None]:
        with self._lock:
            request = Request(name, rng)
            self.requests.append(request)
            queue = self._faults[name]
            return request, queue.popleft() if queue else None


class _Handler(BaseHTTPRequestHandler):
    server_version = "posezoo-test"

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        owner: MirrorServer = self.server.owner  # type: ignore[attr-defined]
        name = unquote(urlsplit(self.path).path.lstrip("/"))
        rng = self.headers.get("Range")
        request, fault = owner._take(name, rng)
        fault, _, arg = (fault or "").partition("=")
        if fault == "stall":
            time.sleep(STALL)
            return
        if fault == "redirect":
            self.send_response(302)
            self.send_header("Location", arg)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path = owner.folder / name
        if fault in ("404", "500") or "/" in name or not path.is_file():
            self.send_error(500 if fault == "500" else 404)
            return
        data = path.read_bytes()
        if fault == "wrong":
            data = _flip(data, len(data) // 2)
        start = _range_start(rng) if rng and owner.honour_range else None
        if start is not None and start >= len(data):
            self.send_error(416)
            return
        self.send_response(200 if start is None else 206)
        if start is not None:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        body = data[start or 0 :]
        if fault == "huge":
            self.send_header("Content-Length", str(100 * len(data)))
        elif fault not in ("no-length", "endless"):
            self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        try:
            if fault == "cut":
                self._send(request, body[: int(arg) if arg else len(body) // 2], owner.delay)
            elif fault == "hang":
                self._send(request, body[: int(arg)], 0)
                self.wfile.flush()
                time.sleep(HANG)
            elif fault == "trickle":
                for i in range(len(body)):
                    self._send(request, body[i : i + 1], 0)
                    time.sleep(TRICKLE)
            elif fault in ("huge", "endless"):
                self._send(request, body, 0)
                zeros = bytes(CHUNK)
                while request.sent < ENDLESS_LIMIT:
                    self._send(request, zeros, 0)
            else:
                self._send(request, body, owner.delay)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass  # the client hung up

    def _send(self, request: Request, body: bytes, delay: float) -> None:
        for i in range(0, len(body), CHUNK):
            piece = body[i : i + CHUNK]
            self.wfile.write(piece)
            request.sent += len(piece)
            if delay:
                time.sleep(delay)


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


def _range_start(header: str) -> int | None:
    """N of ``bytes=N-`` (the only form posezoo sends)."""
    spec = header.strip().removeprefix("bytes=")
    first, _, last = spec.partition("-")
    return int(first) if first.isdigit() and not last else None


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for 127.0.0.1 (the ``openssl`` command line): (cert, key)."""
    openssl = shutil.which("openssl")
    assert openssl, "the openssl command is needed to make a test certificate"
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


# --------------------------------------------------------------------------------------------- fixtures


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh POSEZOO_HOME; no mirror, online, fast retries."""
    path = tmp_path / "home"
    monkeypatch.setenv("POSEZOO_HOME", str(path))
    monkeypatch.delenv("POSEZOO_MIRROR", raising=False)
    monkeypatch.delenv("POSEZOO_OFFLINE", raising=False)
    monkeypatch.setenv("POSEZOO_FETCH_BACKOFF", "0.01")
    monkeypatch.delenv("POSEZOO_FETCH_RETRIES", raising=False)
    return path


@pytest.fixture(scope="session")
def mirror_dir(shared_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A mirror folder: the shared weights under their registry names."""
    folder = tmp_path_factory.mktemp("mirror")
    build_mirror(shared_models, folder, link=True)
    return folder


@pytest.fixture()
def server(mirror_dir: Path):
    """A loopback HTTP server for ``mirror_dir``."""
    with MirrorServer(mirror_dir) as srv:
        yield srv
