"""The core's layering, read from the source: data flows one way, and the core names no built-in family
or model.

Every module of ``posezoo/`` belongs to a layer below (the longest dotted prefix listed decides); a module
may import, at the top or inside a function, only modules of its own layer or lower ones. Layers follow
the data: registry -> fetch -> verify -> convert -> onnxruntime session -> model family -> the zoo that
resolves a name -> input/output -> drivers -> the command line. A new module must be given its layer
here: that is the moment to decide where it sits.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest
import yaml

from conftest import REPO

PACKAGE = REPO / "posezoo"

LAYERS: list[set[str]] = [
    {"posezoo.errors", "posezoo.version"},
    # the supply chain
    {"posezoo.supply", "posezoo.supply.hashes", "posezoo.supply.atomic", "posezoo.supply.progress"},
    {"posezoo.supply.archive"},  # reading a member out of a .zip / .tar.gz (no writing, no registry)
    {"posezoo.supply.formats"},  # the format table: names converters, imports none
    {"posezoo.supply.registry"},
    {"posezoo.supply.cache"},
    {"posezoo.supply.fetch"},
    {"posezoo.supply.convert"},
    # the model seam
    {"posezoo.inference", "posezoo.inference.timing", "posezoo.inference.numeric"},
    {"posezoo.inference.runtime", "posezoo.inference.preprocess", "posezoo.inference.warp", "posezoo.inference.tracking"},
    {"posezoo.inference.model"},
    {"posezoo.inference.regions"},
    # plugins and the registry together
    {"posezoo.zoo", "posezoo.zoo.hookspecs", "posezoo.zoo.plugins"},
    {"posezoo.zoo.resolve"},
    # input and output
    {"posezoo.io", "posezoo.io.guard", "posezoo.io.sources", "posezoo.io.draw", "posezoo.io.coco"},
    {"posezoo.io.wholebody"},  # COCO-WholeBody's layout, mapping, results (on posezoo.io.coco)
    {"posezoo.io.sinks", "posezoo.io.items", "posezoo.io.worldplot"},
    {"posezoo.io.parquet"},
    # drivers
    {"posezoo.drivers", "posezoo.drivers.frames"},
    {"posezoo.drivers.pool", "posezoo.drivers.run", "posezoo.drivers.bench", "posezoo.drivers.evaluate"},
    {"posezoo.drivers.many", "posezoo.drivers.batch"},
    # the server: io, inference, zoo and drivers below it; nothing below imports it
    {"posezoo.serve.config", "posezoo.serve.metrics"},
    {"posezoo.serve.models"},
    {"posezoo.serve.common"},
    {"posezoo.serve.stream", "posezoo.serve.app", "posezoo.serve.server", "posezoo.serve.ray_serve", "posezoo.serve"},
    # the edge
    {"posezoo.cli", "posezoo.__main__", "posezoo"},
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(("posezoo", *parts))] = path
    return out


MODULES = _modules()


def _layer(module: str) -> str | None:
    """The layer key of a module: the longest listed prefix (posezoo.supply.convert.ops -> posezoo.supply.convert)."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        key = ".".join(parts[:n])
        if key in RANK:
            return key
    return None


def _imports(path: Path, module: str) -> set[str]:
    """posezoo modules imported anywhere in the file (absolute and relative; ``from P import m`` where
    ``P.m`` is a module counts as importing ``P.m``)."""
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
            for a in node.names:
                found.add(f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base)
    return found


def test_every_module_has_a_layer():
    missing = sorted(m for m in MODULES if _layer(m) is None)
    assert not missing, f"give these modules a layer in tests/test_layers.py: {missing}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_a_higher_layer(module):
    mine = RANK[_layer(module)]
    higher = sorted(
        m for m in _imports(MODULES[module], module) if _layer(m) is not None and RANK[_layer(m)] > mine
    )
    assert not higher, f"{module} (layer {mine}: {_layer(module)}) imports higher layers: {higher}"


def test_the_import_graph_has_no_cycle():
    graph = {m: {i for i in _imports(p, m) if i in MODULES and i != m} for m, p in MODULES.items()}
    seen, stack, cycles = set(), [], []

    def visit(m):
        if m in stack:
            cycles.append(stack[stack.index(m):] + [m])
            return
        if m in seen:
            return
        seen.add(m)
        stack.append(m)
        for n in sorted(graph[m]):
            visit(n)
        stack.pop()

    for m in sorted(graph):
        visit(m)
    # a package's __init__ importing its own submodule is not a cycle of layers
    cycles = [c for c in cycles if not all(x.startswith(c[0] + ".") or x == c[0] for x in c[1:])]
    assert cycles == [], f"import cycles: {[' -> '.join(c) for c in cycles]}"


def _builtin_names() -> set[str]:
    """Every built-in model, plugin and family name, and the words they are made of (``blazepose``)."""
    registry = yaml.safe_load((REPO / "registry.yaml").read_text(encoding="utf-8"))["models"]
    names = set(registry) | {m["plugin"] for m in registry.values()}
    names |= {p.name.replace("_", "-") for p in (REPO / "plugins").iterdir() if p.is_dir() and not p.name.startswith("_")}
    generic = {"upper", "heavy", "lightning", "thunder", "multipose", "multi"}  # words, not names ("multiprocessing")
    words = {w for n in names for w in re.split(r"[-_]", n) if len(w) > 4 and w not in generic}
    return names | words | {"mediapipe"}


def _code_tokens(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every identifier and string literal in a file, docstrings and comments left out."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                docstrings.add(first.lineno)
    out = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.NAME or (tok.type == tokenize.STRING and tok.start[0] not in docstrings):
            out.append((tok.start[0], tok.string))
    return out


def test_the_core_names_no_builtin_family_or_model():
    """The core's code (identifiers and string literals) never names a built-in model, plugin or family:
    they arrive as plugins, and the CLI's default model comes from the zoo. Comments and docstrings may
    cite where an algorithm comes from."""
    names = _builtin_names()
    assert {"blazepose", "movenet", "mediapipe", "blazepose-full"} <= names
    # a name inside a longer lower-case word is not that name ("hands" in "handshake"); next to _ - . a
    # digit or a capital (camelCase) it is
    alternatives = "|".join(sorted(map(re.escape, names), key=len, reverse=True))
    pattern = re.compile(f"(?<![a-z])(?i:{alternatives})(?![a-z])")
    hits = [
        f"{p.relative_to(REPO)}:{line}: {text}"
        for p in PACKAGE.rglob("*.py")
        for line, text in _code_tokens(p)
        if pattern.search(text)
    ]
    assert hits == [], "\n".join(hits)


def test_the_core_holds_no_family():
    """The two-stage MediaPipe family lives in plugins/, like every other family."""
    for gone in ("anchors", "detect", "roi", "landmarks", "estimator", "spec", "track"):
        assert not (PACKAGE / f"{gone}.py").exists()
        assert not any(m.endswith(f".{gone}") for m in MODULES), gone
