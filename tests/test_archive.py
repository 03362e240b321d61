"""Registry files that are members of an archive (.zip, .tar.gz): real archives holding real models from
../shared, served over loopback HTTP, fetched, extracted, verified, converted and run; and every way an
archive can be wrong (member digest, missing member, traversal, links, bombs, archive digest, offline).
"""

from __future__ import annotations

import hashlib
import io
import stat
import struct
import tarfile
import time
import zipfile
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml

from clitools import one_line_error, posezoo_env, run_posezoo
from httpserver import MirrorServer, home  # noqa: F401  (pytest fixture)
from posezoo.errors import FetchError, RegistryError
from posezoo.supply.archive import Member
from posezoo.supply.cache import Cache
from posezoo.supply.fetch import fetch_model
from posezoo.supply.formats import FORMATS
from posezoo.supply.registry import build_registry, read_registry_file
from posezoo.zoo.resolve import model_files

FACE = "mediapipe-assets/face_detection_short_range.tflite"  # 224 KiB, converts in milliseconds
LIGHTNING_JSON = "human-models/movenet-lightning.json"
LIGHTNING_BIN = "human-models/movenet-lightning.bin"
BOMB = 32 << 20  # bytes of zeros in the bomb members (about 32 KiB compressed)
FAST = 10.0  # seconds: every failure here is refused in well under this


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def identity_onnx() -> bytes:
    """A tiny valid ONNX model: y = x, float [1, 3]."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "identity", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


# --------------------------------------------------------------------------------------------- archives


def make_zip(entries: list[tuple[str, bytes, int | None]]) -> bytes:
    """A .zip of (name, bytes, unix mode or None for a plain file), deflated."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data, mode in entries:
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = (mode or (stat.S_IFREG | 0o644)) << 16
            zf.writestr(info, data)
    return buf.getvalue()


def make_tgz(entries: list[tuple[str, bytes, bytes, str]]) -> bytes:
    """A .tar.gz of (name, bytes, tar type, link target)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data, kind, link in entries:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = link
            info.mtime = 1_700_000_000
            info.size = len(data) if kind in (tarfile.REGTYPE, tarfile.AREGTYPE) else 0
            tf.addfile(info, io.BytesIO(data) if info.size else None)
    return buf.getvalue()


def lying_zip(name: str, claimed: int) -> bytes:
    """A .zip whose one member holds BOMB zeros but whose headers (local and central) claim ``claimed``
    bytes: a decompression bomb that lies about its size."""
    data = bytearray(make_zip([(name, bytes(BOMB), None)]))
    local, central = data.index(b"PK\x03\x04"), data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, local + 22, claimed)
    struct.pack_into("<I", data, central + 24, claimed)
    return bytes(data)


class Bundle:
    """The archives of this module (written into ``folder``, which a MirrorServer serves) and the bytes
    of their members."""

    def __init__(self, shared_models: Path, folder: Path):
        self.folder = folder
        self.face = (shared_models / FACE).read_bytes()
        self.identity = identity_onnx()
        self.model_json = (shared_models / LIGHTNING_JSON).read_bytes()
        self.shard = (shared_models / LIGHTNING_BIN).read_bytes()
        reg, lnk, sym, fifo, dirt = tarfile.REGTYPE, tarfile.LNKTYPE, tarfile.SYMTYPE, tarfile.FIFOTYPE, tarfile.DIRTYPE
        self.archives = {
            "faces.zip": make_zip([
                ("README.txt", b"a bundle of models\n", None),
                ("models/", b"", stat.S_IFDIR | 0o755),
                ("models/face.tflite", self.face, None),
                ("models/identity.onnx", self.identity, None),
                ("models/link.tflite", b"face.tflite", stat.S_IFLNK | 0o777),
                ("models/fifo", b"", stat.S_IFIFO | 0o644),
                ("../evil.txt", b"outside\n", None),
                ("/etc/evil.txt", b"absolute\n", None),
                ("models/bomb.bin", bytes(BOMB), None),
            ]),
            "lightning.tar.gz": make_tgz([
                ("./", b"", dirt, ""),
                ("./model.json", self.model_json, reg, ""),
                ("./group1-shard1of1.bin", self.shard, reg, ""),
                ("./link.json", b"", sym, "model.json"),
                ("./hard.json", b"", lnk, "./model.json"),
                ("./fifo", b"", fifo, ""),
                ("../evil.txt", b"outside\n", reg, ""),
                ("./bomb.bin", bytes(BOMB), reg, ""),
                ("./after-bomb.txt", b"late\n", reg, ""),
            ]),
            "liar.zip": lying_zip("models/face.tflite", len(self.face)),
            "corrupt.zip": b"PK\x03\x04" + bytes(200),  # not a zip, whatever its digest
        }
        self.archives["truncated.tgz"] = self.archives["lightning.tar.gz"][: len(self.archives["lightning.tar.gz"]) // 2]
        for name, data in self.archives.items():
            (folder / name).write_bytes(data)

    def archive(self, name: str, **changes) -> dict:
        data = self.archives[name]
        return {"name": name, "url": f"https://models.example.org/{name}", "digest": sha256(data),
                "size": len(data), **changes}

    def member(self, name: str, archive: dict, member: str, data: bytes, fmt: str = "tflite", **changes) -> dict:
        return {"name": name, "digest": sha256(data), "size": len(data), "format": fmt, "archive": archive,
                "member": member, **changes}


@pytest.fixture(scope="module")
def bundle(shared_models, tmp_path_factory) -> Bundle:
    return Bundle(shared_models, tmp_path_factory.mktemp("archives"))


@pytest.fixture()
def server(bundle):
    with MirrorServer(bundle.folder) as srv:
        yield srv


def model(name: str, variants: dict[str, dict[str, dict]]) -> dict:
    return {
        "plugin": "archive-test",
        "description": f"{name}: files inside archives",
        "licence": "Apache-2.0",
        "source": "https://example.org/archives",
        "default_variant": next(iter(variants)),
        "variants": {v: {"files": files} for v, files in variants.items()},
    }


def write_registry(path: Path, models: dict[str, dict]) -> Path:
    path.write_text(yaml.safe_dump({"version": 1, "models": models}, sort_keys=False))  # shared mappings: anchors
    return path


def good_models(bundle: Bundle) -> dict[str, dict]:
    faces = bundle.archive("faces.zip")  # one mapping, written once with an anchor, aliased below
    tgz = bundle.archive("lightning.tar.gz")
    shard = bundle.member("archived-lightning.bin", tgz, "group1-shard1of1.bin", bundle.shard)
    del shard["format"]
    json_file = bundle.member("archived-lightning.json", tgz, "model.json", bundle.model_json, "tfjs", shards=[shard])
    return {
        "archived-face": model("archived-face", {
            "tflite": {"model": bundle.member("archived_face.tflite", faces, "models/face.tflite", bundle.face)},
            "onnx": {"model": bundle.member("archived_identity.onnx", faces, "models/identity.onnx",
                                            bundle.identity, "onnx")},
        }),
        "archived-lightning": model("archived-lightning", {"default": {"model": json_file}}),
    }


def run_onnx(path: Path) -> list[np.ndarray]:
    """Run the model once on zeros with onnxruntime (CPU)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    dtypes = {"tensor(float)": np.float32, "tensor(int32)": np.int32}
    feeds = {i.name: np.zeros([d if isinstance(d, int) else 1 for d in i.shape], dtypes[i.type])
             for i in session.get_inputs()}
    outputs = session.run(None, feeds)
    assert outputs and all(np.isfinite(o).all() for o in outputs if o.dtype.kind == "f")
    return outputs


def leftovers(cache: Cache) -> list[str]:
    """Partial files and hidden temporaries left in the cache."""
    partial = cache.root / "partial"
    parts = sorted(p.name for p in partial.iterdir()) if partial.is_dir() else []
    return parts + sorted(p.name for p in cache.root.rglob(".*"))


def no_escape(root: Path) -> None:
    """Nothing an archive holds outside its member was written anywhere under ``root``."""
    assert not [p for p in root.rglob("evil.txt")]
    assert not Path("/etc/evil.txt").exists()


# --------------------------------------------------------------------------------------------- success


def test_zip_member_is_fetched_verified_converted_and_runs(home, server, bundle, tmp_path):
    reg = build_registry(user_files=[write_registry(tmp_path / "reg.yaml", good_models(bundle))])
    face = reg.model("archived-face")
    entry = face.variant("tflite").files["model"]
    assert entry.archive.name == "faces.zip" and entry.archive.format == "zip" and entry.member == "models/face.tflite"
    assert entry.url == entry.archive.url  # a member's bytes come from its archive

    paths = model_files(face, "tflite", mirror=server.url, progress=False)
    cache = Cache()
    member = cache.path(entry)
    assert member.read_bytes() == bundle.face and cache.is_cached(entry)
    assert paths == {"model": cache.onnx_path(entry)} and paths["model"].suffix == ".onnx"
    manifest = cache.manifest(entry.name)
    assert manifest["digest"] == entry.digest and manifest["size"] == len(bundle.face)
    assert (manifest["archive"], manifest["member"]) == ("faces.zip", "models/face.tflite")
    assert manifest["url"] == f"{server.url}/faces.zip" and manifest["onnx"]["converter_version"]
    assert cache.is_cached(entry.archive)  # the archive stays, for its other members
    assert sorted(p.name for p in (home / "files").iterdir()) == ["archived_face.tflite", "faces.zip"]
    assert [r.name for r in server.requests] == ["faces.zip"]
    assert leftovers(cache) == []
    no_escape(tmp_path)
    out = run_onnx(paths["model"])
    assert len(out) == 2  # the face detector's boxes and scores

    # another member of the same archive: no download; format onnx is used as it is
    onnx_paths = model_files(face, "onnx", mirror=server.url, progress=False)
    assert len(server.requests) == 1
    identity = face.variant("onnx").files["model"]
    assert onnx_paths == {"model": cache.path(identity)} and cache.path(identity).read_bytes() == bundle.identity
    x = np.arange(3, dtype=np.float32)[None]
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_paths["model"]), providers=["CPUExecutionProvider"])
    assert (session.run(None, {"x": x})[0] == x).all()

    # cached: nothing is read again
    stamp = member.stat().st_mtime_ns
    model_files(face, "tflite", mirror=server.url, progress=False)
    assert len(server.requests) == 1 and member.stat().st_mtime_ns == stamp


def test_tar_gz_tfjs_model_and_its_shard_are_members(home, server, bundle, tmp_path):
    reg = build_registry(user_files=[write_registry(tmp_path / "reg.yaml", good_models(bundle))])
    lightning = reg.model("archived-lightning")
    entry = lightning.variant().files["model"]
    assert entry.archive.format == "tar.gz" and entry.shards[0].member == "group1-shard1of1.bin"
    assert {f.name for f in lightning.files()} == {"archived-lightning.json", "archived-lightning.bin", "lightning.tar.gz"}

    paths = model_files(lightning, mirror=server.url, progress=False)
    cache = Cache()
    assert cache.path(entry).read_bytes() == bundle.model_json
    assert cache.path(entry.shards[0]).read_bytes() == bundle.shard
    assert [r.name for r in server.requests] == ["lightning.tar.gz"]  # one download for both members
    assert leftovers(cache) == []
    no_escape(tmp_path)
    (keypoints,) = run_onnx(paths["model"])
    assert keypoints.shape == (1, 1, 17, 3)


def test_cache_verbs_with_archives_through_the_cli(server, bundle, tmp_path):
    registry = write_registry(tmp_path / "reg.yaml", good_models(bundle))
    env = posezoo_env(tmp_path, POSEZOO_REGISTRY=str(registry))
    home = tmp_path / "home"
    fetched = run_posezoo("fetch", "archived-face", "--all-variants", "--mirror", server.url, env=env, timeout=120)
    assert fetched.returncode == 0, fetched.stderr
    assert fetched.stdout.splitlines()[0] == f"tflite model: {home / 'onnx' / 'archived_face.tflite.onnx'}"
    assert len(fetched.stdout.splitlines()) == 2 and fetched.stdout.splitlines()[1].startswith("onnx model: ")
    assert [r.name for r in server.requests] == ["faces.zip"]

    listing = run_posezoo("cache", "list", env=env, timeout=60).stdout.splitlines()
    rows = {line.split()[1]: line for line in listing[1:]}
    assert sorted(rows) == ["archived_face.tflite", "archived_identity.onnx", "faces.zip"]
    assert all(line.startswith("archived-face ") for line in rows.values())
    assert rows["faces.zip"].split()[-3:] == [str(len(bundle.archives["faces.zip"])), "yes", "-"]  # not a model
    assert "archived_face.tflite (from faces.zip)" in rows["archived_face.tflite"]
    assert rows["archived_face.tflite"].split()[-3:] == [str(len(bundle.face)), "yes", "yes"]

    assert run_posezoo("cache", "verify", env=env, timeout=60).returncode == 0
    exported = run_posezoo("cache", "export", tmp_path / "export", env=env, timeout=60)
    assert exported.returncode == 0 and "exported 1 files" in exported.stdout
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == ["faces.zip"]  # the archive, as upstream

    # the exported mirror serves a fresh cache, offline
    env2 = posezoo_env(tmp_path / "second", POSEZOO_REGISTRY=str(registry))
    again = run_posezoo("fetch", "archived-face", "--all-variants", "--offline", "--mirror", tmp_path / "export",
                        env=env2, timeout=120)
    assert again.returncode == 0, again.stderr
    second = tmp_path / "second" / "home" / "files"
    assert (second / "archived_face.tflite").read_bytes() == bundle.face
    assert (second / "archived_identity.onnx").read_bytes() == bundle.identity

    # a changed member: verify removes it (the archive stays), the next fetch extracts it again, no download
    target = home / "files" / "archived_face.tflite"
    target.write_bytes(b"x" + target.read_bytes()[1:])
    verify = run_posezoo("cache", "verify", env=env, timeout=60)
    assert verify.returncode == 1 and "archived_face.tflite" in verify.stderr and not target.exists()
    assert (home / "files" / "faces.zip").is_file()
    assert run_posezoo("fetch", "archived-face", "--offline", env=env, timeout=120).returncode == 0
    assert target.read_bytes() == bundle.face

    cleared = run_posezoo("cache", "clear", "archived-face", env=env, timeout=60)
    assert cleared.returncode == 0 and "removed faces.zip" in cleared.stdout
    assert "the cache is empty" in run_posezoo("cache", "list", env=env, timeout=60).stdout
    no_escape(tmp_path)


# --------------------------------------------------------------------------------------------- failures


def broken_model(bundle: Bundle, archive: str, member: str, data: bytes, **changes) -> dict:
    arch = bundle.archive(archive, **changes.pop("archive_changes", {}))
    return {"broken": model("broken", {"default": {"model": bundle.member("broken.tflite", arch, member, data, **changes)}})}


def fetch_broken(tmp_path: Path, models: dict, **kwargs) -> str:
    """Fetch model ``broken``: the one-line FetchError, in bounded time; nothing of the member is kept."""
    reg = build_registry(user_files=[write_registry(tmp_path / "broken.yaml", models)])
    broken = reg.model("broken")
    start = time.monotonic()
    with pytest.raises(FetchError) as err:
        fetch_model(broken, progress=False, **kwargs)
    assert time.monotonic() - start < FAST
    message = str(err.value)
    assert "\n" not in message and "broken.tflite" in message
    cache = Cache()
    assert not cache.path(broken.variant().files["model"]).exists() and cache.manifest("broken.tflite") is None
    assert leftovers(cache) == []
    no_escape(tmp_path)
    return message


def test_wrong_member_digest(home, server, bundle, tmp_path):
    msg = fetch_broken(tmp_path, broken_model(bundle, "faces.zip", "models/face.tflite", bundle.face,
                                              digest=sha256(b"other")), mirror=server.url)
    assert f"expected {sha256(b'other')}, got {sha256(bundle.face)}" in msg
    assert "'models/face.tflite' of the archive faces.zip" in msg and "member digest" in msg
    assert (home / "files" / "faces.zip").is_file()  # the archive is the registry's: it stays


@pytest.mark.parametrize("archive", ["faces.zip", "lightning.tar.gz"])
def test_missing_member(home, server, bundle, tmp_path, archive):
    msg = fetch_broken(tmp_path, broken_model(bundle, archive, "models/nope.tflite", bundle.face), mirror=server.url)
    assert f"(member 'models/nope.tflite' of the archive {archive}): the archive has no such member (it holds " in msg
    assert "check the registry's 'member' path" in msg


@pytest.mark.parametrize("archive,member,what", [
    ("faces.zip", "models/link.tflite", "a symbolic link"),
    ("faces.zip", "models/fifo", "a special file"),
    ("faces.zip", "models", "a folder"),
    ("lightning.tar.gz", "link.json", "a symbolic link"),
    ("lightning.tar.gz", "hard.json", "a hard link"),
    ("lightning.tar.gz", "fifo", "a special file"),
])
def test_links_and_special_members_are_refused(home, server, bundle, tmp_path, archive, member, what):
    msg = fetch_broken(tmp_path, broken_model(bundle, archive, member, bundle.face), mirror=server.url)
    assert f"(member {member!r} of the archive {archive}): the member is {what}, not a regular file" in msg


@pytest.mark.parametrize("member", ["../evil.txt", "../x", "/etc/evil.txt", "models/../../x", "./x", "a//b", "a\\b"])
def test_traversal_member_paths_are_refused_by_the_registry(bundle, tmp_path, member):
    path = write_registry(tmp_path / "broken.yaml", broken_model(bundle, "faces.zip", member, bundle.face))
    with pytest.raises(RegistryError) as err:
        read_registry_file(path)
    assert "is not a relative path inside the archive" in str(err.value) and "\n" not in str(err.value)
    if member == "../x":  # and through the CLI: exit 2, one line
        result = run_posezoo("list", env=posezoo_env(tmp_path, POSEZOO_REGISTRY=str(path)), timeout=60)
        assert result.returncode == 2 and "key 'member'" in one_line_error(result)


@pytest.mark.parametrize("archive,member", [("faces.zip", "models/bomb.bin"), ("lightning.tar.gz", "bomb.bin")])
def test_a_member_claiming_more_than_its_size_is_refused_before_reading(home, server, bundle, tmp_path, archive, member):
    msg = fetch_broken(tmp_path, broken_model(bundle, archive, member, bundle.face), mirror=server.url)
    assert f"claims {BOMB} bytes" in msg and f"the registry says {len(bundle.face)} bytes" in msg


def test_a_bomb_that_lies_about_its_size_stops_at_the_size(home, server, bundle, tmp_path):
    """The headers claim the registry's size, the data inflates to 32 MiB: reading stops at the size
    and the member is refused."""
    msg = fetch_broken(tmp_path, broken_model(bundle, "liar.zip", "models/face.tflite", bundle.face), mirror=server.url)
    assert "archive liar.zip): the archive is corrupt (Bad CRC-32" in msg


def test_fetch_itself_stops_a_member_at_its_size(home, server, bundle, tmp_path, monkeypatch):
    """Whatever an archive reader yields, fetch writes at most the registry size (the reader here, the
    zip format's post-fetch step in the format table, claims the right size and never ends)."""

    @contextmanager
    def endless(path, member, scan_limit):
        class Zeros(io.RawIOBase):
            def readable(self):
                return True

            def readinto(self, b):
                b[:] = bytes(len(b))
                return len(b)

        yield Member(member, len(bundle.face), io.BufferedReader(Zeros()), (OSError,))

    monkeypatch.setitem(FORMATS, "zip", replace(FORMATS["zip"], open_member=endless))
    msg = fetch_broken(tmp_path, broken_model(bundle, "faces.zip", "models/face.tflite", bundle.face), mirror=server.url)
    assert f"runs past the {len(bundle.face)} bytes the registry states: stopped at once" in msg


def test_a_tar_is_not_read_past_the_size_limit(home, server, bundle, tmp_path, monkeypatch):
    monkeypatch.setenv("POSEZOO_FETCH_MAX_SIZE", str(1 << 20))  # the archive itself is smaller
    msg = fetch_broken(tmp_path, broken_model(bundle, "lightning.tar.gz", "after-bomb.txt", b"late\n"),
                       mirror=server.url)
    assert "of the archive lightning.tar.gz): the archive holds more than 1048576 bytes before the member" in msg


def test_archive_digest_mismatch(home, server, bundle, tmp_path):
    wrong = sha256(b"not the archive")
    msg = fetch_broken(tmp_path, broken_model(bundle, "faces.zip", "models/face.tflite", bundle.face,
                                              archive_changes={"digest": wrong}), mirror=server.url)
    assert msg.startswith("cannot get broken.tflite (member 'models/face.tflite' of the archive faces.zip): ")
    assert f"faces.zip from {server.url}/faces.zip is not the registry's file: expected {wrong}" in msg
    assert not (home / "files" / "faces.zip").exists()


@pytest.mark.parametrize("archive", ["corrupt.zip", "truncated.tgz"])
def test_corrupt_archive(home, server, bundle, tmp_path, archive):
    msg = fetch_broken(tmp_path, broken_model(bundle, archive, "models/face.tflite", bundle.face), mirror=server.url)
    assert f"of the archive {archive}): the archive is corrupt" in msg and "registry names a broken archive" in msg


def test_offline_with_nothing_cached(home, bundle, tmp_path):
    msg = fetch_broken(tmp_path, broken_model(bundle, "faces.zip", "models/face.tflite", bundle.face), offline=True)
    assert "member 'models/face.tflite' of the archive faces.zip" in msg
    assert "not in the cache and posezoo is offline" in msg and "posezoo fetch broken" in msg


def test_a_changed_cached_archive_is_not_used(home, server, bundle, tmp_path):
    models = broken_model(bundle, "faces.zip", "models/face.tflite", bundle.face)
    reg = build_registry(user_files=[write_registry(tmp_path / "reg.yaml", models)])
    entry = reg.model("broken").variant().files["model"]
    cache = Cache()
    fetch_model(reg.model("broken"), mirror=server.url, progress=False)
    cache.path(entry).unlink()
    archive = cache.path(entry.archive)
    archive.write_bytes(archive.read_bytes()[:-1] + b"!")
    with pytest.raises(FetchError, match="the cached faces.zip has changed since it was verified.*it was removed"):
        fetch_model(reg.model("broken"), offline=True, progress=False)
    assert not archive.exists() and not cache.path(entry).exists()
    fetch_model(reg.model("broken"), mirror=server.url, progress=False)  # downloaded again
    assert cache.path(entry).read_bytes() == bundle.face


# --------------------------------------------------------------------------------------------- registry


def member_entry(**changes) -> dict:
    entry = {"name": "m.tflite", "digest": "sha256:" + "ab" * 32, "size": 10, "format": "tflite",
             "archive": {"name": "bundle.zip", "url": "https://example.org/bundle.zip", "digest": "sha256:" + "cd" * 32},
             "member": "models/m.tflite"}
    for key, value in changes.items():
        if value is None:
            entry.pop(key, None)
        else:
            entry[key] = value
    return entry


BAD_MEMBERS = {
    "no-member": (member_entry(member=None), "needs key 'member'"),
    "member-without-archive": (member_entry(archive=None, url="https://example.org/m.tflite"), "key 'member' is only for"),
    "url-and-archive": (member_entry(url="https://example.org/m.tflite"), "key 'url' is refused for a file inside an archive"),
    "no-size": (member_entry(size=None), "needs key 'size'"),
    "no-url-at-all": (member_entry(archive=None, member=None), "missing key 'url'"),
    "archive-key": (member_entry(archive={"name": "b.zip", "url": "https://e.org/b.zip", "digest": "sha256:" + "cd" * 32,
                                          "member": "x"}), "unknown key 'member'"),
    "archive-format": (member_entry(archive={"name": "b.rar", "url": "https://e.org/b.rar", "digest": "sha256:" + "cd" * 32}),
                       "cannot tell the format of archive 'b.rar'"),
    "bad-archive-format": (member_entry(archive={"name": "b.zip", "url": "https://e.org/b.zip", "format": "tflite",
                                                 "digest": "sha256:" + "cd" * 32}), "'tflite' is not an archive format"),
    "archive-as-format": (member_entry(format="zip"), "'zip' is not supported"),
    "same-name": (member_entry(archive={"name": "m.tflite", "url": "https://e.org/b.zip", "format": "zip",
                                        "digest": "sha256:" + "cd" * 32}), "is also the member's name"),
    "http-archive": (member_entry(archive={"name": "b.zip", "url": "http://e.org/b.zip", "digest": "sha256:" + "cd" * 32}),
                     "is not an https URL"),
}


@pytest.mark.parametrize("case", sorted(BAD_MEMBERS))
def test_invalid_archive_entries_are_one_line_registry_errors(tmp_path, case):
    entry, expected = BAD_MEMBERS[case]
    path = write_registry(tmp_path / f"{case}.yaml", {"tiny": model("tiny", {"base": {"model": entry}})})
    with pytest.raises(RegistryError) as err:
        read_registry_file(path)
    message = str(err.value)
    assert expected in message and "model 'tiny'" in message and str(path) in message and "\n" not in message


def test_an_archive_shared_by_two_models_must_be_the_same_archive(tmp_path):
    one = member_entry()
    other = member_entry(name="n.tflite", member="n.tflite")
    other["archive"] = {**other["archive"], "digest": "sha256:" + "ef" * 32}
    path = write_registry(tmp_path / "clash.yaml", {"a": model("a", {"v": {"model": one}}),
                                                    "b": model("b", {"v": {"model": other}})})
    with pytest.raises(RegistryError, match="file name 'bundle.zip' is already used for another file"):
        build_registry(user_files=[path])
    other["archive"] = dict(one["archive"])  # the same archive: fine, stored once
    reg = build_registry(user_files=[write_registry(tmp_path / "ok.yaml", {"a": model("a", {"v": {"model": one}}),
                                                                            "b": model("b", {"v": {"model": other}})})])
    assert reg.files["bundle.zip"].format == "zip" and reg.files["n.tflite"].archive == reg.files["m.tflite"].archive
