"""The hooks a posezoo plugin can implement (pluggy).

A plugin is a module (or package) registered in the ``posezoo.plugins`` entry-point group, or dropped
in a folder on ``POSEZOO_PLUGINS_PATH``. It implements one or both hooks::

    from posezoo import hookimpl

    @hookimpl
    def register_models(register):
        register(MY_SPEC)            # a posezoo.spec.ModelSpec

    @hookimpl
    def registry_entries():
        return {"my-model": {...}}   # same schema as a model in registry.yaml
"""

from __future__ import annotations

import pluggy

PROJECT = "posezoo"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_models(register):
    """Register model specs: call ``register(spec)`` once per :class:`posezoo.spec.ModelSpec`."""


@hookspec
def registry_entries():
    """Return extra registry models: a mapping ``model name -> entry`` (the registry.yaml schema),
    or a path to a YAML file holding such a ``models:`` mapping."""
