"""The model-zoo registry: load, validate and merge registry files.

Sources, in order (a later one may replace a model of an earlier one):

1. the built-in ``registry.yaml`` (repo root; shipped inside the wheel as ``posezoo/registry.yaml``),
2. models contributed by plugins through the ``registry_entries`` hook,
3. the user's registry file: ``$POSEZOO_REGISTRY`` (one or more paths joined by ``os.pathsep``), else
   ``<user config dir>/posezoo/registry.yaml`` when it exists.

Every file is validated on load: unknown keys are refused, and every error names the file, the model
and the key (:class:`posezoo.errors.RegistryError`, exit code 2). The schema is documented in
docs/registry.md.

A registry file may come from anyone, so reading one is bounded before any YAML is built: a regular
file of at most ``MAX_FILE_BYTES``; at most ``MAX_NODES`` YAML nodes with every alias counted as the
nodes it stands for (no "billion laughs"), no recursive aliases; nesting at most ``MAX_DEPTH`` deep;
mapping keys are strings; file names at most ``MAX_NAME`` characters. Values quoted in messages are cut
short (:func:`posezoo.errors.shorten`).
"""

from __future__ import annotations

import difflib
import os
import re
import stat
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import yaml

from posezoo.errors import RegistryError, UnknownModelError, shorten
from posezoo.supply import formats

SCHEMA_VERSION = 1
FORMATS = formats.names(formats.MODEL)  # the `format` of a file: the model formats of the format table
ARCHIVE_FORMATS = formats.names(formats.ARCHIVE)  # the `format` of an `archive`
ROLE_RE = re.compile(r"^[a-z][a-z0-9_]*$")
DIGEST_RE = {
    "sha256": re.compile(r"^[0-9a-f]{64}$"),
    "git-blob-sha1": re.compile(r"^[0-9a-f]{40}$"),
}
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
MODEL_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
MAX_NAME = 200  # characters of a file name: with the cache's suffixes it stays under 255 bytes
MAX_MEMBER = 500  # characters of a member path inside an archive
MAX_MODEL_NAME = 100  # characters of a model, variant or role name
MAX_FILE_BYTES = 1 << 20  # a registry file (the built-in one is about 4 KiB)
MAX_NODES = 50_000  # YAML nodes, aliases counted as the nodes they stand for
MAX_DEPTH = 32  # nesting of mappings and sequences (a registry needs 7)

TOP_KEYS = {"version": False, "default_model": False, "models": True}
MODEL_KEYS = {
    "plugin": True,
    "description": True,
    "licence": True,
    "source": True,
    "paper": False,
    "default_variant": True,
    "variants": True,
}
VARIANT_KEYS = {"description": False, "files": True}
FILE_KEYS = {
    "name": True,
    "url": False,  # required, unless the file is a member of an `archive` (then refused)
    "digest": True,
    "size": False,  # required for a member of an archive
    "format": True,
    "licence": False,
    "source": False,
    "shards": False,
    "archive": False,
    "member": False,  # with `archive`: the member's path inside it
}
SHARD_KEYS = {k: v for k, v in FILE_KEYS.items() if k not in ("format", "shards")}
ARCHIVE_KEYS = {"name": True, "url": True, "digest": True, "size": False, "format": False, "source": False}
MEMBER_PART_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+-]*$")


@dataclass(frozen=True)
class FileEntry:
    """One weight file: where it comes from and how to verify it."""

    name: str
    url: str
    digest: str  # "sha256:<hex>" or "git-blob-sha1:<hex>"
    format: str
    size: int | None = None
    licence: str | None = None
    source: str | None = None
    shards: tuple["FileEntry", ...] = ()  # the weight files a tfjs model.json names, in its order
    archive: "FileEntry | None" = None  # the archive (format zip or tar.gz) this file is a member of
    member: str | None = None  # with ``archive``: the member's path inside it

    def with_shards(self) -> tuple["FileEntry", ...]:
        """This file and its shards: everything to fetch and verify for it."""
        return (self, *self.shards)

    def stored(self) -> tuple["FileEntry", ...]:
        """Everything the cache may hold for this file: it, its shards and the archives they come from
        (each once). File names are unique across all of these in a registry."""
        out: dict[str, FileEntry] = {}
        for f in self.with_shards():
            out.setdefault(f.name, f)
            if f.archive is not None:
                out.setdefault(f.archive.name, f.archive)
        return tuple(out.values())

    @property
    def algorithm(self) -> str:
        return self.digest.split(":", 1)[0]

    @property
    def hexdigest(self) -> str:
        return self.digest.split(":", 1)[1]


@dataclass(frozen=True)
class Variant:
    """A variant of a model: its files by role (the roles its family reads, e.g. detector, landmark)."""

    name: str
    files: dict[str, FileEntry]
    description: str = ""

    def all_files(self) -> list[FileEntry]:
        """Every file to fetch for this variant (shards included), each once."""
        return list({f.name: f for e in self.files.values() for f in e.with_shards()}.values())


@dataclass(frozen=True)
class ModelEntry:
    """A model of the zoo: which plugin runs it, its variants and their files."""

    name: str
    plugin: str
    description: str
    licence: str
    source: str
    default_variant: str
    variants: dict[str, Variant]
    paper: str | None = None
    origin: str = ""  # the registry file (or plugin) that defined it

    def variant(self, name: str | None = None) -> Variant:
        name = name or self.default_variant
        if name not in self.variants:
            raise UnknownModelError(
                f"model {_q(self.name)} has no variant {_q(name)}",
                f"choose one of: {', '.join(self.variants)}",
            )
        return self.variants[name]

    def files(self) -> list[FileEntry]:
        """Every distinct file of every variant, shards and the archives they are members of included,
        in registry order: everything the cache may hold for the model."""
        seen: dict[str, FileEntry] = {}
        for v in self.variants.values():
            for e in v.files.values():
                for f in e.stored():
                    seen.setdefault(f.name, f)
        return list(seen.values())


@dataclass
class Registry:
    models: dict[str, ModelEntry] = field(default_factory=dict)
    files: dict[str, FileEntry] = field(default_factory=dict)
    default_model: str | None = None  # what `posezoo run` runs when no model is named

    def default(self) -> str:
        """The default model's name (the registry's ``default_model``, else its first model)."""
        if self.default_model in self.models:
            return self.default_model
        if not self.models:
            raise UnknownModelError("the zoo has no models", "check registry.yaml and POSEZOO_REGISTRY")
        return next(iter(self.models))

    def model(self, name: str) -> ModelEntry:
        if name not in self.models:
            close = difflib.get_close_matches(name, list(self.models), n=1)
            hint = f"did you mean {_q(close[0])}? " if close else ""
            raise UnknownModelError(
                f"unknown model {_q(name)}", f"{hint}`posezoo list` shows the models of the zoo"
            )
        return self.models[name]

    def add(self, model: ModelEntry, *, replace: bool = False) -> None:
        """Add a model; file names must stay unique across the whole registry."""
        if model.name in self.models and not replace:
            raise RegistryError(
                f"{model.origin}: model {_q(model.name)} is already defined by {self.models[model.name].origin}",
                "rename the model",
            )
        old = self.models.pop(model.name, None)
        files = dict(self.files)
        if old is not None:
            for f in old.files():
                files.pop(f.name, None)
        for f in model.files():
            other = files.get(f.name)
            if other is not None and other != f:
                if old is not None:
                    self.models[old.name] = old
                raise RegistryError(
                    f"{model.origin}: model {_q(model.name)}: file name {_q(f.name)} is already used for "
                    f"another file ({other.url})",
                    "file names must be unique in the whole registry; rename one",
                )
            files[f.name] = f
        self.models[model.name] = model
        self.files = files


# --------------------------------------------------------------------------------------------- parsing


def _q(value: object) -> str:
    """A value for a message: its repr, cut short (registry values are untrusted)."""
    return shorten(repr(value))


_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when PyYAML has it: faster


class _UniqueKeyLoader(_SafeLoader):  # type: ignore[misc, valid-type]
    """A safe loader that refuses duplicate and non-string mapping keys (PyYAML keeps the last of
    duplicate keys silently, and a list as a key is an error no message explains)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    out: dict = {}
    for key_node, value_node in node.value:
        if not (isinstance(key_node, yaml.ScalarNode) and key_node.tag == "tag:yaml.org,2002:str"):
            shown = _q(key_node.value) if isinstance(key_node, yaml.ScalarNode) else f"a {key_node.id}"
            raise yaml.constructor.ConstructorError(
                None, None, f"key {shown} is not a string (quote it)", key_node.start_mark
            )
        key = loader.construct_object(key_node, deep=deep)
        if key in out:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {_q(key)}", key_node.start_mark
            )
        out[key] = loader.construct_object(value_node, deep=deep)
    return out


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _fail(where: str, what: str, fix: str | None = None) -> RegistryError:
    return RegistryError(f"{where}: {what}", fix)


def _check_keys(where: str, data: Any, spec: Mapping[str, bool], kind: str) -> None:
    if not isinstance(data, dict):
        raise _fail(where, f"{kind} must be a mapping, got {type(data).__name__}")
    unknown = [k for k in data if k not in spec]
    if unknown:
        raise _fail(where, f"unknown key {_q(unknown[0])}", f"allowed keys: {', '.join(spec)}")
    missing = [k for k, required in spec.items() if required and k not in data]
    if missing:
        raise _fail(where, f"missing key {_q(missing[0])}")


def _string(where: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(where, f"key {_q(key)} must be a non-empty string")
    return value.strip()


def _url(where: str, key: str, value: Any) -> str:
    value = _string(where, key, value)
    if not value.startswith("https://"):
        raise _fail(where, f"key {_q(key)}: {_q(value)} is not an https URL", "registry URLs must use https")
    return value


def _file_name(where: str, key: str, value: Any) -> str:
    """A plain file name: the name of a file (or archive) in the cache and on mirrors."""
    name = _string(where, key, value)
    if len(name) > MAX_NAME:
        raise _fail(where, f"key {_q(key)}: {_q(name)} is longer than {MAX_NAME} characters", "use a shorter file name")
    if "/" in name or "\\" in name or ".." in name or not NAME_RE.match(name):
        raise _fail(
            where,
            f"key {_q(key)}: {_q(name)} is not a plain file name",
            "use letters, digits, '.', '_', '-', '+' only: no path separators, no '..'",
        )
    return name


def _digest(where: str, value: Any) -> str:
    digest = _string(where, "digest", value).lower()
    algo, _, hexd = digest.partition(":")
    if algo not in DIGEST_RE or not DIGEST_RE[algo].match(hexd):
        raise _fail(
            where,
            f"key 'digest': {_q(value)} is not a valid digest",
            "write sha256:<64 hex digits> or git-blob-sha1:<40 hex digits>",
        )
    return digest


def _size(where: str, value: Any) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
        raise _fail(where, f"key 'size': {_q(value)} is not a positive number of bytes")
    return value


def _model_format(where: str, value: Any) -> str:
    fmt = _string(where, "format", value)
    known = formats.FORMATS.get(fmt)
    if known is None or not known.is_model:
        fix = f"use one of: {', '.join(FORMATS)}"
        if known is not None:  # an archive format: the file is a member of the archive
            fix += f" (the format of the file itself; a file inside a {fmt} archive is given with keys 'archive' and 'member')"
        raise _fail(where, f"key 'format': {_q(fmt)} is not supported", fix)
    return fmt


def _member(where: str, value: Any) -> str:
    """A member path inside an archive: relative, '/'-separated plain names, no '..'."""
    member = _string(where, "member", value)
    if len(member) > MAX_MEMBER:
        raise _fail(where, f"key 'member': {_q(member)} is longer than {MAX_MEMBER} characters")
    parts = member.split("/")
    if any(p in ("", ".", "..") or not MEMBER_PART_RE.match(p) for p in parts):
        raise _fail(
            where,
            f"key 'member': {_q(member)} is not a relative path inside the archive",
            "join names of letters, digits, '.', '_', '-', '+' with '/': no leading '/', no '.' or '..', no '\\'",
        )
    return member


def _parse_archive(where: str, data: dict, name: str, size: int | None) -> tuple[FileEntry | None, str | None]:
    """The ``archive`` a file is a member of and the ``member`` path, or (None, None)."""
    if "archive" not in data:
        if "member" in data:
            raise _fail(where, "key 'member' is only for a file inside an archive", "give the archive with key 'archive'")
        return None, None
    if "member" not in data:
        raise _fail(where, "a file inside an archive needs key 'member': its path inside the archive")
    if "url" in data:
        raise _fail(where, "key 'url' is refused for a file inside an archive: its bytes come from the archive",
                    "remove it; the archive's url goes under 'archive'")
    if size is None:
        raise _fail(where, "a file inside an archive needs key 'size': the member's size in bytes",
                    "it is the hard limit for extracting the member")
    member = _member(where, data["member"])
    awhere = f"{where}, archive"
    adata = data["archive"]
    _check_keys(awhere, adata, ARCHIVE_KEYS, "an archive")
    aname = _file_name(awhere, "name", adata["name"])
    if aname == name:
        raise _fail(awhere, f"key 'name': {_q(aname)} is also the member's name",
                    "the archive and its member are two files of the cache: give them different names")
    if "format" in adata:
        fmt = _string(awhere, "format", adata["format"])
        if fmt not in ARCHIVE_FORMATS:
            raise _fail(awhere, f"key 'format': {_q(fmt)} is not an archive format", f"use one of: {', '.join(ARCHIVE_FORMATS)}")
    else:
        found = formats.archive_format_of(aname)
        if found is None:
            raise _fail(awhere, f"cannot tell the format of archive {_q(aname)} from its name",
                        f"add key 'format' ({', '.join(ARCHIVE_FORMATS)}) or name it .zip, .tar.gz or .tgz")
        fmt = found.name
    archive = FileEntry(
        name=aname,
        url=_url(awhere, "url", adata["url"]),
        digest=_digest(awhere, adata["digest"]),
        format=fmt,
        size=_size(awhere, adata.get("size")),
        source=_url(awhere, "source", adata["source"]) if "source" in adata else None,
    )
    return archive, member


def parse_file_entry(where: str, data: Any, *, shard: bool = False) -> FileEntry:
    _check_keys(where, data, SHARD_KEYS if shard else FILE_KEYS, "a file")
    name = _file_name(where, "name", data["name"])
    digest = _digest(where, data["digest"])
    fmt = "weights" if shard else _model_format(where, data["format"])
    size = _size(where, data.get("size"))
    archive, member = _parse_archive(where, data, name, size)
    if archive is None and "url" not in data:
        raise _fail(where, "missing key 'url'")
    shards = _parse_shards(where, fmt, data.get("shards")) if not shard else ()
    return FileEntry(
        name=name,
        url=archive.url if archive is not None else _url(where, "url", data["url"]),
        digest=digest,
        format=fmt,
        size=size,
        licence=_string(where, "licence", data["licence"]) if "licence" in data else None,
        source=_url(where, "source", data["source"]) if "source" in data else None,
        shards=shards,
        archive=archive,
        member=member,
    )


def _parse_shards(where: str, fmt: str, data: Any) -> tuple[FileEntry, ...]:
    """The ``shards`` of a file whose format has them (tfjs: required there, refused elsewhere)."""
    if not formats.FORMATS[fmt].shards:
        if data is not None:
            with_shards = ", ".join(n for n, f in formats.FORMATS.items() if f.shards)
            raise _fail(where, f"key 'shards' is only for format {with_shards}, not {fmt}")
        return ()
    if not isinstance(data, list) or not data:
        raise _fail(where, f"a {fmt} model needs key 'shards': the list of its weight files (.bin)")
    return tuple(parse_file_entry(f"{where}, shard {i + 1}", item, shard=True) for i, item in enumerate(data))


def _parse_variant(where: str, vname: Any, vdata: Any, seen: dict[str, FileEntry]) -> Variant:
    vwhere = f"{where}, variant {_q(vname)}"
    if not isinstance(vname, str) or not MODEL_NAME_RE.match(vname) or len(vname) > MAX_MODEL_NAME:
        raise _fail(vwhere, f"variant names are lower-case letters, digits, '.', '_' and '-', at most {MAX_MODEL_NAME}")
    _check_keys(vwhere, vdata, VARIANT_KEYS, "a variant")
    files_data = vdata["files"]
    if not isinstance(files_data, dict) or not files_data:
        raise _fail(vwhere, "key 'files' must be a mapping of role -> file")
    files: dict[str, FileEntry] = {}
    for role, fdata in files_data.items():
        fwhere = f"{vwhere}, file {_q(role)}"
        if not isinstance(role, str) or not ROLE_RE.match(role) or len(role) > MAX_MODEL_NAME:
            raise _fail(fwhere, f"file role {_q(role)} is not a name", "roles are lower-case names such as detector, landmark, model")
        entry = parse_file_entry(fwhere, fdata)
        for f in entry.stored():
            other = seen.get(f.name)
            if other is not None and other != f:
                raise _fail(
                    fwhere,
                    f"duplicate file name {_q(f.name)} for a different file",
                    "file names must be unique in the whole registry; rename one",
                )
            seen[f.name] = f
        files[role] = entry
    description = _string(vwhere, "description", vdata["description"]) if "description" in vdata else ""
    return Variant(name=vname, files=files, description=description)


def parse_model(origin: str, name: Any, data: Any) -> ModelEntry:
    where = f"{origin}: model {_q(name)}"
    if not isinstance(name, str) or not MODEL_NAME_RE.match(name) or len(name) > MAX_MODEL_NAME:
        raise _fail(where, f"model names are lower-case letters, digits, '.', '_' and '-', at most {MAX_MODEL_NAME}")
    _check_keys(where, data, MODEL_KEYS, "a model")
    variants_data = data["variants"]
    if not isinstance(variants_data, dict) or not variants_data:
        raise _fail(where, "key 'variants' must be a non-empty mapping")
    seen: dict[str, FileEntry] = {}  # file name -> entry, across the model's variants
    variants = {vname: _parse_variant(where, vname, vdata, seen) for vname, vdata in variants_data.items()}
    default = _string(where, "default_variant", data["default_variant"])
    if default not in variants:
        raise _fail(where, f"key 'default_variant': {_q(default)} is not one of its variants")
    return ModelEntry(
        name=name,
        plugin=_string(where, "plugin", data["plugin"]),
        description=_string(where, "description", data["description"]),
        licence=_string(where, "licence", data["licence"]),
        source=_url(where, "source", data["source"]),
        paper=_url(where, "paper", data["paper"]) if "paper" in data else None,
        default_variant=default,
        variants=variants,
        origin=origin,
    )


def parse_models(origin: str, models: Any) -> list[ModelEntry]:
    if not isinstance(models, dict):
        raise _fail(origin, "key 'models' must be a mapping of model name -> model")
    return [parse_model(origin, name, data) for name, data in models.items()]


def _read_text(path: Path, origin: str) -> str:
    """The text of a registry file: a regular file (never a FIFO or a device, which could block or never
    end) of at most MAX_FILE_BYTES, in UTF-8."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # (a FIFO opens without waiting)
    except FileNotFoundError:
        raise RegistryError(f"registry file {origin} does not exist", "check POSEZOO_REGISTRY") from None
    except OSError as exc:
        raise RegistryError(f"cannot read registry file {origin}: {exc.strerror or exc}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file"
        raise RegistryError(f"registry file {origin} is {kind}", "give the path of a YAML file")
    with os.fdopen(fd, "rb") as f:
        try:
            data = f.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise RegistryError(f"cannot read registry file {origin}: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise RegistryError(f"registry file {origin} is larger than {MAX_FILE_BYTES} bytes",
                            "a registry file is a few KiB of YAML: check the path")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RegistryError(f"registry file {origin} is not UTF-8 text (byte {exc.start})",
                            "give the path of a YAML file") from None


def _check_shape(text: str, origin: str) -> None:
    """Walk the YAML events (no objects built) and refuse what would be too big or too deep once built:
    more than MAX_NODES nodes counting each alias as the nodes it stands for, nesting deeper than
    MAX_DEPTH, an alias to itself or to nothing."""
    anchors: dict[str, tuple[int, int]] = {}  # anchor -> (nodes, depth) of what it names
    frames: list[list] = []  # open collections: [anchor, nodes before it, depth before it, deepest inside]
    nodes = depth = 0

    def refuse(what: str, event) -> RegistryError:
        mark = event.start_mark
        return RegistryError(f"{origin}: {what} (at line {mark.line + 1})", "a registry is plain YAML: "
                             "write each entry out (no deep nesting, few aliases)")

    for event in yaml.parse(text, Loader=_SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            if event.anchor not in anchors:
                raise refuse(f"alias *{shorten(event.anchor, 40)} names no complete node before it", event)
            size, sub_depth = anchors[event.anchor]
            nodes += size
            if frames:
                frames[-1][3] = max(frames[-1][3], depth + sub_depth)
            if depth + sub_depth > MAX_DEPTH:
                raise refuse(f"nesting deeper than {MAX_DEPTH} levels", event)
        elif isinstance(event, yaml.ScalarEvent):
            nodes += 1
            if event.anchor is not None:
                anchors[event.anchor] = (1, 0)
        elif isinstance(event, yaml.CollectionStartEvent):
            nodes += 1
            frames.append([event.anchor, nodes - 1, depth, depth + 1])
            depth += 1
            if depth > MAX_DEPTH:
                raise refuse(f"nesting deeper than {MAX_DEPTH} levels", event)
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, before, depth, deepest = frames.pop()
            if frames:
                frames[-1][3] = max(frames[-1][3], deepest)
            if anchor is not None:
                anchors[anchor] = (nodes - before, deepest - depth)
        if nodes > MAX_NODES:
            raise refuse(f"more than {MAX_NODES} YAML nodes once aliases are expanded", event)


def read_registry_file(path: str | Path) -> list[ModelEntry]:
    """Read and validate one registry YAML file (bounded: see the module docstring)."""
    return read_registry(path)[0]


def read_registry(path: str | Path) -> tuple[list[ModelEntry], str | None]:
    """A registry file's models and its ``default_model`` (None when it names none)."""
    path = Path(path)
    origin = shorten(str(path), 200)
    text = _read_text(path, origin)
    try:
        _check_shape(text, origin)
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RegistryError(f"{origin}: invalid YAML{at}: {shorten(problem, 120)}", "fix the YAML syntax") from None
    if data is None:
        data = {"models": {}}
    _check_keys(origin, data, TOP_KEYS, "a registry")
    version = data.get("version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise _fail(origin, f"key 'version': {_q(version)} is not supported", f"use version: {SCHEMA_VERSION}")
    models = parse_models(origin, data["models"])
    default = data.get("default_model")
    if default is not None and (not isinstance(default, str) or default not in {m.name for m in models}):
        raise _fail(origin, f"key 'default_model': {_q(default)} is not a model of this file", "name one of its models")
    return models, default


def builtin_registry_path() -> Path:
    """The registry.yaml shipped with posezoo (inside the wheel, or the repo root of a checkout)."""
    packaged = resources.files("posezoo").joinpath("registry.yaml")
    if packaged.is_file():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "registry.yaml"


def user_registry_paths() -> list[Path]:
    """``$POSEZOO_REGISTRY`` (os.pathsep-separated), else the user config file when it exists."""
    env = os.environ.get("POSEZOO_REGISTRY")
    if env:
        return [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    from platformdirs import user_config_dir

    default = Path(user_config_dir("posezoo")) / "registry.yaml"
    return [default] if default.is_file() else []


def build_registry(
    builtin: Path | None = None,
    plugin_models: Iterable[ModelEntry] = (),
    user_files: Iterable[Path] | None = None,
    warn: Callable[[str], None] | None = None,
) -> Registry:
    """Merge the built-in registry, plugin models and user files (user files may replace models).

    A plugin model that clashes with one already there is passed to ``warn`` and skipped (raised
    when ``warn`` is None).
    """
    reg = Registry()
    models, reg.default_model = read_registry(builtin or builtin_registry_path())
    for model in models:
        reg.add(model)
    for model in plugin_models:
        try:
            reg.add(model)
        except RegistryError as exc:
            if warn is None:
                raise
            warn(f"{exc}; skipped")
    for path in user_registry_paths() if user_files is None else user_files:
        models, default = read_registry(path)
        for model in models:
            reg.add(model, replace=True)
        reg.default_model = default or reg.default_model
    return reg
