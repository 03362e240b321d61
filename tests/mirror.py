"""One mirror builder for every test: registry files found in ../shared/models, under their names.

A shared file matches a registry file by digest (``sha256`` from SHA256SUMS, ``git-blob-sha1``
computed), so a damaged shared file is simply missing from the mirror and the test using it fails
loudly. By default the mirror holds every file of the built-in registry and of the example hands
plugin's registry (shards of TF.js models included).
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from posezoo.supply.registry import FileEntry, build_registry, read_registry_file

REPO = Path(__file__).resolve().parent.parent
HANDS_REGISTRY = REPO / "docs" / "examples" / "posezoo-hands" / "posezoo_hands" / "registry.yaml"


@lru_cache(maxsize=4)
def shared_digests(shared_models: Path) -> dict[str, Path]:
    """``"sha256:<hex>"`` and ``"git-blob-sha1:<hex>"`` -> file, for every file of SHA256SUMS."""
    out: dict[str, Path] = {}
    for line in (shared_models / "SHA256SUMS").read_text().splitlines():
        if not line.strip():
            continue
        digest, rel = line.split(maxsplit=1)
        path = shared_models / rel.strip().lstrip("*")
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != digest:
            continue  # damaged: leave it out of every mirror
        out[f"sha256:{digest}"] = path
        out[f"git-blob-sha1:{hashlib.sha1(b'blob %d' % len(data) + bytes(1) + data).hexdigest()}"] = path
    return out


def zoo_files() -> list[FileEntry]:
    """Every file of the built-in registry and the hands example's registry (shards included)."""
    files = {f.name: f for f in build_registry(user_files=[]).files.values()}
    for model in read_registry_file(HANDS_REGISTRY):
        files.update((f.name, f) for f in model.files())
    return list(files.values())


def build_mirror(shared_models: Path, dest: Path, files=None, *, link: bool = False) -> dict[str, Path]:
    """Copy (or symlink, with ``link``) each of ``files`` (default: :func:`zoo_files`) found in
    ``shared_models`` to ``dest/<registry name>``; returns {name: path}."""
    digests = shared_digests(Path(shared_models))
    dest.mkdir(parents=True, exist_ok=True)
    out = {}
    for entry in zoo_files() if files is None else files:
        src = digests.get(entry.digest)
        if src is None:
            continue
        target = dest / entry.name
        if not target.exists():
            if link:
                target.symlink_to(src)
            else:
                shutil.copyfile(src, target)
        out[entry.name] = target
    return out


def fetched_home(shared_models: Path, root: Path, *fetches: Sequence[str], link: bool = False) -> Path:
    """``root`` as a test's POSEZOO_HOME root (``clitools.posezoo_env(root)``) with each of ``fetches``
    (the arguments of one ``posezoo fetch``, e.g. ``("blazepose-full", "--variant", "lite")``) fetched
    and converted through the real CLI from a mirror of ``shared_models`` built at ``root / "mirror"``."""
    from clitools import posezoo_env, run_posezoo

    mirror = root / "mirror"
    build_mirror(shared_models, mirror, link=link)
    for args in fetches:
        result = run_posezoo("fetch", *args, "--mirror", mirror, env=posezoo_env(root))
        assert result.returncode == 0, result.stderr
    return root
