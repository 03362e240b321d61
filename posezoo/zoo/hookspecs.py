"""The hooks a posezoo plugin can implement (pluggy).

A plugin is a module (or package) registered in the ``posezoo.plugins`` entry-point group, or dropped
in a folder on ``POSEZOO_PLUGINS_PATH`` (there only modules with a ``@hookimpl`` function or a
``__posezoo_plugin__ = "name"`` are imported; that string is the plugin's name). It implements any of the hooks::

    from posezoo import hookimpl

    @hookimpl
    def register_families(register):
        register(MY_FAMILY)          # a posezoo.inference.model.Family: how models of a kind are built and run

    @hookimpl
    def register_models(register):
        register(MY_SPEC)            # a model spec of some family (e.g. a posezoo_plugins.mediapipe.spec.ModelSpec)

    @hookimpl
    def registry_entries():
        return {"my-model": {...}}   # same schema as a model in registry.yaml

A plugin of an existing family only registers models and registry entries: it is data.
"""

from __future__ import annotations

import pluggy

PROJECT = "posezoo"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_families(register):
    """Register model families: call ``register(family)`` once per :class:`posezoo.inference.model.Family`."""


@hookspec
def register_models(register):
    """Register model specs: call ``register(spec)`` once per model. A spec has a ``name`` (the
    registry model it describes), a ``family`` (a registered family's name, whose ``spec_type`` it
    is), ``keypoint_names`` and a ``skeleton``; :class:`posezoo_plugins.mediapipe.spec.ModelSpec` is the two-stage
    family's."""


@hookspec
def registry_entries():
    """Return extra registry models: a mapping ``model name -> entry`` (the registry.yaml schema),
    or a path to a YAML file holding such a ``models:`` mapping."""
