"""Abusive registry files and plugins: every one is refused quickly (exit 2) in one short line."""

from __future__ import annotations

import os
import textwrap
import time

import pytest

from clitools import one_line_error, posezoo_env, run_posezoo
from posezoo.errors import RegistryError
from posezoo.supply.registry import MAX_DEPTH, MAX_FILE_BYTES, MAX_NAME, MAX_NODES, read_registry_file

GOOD_FILE = """\
              name: {name}
              url: https://example.org/x.tflite
              digest: sha256:{digest}
              format: tflite
"""


def registry_text(file_name: str = "x.tflite", **extra: str) -> str:
    body = GOOD_FILE.format(name=file_name, digest="ab" * 32)
    return textwrap.dedent(
        f"""\
        version: 1
        models:
          tiny:
            plugin: tiny
            description: tiny
            licence: MIT
            source: https://example.org/tiny
            default_variant: base
            variants:
              base:
                files:
                  model:
        """
    ) + body


def billion_laughs() -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    return "\n".join(lines) + "\n"


ABUSE = {
    # name: (file text, or a callable making the path; what the message says)
    "billion laughs": (billion_laughs(), f"more than {MAX_NODES} YAML nodes once aliases are expanded"),
    "recursive alias": ("models: &a {x: *a}\n", "alias *a names no complete node before it"),
    "deep nesting": ("".join("  " * i + f"k{i}:\n" for i in range(60)), f"nesting deeper than {MAX_DEPTH} levels"),
    # libyaml's own depth limit (newer PyYAML wheels) or ours (older ones) refuses it first: both say "nesting"
    "deep flow nesting": ("models: " + "[" * 5000 + "]" * 5000, "nesting"),
    "too many nodes": ("models: [" + ",".join(["1"] * (MAX_NODES + 10)) + "]\n", f"more than {MAX_NODES} YAML nodes"),
    "too large": ("# " + "x" * MAX_FILE_BYTES, f"larger than {MAX_FILE_BYTES} bytes"),
    "list as a key": ("? [a, b]\n: 1\n", "key a sequence is not a string (quote it)"),
    "number as a key": ("version: 1\nmodels:\n  2024: {}\n", "key '2024' is not a string (quote it)"),
    "yes as a key": ("version: 1\nmodels:\n  yes: {}\n", "key 'yes' is not a string (quote it)"),
    "long file name": (registry_text("n" * (MAX_NAME + 1) + ".tflite"), f"is longer than {MAX_NAME} characters"),
    "huge value": (registry_text().replace("format: tflite", "format: " + "t" * 500_000), "is not supported"),
    "not UTF-8": ("version: 1\nmodels: {\xff: 1}\n".encode("latin-1"), "is not UTF-8 text"),
}


@pytest.mark.parametrize("case", list(ABUSE))
def test_abusive_registry_files_are_refused_quickly_in_one_short_line(tmp_path, case):
    text, expected = ABUSE[case]
    path = tmp_path / "registry.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    start = time.perf_counter()
    with pytest.raises(RegistryError) as err:
        read_registry_file(path)
    took = time.perf_counter() - start
    message = str(err.value)
    assert expected in message and str(path) in message
    assert err.value.exit_code == 2 and "\n" not in message and len(message) < 400
    assert took < 0.5, f"{case}: {took:.2f} s"


def test_file_names_up_to_the_bound_are_fine(tmp_path):
    path = tmp_path / "registry.yaml"
    name = "n" * (MAX_NAME - 7) + ".tflite"
    path.write_text(registry_text(name))
    (model,) = read_registry_file(path)
    assert model.variant().files["model"].name == name


def test_anchors_within_bounds_are_fine(tmp_path):
    path = tmp_path / "registry.yaml"
    text = registry_text().replace("licence: MIT", "licence: &lic MIT").replace(
        "            variants:", "            paper: https://example.org/paper\n            variants:"
    )
    path.write_text(text + "              licence: *lic\n")
    (model,) = read_registry_file(path)
    assert model.variant().files["model"].licence == "MIT"


@pytest.mark.parametrize("kind", ["fifo", "device", "folder"])
def test_only_regular_files_are_read(tmp_path, kind):
    if kind == "fifo":
        path = tmp_path / "fifo.yaml"
        os.mkfifo(path)  # reading would wait for a writer for ever
    elif kind == "device":
        path = "/dev/zero"  # reading would never end
    else:
        path = tmp_path
    start = time.perf_counter()
    with pytest.raises(RegistryError, match="is not a regular file|is a folder"):
        read_registry_file(path)
    assert time.perf_counter() - start < 0.5


def test_abusive_user_registry_through_the_cli(tmp_path):
    laughs = tmp_path / "laughs.yaml"
    laughs.write_text(billion_laughs())
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    for path, expected in ((laughs, "YAML nodes once aliases are expanded"), (fifo, "is not a regular file")):
        result = run_posezoo("list", env=posezoo_env(tmp_path, POSEZOO_REGISTRY=str(path)), timeout=60)
        line = one_line_error(result)
        assert result.returncode == 2 and expected in line and str(path) in line
