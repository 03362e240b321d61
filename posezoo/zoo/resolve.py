"""The zoo: plugins and registry together, the starting point of every command and of the Python API.

``get_zoo()`` loads the plugins once, merges their registry entries with the built-in and user
registries, and resolves a model name to its registry entry, the model spec of its plugin and the
family that runs it. :func:`load_model` goes the whole way: registry -> fetch -> verify -> convert ->
the family's :class:`posezoo.inference.model.PoseModel`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from posezoo.supply.cache import Cache
from posezoo.supply.convert import ensure_onnx
from posezoo.errors import PluginError
from posezoo.supply.fetch import fetch_model
from posezoo.inference.model import Family, PoseModel
from posezoo.zoo.plugins import LoadedPlugins, load_plugins
from posezoo.supply.registry import ModelEntry, Registry, build_registry


@dataclass
class Zoo:
    registry: Registry
    plugins: LoadedPlugins

    @property
    def warnings(self) -> list[str]:
        return self.plugins.warnings

    def model(self, name: str) -> ModelEntry:
        return self.registry.model(name)

    def spec(self, name: str):
        """The model spec registered by the plugin the registry names for ``name``."""
        entry = self.registry.model(name)
        if entry.plugin not in self.plugins.plugins:
            raise PluginError(
                f"model {name!r} needs plugin {entry.plugin!r}, which is not loaded",
                "`posezoo plugins` lists the loaded plugins; install the plugin or fix the registry's 'plugin' key",
            )
        spec = self.plugins.specs.get(name)
        if spec is None or self.plugins.owners.get(name) != entry.plugin:
            raise PluginError(
                f"plugin {entry.plugin!r} registers no model spec named {name!r}",
                "the plugin's register_models hook must register a spec with the model's name",
            )
        return spec

    def family(self, name: str) -> Family:
        """The family that runs model ``name``, checked against its spec and every registry variant."""
        spec = self.spec(name)
        family = self.plugins.families.get(spec.family)
        if family is None:
            known = ", ".join(sorted(self.plugins.families)) or "none"
            raise PluginError(
                f"model {name!r} is of family {spec.family!r}, which no loaded plugin registers (loaded: {known})",
                "install the plugin that brings the family; `posezoo plugins` lists what is loaded",
            )
        if not isinstance(spec, family.spec_type):
            raise PluginError(
                f"model {name!r}: its spec is a {type(spec).__name__}, family {family.name!r} takes a "
                f"{family.spec_type.__name__}",
                "register the family's spec type for the model",
            )
        entry = self.registry.model(name)
        for variant in entry.variants.values():
            missing = [r for r in family.roles if r not in variant.files]
            extra = [r for r in variant.files if r not in family.roles]
            if missing or extra:
                what = f"lacks file role {missing[0]!r}" if missing else f"has file role {extra[0]!r} it does not use"
                raise PluginError(
                    f"model {name!r} ({entry.origin}), variant {variant.name!r} {what}",
                    f"family {family.name!r} takes the roles: {', '.join(family.roles)}",
                )
        return family

@lru_cache(maxsize=1)
def get_zoo() -> Zoo:
    """Load plugins and registries (once per process). Registry errors raise RegistryError."""
    plugins = load_plugins()
    registry = build_registry(plugin_models=plugins.registry_models, warn=plugins.warnings.append)
    return Zoo(registry=registry, plugins=plugins)


def warn_plugins(zoo: Zoo, stream=None) -> None:
    """Print each plugin warning as one line (stderr)."""
    for line in zoo.warnings:
        print(f"posezoo: warning: {line}", file=stream or sys.stderr)


def model_files(
    entry: ModelEntry,
    variant: str | None = None,
    *,
    all_variants: bool = False,
    cache: Cache | None = None,
    mirror: str | None = None,
    offline: bool | None = None,
    progress: bool = True,
) -> dict[str, Path]:
    """Fetch, verify and convert a variant's files: ``{role: ONNX model path}``.

    With ``all_variants`` every variant is fetched and converted; the mapping is ``variant``'s.
    """
    cache = cache or Cache()
    fetch_model(entry, variant, all_variants=all_variants, cache=cache, mirror=mirror, offline=offline, progress=progress)
    variants = entry.variants.values() if all_variants else [entry.variant(variant)]
    for f in {f.name: f for v in variants for f in v.files.values()}.values():
        ensure_onnx(f, cache, progress=progress)
    return {role: cache.onnx_path(f) for role, f in entry.variant(variant).files.items()}


def load_model(
    name: str,
    variant: str | None = None,
    *,
    device: str = "auto",
    mirror: str | None = None,
    offline: bool | None = None,
    progress: bool = False,
    zoo: Zoo | None = None,
) -> PoseModel:
    """A ready model: weights fetched, verified and converted on first use, built by its family."""
    zoo = zoo or get_zoo()
    entry = zoo.model(name)
    variant_name = entry.variant(variant).name
    spec = zoo.spec(name)
    family = zoo.family(name)  # checked before anything is downloaded
    files = model_files(entry, variant_name, mirror=mirror, offline=offline, progress=progress)
    return family.make(spec, files, variant=variant_name, device=device)
