"""The docs stay true: docs/cli.md is what docs/gen_cli.py generates, and every ```bash / ```console
command in docs/**/*.md runs (offline) unless a ``<!-- no-test: why -->`` line marks its block.

Blocks run in file order, with ``bash -e``, in one shared workspace that holds what the docs refer
to: ``photo.jpg`` (the bundled sample), ``photos/``, ``clip.mp4``, ``hand.jpg``, ``coco/`` (COCO
val2017 #785 and its ``person_keypoints.json``) and ``posezoo-mirror/``
(a mirror built from ../shared/models). The environment has an isolated ``POSEZOO_HOME``,
``POSEZOO_MIRROR`` set to that mirror and ``POSEZOO_OFFLINE=1``, so a command that "downloads" gets
the same verified files without the network. The hands example plugin is pip-installed into a private folder on PYTHONPATH first.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from clitools import posezoo_env
from conftest import REPO, SHARED
from mirror import build_mirror
from test_hands_plugin import HAND_PHOTO, hands_env

DOCS = REPO / "docs"
NO_TEST = "<!-- no-test"
BLOCK_RE = re.compile(r"^```(bash|console)[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)


def _gen_cli():
    spec = importlib.util.spec_from_file_location("gen_cli", DOCS / "gen_cli.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_is_up_to_date():
    expected = _gen_cli().render()
    actual = (DOCS / "cli.md").read_text(encoding="utf-8")
    assert actual == expected, "docs/cli.md is out of date: run `python docs/gen_cli.py`"


def test_cli_reference_names_every_command_and_option():
    import typer.main

    from posezoo.cli import app

    text = (DOCS / "cli.md").read_text(encoding="utf-8")

    def walk(cmd, path):
        assert f"## `{' '.join(path)}`" in text
        for p in cmd.params:
            for opt in p.opts if p.param_type_name == "option" else [p.name.upper()]:
                assert f"`{opt}`" in text, (path, opt)
        for name, sub in (getattr(cmd, "commands", None) or {}).items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), ["posezoo"])


def doc_blocks() -> list[tuple[str, int, str, bool]]:
    """(file relative to docs/, line, commands, tested) for every bash/console block."""
    out = []
    for path in sorted(DOCS.rglob("*.md")):
        text = path.read_text(encoding="utf-8")
        for m in BLOCK_RE.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
            body = m.group(2)
            if m.group(1) == "console":
                body = "\n".join(l[2:] for l in body.splitlines() if l.startswith("$ "))
            out.append((str(path.relative_to(DOCS)), line, body, not before.strip().startswith(NO_TEST)))
    return out


BLOCKS = doc_blocks()


def test_docs_have_commands_and_few_exemptions():
    pages = {f for f, *_ in BLOCKS}
    assert {"quickstart.md", "cache.md", "registry.md", "plugins.md"} <= pages
    skipped = [f"{f}:{line}" for f, line, _, tested in BLOCKS if not tested]
    assert len(skipped) <= 8, f"too many untested doc blocks: {skipped}"


@pytest.fixture(scope="module")
def workspace(shared_models, testdata, tmp_path_factory) -> tuple[Path, dict]:
    ws = tmp_path_factory.mktemp("docs")
    mirror = ws / "posezoo-mirror"
    build_mirror(shared_models, mirror)
    shutil.copyfile(REPO / "posezoo" / "data" / "coco_000000000785.jpg", ws / "photo.jpg")
    (ws / "photos").mkdir()
    shutil.copyfile(ws / "photo.jpg", ws / "photos" / "skier.jpg")
    shutil.copyfile(testdata / "images" / "mpii_052475643.jpg", ws / "photos" / "mpii.jpg")
    shutil.copyfile(testdata / "video" / "soccer_5frames.mp4", ws / "clip.mp4")
    shutil.copyfile(testdata / HAND_PHOTO, ws / "hand.jpg")
    (ws / "coco").mkdir()  # docs/eval.md: COCO val2017 #785 and its ground truth
    shutil.copyfile(testdata / "images" / "coco_000000000785.jpg", ws / "coco" / "coco_000000000785.jpg")
    shutil.copyfile(testdata / "coco_val2017_000000000785_person_keypoints.json", ws / "coco" / "person_keypoints.json")
    env = hands_env(posezoo_env(ws, POSEZOO_MIRROR=str(mirror), POSEZOO_OFFLINE="1"))
    return ws, env


@pytest.mark.slow
@pytest.mark.skipif(SHARED is None, reason="needs ../shared (weights and test photos)")
@pytest.mark.parametrize(
    "page,line,commands",
    [pytest.param(f, line, body, id=f"{f}:{line}") for f, line, body, tested in BLOCKS if tested],
)
def test_doc_commands_run(workspace, page, line, commands):
    ws, env = workspace
    result = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", commands],
        cwd=ws, env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, f"docs/{page}:{line} failed ({result.returncode}):\n{commands}\n{result.stderr[-3000:]}"
    assert "Traceback" not in result.stderr, result.stderr
    assert "posezoo: warning:" not in result.stderr or "my_plugins" in commands, result.stderr
