"""Fetch registry weight files into the cache: download and verify (conversion is posezoo.supply.convert's).

- :func:`fetch_file` gets one verified file: from the cache, a mirror, or its registry URL.
- :func:`fetch_model` gets the files of a variant (or of every variant), shards of TF.js models
  included, returning ``{role: path}`` of the verified upstream files (members extracted from their
  archives).

Sources. A file comes from its registry URL (https only), or from a mirror (``mirror=`` or
``$POSEZOO_MIRROR``): an http(s) URL or a local folder (a path or ``file://`` URL) holding files under
their registry names, ``<mirror>/<name>``. Whatever the source, the bytes are checked against the
registry digest (``sha256:`` or ``git-blob-sha1:``) and size before they enter the cache.

Offline (``offline=True`` or ``$POSEZOO_OFFLINE`` in 1/true/yes): the network is never used; a file not
in the cache comes from a local mirror folder or is a :class:`FetchError` saying how to get it.

Downloads stream into ``<cache>/partial/<name>.part`` while being hashed; only a verified part is moved
(``os.replace``) into ``files/``. The part is opened once, without following links (a link, special file
or hard-linked file there is removed with a warning, see :mod:`posezoo.supply.cache`), and the file moved
is checked to be the one written and hashed. Limits a hostile or broken server cannot get past:

- size: a response announcing another size than the registry's, or a body running past it, is stopped
  at once and its bytes deleted; a file whose entry has no size stops at ``$POSEZOO_FETCH_MAX_SIZE``
  bytes (default 2 GiB). A complete file of the wrong size is refused before its digest is looked at.
- progress: fewer than ``$POSEZOO_FETCH_MIN_SPEED`` bytes/s (default 1024) over a
  ``$POSEZOO_FETCH_SPEED_WINDOW`` (default 30 s; also the longest wait for any byte) ends that try, and
  ``$POSEZOO_FETCH_DEADLINE`` (default 3600 s, 0: none) ends the file's download; the part is kept.
- redirects: at most 10, no loops, http(s) only, and never from https to plain http unless the user
  gave an http mirror. The manifest records the URL the bytes came from.

Archive members. A registry file with ``archive`` and ``member`` is a member of an archive upstream
publishes (format ``zip`` or ``tar.gz``, :mod:`posezoo.supply.formats`). The archive is fetched like any
file (cache, mirror, URL, offline, every limit below, its digest) and stays in the cache for its other
members; it is re-hashed before use, then the member alone is streamed out of it
(:mod:`posezoo.supply.archive`) into the part with the registry size as a hard limit (a member the
archive says is of another size is refused before a byte is read; one running past it is stopped),
hashed, and moved into ``files/`` only when size and digest match. Errors name the member and the archive.

Transport errors, HTTP 5xx and too-slow tries are tried again (``$POSEZOO_FETCH_RETRIES`` tries,
default 3, waiting ``$POSEZOO_FETCH_BACKOFF`` seconds, default 0.5, doubling each time), resuming the
part with an HTTP Range request; a server that answers a Range request with the whole file (200) is
read from the start. Bodies are read as they arrive (``read1``), so a connection that breaks keeps every
byte received. What retrying cannot mend is not retried: a TLS certificate that does not verify, a reply that is
not HTTP (a malformed status or header line: another protocol at that port), a bad redirect, HTTP 4xx,
a wrong size. A download that stops part-way (Ctrl-C, the deadline, or the tries
run out mid-body) keeps its part and sidecar, and the next fetch resumes it. Every other failure
(digest or size mismatch, HTTP 4xx, disk full) removes the part. A per-file lock makes concurrent
fetches of the same file end with one verified file.
"""

from __future__ import annotations

import errno
import http.client
import math
import os
import re
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator
from urllib.parse import quote, urljoin, urlsplit
from urllib.request import url2pathname

import requests
import urllib3
from tqdm import tqdm

from posezoo.version import __version__
from posezoo.supply.cache import Cache
from posezoo.errors import FetchError, shorten
from posezoo.supply import formats, progress as _progress
from posezoo.supply.archive import ArchiveError
from posezoo.supply.hashes import READ_CHUNK, file_digest, hash_into, iter_file, new_hasher
from posezoo.supply.registry import FileEntry, ModelEntry, Variant

MIRROR_ENV = "POSEZOO_MIRROR"
OFFLINE_ENV = "POSEZOO_OFFLINE"
RETRIES_ENV = "POSEZOO_FETCH_RETRIES"
BACKOFF_ENV = "POSEZOO_FETCH_BACKOFF"
MIN_SPEED_ENV = "POSEZOO_FETCH_MIN_SPEED"
SPEED_WINDOW_ENV = "POSEZOO_FETCH_SPEED_WINDOW"
DEADLINE_ENV = "POSEZOO_FETCH_DEADLINE"
MAX_SIZE_ENV = "POSEZOO_FETCH_MAX_SIZE"
DEFAULTS = {
    RETRIES_ENV: 3,
    BACKOFF_ENV: 0.5,
    MIN_SPEED_ENV: 1024,  # bytes per second ...
    SPEED_WINDOW_ENV: 30,  # ... over this many seconds; also the longest wait for a byte
    DEADLINE_ENV: 3600,  # seconds for one file, all tries together; 0: no deadline
    MAX_SIZE_ENV: 2 << 30,  # bytes, for a file whose registry entry has no size
}
CONNECT_TIMEOUT = 10  # seconds
MAX_REDIRECTS = 10
CHUNK = 1 << 16
MIRROR_FIX = "use --mirror DIR / POSEZOO_MIRROR"
MAX_URL = 600  # characters of a URL quoted whole in a message (see _full_url)
RESUME_FIX = "run the same command again to resume it"


# --------------------------------------------------------------------------------------------- public API


def fetch_file(
    entry: FileEntry,
    *,
    cache: Cache | None = None,
    mirror: str | None = None,
    offline: bool | None = None,
    progress: bool = True,
) -> Path:
    """The path of the verified file ``entry`` in the cache, fetching it when needed."""
    with _Fetcher(cache, mirror, offline, progress) as fetcher:
        return fetcher.fetch(entry)


def fetch_model(
    model: ModelEntry,
    variant: str | Variant | None = None,
    *,
    all_variants: bool = False,
    cache: Cache | None = None,
    mirror: str | None = None,
    offline: bool | None = None,
    progress: bool = True,
) -> dict[str, Path]:
    """Fetch and verify a variant's files (shards included); returns ``{role: path}`` for that variant.

    ``variant`` (a name, or the :class:`Variant` a caller already chose) defaults to the model's default
    variant. With ``all_variants`` every variant's files are fetched, and the mapping is still the one
    of ``variant``. The paths are the verified upstream files; :func:`posezoo.supply.convert.ensure_onnx`
    turns them into ONNX models.
    """
    chosen = variant if isinstance(variant, Variant) else model.variant(variant)
    variants = model.variants.values() if all_variants else [chosen]
    with _Fetcher(cache, mirror, offline, progress) as fetcher:
        for entry in _distinct(f for v in variants for f in v.all_files()):
            fetcher.fetch(entry, model.name)
    return {role: fetcher.cache.path(entry) for role, entry in chosen.files.items()}


# --------------------------------------------------------------------------------------------- settings


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


def _env_number(name: str, *, positive: bool = False) -> float:
    """A non-negative (with ``positive``: greater than zero) number from the environment, else its default."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return float(DEFAULTS[name])
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not (0 < value if positive else 0 <= value) or not math.isfinite(value):
        kind = "a number greater than 0" if positive else "a non-negative number"
        raise FetchError(f"${name} is {shorten(raw)}, not {kind}", f"unset {name} (default {DEFAULTS[name]}) or fix its value")
    return value


def _distinct(entries: Iterable[FileEntry]) -> list[FileEntry]:
    return list({e.name: e for e in entries}.values())


def _host(url: str) -> str:
    try:
        return urlsplit(url).hostname or shorten(url)
    except ValueError:
        return shorten(url)


def _scheme(url: str) -> str:
    """The URL's scheme, lower case; "" for a URL that does not parse (an invalid IPv6 host)."""
    try:
        return urlsplit(url).scheme.lower()
    except ValueError:
        return ""


def _mib(n: int | float) -> str:
    return f"{n} bytes" if n < 1 << 20 else f"{n} bytes ({n / (1 << 20):.1f} MiB)"


# --------------------------------------------------------------------------------------------- errors


class _Transient(Exception):
    """A failure worth another try (transport error, HTTP 5xx, too slow); ``error`` is what to raise at the end."""

    def __init__(self, error: FetchError):
        super().__init__(str(error))
        self.error = error


class _Refused(Exception):
    """A failure no retry can mend; the part is deleted (its bytes are not the file's) unless ``keep``."""

    def __init__(self, error: FetchError, keep: bool = False):
        super().__init__(str(error))
        self.error = error
        self.keep = keep


def _full_url(url: str) -> str:
    """A URL for a message, whole (one line, even if long: it must be copied to fetch the file
    elsewhere); only a URL past ``MAX_URL`` characters, which no registry or mirror gives, is cut."""
    return shorten(url, MAX_URL)


def _unreachable(entry: FileEntry, url: str, reason: str, model: str | None = None, mirrored: bool = False) -> FetchError:
    info = f"`posezoo info {model}`" if model else "`posezoo info MODEL`"
    if mirrored:
        fix = f"check the connection and the --mirror URL (or {MIRROR_ENV}), or --offline with the files already in the cache"
    else:
        fix = (f"check the connection; or download the file elsewhere into a folder and give it with --mirror DIR "
               f"(or {MIRROR_ENV}=DIR; {info} lists every file's URL, `posezoo cache export DIR` writes a "
               "mirror of a cache that has them); or --offline with the files already in the cache")
    return FetchError(
        f"cannot download {entry.name} from {_full_url(url)}: the network is unreachable ({_host(url)}: {reason})", fix
    )


def _transport_error(
    entry: FileEntry, url: str, exc: requests.RequestException, wait: float, model: str | None = None, mirrored: bool = False
) -> Exception:
    """What a failed request means: a _Refused (TLS, bad URL) or a _Transient (network, timeout)."""
    text = str(exc)
    if isinstance(exc, requests.exceptions.SSLError):
        found = re.search(r"certificate verify failed: ([^(')\]]+)", text)
        if found:
            what = f"the TLS certificate of {_host(url)} is not trusted ({found.group(1).strip()})"
            fix = ("check the system clock and any proxy that intercepts https; a private certificate authority "
                   f"can be given with REQUESTS_CA_BUNDLE=FILE; or {MIRROR_FIX}")
        else:
            reason = re.search(r"SSLError\((.*)\)\)", text)
            what = f"the TLS handshake with {_host(url)} failed ({shorten(reason.group(1) if reason else text, 120)})"
            fix = f"check that the URL is right and that the server speaks https; or {MIRROR_FIX}"
        return _Refused(FetchError(f"cannot download {entry.name} from {_full_url(url)}: {what}", fix))
    if isinstance(exc, (requests.exceptions.InvalidSchema, requests.exceptions.InvalidURL,
                        requests.exceptions.MissingSchema)):
        return _Refused(FetchError(f"cannot download {entry.name}: {shorten(url)} is not a valid http(s) URL",
                                   "check the mirror URL or the registry entry"))
    bad = _malformed_reply(exc)
    if bad is not None:
        return _Refused(FetchError(
            f"cannot download {entry.name} from {shorten(url)}: the server's reply is malformed, not HTTP "
            f"({type(bad).__name__}: {shorten(str(bad), 60)})",
            f"check that {_host(url)} serves http(s) at that port (the URL may name another service); or {MIRROR_FIX}",
        ))
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return _Transient(_unreachable(entry, url, f"no connection within {CONNECT_TIMEOUT} s", model, mirrored))
    if isinstance(exc, requests.Timeout):
        return _Transient(_unreachable(entry, url, f"connected, but no answer within {wait:g} s", model, mirrored))
    low = text.lower()
    if any(s in low for s in ("name or service", "nameresolution", "getaddrinfo", "nodename", "name resolution")):
        reason = "DNS lookup failed"
    elif "refused" in low:
        reason = "connection refused"
    elif "remotedisconnected" in low or "connection aborted" in low or "reset by peer" in low:
        reason = "the server closed the connection without an answer"
    else:
        reason = type(exc).__name__
    return _Transient(_unreachable(entry, url, reason, model, mirrored))


def _malformed_reply(exc: BaseException) -> BaseException | None:
    """The http.client error inside a requests error when the server answered with something that is not
    HTTP (a bad status line, a header line past the limit); None otherwise (a server that closed the
    connection without an answer is not that)."""
    seen: list[BaseException] = []
    todo: list[object] = [exc]
    while todo:
        item = todo.pop()
        if not isinstance(item, BaseException) or any(item is s for s in seen) or len(seen) > 20:
            continue
        seen.append(item)
        if isinstance(item, http.client.HTTPException) and not isinstance(item, http.client.RemoteDisconnected):
            return item
        todo.extend([*item.args, item.__cause__, item.__context__])
    return None


def _interrupted(entry: FileEntry, url: str, got: int, total: int | None, why: str) -> FetchError:
    of = f" of {total}" if total else ""
    return FetchError(f"download of {entry.name} from {_full_url(url)} stopped after {got}{of} bytes ({why})", RESUME_FIX)


def _http_error(entry: FileEntry, url: str, resp: requests.Response) -> FetchError:
    if resp.status_code >= 500:
        fix = f"the server has a problem: try again later, or {MIRROR_FIX}"
    else:
        fix = f"the file may have moved: check the registry entry, or {MIRROR_FIX}"
    reason = shorten(resp.reason or "", 60)
    return FetchError(f"cannot download {entry.name}: {_full_url(url)} answered HTTP {resp.status_code} {reason}", fix)


def _redirect_error(entry: FileEntry, url: str, what: str) -> _Refused:
    return _Refused(FetchError(
        f"cannot download {entry.name}: {shorten(url)} {what}",
        f"the server is misconfigured or not the one meant: {MIRROR_FIX} with another source",
    ))


def _size_error(entry: FileEntry, url: str, what: str) -> _Refused:
    if entry.size:
        fix = "the source serves another file: try another mirror, or check the registry's size and digest"
    else:
        fix = f"add the file's size to its registry entry, or raise {MAX_SIZE_ENV}"
    return _Refused(FetchError(f"{entry.name} from {shorten(url)} {what}; its bytes were deleted", fix))


def _io_error(entry: FileEntry, cache: Cache, exc: OSError) -> FetchError:
    if exc.errno == errno.ENOSPC:
        return FetchError(
            f"disk full while storing {entry.name} in {cache.root}; the partial file was removed",
            "free some space, or set POSEZOO_HOME to a folder on a larger disk",
        )
    return cache.write_error(exc, f"store {entry.name}")


def _archive_error(entry: FileEntry, exc: FetchError) -> FetchError:
    """What went wrong getting the archive of ``entry``, saying which member it was for."""
    assert entry.archive is not None
    return FetchError(f"cannot get {entry.name} (member {entry.member!r} of the archive {entry.archive.name}): "
                      f"{exc.message}", exc.fix)


def _member_error(entry: FileEntry, archive: FileEntry, what: str, fix: str) -> FetchError:
    return FetchError(f"{entry.name} (member {entry.member!r} of the archive {archive.name}) {what}", fix)


def _offline(entry: FileEntry, model: str | None) -> FetchError:
    who = f" (model {model})" if model else ""
    return FetchError(
        f"{entry.name}{who} is not in the cache and posezoo is offline",
        f"run `posezoo fetch {model or 'MODEL'}` while online, or {MIRROR_FIX} with a folder that has {entry.name} "
        f"(`posezoo info {model or 'MODEL'}` shows its URL)",
    )


# --------------------------------------------------------------------------------------------- pace


class _Pace:
    """The progress rules of one file's download, across its tries: a minimum speed over a window, and
    a deadline for the whole download."""

    def __init__(self, min_speed: float, window: float, deadline: float):
        self.min_speed = min_speed
        self.window = window
        self.deadline = deadline
        self.end = time.monotonic() + deadline if deadline else math.inf
        self.start(0)

    def remaining(self) -> float:
        return self.end - time.monotonic()

    def read_timeout(self) -> float:
        """How long to wait for the next bytes: the window, or less when the deadline is nearer."""
        return max(0.05, min(self.window, self.remaining()))

    def start(self, got: int) -> None:
        """A new response body starts; ``got`` bytes of the file are already there."""
        self.mark_time, self.mark_bytes = time.monotonic(), got

    def check(self, entry: FileEntry, url: str, got: int, total: int | None) -> None:
        """After receiving bytes (``got`` of the file so far): past the deadline, or too slow?"""
        now = time.monotonic()
        if now >= self.end:
            raise self.past_deadline(entry, url, got, total)
        elapsed = now - self.mark_time
        if self.min_speed and elapsed >= self.window:
            if got - self.mark_bytes < self.min_speed * elapsed:
                raise self.too_slow(entry, url, got, total, got - self.mark_bytes, elapsed)
            self.mark_time, self.mark_bytes = now, got

    def too_slow(self, entry: FileEntry, url: str, got: int, total: int | None, moved: int, elapsed: float) -> _Transient:
        of = f" of {total}" if total else ""
        return _Transient(FetchError(
            f"download of {entry.name} from {_full_url(url)} is too slow: {moved} bytes in the last {elapsed:.0f} s "
            f"(the minimum is {self.min_speed:g} bytes/s over {self.window:g} s); stopped after {got}{of} bytes, "
            "the part is kept",
            f"{RESUME_FIX}; or {MIRROR_FIX}; or lower {MIN_SPEED_ENV} / raise {SPEED_WINDOW_ENV}",
        ))

    def past_deadline(self, entry: FileEntry, url: str, got: int, total: int | None) -> _Refused:
        of = f" of {total}" if total else ""
        return _Refused(FetchError(
            f"download of {entry.name} from {_full_url(url)} did not finish within {self.deadline:g} s; "
            f"stopped after {got}{of} bytes, the part is kept",
            f"{RESUME_FIX}; or raise {DEADLINE_ENV} (0: no deadline); or {MIRROR_FIX}",
        ), keep=True)


# --------------------------------------------------------------------------------------------- fetching


def _mirror_folder(mirror: str) -> Path | None:
    """The local folder a mirror names, or None for an http(s) mirror."""
    try:
        parts = urlsplit(mirror)
    except ValueError as exc:
        raise FetchError(f"mirror {shorten(mirror)} is not a valid URL ({exc})", "give a folder or an http(s) URL") from None
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        return None
    if scheme == "file":
        folder = Path(url2pathname(parts.path))
    elif len(scheme) > 1:  # (a one-letter scheme is a Windows drive)
        raise FetchError(f"mirror {shorten(mirror)} is neither a folder nor an http(s) URL", "give a folder or a URL")
    else:
        folder = Path(mirror).expanduser()
    if not folder.is_dir():
        raise FetchError(f"mirror folder {shorten(str(folder))} does not exist",
                         "give the folder `posezoo cache export` wrote")
    return folder


class _Fetcher:
    """One fetch session: settings, an HTTP session made on first use, and the fetching itself."""

    def __init__(self, cache: Cache | None, mirror: str | None, offline: bool | None, progress: bool):
        self.cache = cache or Cache()
        self.mirror = (mirror if mirror is not None else os.environ.get(MIRROR_ENV, "")).strip() or None
        self.offline = _env_flag(OFFLINE_ENV) if offline is None else offline
        self.progress = _progress.enabled(progress)
        self.tries = max(1, int(_env_number(RETRIES_ENV)))
        self.backoff = _env_number(BACKOFF_ENV)
        self.min_speed = _env_number(MIN_SPEED_ENV)
        self.window = _env_number(SPEED_WINDOW_ENV, positive=True)
        self.deadline = _env_number(DEADLINE_ENV)
        self.max_size = int(_env_number(MAX_SIZE_ENV, positive=True))
        # plain http is allowed only where the user asked for it: an http mirror
        self.allow_http = bool(self.mirror) and _scheme(self.mirror) == "http"
        self._session: requests.Session | None = None
        self.model: str | None = None  # the model whose file is being fetched (for messages)

    def __enter__(self) -> _Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._session is not None:
            self._session.close()

    @property
    def session(self) -> requests.Session:
        if self._session is None:
            self._session = requests.Session()
            self._session.headers.update({"User-Agent": f"posezoo/{__version__}", "Accept-Encoding": "identity"})
        return self._session

    # ---- one file

    def fetch(self, entry: FileEntry, model: str | None = None) -> Path:
        """The cached file, fetched and verified first when it is not there."""
        self.model = model or self.model
        if self.cache.is_cached(entry):
            return self.cache.path(entry)
        if entry.archive is not None:
            return self._member(entry, model)
        with self.cache.hold(entry, "fetching", self.progress):
            if not self.cache.is_cached(entry):  # another process may have fetched it meanwhile
                source = self._source(entry, model)
                try:
                    # (a live bar on a terminal, see _write; elsewhere one line for the file)
                    note = self.progress and not _progress.live(self.progress)
                    size = _progress.size_text(entry.size)
                    with _progress.step(note, f"fetching {entry.name} ({size})", f"fetched {entry.name} ({size})"):
                        if isinstance(source, Path):
                            self._copy(entry, source)
                        else:
                            self._download(entry, source)
                except _Refused as exc:
                    if not exc.keep:
                        self._drop(entry)
                    raise exc.error from None
                except _Transient as exc:  # (a mirror file that shrank while being copied)
                    raise exc.error from None
                except OSError as exc:  # writing the part: disk full, read-only, ...
                    self._drop(entry)
                    raise _io_error(entry, self.cache, exc) from None
        return self.cache.path(entry)

    def _drop(self, entry: FileEntry) -> None:
        try:
            self.cache.drop_partial(entry)
        except OSError:
            pass  # (a read-only cache: nothing was written either)

    def _source(self, entry: FileEntry, model: str | None) -> Path | str:
        """Where to get ``entry``: a file of a local mirror, or a URL."""
        folder = _mirror_folder(self.mirror) if self.mirror else None
        if folder is not None:
            path = folder / entry.name
            if not path.is_file():
                raise FetchError(
                    f"{entry.name} is not in the mirror folder {folder}",
                    "export a mirror with `posezoo cache export DIR` where it is cached, or fetch without --mirror",
                )
            return path
        if self.offline:
            raise _offline(entry, model)
        if self.mirror:
            return f"{self.mirror.rstrip('/')}/{quote(entry.name)}"
        if not entry.url.startswith("https://"):
            raise FetchError(f"{entry.name}: registry URL {shorten(entry.url)} is not https",
                             "registry URLs must use https")
        return entry.url

    def _limit(self, entry: FileEntry) -> int:
        """The most bytes ``entry`` may have."""
        return entry.size or self.max_size

    def _copy(self, entry: FileEntry, src: Path) -> None:
        """Copy from a mirror folder (resuming a partial copy of the same file)."""
        url = src.absolute().as_uri()
        size = src.stat().st_size
        if entry.size and size != entry.size:
            raise _size_error(entry, url, f"has {size} bytes, the registry says {entry.size}")
        if size > self._limit(entry):
            raise _size_error(entry, url, f"has {_mib(size)}, more than {MAX_SIZE_ENV}={self.max_size}")
        offset = self.cache.open_partial(entry, url)
        chunks = self._bounded(entry, url, _read_source(entry, src, offset), offset)
        self._store(entry, url, chunks, offset, entry.size or size)

    def _download(self, entry: FileEntry, url: str) -> None:
        """Download with retries; each try resumes what the previous ones wrote."""
        pace = _Pace(self.min_speed, self.window, self.deadline)
        for attempt in range(1, self.tries + 1):
            try:
                self._download_once(entry, url, pace)
                return
            except _Transient as exc:
                wait = self.backoff * 2 ** (attempt - 1)
                if attempt == self.tries or wait >= pace.remaining():
                    if not self.cache.part_size(entry):
                        self._drop(entry)  # nothing worth resuming
                    raise exc.error from None
                time.sleep(wait)

    def _download_once(self, entry: FileEntry, url: str, pace: _Pace) -> None:
        resp, source, offset = self._open(entry, url, pace)
        with resp:
            total = self._check_size(entry, source, resp, offset)
            pace.start(offset)
            chunks = self._bounded(entry, source, self._body(entry, source, resp, pace, offset, total), offset)
            self._store(entry, source, chunks, offset, total)

    def _open(self, entry: FileEntry, url: str, pace: _Pace) -> tuple[requests.Response, str, int]:
        """GET ``url``, asking for the rest of a partial download; returns (response, the URL it came
        from after redirects, offset of its body in the file)."""
        for _ in range(2):  # a second time only after a 416 dropped the part
            offset = self.cache.open_partial(entry, url)
            headers = {"Range": f"bytes={offset}-"} if offset else {}
            resp, source = self._get(entry, url, headers, pace)
            if resp.status_code == 416 and offset:  # the part is no prefix of the file: start over
                resp.close()
                self.cache.drop_partial(entry)
                continue
            break
        if resp.status_code not in (200, 206):
            resp.close()
            error = _http_error(entry, source, resp)
            if resp.status_code >= 500:
                raise _Transient(error)
            raise _Refused(error)
        if resp.status_code == 206 and _range_start(resp) != offset:
            resp.close()
            self.cache.drop_partial(entry)
            raise _Transient(FetchError(f"{shorten(source)} answered a Range request with other bytes", "try again"))
        return resp, source, offset if resp.status_code == 206 else 0

    def _get(self, entry: FileEntry, url: str, headers: dict, pace: _Pace) -> tuple[requests.Response, str]:
        """GET, following redirects ourselves: http(s) only, no https -> http unless allowed, no loops."""
        seen = [url]
        for _ in range(MAX_REDIRECTS + 1):
            wait = pace.read_timeout()
            try:
                resp = self.session.get(
                    seen[-1], headers=headers, stream=True, timeout=(CONNECT_TIMEOUT, wait), allow_redirects=False
                )
            except requests.RequestException as exc:
                raise _transport_error(entry, seen[-1], exc, wait, self.model, bool(self.mirror)) from None
            except ValueError:  # (a URL urllib3 cannot parse, past requests' own checks)
                raise _Refused(FetchError(f"cannot download {entry.name}: {shorten(seen[-1])} is not a valid "
                                          "http(s) URL", "check the mirror URL or the registry entry")) from None
            target = self.session.get_redirect_target(resp) if resp.is_redirect else None
            if target is None:
                return resp, seen[-1]
            resp.close()
            here = seen[-1]
            try:
                there = requests.utils.requote_uri(urljoin(here, target))
            except ValueError:
                there = target
            scheme = _scheme(there)
            if scheme not in ("http", "https"):
                raise _redirect_error(entry, here, f"redirected to {shorten(there)}: only valid http(s) URLs are followed")
            if scheme == "http" and _scheme(here) == "https" and not self.allow_http:
                raise _redirect_error(
                    entry, here, f"redirected to {shorten(there)}, from https to plain http: refused"
                )
            if there in seen:
                raise _redirect_error(entry, here, f"redirected back to {shorten(there)}: a redirect loop")
            seen.append(there)
        raise _redirect_error(entry, url, f"redirected more than {MAX_REDIRECTS} times")

    def _check_size(self, entry: FileEntry, url: str, resp: requests.Response, offset: int) -> int | None:
        """The file's size as the response announces it, refused at once when it is not the registry's
        (or more than the limit); None when the server does not say."""
        announced = _total_size(resp, offset)
        if announced is None:
            return entry.size
        if entry.size and announced != entry.size:
            raise _size_error(entry, url, f"is announced with {announced} bytes, the registry says {entry.size}")
        if announced > self._limit(entry):
            raise _size_error(entry, url, f"is announced with {_mib(announced)}, more than {MAX_SIZE_ENV}={self.max_size}")
        return announced

    def _body(
        self, entry: FileEntry, url: str, resp: requests.Response, pace: _Pace, offset: int, total: int | None
    ) -> Iterator[bytes]:
        """The response body as it arrives (each ``read1`` returns what one receive got: a connection
        that breaks loses nothing already received), checked against the pace."""
        got = offset
        while True:
            try:
                data = resp.raw.read1(CHUNK, decode_content=False)
            except urllib3.exceptions.ReadTimeoutError:
                if pace.remaining() <= 0:
                    raise pace.past_deadline(entry, url, got, total) from None
                raise pace.too_slow(entry, url, got, total, 0, pace.read_timeout()) from None
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                why = "the connection closed early" if "IncompleteRead" in repr(exc) else type(exc).__name__
                raise _Transient(_interrupted(entry, url, got, total, why)) from None
            if not data:
                return
            got += len(data)
            yield data
            pace.check(entry, url, got, total)

    def _bounded(self, entry: FileEntry, url: str, chunks: Iterable[bytes], offset: int) -> Iterator[bytes]:
        """``chunks``, stopped at once when they run past the size the file may have."""
        limit = self._limit(entry)
        got = offset
        for chunk in chunks:
            got += len(chunk)
            if got > limit:
                what = f"the {entry.size} bytes the registry states" if entry.size else f"{MAX_SIZE_ENV}={limit} bytes"
                raise _size_error(entry, url, f"runs past {what}: stopped at once")
            yield chunk

    # ---- writing and verifying

    def _store(self, entry: FileEntry, url: str, chunks: Iterable[bytes], offset: int, total: int | None) -> None:
        """Write the rest of the file into the part, verify it, move it into the cache."""
        hasher = self._hasher(entry, total)
        written = self._write(entry, chunks, hasher, offset, total)
        self._finish(entry, url, hasher, written)

    def _hasher(self, entry: FileEntry, total: int | None) -> Any:
        """A new hasher for the file; None when the size is unknown for a git-blob-sha1 digest (the file
        is hashed once complete)."""
        if entry.algorithm == "git-blob-sha1" and total is None:
            return None
        return new_hasher(entry.algorithm, total)

    def _write(
        self, entry: FileEntry, chunks: Iterable[bytes], hasher: Any, offset: int, total: int | None
    ) -> tuple[os.stat_result, str | None]:
        """Write ``chunks`` into the part from ``offset`` on (truncating it there), hashing the ``offset``
        bytes already there and then them. The part is opened once, without following links, and must
        be a regular file with no other hard link (:meth:`Cache.part_file`). Returns its ``fstat`` (for
        :meth:`Cache.install` to move that very file) and, without ``hasher``, its digest."""
        bar = tqdm(
            total=total,
            initial=offset,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=f"posezoo: fetching {entry.name}",
            file=sys.stderr,
            disable=not _progress.live(self.progress),
        )
        with bar, self.cache.part_file(entry) as f:
            if hasher is not None and offset:
                _hash_prefix(f, hasher, offset)
            f.truncate(offset)
            f.seek(offset)
            for chunk in chunks:
                f.write(chunk)
                if hasher is not None:
                    hasher.update(chunk)
                bar.update(len(chunk))
            f.flush()
            return os.fstat(f.fileno()), None if hasher is not None else file_digest(f, entry.algorithm)

    def _finish(self, entry: FileEntry, url: str, hasher: Any, written: tuple[os.stat_result, str | None]) -> None:
        """Check the complete part's size and digest against the registry; move it into the cache."""
        st, digest = written
        size = st.st_size
        actual = f"{entry.algorithm}:{hasher.hexdigest()}" if hasher is not None else digest
        if entry.size and size != entry.size:
            if size < entry.size and actual != entry.digest:  # a body that ended early, with no length to say so
                raise _Transient(_interrupted(entry, url, size, entry.size, "the body ended early"))
            raise _size_error(entry, url, f"has {size} bytes, the registry says {entry.size}")
        if actual != entry.digest:
            self.cache.drop_partial(entry)
            raise FetchError(
                f"{entry.name} from {_full_url(url)} is not the registry's file: expected {entry.digest}, got {actual}",
                "the bytes were deleted; the source is corrupt or changed: try again, use another mirror, "
                "or check the registry's digest",
            )
        self.cache.install(entry, url, st)

    # ---- a member of an archive

    def _member(self, entry: FileEntry, model: str | None) -> Path:
        """A file inside an archive: the archive is fetched like any file (and stays cached for its other
        members), re-hashed, and the member alone streamed out of it, verified like a download."""
        archive = entry.archive
        assert archive is not None and entry.member is not None
        with self.cache.hold(entry, "extracting", self.progress):
            if self.cache.is_cached(entry):  # another process may have extracted it meanwhile
                return self.cache.path(entry)
            try:
                self.fetch(archive, model)
            except FetchError as exc:
                raise _archive_error(entry, exc) from None
            with self.cache.hold(archive, "reading", self.progress), ExitStack() as stack:
                try:  # (re-hashed and read through one file handle: the bytes extracted are those verified)
                    src = stack.enter_context(self.cache.open_verified(archive))
                except FetchError as exc:
                    raise _archive_error(entry, exc) from None
                url = (self.cache.manifest(archive.name) or {}).get("url") or archive.url
                try:
                    written = self._extract(entry, archive, src)
                    self.cache.install(entry, url, written, archive=archive.name, member=entry.member)
                except BaseException as exc:
                    self._drop(entry)
                    if isinstance(exc, OSError):  # writing the part: disk full, read-only, ...
                        raise _io_error(entry, self.cache, exc) from None
                    raise
        return self.cache.path(entry)

    def _extract(self, entry: FileEntry, archive: FileEntry, src: BinaryIO) -> os.stat_result:
        """Stream the member into a new part (opened without following links), the registry size a hard
        limit, hashing it; check size and digest (the caller moves it into the cache). Returns the part's
        ``fstat``."""
        where = f"{entry.name} (member {entry.member!r} of the archive {archive.name})"
        fmt = formats.FORMATS.get(archive.format)
        if fmt is None or fmt.open_member is None:
            raise FetchError(f"cannot extract {where}: {archive.format!r} is not an archive format",
                             f"archive formats: {', '.join(formats.names(formats.ARCHIVE))}")
        assert entry.size is not None  # (the registry requires it for a member)
        self.cache.drop_partial(entry)
        hasher = new_hasher(entry.algorithm, entry.size)
        got = 0
        try:
            with fmt.open_member(src, entry.member, self.max_size) as member, self.cache.part_file(entry, new=True) as f:
                if member.size != entry.size:
                    raise _member_error(entry, archive, f"claims {_mib(member.size)}, the registry says {entry.size} "
                                        "bytes: refused before reading it", "check the registry's member size and digest")
                for chunk in member.chunks():
                    got += len(chunk)
                    if got > entry.size:
                        raise _member_error(entry, archive, f"runs past the {entry.size} bytes the registry states: "
                                            "stopped at once, its bytes deleted", "the archive is corrupt or hostile: check the registry entry")
                    f.write(chunk)
                    hasher.update(chunk)
                f.flush()
                written = os.fstat(f.fileno())
        except ArchiveError as exc:
            fix = ("the archive has the registry's digest, so the registry names a broken archive: check its entry"
                   if exc.corrupt else "check the registry's 'member' path and the archive it names")
            raise FetchError(f"cannot extract {where}: {exc.reason}", fix) from None
        if got != entry.size:
            raise _member_error(entry, archive, f"has {got} bytes, the registry says {entry.size}; its bytes were deleted",
                                "check the registry's member size and digest")
        actual = f"{entry.algorithm}:{hasher.hexdigest()}"
        if actual != entry.digest:
            raise FetchError(
                f"{where} is not the registry's file: expected {entry.digest}, got {actual}; "
                "its bytes were deleted",
                "check the registry's member digest: the archive itself matched its digest",
            )
        return written


def _hash_prefix(f: BinaryIO, hasher: Any, size: int) -> None:
    """Feed the first ``size`` bytes of the open part ``f`` to ``hasher`` (a resumed download)."""
    f.seek(0)
    while size > 0:
        chunk = f.read(min(READ_CHUNK, size))
        if not chunk:
            return
        hasher.update(chunk)
        size -= len(chunk)


def _read_source(entry: FileEntry, src: Path, offset: int) -> Iterator[bytes]:
    """The bytes of a mirror folder's file from ``offset`` on; a read error is the mirror's, not the cache's."""
    try:
        yield from iter_file(src, offset)
    except OSError as exc:
        raise _Refused(FetchError(f"cannot read {entry.name} from the mirror folder: {src}: {exc.strerror or exc}",
                                  "check the mirror folder's permissions"), keep=True) from None


def _range_start(resp: requests.Response) -> int | None:
    """The first byte of a 206 body, from ``Content-Range: bytes <first>-<last>/<total>``."""
    value = resp.headers.get("Content-Range", "")
    try:
        return int(value.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def _total_size(resp: requests.Response, offset: int) -> int | None:
    """The size of the whole file, from Content-Range or Content-Length; None if the server gives neither."""
    total = resp.headers.get("Content-Range", "").rpartition("/")[2].strip()
    if total.isdigit():
        return int(total)
    length = resp.headers.get("Content-Length", "").strip()
    return offset + int(length) if length.isdigit() else None
