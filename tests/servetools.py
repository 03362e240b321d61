"""``posezoo serve`` as the tests run it: the real command in a subprocess on 127.0.0.1, a free port.

:class:`ServerProcess` starts ``python -m posezoo serve ARGS --port 0`` (or a given port), waits for its
"serving ... on http://127.0.0.1:PORT" line, keeps reading its stderr, and stops it with SIGTERM (then
SIGKILL). The child dies with the test process (PR_SET_PDEATHSIG), so no server outlives a killed run.
"""

from __future__ import annotations

import ctypes
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

SERVING = re.compile(r"on http://127\.0\.0\.1:(\d+)")


def _die_with_parent() -> None:
    """``preexec_fn``: SIGKILL this child when its parent dies; SIGINT at its default (see clitools)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    def __init__(self, args, env: dict, *, port: int = 0, timeout: float = 120.0, cwd: Path | None = None):
        self.args = [str(a) for a in args]
        self.env = env
        self.lines: list[str] = []
        cmd = [sys.executable, "-m", "posezoo", "serve", *self.args, "--port", str(port)]
        self.proc = subprocess.Popen(
            cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True, preexec_fn=_die_with_parent,
        )  # fmt: skip
        self._ready = threading.Event()
        self.port = None
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(timeout) or self.port is None:
            self.kill()
            raise AssertionError(f"posezoo serve did not start in {timeout} s:\n" + self.stderr)
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))
            m = SERVING.search(line)
            if m and self.port is None:
                self.port = int(m.group(1))
                self._ready.set()
        self._ready.set()  # (ended before serving)

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines)

    def pid_rss(self) -> int:
        """The server's resident memory, bytes."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def stop(self, sig=signal.SIGTERM, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def metrics(self, headers=None) -> str:
        import requests

        return requests.get(self.url + "/metrics", headers=headers, timeout=10).text


def metric(text: str, name: str, **labels) -> float:
    """The value of one sample of a Prometheus text page (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        got = dict(re.findall(r'(\w+)="([^"]*)"', head))
        if head.split("{")[0] == name and all(got.get(k) == str(v) for k, v in labels.items()):
            return float(value)
    return 0.0


def assert_json_error(response, status: int) -> dict:
    """A JSON error answer: the status, one line, ``error`` and ``status`` keys, no traceback or path."""
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/json"), response.headers
    text = response.text
    assert "\n" not in text.strip() and "Traceback" not in text and "/tmp/" not in text and "/work/" not in text, text
    body = json.loads(text)
    assert set(body) == {"error", "status"} and body["status"] == status and body["error"], body
    return body


def raw_http(port: int, head: bytes, body_parts=(), pause: float = 0.0, timeout: float = 30.0) -> tuple[int, bytes]:
    """Send raw request bytes over a socket; (status, body) of the answer (status 0: none came)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head)
        for part in body_parts:
            time.sleep(pause)
            try:
                s.sendall(part)
            except OSError:
                break
        data = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
                if b"\r\n\r\n" in data:
                    head_end = data.index(b"\r\n\r\n")
                    m = re.search(rb"content-length: *(\d+)", data[:head_end], re.I)
                    if m and len(data) >= head_end + 4 + int(m.group(1)):
                        break
        except OSError:
            pass
    if not data.startswith(b"HTTP/1.1 "):
        return 0, data
    status = int(data[9:12])
    return status, data.partition(b"\r\n\r\n")[2]
