"""What a newcomer types wrong, and what the help shows: readable metavars, one-line usage errors
(exit 2, click's "did you mean" kept), no help text naming a docs/ file the wheel lacks, a cache folder
that cannot be one as an input/output error (exit 5), and `posezoo list` / `--help` staying light
(no onnxruntime, OpenCV, requests or pyarrow imported)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from clitools import one_line_error, posezoo_env, run_posezoo
from httpserver import mirror_dir  # noqa: F401  (pytest fixture)


def _commands() -> list[list[str]]:
    """Every command path of the CLI: ["run"], ["cache", "list"], ..."""
    from posezoo.cli import command

    out: list[list[str]] = [[]]

    def walk(cmd, path):
        for name, sub in (getattr(cmd, "commands", None) or {}).items():
            out.append([*path, name])
            walk(sub, [*path, name])

    walk(command(), [])
    return out


def _help_texts(tmp_path) -> dict[str, str]:
    """``posezoo ... --help`` of every command, run in one interpreter (the real entry point)."""
    code = (
        "import contextlib, io, json, sys\n"
        "from posezoo.cli import main\n"
        "out = {}\n"
        "for path in json.loads(sys.argv[1]):\n"
        "    buf = io.StringIO()\n"
        "    with contextlib.redirect_stdout(buf):\n"
        "        try:\n"
        "            main([*path, '--help'])\n"
        "        except SystemExit as exc:\n"
        "            assert exc.code in (0, None), (path, exc.code)\n"
        "    out[' '.join(path)] = buf.getvalue()\n"
        "print(json.dumps(out))\n"
    )
    import json

    result = subprocess.run([sys.executable, "-c", code, json.dumps(_commands())], env=posezoo_env(tmp_path),
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_every_metavar_is_readable(tmp_path):
    texts = _help_texts(tmp_path)
    assert len(texts) >= 15 and "run" in texts and "cache export" in texts
    for path, text in texts.items():
        assert text.startswith("Usage: posezoo"), (path, text)
        # no type names (<list[Path]>, <int range>, <str>), no {model} / [model] placeholders
        assert not re.search(r"<[a-z][^>]*>|\{[a-z_]+\}|(?<![\w\"])\[(?!required\])[a-z_]+\]", text), (path, text)
    run = texts["run"]
    assert "Usage: posezoo run [OPTIONS] [MODEL]" in run
    for shown in ("-i, --input PATH", "--threshold 0..1", "--max-poses N", "-j, --jobs N", "--mirror URL|DIR",
                  "--device auto|cpu|cuda", "--option KEY=VALUE", "-q, --quiet"):
        assert shown in run, (shown, run)
    assert "Usage: posezoo batch [OPTIONS] MODEL INPUT..." in texts["batch"]
    assert "-o, --out DIR|URI" in texts["batch"] and "Usage: posezoo cache export [OPTIONS] DIR" in texts["cache export"]


def test_no_help_names_a_docs_file_the_wheel_lacks(tmp_path):
    """The wheel holds no docs/ folder (see test_wheel.py): a help text may name docs only by URL."""
    for path, text in _help_texts(tmp_path).items():
        flat = " ".join(text.split())
        for found in re.finditer(r"(\S*)docs/[\w./-]+", flat):
            assert found.group(1).startswith(("http://", "https://")), (path, found.group(0))


@pytest.mark.parametrize(
    "args, says",
    [
        (("run", "--max-pose", "2"), "no such option: --max-pose; did you mean --max-poses?"),
        (("run", "--max-poses", "0"), "invalid value for '--max-poses'"),
        (("run", "--max-poses", "-1"), "invalid value for '--max-poses'"),
        (("run", "--threshold", "abc"), "invalid value for '--threshold'"),
        (("run", "-i"), "option '-i' requires an argument"),
        (("batch",), "missing argument 'MODEL'"),
        (("fetch", "blazepose-full", "--variants", "lite"), "no such option: --variants; did you mean --all-variants or --variant?"),
        (("rnu",), "no such command 'rnu'. Did you mean 'run'?"),
        (("cache", "lss"), "no such command 'lss'"),  # (see `posezoo cache --help`)
    ],
)
def test_a_usage_error_is_one_line_with_the_help_to_see(tmp_path, args, says):
    result = run_posezoo(*args, env=posezoo_env(tmp_path), timeout=60)
    line = one_line_error(result)
    assert result.returncode == 2 and result.stdout == "", result
    assert result.stderr == line + "\n"  # no usage block
    command = " ".join(["posezoo", *(a for a in args[:2] if a in ("run", "batch", "fetch", "cache"))])
    assert says in line and line.endswith(f" (see `{command} --help`)"), line


def test_bare_posezoo_still_shows_its_help(tmp_path):
    result = run_posezoo(env=posezoo_env(tmp_path), timeout=60)
    assert "Usage: posezoo [OPTIONS] COMMAND [ARGS]..." in result.stdout + result.stderr
    assert "posezoo: error" not in result.stderr


# --------------------------------------------------------------------------------------------- exit 5


def test_a_posezoo_home_under_a_file_is_an_input_output_error(tmp_path, mirror_dir):
    """POSEZOO_HOME=FILE/home: its parent cannot be entered. One line naming the folder, exit 5 (not
    an internal error, 70), for the cache verbs, fetch and run."""
    blocker = tmp_path / "somefile"
    blocker.write_text("a file, not a folder")
    home = blocker / "home"
    env = posezoo_env(tmp_path, POSEZOO_HOME=str(home))
    for args in (("cache", "verify"), ("cache", "list"), ("cache", "clear"), ("fetch", "blazepose-full", "--mirror", mirror_dir),
                 ("run", "blazepose-full", "--offline", "--no-display")):  # fmt: skip
        result = run_posezoo(*args, env=env, cwd=tmp_path, timeout=120)
        line = one_line_error(result)
        assert result.returncode == 5, (args, result.stderr)
        assert f"the cache {home}: {blocker} is a file, not a folder" in line, (args, line)
        assert "set POSEZOO_HOME to a folder you can write" in line, (args, line)
    assert blocker.read_text() == "a file, not a folder"


def test_exit_code_table_matches_the_errors():
    from posezoo import errors
    from conftest import REPO

    table = (REPO / "docs" / "cli.md").read_text(encoding="utf-8").split("## Exit codes", 1)[1]
    for cls in (errors.UsageError, errors.InputError, errors.FetchError):
        assert f"| {cls.exit_code} | `{cls.__name__}`:" in table
    assert "| 143 |" in table and "| 130 |" in table and "| 70 |" in table
    assert "POSEZOO_HOME" in table  # the cache folder's own errors are input/output (5)


# --------------------------------------------------------------------------------------------- light start


HEAVY = ("onnxruntime", "cv2", "requests", "pyarrow", "ray", "tqdm", "onnx", "matplotlib")


@pytest.mark.parametrize("args", [("list",), ("--help",), ("run", "--help"), ("info", "blazepose-full"), ("plugins",)])
def test_light_commands_import_no_heavy_module(tmp_path, args):
    """`posezoo list`, `info`, `plugins` and every --help import none of the runtime's heavy modules
    (what keeps them fast; benchmarks/cli_startup.py has the times)."""
    code = (
        "import sys\n"
        "from posezoo.cli import main\n"
        "try:\n"
        f"    main({list(args)!r})\n"
        "except SystemExit as exc:\n"
        "    assert exc.code in (0, None), exc.code\n"
        f"print('LOADED', *sorted(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], env=posezoo_env(tmp_path), capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    loaded = result.stderr.strip().splitlines()[-1]
    assert loaded == "LOADED", (args, loaded)


def test_the_opencv_constants_kept_for_a_light_import_are_opencvs():
    """posezoo.inference.warp and .preprocess name OpenCV's constants without importing cv2."""
    import cv2

    from posezoo.inference import preprocess, warp

    assert (warp.BORDER_CONSTANT, warp.BORDER_REPLICATE) == (cv2.BORDER_CONSTANT, cv2.BORDER_REPLICATE)
    assert (warp.INTER_NEAREST, warp.INTER_LINEAR) == (cv2.INTER_NEAREST, cv2.INTER_LINEAR)
    assert (preprocess.COLOR_BGR2RGB, preprocess.COLOR_BGRA2RGB, preprocess.COLOR_GRAY2RGB) == (
        cv2.COLOR_BGR2RGB, cv2.COLOR_BGRA2RGB, cv2.COLOR_GRAY2RGB)
