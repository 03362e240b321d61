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
import json
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

OUTPUT_MARK = "<!-- output of the block above"
OUTPUT_RE = re.compile(
    r"^```(?:bash|console)[ \t]*\n(?:(?!^```).)*?^```[ \t]*\n\s*" + re.escape(OUTPUT_MARK) + r"([^>]*)-->\s*\n```text[ \t]*\n(.*?)^```",
    re.S | re.M,
)


def expected_outputs() -> dict[tuple[str, int], tuple[str, float]]:
    """(page, line of a command block) -> (the output shown after it, tolerance for numbers): a ```text
    block right after a command block, marked ``<!-- output of the block above ... -->`` (``numbers
    within X`` sets the tolerance, else 0)."""
    out = {}
    for path in sorted(DOCS.rglob("*.md")):
        text = path.read_text(encoding="utf-8")
        for m in OUTPUT_RE.finditer(text):
            tol = re.search(r"numbers within ([0-9.]+)", m.group(1))
            out[(str(path.relative_to(DOCS)), text.count("\n", 0, m.start()) + 1)] = (m.group(2), float(tol.group(1)) if tol else 0.0)
    return out


EXPECTED = expected_outputs()


def _same_line(shown: str, printed: str, tol: float) -> bool:
    a, b = shown.split(), printed.split()
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x == y:
            continue
        try:
            if abs(float(x) - float(y)) > tol + 1e-9:
                return False
        except ValueError:
            return False
    return True


def check_output(where: str, shown: str, printed: str, tol: float) -> None:
    """Every non-empty line the docs show is printed, in that order (numbers within ``tol``)."""
    lines = [l for l in printed.splitlines() if l.strip()]
    at = 0
    for want in (l for l in shown.splitlines() if l.strip()):
        while at < len(lines) and not _same_line(want, lines[at], tol):
            at += 1
        assert at < len(lines), f"{where}: the docs show\n  {want}\nwhich a fresh run did not print (numbers within {tol}):\n{printed}"
        at += 1

PYTHON_RE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
RUN_MARK = "<!-- run: tests/test_docs.py"
PYTHON_PAGES = ("README.md", "docs/quickstart.md")  # every Python block of these runs; elsewhere, marked ones


def python_scripts() -> dict[str, str]:
    """Page (relative to the repo) -> its runnable Python blocks joined in page order (a later block
    may use what an earlier one made, as a reader would in one session)."""
    out = {}
    for path in [REPO / "README.md", *sorted(DOCS.rglob("*.md"))]:
        rel = str(path.relative_to(REPO))
        text = path.read_text(encoding="utf-8")
        blocks = []
        for m in PYTHON_RE.finditer(text):
            before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
            if before.startswith(RUN_MARK) or (rel in PYTHON_PAGES and not before.startswith(NO_TEST)):
                line = text.count("\n", 0, m.start()) + 2
                blocks.append(f"# {rel}:{line}\n{m.group(1)}")
        if blocks:
            out[rel] = "\n".join(blocks)
    return out


PYTHON_SCRIPTS = python_scripts()


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
    if (page, line) in EXPECTED:
        shown, tol = EXPECTED[(page, line)]
        check_output(f"docs/{page}:{line}", shown, result.stdout, tol)


def test_shown_outputs_belong_to_tested_blocks():
    assert len([p for p, _ in EXPECTED if p == "eval.md"]) == 3
    tested = {(f, line) for f, line, _, t in BLOCKS if t}
    assert set(EXPECTED) <= tested, set(EXPECTED) - tested


# ------------------------------------------------------------------ the JSON Lines schema against real output

JSON_HEADING = "## JSON Lines output"


def md_table(text: str, after: str) -> list[list[str]]:
    """The rows (cells stripped, header and rule left out) of the first Markdown table after ``after``."""
    start = text.index(after) + len(after)
    rows, seen = [], False
    for line in text[start:].splitlines():
        if line.startswith("|"):
            seen = True
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(set(c) <= set("-: ") for c in cells):
                rows.append(cells)
        elif seen:
            break
    return rows[1:]


def _key(cell: str) -> str:
    assert cell.startswith("`") and cell.endswith("`"), cell
    return cell.strip("`")


def json_schema() -> tuple[dict[str, str], dict[str, str], dict[str, tuple[str, tuple[str, ...]]]]:
    """From docs/cli.md: record key -> value kind, pose key -> value kind, model -> (family, columns)."""
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    section = text[text.index(JSON_HEADING) :].split("\n## ", 1)[0]
    record = {_key(r[0]): r[1] for r in md_table(section, "Each line")}
    pose = {_key(r[0]): r[1] for r in md_table(section, "Each pose")}
    columns = {
        _key(r[0]): (r[1].split()[0], tuple(c.strip().strip("`") for c in r[2].split(",")))
        for r in md_table(section, "The columns of each model")
    }
    return record, pose, columns


def _check_value(where: str, kind: str, value, k: int | None = None, width: int | None = None) -> None:
    """``value`` is of the documented ``kind`` ("string", "integer or null", "list of K rows", ...)."""
    if kind.endswith(" or null") or kind.endswith(", or null"):
        if value is None:
            return
        kind = kind.rsplit(" or null", 1)[0].rstrip(",")
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
    checks = {
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": number,
        "list of poses": lambda v: isinstance(v, list) and all(isinstance(p, dict) for p in v),
        "list of 4 numbers": lambda v: isinstance(v, list) and len(v) == 4 and all(map(number, v)),
        "list of strings": lambda v: isinstance(v, list) and all(isinstance(s, str) for s in v),
        "object": lambda v: isinstance(v, dict),
        "list of K rows": lambda v: isinstance(v, list) and len(v) == k
        and all(isinstance(r, list) and len(r) == width and all(map(number, r)) for r in v),
        "list of K rows of 3": lambda v: isinstance(v, list) and len(v) == k
        and all(isinstance(r, list) and len(r) == 3 and all(map(number, r)) for r in v),
    }  # fmt: skip
    assert kind in checks, f"docs/cli.md: {where}: value kind {kind!r} is not one the test knows"
    assert checks[kind](value), f"docs/cli.md says {where} is {kind}; a real run wrote {json.dumps(value)[:200]}"


def test_json_schema_lists_every_built_in_model_with_its_family():
    from posezoo.zoo.resolve import get_zoo

    _, _, columns = json_schema()
    zoo = get_zoo()
    built_in = [m for m in zoo.registry.models.values() if Path(m.origin).resolve() == (REPO / "registry.yaml").resolve()]
    assert built_in
    for entry in built_in:
        assert entry.name in columns, f"docs/cli.md's columns table lacks model {entry.name!r} (docs/gen_cli.py JSON_SECTION)"
        family = zoo.resolve(entry.name).family.name
        assert columns[entry.name][0] == family, f"docs/cli.md: {entry.name} is of family {family!r}, not {columns[entry.name][0]!r}"


JSON_RUNS = {  # one model of each family (the hands plugin too), an image each, and a tracked video
    "blazepose-full": ["-i", "photo.jpg"],
    "movenet-lightning": ["-i", "photo.jpg"],
    "blazepose-multi": ["-i", "photos/mpii.jpg", "--max-poses", "2"],
    "mediapipe-hands": ["-i", "hand.jpg"],
    "blazepose-full:video": ["-v", "clip.mp4", "--max-poses", "2"],
}


@pytest.mark.slow
@pytest.mark.skipif(SHARED is None, reason="needs ../shared (weights and test photos)")
@pytest.mark.parametrize("run", list(JSON_RUNS))
def test_json_schema_matches_real_output(workspace, run):
    """Every key `posezoo run --json` writes is in docs/cli.md's tables and every key there is written,
    with the documented kind of value; each model's `columns` are the documented ones."""
    ws, env = workspace
    model = run.split(":")[0]
    out = ws / f"schema-{run.replace(':', '-')}.jsonl"
    result = subprocess.run(
        ["posezoo", "run", model, *JSON_RUNS[run], "--json", str(out), "--no-display"],
        cwd=ws, env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    record_doc, pose_doc, columns_doc = json_schema()
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert records and sum(len(r["poses"]) for r in records) > 0
    for record in records:
        written, documented = set(record), set(record_doc)
        assert not written - documented, (
            f"`posezoo run {model} --json` writes record key(s) {sorted(written - documented)} that docs/cli.md's JSON Lines "
            "schema lacks: add them to JSON_SECTION in docs/gen_cli.py and run `python docs/gen_cli.py`"
        )
        assert not documented - written, (
            f"docs/cli.md documents record key(s) {sorted(documented - written)} that `posezoo run {model} --json` does not write"
        )
        for key, kind in record_doc.items():
            _check_value(f"record key {key!r}", kind, record[key])
        for pose in record["poses"]:
            written, documented = set(pose), set(pose_doc)
            assert not written - documented, (
                f"`posezoo run {model} --json` writes pose key(s) {sorted(written - documented)} that docs/cli.md's JSON Lines "
                "schema lacks: add them to JSON_SECTION in docs/gen_cli.py and run `python docs/gen_cli.py`"
            )
            assert not documented - written, (
                f"docs/cli.md documents pose key(s) {sorted(documented - written)} that `posezoo run {model} --json` does not write"
            )
            k, width = len(pose["landmarks"]), len(pose["columns"])
            for key, kind in pose_doc.items():
                _check_value(f"pose key {key!r}", kind, pose[key], k, width)
            assert tuple(pose["columns"]) == columns_doc[model][1], (
                f"docs/cli.md says {model}'s columns are {columns_doc[model][1]}, a real run wrote {pose['columns']}"
            )
    if "-v" in JSON_RUNS[run]:
        assert any(p["track_id"] is not None for r in records for p in r["poses"])


# ------------------------------------------------------------------ the zoo's tables and the registry format


def _gen_zoo():
    spec = importlib.util.spec_from_file_location("gen_zoo", DOCS / "gen_zoo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_zoo_tables_are_generated_from_the_code():
    """README.md, docs/models.md (models: names, families, plugins, variants, keypoint counts, features,
    file formats) and docs/registry.md (roles per family, the format table) hold what docs/gen_zoo.py
    writes from registry.yaml, the loaded plugins and posezoo/supply/formats.py."""
    gen = _gen_zoo()
    for path in gen.PARTS:
        assert path.read_text(encoding="utf-8") == gen.rendered(path), f"{path.name} is out of date: run `python docs/gen_zoo.py`"


def test_the_blazepose_table_of_models_md_names_real_models():
    from posezoo.zoo.resolve import get_zoo

    zoo = get_zoo()
    text = (DOCS / "models.md").read_text(encoding="utf-8")
    rows = md_table(text, "The BlazePose models:")
    assert len(rows) >= 4
    for model, variants, _detector, keypoints, *_ in rows:
        r = zoo.resolve(_key(model))
        assert [v.strip().split()[0].strip("`") for v in variants.split(",")] == list(r.entry.variants), model
        assert int(re.match(r"\d+", keypoints).group()) == len(r.capabilities.keypoint_names), model


def _key_table(text: str, heading: str) -> dict[str, bool]:
    """``{key: required}`` of a registry.md key table (required: the cell says exactly "yes")."""
    return {_key(r[0]): r[1] == "yes" for r in md_table(text, heading)}


def test_registry_doc_lists_exactly_the_keys_the_loader_takes():
    from posezoo.supply import registry

    text = (DOCS / "registry.md").read_text(encoding="utf-8")
    tables = {
        "## Top level": registry.TOP_KEYS,
        "## Model\n": registry.MODEL_KEYS,
        "## Variant\n": registry.VARIANT_KEYS,
        "## File\n": registry.FILE_KEYS,
        "| `archive` key |": registry.ARCHIVE_KEYS,
    }
    for heading, keys in tables.items():
        # a heading's table is the first after it; the archive table is found by its own header row
        doc = _key_table(text, heading) if heading.startswith("#") else _key_table(text[text.index(heading) - 1 :], "\n")
        assert set(doc) == set(keys), f"docs/registry.md {heading.strip()}: documents {sorted(doc)}, the loader takes {sorted(keys)}"
        required = {k for k, v in keys.items() if v}
        assert {k for k, v in doc.items() if v} == required, f"docs/registry.md {heading.strip()}: required keys differ from {sorted(required)}"
    shard_doc = "a list of files with the keys of this table but `format` and `shards`"
    assert shard_doc in text and set(registry.SHARD_KEYS) == set(registry.FILE_KEYS) - {"format", "shards"}


def test_registry_doc_formats_are_the_format_table():
    from posezoo.supply.formats import FORMATS, MODEL, names

    text = (DOCS / "registry.md").read_text(encoding="utf-8")
    model_formats = ", ".join(f"`{n}`" for n in names(MODEL))
    row = next(r for r in md_table(text, "## File\n") if r[0] == "`format`")
    assert model_formats.replace(", `onnx`", " or `onnx`") in row[2], f"docs/registry.md's `format` row should name {model_formats}"
    rows = md_table(text, "<!-- generated by docs/gen_zoo.py: formats -->")
    assert [_key(r[0]) for r in rows] == list(FORMATS)


# ------------------------------------------------------------------ Python examples and the commands in text blocks


def test_the_python_examples_that_run_are_the_ones_a_newcomer_reads():
    assert {"README.md", "docs/quickstart.md", "docs/eval.md", "docs/plugins.md"} <= set(PYTHON_SCRIPTS)
    assert "tracker.update(" in PYTHON_SCRIPTS["README.md"] and "tracker.update(" in PYTHON_SCRIPTS["docs/quickstart.md"]
    assert "rgb=True" in PYTHON_SCRIPTS["docs/quickstart.md"]


@pytest.mark.slow
@pytest.mark.skipif(SHARED is None, reason="needs ../shared (weights and test photos)")
@pytest.mark.parametrize("page", list(PYTHON_SCRIPTS))
def test_doc_python_runs(workspace, page):
    """The page's Python blocks, run as one script in the docs workspace (offline, from the mirror)."""
    import sys

    ws, env = workspace
    script = ws / ("example_" + page.replace("/", "_").replace(".md", ".py"))
    script.write_text(PYTHON_SCRIPTS[page], encoding="utf-8")
    result = subprocess.run([sys.executable, str(script)], cwd=ws, env=env, capture_output=True, text=True, timeout=600,
                            stdin=subprocess.DEVNULL)  # fmt: skip
    assert result.returncode == 0, f"{page}'s Python examples failed:\n{result.stderr[-3000:]}"
    assert "Traceback" not in result.stderr, result.stderr
    if "print(pose)" in PYTHON_SCRIPTS[page]:
        assert "Pose(33 keypoints x,y,z,visibility,presence, score=" in result.stdout, result.stdout[:1000]


TEXT_RE = re.compile(r"^```(text|bash|console)[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)


def shown_commands() -> list[tuple[str, int, list[str]]]:
    """(page, line, argv after ``posezoo``) of every ``posezoo`` command shown but not run: the lines of
    ```text blocks and of blocks marked no-test, in README.md and docs/. ``a | b | c`` alternatives
    expand to one command each; ``[...]`` optional parts are left out; ``# ...`` comments are dropped."""
    import shlex

    out = []
    for path in [REPO / "README.md", *sorted(DOCS.rglob("*.md"))]:
        rel = str(path.relative_to(REPO))
        text = path.read_text(encoding="utf-8")
        for m in TEXT_RE.finditer(text):
            before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
            if m.group(1) != "text" and not before.startswith(NO_TEST):
                continue  # run by test_doc_commands_run
            first = text.count("\n", 0, m.start()) + 2
            for i, line in enumerate(m.group(2).splitlines()):
                line = line.removeprefix("$ ").split("  #", 1)[0].strip()
                words = line.split()
                while words and re.match(r"^[A-Z_]+=", words[0]):
                    words.pop(0)  # VAR=value before the command
                if not words or words[0] != "posezoo":
                    continue
                try:
                    argv = shlex.split(" ".join(words[1:]))
                except ValueError:
                    argv = words[1:]
                argv = [a for a in argv if not (a.startswith("[") or a.endswith("]"))]  # optional parts
                if "|" in argv:  # alternatives of one position: `cache list | verify | export DIR`
                    at = argv.index("|") - 1
                    groups, cur = [], [argv[at]]
                    for a in argv[at + 1 :]:
                        if a == "|":
                            groups.append(cur)
                            cur = []
                        else:
                            cur.append(a)
                    groups.append(cur)
                    out += [(rel, first + i, argv[:at] + g) for g in groups]
                else:
                    out.append((rel, first + i, argv))
    return out


SHOWN = shown_commands()


def test_every_shown_command_parses():
    """Commands the docs show but do not run (a webcam, a server, a cluster, the README's list) are
    parsed by the real CLI's parser: the commands, options and option values exist."""
    import typer.main

    from posezoo.cli import app

    assert len(SHOWN) >= 20 and any(page == "README.md" for page, *_ in SHOWN)
    root = typer.main.get_command(app)
    for page, line, argv in SHOWN:
        where = f"{page}:{line}: posezoo {' '.join(argv)}"
        cmd, args, path = root, list(argv), ["posezoo"]
        while getattr(cmd, "commands", None) is not None and args:
            assert args[0] in cmd.commands, f"{where}: no command {' '.join([*path, args[0]])!r}"
            path.append(args[0])
            cmd, args = cmd.commands[args[0]], args[1:]
        try:
            cmd.make_context(" ".join(path), args)  # parses (and checks) every option and argument, runs nothing
        except Exception as exc:  # typer's click: UsageError, BadParameter, NoSuchOption ...
            if not any(k.__name__ == "UsageError" for k in type(exc).__mro__):
                raise
            raise AssertionError(f"{where}: {exc}") from None
