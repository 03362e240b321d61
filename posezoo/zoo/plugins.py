"""Plugin discovery: entry points of the ``posezoo.plugins`` group and ``POSEZOO_PLUGINS_PATH`` folders.

The built-in plugins (``plugins/`` in the repo, importable as ``posezoo_plugins.*``) are registered
through the same entry-point group a third-party package uses. A plugin that fails to import, raises
in a hook (any exception, ``sys.exit()`` included; only Ctrl-C goes through), registers an invalid spec
or a name that is taken is reported as a one-line warning naming the plugin and the cause; the other
plugins still load.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field, fields, is_dataclass, replace
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

import pluggy

from posezoo.zoo import hookspecs
from posezoo.errors import PosezooError, shorten
from posezoo.inference.model import Family, check_spec
from posezoo.supply.registry import ROLE_RE, ModelEntry, parse_models, read_registry_file

ENTRY_POINT_GROUP = "posezoo.plugins"
PATH_ENV = "POSEZOO_PLUGINS_PATH"


@dataclass
class PluginInfo:
    name: str
    origin: str  # "entry point <dist>" or the file it was loaded from
    version: str
    module: ModuleType | None = None
    models: list[str] = field(default_factory=list)
    families: list[str] = field(default_factory=list)


@dataclass
class LoadedPlugins:
    plugins: dict[str, PluginInfo] = field(default_factory=dict)
    families: dict[str, Family] = field(default_factory=dict)
    specs: dict[str, object] = field(default_factory=dict)  # model name -> spec (of some family)
    owners: dict[str, str] = field(default_factory=dict)  # model name -> plugin that registered its spec
    registry_models: list[ModelEntry] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"it called sys.exit({shorten(repr(exc.code), 60) if exc.code is not None else ''})"
    text = shorten(str(exc), 200)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


PLUGIN_NAME_ATTR = "__posezoo_plugin__"
MAX_PLUGIN_SOURCE = 4 << 20  # a module file read (not run) to see whether it is a plugin


def declared_plugin(path: Path) -> tuple[bool, str | None]:
    """Whether the module file ``path`` is a posezoo plugin, read without running it, and the plugin
    name it declares.

    A module (or a package's ``__init__.py``) is a plugin when its top level defines a function
    decorated with ``hookimpl`` (``@hookimpl``, ``@posezoo.hookimpl``) or assigns
    ``__posezoo_plugin__ = "name"``: that string is the plugin's name, the entry-point name it will
    have when installed (the registry's ``plugin:`` key); without it the name is the module's.
    Anything else in the folder (a helper script, a module the plugin imports) is never imported.
    Raises SyntaxError / ValueError for a file that cannot be read that way."""
    data = path.read_bytes()[: MAX_PLUGIN_SOURCE + 1]
    if len(data) > MAX_PLUGIN_SOURCE:
        raise ValueError(f"{path.name} is over {MAX_PLUGIN_SOURCE >> 20} MiB")
    tree = ast.parse(data, filename=str(path))
    hooks, name = False, None
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for deco in node.decorator_list:
                target = deco.func if isinstance(deco, ast.Call) else deco
                if (isinstance(target, ast.Name) and target.id == "hookimpl") or (
                    isinstance(target, ast.Attribute) and target.attr == "hookimpl"
                ):
                    hooks = True
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id == PLUGIN_NAME_ATTR for t in targets):
            value = node.value
            if not (isinstance(value, ast.Constant) and isinstance(value.value, str) and value.value.strip()):
                raise ValueError(f"{PLUGIN_NAME_ATTR} must be a plain string, the plugin's name")
            name = value.value.strip()
    return hooks or name is not None, name


def _path_modules() -> list[tuple[str, Path, str | None]]:
    """(plugin name, file, why it cannot load or None) for every plugin module or package in the
    POSEZOO_PLUGINS_PATH folders (see :func:`declared_plugin`); other modules are left alone."""
    found = []
    for folder in os.environ.get(PATH_ENV, "").split(os.pathsep):
        if not folder:
            continue
        root = Path(folder).expanduser()
        if not root.is_dir():
            found.append((root.name or str(root), root, f"folder {root} on {PATH_ENV} does not exist"))
            continue
        for item in sorted(root.iterdir()):
            if item.suffix == ".py" and not item.name.startswith("_") and item.is_file():
                stem, source = item.stem, item
            elif item.is_dir() and (item / "__init__.py").is_file():
                stem, source = item.name, item / "__init__.py"
            else:
                continue
            try:
                is_plugin, name = declared_plugin(source)
            except (OSError, SyntaxError, ValueError) as exc:
                found.append((stem, source, f"cannot read it: {_one_line(exc)}"))
                continue
            if is_plugin:
                found.append((name or stem, source, None))
    return found


def _import_path_module(path: Path, problem: str | None) -> ModuleType:
    if problem is not None:
        raise ImportError(problem)
    stem = path.parent.name if path.name == "__init__.py" else path.stem
    mod_name = f"posezoo_local_plugins.{stem}"
    spec = importlib.util.spec_from_file_location(
        mod_name, path, submodule_search_locations=[str(path.parent)] if path.name == "__init__.py" else None
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(mod_name, None)
        raise
    return module


def _candidates():
    """Yield (name, origin, version, loader) for each plugin source."""
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = getattr(ep, "dist", None)
        origin = f"entry point of {dist.name}" if dist else f"entry point {ep.value}"
        version = dist.version if dist else "?"
        yield ep.name, origin, version, ep.load
    for name, path, problem in _path_modules():
        yield name, str(path), None, (lambda p=path, why=problem: _import_path_module(p, why))


def load_plugins() -> LoadedPlugins:
    """Import every plugin and collect its model specs and registry entries."""
    result = LoadedPlugins()
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for name, origin, version, loader in _candidates():
        where = f"plugin {name!r} ({origin})"
        if name in result.plugins:
            result.warnings.append(f"{where} not loaded: the name is taken by {result.plugins[name].origin}")
            continue
        try:
            with _stdout_to_stderr():  # what a plugin prints must not mix with a command's output (info --json)
                module = loader()
            pm.register(module, name=name)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # a broken plugin (even one calling sys.exit) must not stop the others
            result.warnings.append(f"{where} failed to load: {_one_line(exc)}")
            continue
        version = version or str(getattr(module, "__version__", "local"))
        info = PluginInfo(name=name, origin=origin, version=version, module=module)
        result.plugins[name] = info
        with _stdout_to_stderr():
            _collect(pm, module, info, where, result)
    return result


@contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Standard output sent to standard error for the block: Python's ``sys.stdout`` and, where there
    is one, file descriptor 1 too (a plugin's native code printing)."""
    saved = None
    try:
        sys.stdout.flush()
        out_fd, err_fd = sys.__stdout__.fileno(), sys.__stderr__.fileno()
        sys.__stdout__.flush()
        saved = os.dup(out_fd)
        os.dup2(err_fd, out_fd)
    except (AttributeError, OSError, ValueError):  # no descriptors behind the streams (embedded, captured)
        saved = None
    try:
        with redirect_stdout(sys.stderr):
            yield
    finally:
        if saved is not None:
            try:
                sys.__stdout__.flush()
            except (OSError, ValueError):
                pass
            os.dup2(saved, out_fd)
            os.close(saved)


def _with_plugin(obj, plugin: str):
    """``obj`` with its ``plugin`` field set, when it is a dataclass that has one."""
    if is_dataclass(obj) and any(f.name == "plugin" for f in fields(obj)):
        return replace(obj, plugin=plugin)
    return obj


def _check_family(family) -> None:
    if not isinstance(family, Family):
        raise TypeError(f"register() takes a posezoo.inference.model.Family, got {type(family).__name__}")
    if not family.name or not isinstance(family.spec_type, type) or not callable(family.build):
        raise TypeError(f"family {family.name!r} needs a name, a spec_type class and a callable build")
    if not family.roles or not all(isinstance(r, str) and ROLE_RE.match(r) for r in family.roles):
        raise TypeError(f"family {family.name!r}: roles must be lower-case names such as 'detector', 'model'")


def _call_register_hook(pm, hook: str, info: PluginInfo, where: str, check, result: LoadedPlugins) -> list:
    """Call the plugin's ``hook(register=...)``; returns what it registered (checked), or [] on failure."""
    items: list = []

    def register(item) -> None:
        check(item)
        items.append(item)

    impls = {impl.plugin_name: impl for impl in getattr(pm.hook, hook).get_hookimpls()}
    if info.name not in impls:
        return []
    try:
        impls[info.name].function(register=register)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        result.warnings.append(f"{where}: {hook} failed: {_one_line(exc)}")
        return []
    return items


def _collect(pm: pluggy.PluginManager, module: ModuleType, info: PluginInfo, where: str, result: LoadedPlugins):
    for family in _call_register_hook(pm, "register_families", info, where, _check_family, result):
        if family.name in result.families:
            other = result.families[family.name].plugin
            result.warnings.append(f"{where}: family {family.name!r} not registered: plugin {other!r} has it")
            continue
        result.families[family.name] = replace(family, plugin=info.name)
        info.families.append(family.name)

    for spec in _call_register_hook(pm, "register_models", info, where, check_spec, result):
        if spec.name in result.specs:
            other = result.owners[spec.name]
            result.warnings.append(f"{where}: model spec {spec.name!r} not registered: plugin {other!r} has it")
            continue
        result.specs[spec.name] = _with_plugin(spec, info.name)
        result.owners[spec.name] = info.name
        info.models.append(spec.name)

    reg_impls = {impl.plugin_name: impl for impl in pm.hook.registry_entries.get_hookimpls()}
    if info.name not in reg_impls:
        return
    try:
        entries = reg_impls[info.name].function()
        if isinstance(entries, (str, os.PathLike)):
            models = read_registry_file(entries)
        else:
            models = parse_models(f"plugin {info.name!r}", entries or {})
    except PosezooError as exc:
        result.warnings.append(f"{where}: registry entries refused: {exc}")
        return
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        result.warnings.append(f"{where}: registry_entries failed: {_one_line(exc)}")
        return
    result.registry_models.extend(models)
