"""The zoo: plugins and registry together, the starting point of every command and of the Python API.

``get_zoo()`` loads the plugins once and merges their registry entries with the built-in and user
registries. :meth:`Zoo.resolve` turns a model name (and variant) into a :class:`Resolution`, once, at
the edge: the registry entry, the chosen variant, the model spec of its plugin, the family that runs
it and the model's :class:`posezoo.inference.model.Capabilities`, every one checked before anything is
downloaded. Everything downstream takes the resolution: fetch and convert (:meth:`Resolution.files`),
load (:meth:`Resolution.load`: registry -> fetch -> verify -> convert -> the family's
:class:`posezoo.inference.model.PoseModel`), the option checks (:meth:`Resolution.check`), the pool's
workers and Ray's actors (a resolution pickles as its name, variant and registry entry and resolves
again, to the same thing, in the process that unpickles it: workers inherit the environment, so
plugins on ``POSEZOO_PLUGINS_PATH`` load there too).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

from posezoo.supply.cache import Cache
from posezoo.errors import PluginError, UsageError, shorten
from posezoo.inference.model import Capabilities, Family, PoseModel
from posezoo.zoo.plugins import LoadedPlugins, load_plugins
from posezoo.supply.registry import ModelEntry, Registry, Variant, build_registry


@dataclass(frozen=True)
class Resolution:
    """A model name resolved once: its registry ``entry``, the chosen ``variant``, the ``spec`` its
    plugin registered, the ``family`` that runs it and its ``capabilities`` (known from spec and
    family alone, before any file is fetched). Made by :meth:`Zoo.resolve`."""

    entry: ModelEntry
    variant: Variant
    spec: Any
    family: Family
    capabilities: Capabilities

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def variant_name(self) -> str:
        return self.variant.name

    def check(self, *, max_poses: Any = None, threshold: Any = None, options: Any = None, features: Sequence[str] = ()) -> Any:
        """:meth:`Capabilities.check` for this model: the family's options object, or a
        :class:`posezoo.errors.UsageError` (nothing is fetched or read)."""
        return self.capabilities.check(self.name, max_poses=max_poses, threshold=threshold, options=options, features=features)

    def files(
        self,
        *,
        all_variants: bool = False,
        cache: Cache | None = None,
        mirror: str | None = None,
        offline: bool | None = None,
        progress: bool = True,
    ) -> dict[str, Path]:
        """Fetch, verify and convert the variant's files (every variant's with ``all_variants``):
        ``{role: ONNX model path}`` of the chosen variant."""
        return model_files(
            self.entry, self.variant, all_variants=all_variants, cache=cache, mirror=mirror, offline=offline, progress=progress
        )

    def load(
        self,
        *,
        device: str = "auto",
        mirror: str | None = None,
        offline: bool | None = None,
        progress: bool | None = None,
        cache: Cache | None = None,
    ) -> PoseModel:
        """A ready model: its files fetched, verified and converted on first use, built by the family.
        ``progress``: lines on stderr for each download and conversion (None: when stderr is a
        terminal; see :mod:`posezoo.supply.progress`)."""
        files = self.files(cache=cache, mirror=mirror, offline=offline, progress=progress)
        return self.family.make(self.spec, files, variant=self.variant.name, device=device)

    def __reduce__(self):
        # by name: a spec, family or options class of a plugin loaded from POSEZOO_PLUGINS_PATH lives in
        # a module no other process can import before it loads its plugins; resolving again does that
        return (_resolve_again, (self.entry.name, self.variant.name, self.entry, self.family.name))


def _resolve_again(name: str, variant: str, entry: ModelEntry, family: str) -> Resolution:
    """A pickled :class:`Resolution`, resolved in this process's zoo, which must give the same model."""
    resolution = get_zoo().resolve(name, variant)
    if resolution.entry != entry or resolution.family.name != family:
        raise PluginError(
            f"model {name!r} resolves to another registry entry or family in this process than in the one "
            f"that sent it ({resolution.entry.origin}, family {resolution.family.name!r})",
            "give every worker the same POSEZOO_REGISTRY, POSEZOO_PLUGINS_PATH and installed plugins",
        )
    return resolution


@dataclass
class Zoo:
    registry: Registry
    plugins: LoadedPlugins

    @property
    def warnings(self) -> list[str]:
        return self.plugins.warnings

    def model(self, name: str) -> ModelEntry:
        return self.registry.model(name)

    def resolve(self, name: str, variant: str | None = None) -> Resolution:
        """Model ``name`` (``variant``: None for the default) resolved once: its registry entry and
        variant, the spec registered by the plugin the registry names, the family (checked against
        the spec's type and against the file roles of every registry variant) and the capabilities.
        Raises UnknownModelError or PluginError before anything is downloaded (UsageError for a name
        or variant that is not a string)."""
        if not isinstance(name, str):
            raise UsageError(f"a model name must be a string, got {shorten(name)}", "posezoo.list_models() lists the names")
        if variant is not None and not isinstance(variant, str):
            raise UsageError(f"a variant must be a string or None, got {shorten(variant)}", "`posezoo info MODEL` lists the variants")
        entry = self.registry.model(name)
        chosen = entry.variant(variant)
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
        for each in entry.variants.values():
            missing = [r for r in family.roles if r not in each.files]
            extra = [r for r in each.files if r not in family.roles]
            if missing or extra:
                what = f"lacks file role {missing[0]!r}" if missing else f"has file role {extra[0]!r} it does not use"
                raise PluginError(
                    f"model {name!r} ({entry.origin}), variant {each.name!r} {what}",
                    f"family {family.name!r} takes the roles: {', '.join(family.roles)}",
                )
        for_variant = getattr(spec, "for_variant", None)
        if callable(for_variant):  # a spec whose variants differ in more than their files (e.g. more keypoints)
            spec = for_variant(chosen.name)
            if not isinstance(spec, family.spec_type) or getattr(spec, "name", name) != name:
                raise PluginError(
                    f"model {name!r}: its spec for variant {chosen.name!r} is not a {family.spec_type.__name__} named {name!r}",
                    "a spec's for_variant(name) must return a spec of the same type and name",
                )
        return Resolution(entry, chosen, spec, family, family.capabilities(spec))

    def spec(self, name: str):
        """The model spec registered by the plugin the registry names for ``name`` (resolved)."""
        return self.resolve(name).spec

    def family(self, name: str) -> Family:
        """The family that runs model ``name`` (resolved: checked against its spec and every variant)."""
        return self.resolve(name).family

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
    variant: str | Variant | None = None,
    *,
    all_variants: bool = False,
    cache: Cache | None = None,
    mirror: str | None = None,
    offline: bool | None = None,
    progress: bool = True,
) -> dict[str, Path]:
    """Fetch, verify and convert a variant's files (``variant``: a name, or the :class:`Variant` a
    :class:`Resolution` chose): ``{role: ONNX model path}``.

    With ``all_variants`` every variant is fetched and converted; the mapping is ``variant``'s.
    """
    from posezoo.supply.convert import ensure_onnx  # (here: `posezoo list` and `--help` need neither)
    from posezoo.supply.fetch import fetch_model

    chosen = variant if isinstance(variant, Variant) else entry.variant(variant)
    cache = cache or Cache()
    fetch_model(entry, chosen, all_variants=all_variants, cache=cache, mirror=mirror, offline=offline, progress=progress)
    variants = entry.variants.values() if all_variants else [chosen]
    for f in {f.name: f for v in variants for f in v.files.values()}.values():
        ensure_onnx(f, cache, progress=progress)
    return {role: cache.onnx_path(f) for role, f in chosen.files.items()}
