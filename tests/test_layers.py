"""The core's layering, read from the source: data flows one way, and the core names no model family's model.

Every module of ``posezoo/`` has a layer below; a module may import (at the top or inside a function)
only modules of its own layer or lower ones. A new module must be given its layer here: that is the
moment to decide where it sits.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from conftest import REPO

PACKAGE = REPO / "posezoo"

# low -> high: registry -> fetch -> verify -> convert -> onnxruntime session -> model family -> draw/write
LAYERS: list[set[str]] = [
    {"errors"},
    {"timing", "numeric", "atomic", "hashes"},
    {"registry"},
    {"cache"},
    {"fetch"},
    {"convert"},
    {"runtime", "preprocess", "spec", "anchors"},
    {"model", "roi", "detect", "landmarks"},
    {"track"},
    {"estimator"},
    {"hookspecs", "plugins"},
    {"zoo"},
    {"draw", "sources", "sinks", "coco", "worldplot"},
    {"runner", "bench", "evaluate"},
    {"cli", "__main__", "__init__"},
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _top(module: str) -> str:
    """posezoo.convert.ops -> convert; posezoo -> __init__."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"  # a subpackage's modules share its layer


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(("posezoo", *parts))] = path
    return out


def _imports(path: Path, module: str) -> set[str]:
    """posezoo modules imported anywhere in the file (absolute and relative imports)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "posezoo")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            if base.split(".")[0] != "posezoo":
                continue
            if base == "posezoo":  # from posezoo import x: x may be a module
                found.update(f"posezoo.{a.name}" for a in node.names)
            else:
                found.add(base)
    return found


def test_every_module_has_a_layer():
    missing = sorted({_top(m) for m in _modules()} - set(RANK))
    assert not missing, f"give these modules a layer in tests/test_layers.py: {missing}"


@pytest.mark.parametrize("module", sorted(_modules()))
def test_no_module_imports_a_higher_layer(module):
    path = _modules()[module]
    mine = RANK[_top(module)]
    higher = sorted(
        m for m in _imports(path, module) if _top(m) in RANK and RANK[_top(m)] > mine and _top(m) != _top(module)
    )
    assert not higher, f"{module} (layer {mine}) imports higher layers: {higher}"


def test_the_core_names_no_plugin_family_model():
    """Families other than the core's shared two-stage stages arrive as plugins: the core never names them."""
    pattern = re.compile(r"movenet", re.IGNORECASE)
    hits = [
        f"{p.relative_to(REPO)}:{i}"
        for p in PACKAGE.rglob("*")
        if p.is_file() and p.suffix in (".py", ".md", ".yaml", ".txt")
        for i, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
        if pattern.search(line)
    ]
    assert hits == []
