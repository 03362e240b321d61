"""Fetch registry weight files into the cache: download and verify (conversion is posezoo.convert's).

- :func:`fetch_file` gets one verified file: from the cache, a mirror, or its registry URL.
- :func:`fetch_model` gets the files of a variant (or of every variant), shards of TF.js models
  included, returning ``{role: path}`` of the verified upstream files.

Sources. A file comes from its registry URL (https only), or from a mirror (``mirror=`` or
``$POSEZOO_MIRROR``): an http(s) URL or a local folder (a path or ``file://`` URL) holding files under
their registry names, ``<mirror>/<name>``. Whatever the source, the bytes are checked against the
registry digest (``sha256:`` or ``git-blob-sha1:``) before they enter the cache.

Offline (``offline=True`` or ``$POSEZOO_OFFLINE`` in 1/true/yes): the network is never used; a file not
in the cache comes from a local mirror folder or is a :class:`FetchError` saying how to get it.

Downloads stream into ``<cache>/partial/<name>.part`` while being hashed; only a verified part is moved
(``os.replace``) into ``files/``. Transport errors and HTTP 5xx are tried again
(``$POSEZOO_FETCH_RETRIES`` tries, default 3, waiting ``$POSEZOO_FETCH_BACKOFF`` seconds, default 0.5,
doubling each time), resuming the part with an HTTP Range request; a server that answers a Range
request with the whole file (200) is read from the start. A download that stops part-way (Ctrl-C,
or the tries run out mid-body) keeps its part and sidecar, and the next fetch resumes it. Every other
failure (digest mismatch, HTTP 4xx, disk full) removes the part. A per-file lock makes concurrent
fetches of the same file end with one verified file.
"""

from __future__ import annotations

import errno
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import quote, urlsplit
from urllib.request import url2pathname

import requests
from tqdm import tqdm

from posezoo import __version__
from posezoo.cache import Cache
from posezoo.errors import FetchError
from posezoo.hashes import file_digest, hash_into, iter_file, new_hasher
from posezoo.registry import FileEntry, ModelEntry

MIRROR_ENV = "POSEZOO_MIRROR"
OFFLINE_ENV = "POSEZOO_OFFLINE"
RETRIES_ENV = "POSEZOO_FETCH_RETRIES"
BACKOFF_ENV = "POSEZOO_FETCH_BACKOFF"
TIMEOUT = (10, 60)  # seconds: connect, read (between two bytes)
CHUNK = 1 << 16
MIRROR_FIX = "use --mirror DIR / POSEZOO_MIRROR"


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
    variant: str | None = None,
    *,
    all_variants: bool = False,
    cache: Cache | None = None,
    mirror: str | None = None,
    offline: bool | None = None,
    progress: bool = True,
) -> dict[str, Path]:
    """Fetch and verify a variant's files (shards included); returns ``{role: path}`` for that variant.

    ``variant`` defaults to the model's default variant. With ``all_variants`` every variant's files are
    fetched, and the mapping is still the one of ``variant``. The paths are the verified upstream
    files; :func:`posezoo.convert.ensure_onnx` turns them into ONNX models.
    """
    chosen = model.variant(variant)
    variants = model.variants.values() if all_variants else [chosen]
    with _Fetcher(cache, mirror, offline, progress) as fetcher:
        for entry in _distinct(f for v in variants for f in v.all_files()):
            fetcher.fetch(entry, model.name)
    return {role: fetcher.cache.path(entry) for role, entry in chosen.files.items()}


# --------------------------------------------------------------------------------------------- settings


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise FetchError(f"${name} is {raw!r}, not a non-negative number", f"unset {name} or fix its value")
    return value


def _distinct(entries: Iterable[FileEntry]) -> list[FileEntry]:
    return list({e.name: e for e in entries}.values())


# --------------------------------------------------------------------------------------------- errors


class _Transient(Exception):
    """A failure worth another try (transport error, HTTP 5xx); ``error`` is what to raise at the end."""

    def __init__(self, error: FetchError):
        super().__init__(str(error))
        self.error = error


def _unreachable(entry: FileEntry, url: str, exc: Exception) -> FetchError:
    text = str(exc).lower()
    if isinstance(exc, requests.Timeout):
        reason = "timed out"
    elif any(s in text for s in ("name or service", "nameresolution", "getaddrinfo", "nodename")):
        reason = "DNS lookup failed"
    elif "refused" in text:
        reason = "connection refused"
    else:
        reason = type(exc).__name__
    return FetchError(
        f"cannot download {entry.name} from {url}: the network is unreachable "
        f"({urlsplit(url).hostname}: {reason})",
        f"check the connection, or {MIRROR_FIX}, or --offline with the files already in the cache",
    )


def _interrupted(entry: FileEntry, url: str, got: int, total: int | None, exc: Exception) -> FetchError:
    of = f" of {total}" if total else ""
    return FetchError(
        f"download of {entry.name} from {url} stopped after {got}{of} bytes ({type(exc).__name__})",
        "run the same command again to resume it",
    )


def _http_error(entry: FileEntry, url: str, resp: requests.Response) -> FetchError:
    if resp.status_code >= 500:
        fix = f"the server has a problem: try again later, or {MIRROR_FIX}"
    else:
        fix = f"the file may have moved: check the registry entry, or {MIRROR_FIX}"
    return FetchError(f"cannot download {entry.name}: {url} answered HTTP {resp.status_code} {resp.reason}", fix)


def _io_error(entry: FileEntry, cache: Cache, exc: OSError) -> FetchError:
    if exc.errno == errno.ENOSPC:
        return FetchError(
            f"disk full while storing {entry.name} in {cache.root}; the partial file was removed",
            "free some space, or set POSEZOO_HOME to a folder on a larger disk",
        )
    return FetchError(f"cannot store {entry.name} in {cache.root}: {exc}", "check the folder's permissions")


def _offline(entry: FileEntry, model: str | None) -> FetchError:
    who = f" (model {model})" if model else ""
    return FetchError(
        f"{entry.name}{who} is not in the cache and posezoo is offline",
        f"run `posezoo fetch {model or 'MODEL'}` while online, or {MIRROR_FIX} with a folder that has {entry.name}",
    )


# --------------------------------------------------------------------------------------------- fetching


def _mirror_folder(mirror: str) -> Path | None:
    """The local folder a mirror names, or None for an http(s) mirror."""
    parts = urlsplit(mirror)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        return None
    if scheme == "file":
        folder = Path(url2pathname(parts.path))
    elif len(scheme) > 1:  # (a one-letter scheme is a Windows drive)
        raise FetchError(f"mirror {mirror!r} is neither a folder nor an http(s) URL", "give a folder or a URL")
    else:
        folder = Path(mirror).expanduser()
    if not folder.is_dir():
        raise FetchError(f"mirror folder {folder} does not exist", "give the folder `posezoo cache export` wrote")
    return folder


class _Fetcher:
    """One fetch session: settings, an HTTP session made on first use, and the fetching itself."""

    def __init__(self, cache: Cache | None, mirror: str | None, offline: bool | None, progress: bool):
        self.cache = cache or Cache()
        self.mirror = (mirror if mirror is not None else os.environ.get(MIRROR_ENV, "")).strip() or None
        self.offline = _env_flag(OFFLINE_ENV) if offline is None else offline
        self.progress = progress
        self.tries = max(1, int(_env_number(RETRIES_ENV, 3)))
        self.backoff = _env_number(BACKOFF_ENV, 0.5)
        self._session: requests.Session | None = None

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
        if self.cache.is_cached(entry):
            return self.cache.path(entry)
        with self.cache.hold(entry, "fetching", self.progress):
            if not self.cache.is_cached(entry):  # another process may have fetched it meanwhile
                source = self._source(entry, model)
                try:
                    if isinstance(source, Path):
                        self._copy(entry, source)
                    else:
                        self._download(entry, source)
                except OSError as exc:  # (requests' errors are OSErrors too, but handled inside)
                    self.cache.drop_partial(entry)
                    raise _io_error(entry, self.cache, exc) from None
        return self.cache.path(entry)

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
            raise FetchError(f"{entry.name}: registry URL {entry.url} is not https", "registry URLs must use https")
        return entry.url

    def _copy(self, entry: FileEntry, src: Path) -> None:
        """Copy from a mirror folder (resuming a partial copy of the same file)."""
        url = src.absolute().as_uri()
        offset = self.cache.open_partial(entry, url)
        self._store(entry, url, iter_file(src, offset), offset, src.stat().st_size)

    def _download(self, entry: FileEntry, url: str) -> None:
        """Download with retries; each try resumes what the previous ones wrote."""
        for attempt in range(1, self.tries + 1):
            try:
                self._download_once(entry, url)
                return
            except _Transient as exc:
                if attempt == self.tries:
                    if not self.cache.part_size(entry):
                        self.cache.drop_partial(entry)  # nothing worth resuming
                    raise exc.error from None
                time.sleep(self.backoff * 2 ** (attempt - 1))

    def _download_once(self, entry: FileEntry, url: str) -> None:
        resp, offset = self._open(entry, url)
        total = entry.size or _total_size(resp, offset)
        with resp:
            try:
                self._store(entry, url, resp.iter_content(CHUNK), offset, total)
            except requests.RequestException as exc:
                got = self.cache.part_size(entry)
                raise _Transient(_interrupted(entry, url, got, total, exc)) from None

    def _open(self, entry: FileEntry, url: str) -> tuple[requests.Response, int]:
        """GET ``url``, asking for the rest of a partial download; returns (response, offset of its body)."""
        offset = self.cache.open_partial(entry, url)
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        try:
            resp = self.session.get(url, headers=headers, stream=True, timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise _Transient(_unreachable(entry, url, exc)) from None
        if resp.status_code == 416 and offset:  # the part is no prefix of the file: start over
            resp.close()
            self.cache.drop_partial(entry)
            return self._open(entry, url)
        if resp.status_code not in (200, 206):
            resp.close()
            error = _http_error(entry, url, resp)
            if resp.status_code >= 500:
                raise _Transient(error)
            self.cache.drop_partial(entry)
            raise error
        if resp.status_code == 206 and _range_start(resp) != offset:
            resp.close()
            self.cache.drop_partial(entry)
            raise _Transient(FetchError(f"{url} answered a Range request with other bytes", "try again"))
        return resp, offset if resp.status_code == 206 else 0

    # ---- writing and verifying

    def _store(self, entry: FileEntry, url: str, chunks: Iterable[bytes], offset: int, total: int | None) -> None:
        """Write the rest of the file into the part, verify it, move it into the cache."""
        hasher = self._hasher(entry, offset, total)
        self._write(entry, chunks, hasher, offset, total)
        self._finish(entry, url, hasher)

    def _hasher(self, entry: FileEntry, offset: int, total: int | None) -> Any:
        """A hasher fed with the ``offset`` bytes already in the part; None when the size is unknown
        for a git-blob-sha1 digest (the file is hashed once complete)."""
        if entry.algorithm == "git-blob-sha1" and total is None:
            return None
        hasher = new_hasher(entry.algorithm, total)
        return hash_into(hasher, self.cache.part_path(entry)) if offset else hasher

    def _write(self, entry: FileEntry, chunks: Iterable[bytes], hasher: Any, offset: int, total: int | None) -> None:
        """Write ``chunks`` into the part from ``offset`` on (truncating it there), hashing them."""
        bar = tqdm(
            total=total,
            initial=offset,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=entry.name,
            file=sys.stderr,
            disable=not (self.progress and sys.stderr.isatty()),
        )
        with bar, open(self.cache.part_path(entry), "ab") as f:
            f.truncate(offset)
            for chunk in chunks:
                f.write(chunk)
                if hasher is not None:
                    hasher.update(chunk)
                bar.update(len(chunk))

    def _finish(self, entry: FileEntry, url: str, hasher: Any) -> None:
        """Check the complete part against the registry digest; move it into the cache."""
        part = self.cache.part_path(entry)
        actual = f"{entry.algorithm}:{hasher.hexdigest()}" if hasher is not None else file_digest(part, entry.algorithm)
        if actual != entry.digest:
            size = part.stat().st_size
            self.cache.drop_partial(entry)
            sizes = f"; got {size} bytes, the registry says {entry.size}" if entry.size and size != entry.size else ""
            raise FetchError(
                f"{entry.name} from {url} is not the registry's file: expected {entry.digest}, got {actual}{sizes}",
                "the bytes were deleted; the source is corrupt or changed: try again, use another mirror, "
                "or check the registry's digest",
            )
        self.cache.install(entry, url)


def _range_start(resp: requests.Response) -> int | None:
    """The first byte of a 206 body, from ``Content-Range: bytes <first>-<last>/<total>``."""
    value = resp.headers.get("Content-Range", "")
    try:
        return int(value.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def _total_size(resp: requests.Response, offset: int) -> int | None:
    """The size of the whole file, from Content-Range or Content-Length; None if the server gives neither."""
    total = resp.headers.get("Content-Range", "").rpartition("/")[2]
    if total.isdigit():
        return int(total)
    length = resp.headers.get("Content-Length", "")
    return offset + int(length) if length.isdigit() else None
