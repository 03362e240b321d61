"""Fault injection against a real loopback server (http and https): sizes, slow servers, redirects,
TLS, broken connections. Every test is bounded by the limits it sets (fractions of a second)."""

from __future__ import annotations

import hashlib
import time
from dataclasses import replace
from pathlib import Path

import pytest

from httpserver import ENDLESS_LIMIT, MirrorServer, home, make_certificate, mirror_dir, server  # noqa: F401
from posezoo.supply.cache import Cache
from posezoo.errors import FetchError
from posezoo.supply.fetch import fetch_file
from posezoo.supply.registry import build_registry

REGISTRY = build_registry(user_files=[])
DETECTOR = REGISTRY.files["pose_detection.tflite"]  # 2.9 MB
LITE = REGISTRY.files["pose_landmark_lite_v0.8.9.tflite"]


def leftovers(cache: Cache) -> list[str]:
    partial = cache.root / "partial"
    return sorted(p.name for p in partial.iterdir()) if partial.is_dir() else []


def fetch_error(entry, mirror: str, **kw) -> tuple[str, float]:
    """The one-line FetchError of fetching ``entry`` from ``mirror``, and how long it took."""
    start = time.monotonic()
    with pytest.raises(FetchError) as err:
        fetch_file(entry, mirror=mirror, progress=False, **kw)
    message = str(err.value)
    assert "\n" not in message and len(message) < 1000 and err.value.exit_code == 3
    return message, time.monotonic() - start


@pytest.fixture(scope="session")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture()
def tls_server(mirror_dir, certificate):
    with MirrorServer(mirror_dir, tls=certificate) as srv:
        yield srv


@pytest.fixture()
def trusted(certificate, monkeypatch):
    """Trust the test certificate, as a user with a private CA would (REQUESTS_CA_BUNDLE)."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificate[0]))


# --------------------------------------------------------------------------------------------- sizes


def test_announced_size_past_the_registry_is_refused_before_the_body(home, server):
    server.inject(DETECTOR.name, "huge")
    message, took = fetch_error(DETECTOR, server.url)
    assert f"announced with {100 * DETECTOR.size} bytes, the registry says {DETECTOR.size}" in message
    assert "bytes were deleted" in message and took < 5
    assert server.gets(DETECTOR.name)[0].sent < ENDLESS_LIMIT  # we hung up; the server could not go on
    assert len(server.gets(DETECTOR.name)) == 1 and leftovers(Cache()) == []  # not retried, nothing kept


def test_body_past_the_registry_size_stops_at_once(home, server):
    server.inject(DETECTOR.name, "endless")  # no Content-Length: only counting can stop it
    message, took = fetch_error(DETECTOR, server.url)
    assert f"runs past the {DETECTOR.size} bytes the registry states: stopped at once" in message
    assert took < 5 and server.gets(DETECTOR.name)[0].sent < DETECTOR.size + (16 << 20)
    assert len(server.gets(DETECTOR.name)) == 1 and leftovers(Cache()) == []


def test_a_file_without_size_stops_at_the_size_cap(home, server, monkeypatch):
    unsized = replace(DETECTOR, size=None)
    monkeypatch.setenv("POSEZOO_FETCH_MAX_SIZE", str(1 << 20))
    message, _ = fetch_error(unsized, server.url)  # Content-Length 2.9 MB: refused before the body
    assert "announced with 2959046 bytes (2.8 MiB), more than POSEZOO_FETCH_MAX_SIZE=1048576" in message
    server.inject(DETECTOR.name, "endless")
    message, _ = fetch_error(unsized, server.url)
    assert "runs past POSEZOO_FETCH_MAX_SIZE=1048576 bytes" in message and "raise POSEZOO_FETCH_MAX_SIZE" in message
    assert leftovers(Cache()) == []
    monkeypatch.delenv("POSEZOO_FETCH_MAX_SIZE")  # the default (2 GiB) lets it through
    assert fetch_file(unsized, mirror=server.url, progress=False).stat().st_size == DETECTOR.size


@pytest.mark.parametrize("fault", [None, "no-length"])
def test_wrong_size_is_refused_even_when_the_digest_matches(home, server, mirror_dir, fault):
    for size in (DETECTOR.size - 1, DETECTOR.size + 1):  # the registry's size is wrong, its digest right
        entry = replace(DETECTOR, size=size)
        if fault:
            server.inject(DETECTOR.name, fault)
        message, _ = fetch_error(entry, server.url)
        assert f"the registry says {size}" in message or f"runs past the {size} bytes the registry" in message
        message, _ = fetch_error(entry, str(mirror_dir))  # a mirror folder: refused before copying
        assert f"has {DETECTOR.size} bytes, the registry says {size}" in message
        assert not Cache().is_cached(entry) and leftovers(Cache()) == []


# --------------------------------------------------------------------------------------------- progress


def test_a_trickle_is_too_slow_and_the_part_is_kept_for_a_resume(home, server, monkeypatch):
    monkeypatch.setenv("POSEZOO_FETCH_MIN_SPEED", "100000")  # bytes/s; the trickle sends 20
    monkeypatch.setenv("POSEZOO_FETCH_SPEED_WINDOW", "0.3")
    monkeypatch.setenv("POSEZOO_FETCH_RETRIES", "1")
    server.inject(DETECTOR.name, "trickle")
    message, took = fetch_error(DETECTOR, server.url)
    assert "is too slow:" in message and "the minimum is 100000 bytes/s over 0.3 s" in message
    assert "the part is kept" in message and "resume" in message and took < 3
    kept = Cache().part_size(DETECTOR)
    assert kept > 0  # what arrived is kept ...
    fetch_file(DETECTOR, mirror=server.url, progress=False)
    assert server.gets(DETECTOR.name)[-1].range == f"bytes={kept}-"  # ... and resumed
    assert Cache().is_cached(DETECTOR) and leftovers(Cache()) == []


def test_silence_mid_body_ends_after_the_window_and_is_retried(home, server, monkeypatch):
    monkeypatch.setenv("POSEZOO_FETCH_SPEED_WINDOW", "0.3")
    server.inject(DETECTOR.name, "hang=100000")  # 100 kB, then silence (3 s)
    start = time.monotonic()
    path = fetch_file(DETECTOR, mirror=server.url, progress=False)
    assert time.monotonic() - start < 2.5  # did not wait for the server
    first, second = server.gets(DETECTOR.name)
    assert second.range == "bytes=100000-"  # the retry resumed after every byte received
    assert hashlib.sha256(path.read_bytes()).hexdigest() == DETECTOR.hexdigest


def test_the_deadline_ends_a_download_that_is_fast_enough_but_too_long(home, server, monkeypatch):
    monkeypatch.setenv("POSEZOO_FETCH_MIN_SPEED", "0")
    monkeypatch.setenv("POSEZOO_FETCH_DEADLINE", "0.5")
    server.inject(DETECTOR.name, "trickle")
    message, took = fetch_error(DETECTOR, server.url)
    assert "did not finish within 0.5 s" in message and "raise POSEZOO_FETCH_DEADLINE" in message
    assert took < 2 and len(server.gets(DETECTOR.name)) == 1  # not retried
    assert leftovers(Cache()) == [f"{DETECTOR.name}.part", f"{DETECTOR.name}.part.json"]


@pytest.mark.parametrize("name,value", [("POSEZOO_FETCH_DEADLINE", "soon"), ("POSEZOO_FETCH_SPEED_WINDOW", "0"),
                                        ("POSEZOO_FETCH_MIN_SPEED", "-1"), ("POSEZOO_FETCH_MAX_SIZE", "inf")])
def test_bad_settings_are_one_line(home, server, monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    message, _ = fetch_error(DETECTOR, server.url)
    assert f"${name} is {value}, not a" in message and f"unset {name}" in message
    assert server.requests == []


# --------------------------------------------------------------------------------------------- broken connections


def test_repeated_early_closes_keep_every_byte(home, server, monkeypatch):
    """A server that closes before its Content-Length, again and again: each resume starts exactly
    where the bytes received so far end (no chunk dropped), so the download gets through."""
    monkeypatch.setenv("POSEZOO_FETCH_RETRIES", "6")
    server.inject(DETECTOR.name, *["cut=700000"] * 4)
    path = fetch_file(DETECTOR, mirror=server.url, progress=False)
    gets = server.gets(DETECTOR.name)
    assert len(gets) == 5
    received = 0
    for request in gets:
        assert request.range == (f"bytes={received}-" if received else None)
        received += request.sent
    assert received == DETECTOR.size
    assert hashlib.sha256(path.read_bytes()).hexdigest() == DETECTOR.hexdigest


def test_closes_after_less_than_a_chunk_still_make_progress(home, server, monkeypatch):
    monkeypatch.setenv("POSEZOO_FETCH_RETRIES", "3")
    server.inject(DETECTOR.name, "cut=1000", "cut=1000", "cut=1000")
    message, _ = fetch_error(DETECTOR, server.url)
    assert f"stopped after 3000 of {DETECTOR.size} bytes (the connection closed early)" in message
    assert [r.range for r in server.gets(DETECTOR.name)] == [None, "bytes=1000-", "bytes=2000-"]
    assert Cache().part_size(DETECTOR) == 3000  # all of it, kept for the next run


# --------------------------------------------------------------------------------------------- redirects


def test_redirect_is_followed_and_the_manifest_names_where_the_bytes_came_from(home, server):
    server.inject("moved.tflite", f"redirect=/{DETECTOR.name}")
    entry = replace(DETECTOR, name="moved.tflite")
    fetch_file(entry, mirror=server.url, progress=False)
    assert Cache().manifest(entry.name)["url"] == f"{server.url}/{DETECTOR.name}"
    assert [r.name for r in server.requests] == ["moved.tflite", DETECTOR.name]


def test_https_to_http_redirect_is_refused(home, server, tls_server, trusted):
    fetch_file(LITE, mirror=tls_server.url, progress=False)  # https works with the trusted certificate
    assert Cache().manifest(LITE.name)["url"] == f"{tls_server.url}/{LITE.name}"
    tls_server.inject(DETECTOR.name, f"redirect={server.url}/{DETECTOR.name}")
    message, _ = fetch_error(DETECTOR, tls_server.url)
    assert f"redirected to {server.url}/{DETECTOR.name}, from https to plain http: refused" in message
    assert server.requests == [] and len(tls_server.gets(DETECTOR.name)) == 1  # not followed, not retried


def test_an_http_mirror_may_redirect_to_http(home, server, mirror_dir):
    with MirrorServer(mirror_dir) as other:
        server.inject(DETECTOR.name, f"redirect={other.url}/{DETECTOR.name}")
        fetch_file(DETECTOR, mirror=server.url, progress=False)
        assert Cache().manifest(DETECTOR.name)["url"] == f"{other.url}/{DETECTOR.name}"


def test_redirect_to_another_scheme_and_loops_are_refused_without_retries(home, server):
    server.inject(DETECTOR.name, "redirect=ftp://127.0.0.1/pose_detection.tflite")
    message, _ = fetch_error(DETECTOR, server.url)
    assert "redirected to ftp://127.0.0.1/pose_detection.tflite: only valid http(s) URLs are followed" in message
    assert len(server.requests) == 1

    server.inject("a.tflite", "redirect=/b.tflite")
    server.inject("b.tflite", "redirect=/a.tflite")
    message, _ = fetch_error(replace(DETECTOR, name="a.tflite"), server.url)
    assert f"{server.url}/b.tflite redirected back to {server.url}/a.tflite: a redirect loop" in message
    assert [r.name for r in server.requests[1:]] == ["a.tflite", "b.tflite"]

    server.inject("c.tflite", *[f"redirect=/c.tflite?{i}" for i in range(20)])
    message, _ = fetch_error(replace(DETECTOR, name="c.tflite"), server.url)
    assert "redirected more than 10 times" in message


def test_a_huge_redirect_target_is_cut_short_in_the_message(home, server):
    server.inject(DETECTOR.name, "redirect=gopher://" + "x" * 20000)
    message, _ = fetch_error(DETECTOR, server.url)
    assert "only valid http(s) URLs are followed" in message and len(message) < 500


# --------------------------------------------------------------------------------------------- TLS


def test_untrusted_certificate_says_so_and_is_not_retried(home, tls_server, monkeypatch):
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    message, took = fetch_error(DETECTOR, tls_server.url)
    assert "the TLS certificate of 127.0.0.1 is not trusted (self-signed certificate" in message
    assert "network is unreachable" not in message and "REQUESTS_CA_BUNDLE" in message
    assert tls_server.requests == [] and took < 5  # refused in the handshake, once
    assert leftovers(Cache()) == []


def test_https_to_a_plain_http_server_is_a_handshake_error(home, server):
    message, _ = fetch_error(DETECTOR, server.url.replace("http://", "https://"))
    assert "the TLS handshake with 127.0.0.1 failed" in message and "network is unreachable" not in message


# --------------------------------------------------------------------------------------------- not HTTP


class RawServer:
    """A TCP server on 127.0.0.1 that answers every connection with fixed bytes (not HTTP), then closes
    it; ``connections`` counts them."""

    def __init__(self, reply: bytes):
        import socket
        import threading

        self.reply = reply
        self.connections = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.1)
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(65536)
                    conn.sendall(self.reply)
                except OSError:
                    pass

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d" % self.sock.getsockname()[1]

    def __enter__(self) -> "RawServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.running = False
        self.thread.join(timeout=5)
        self.sock.close()


@pytest.mark.parametrize("reply", [b"SSH-2.0-OpenSSH_8.9\r\n", b"\x00\x01\xfe garbage\r\n\r\n",
                                   b"HTTP/1.1 abc OK\r\n\r\n", b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70000 + b"\r\n\r\n"],
                         ids=["ssh", "binary", "bad-status", "header-too-long"])
def test_a_reply_that_is_not_http_is_called_malformed_not_unreachable(home, reply):
    """Before: "the network is unreachable (127.0.0.1: the server closed the connection...)" or
    "(ConnectionError)", after three tries."""
    with RawServer(reply) as raw:
        message, took = fetch_error(DETECTOR, raw.url)
        assert "the server's reply is malformed, not HTTP" in message and "unreachable" not in message
        assert "serves http(s) at that port" in message
        assert raw.connections == 1 and took < 10  # not retried: another try gets the same garbage
    assert leftovers(Cache()) == []


def test_a_server_that_closes_without_an_answer_is_still_unreachable(home):
    with RawServer(b"") as raw:
        message, _ = fetch_error(DETECTOR, raw.url)
    assert "closed the connection without an answer" in message and "malformed" not in message
