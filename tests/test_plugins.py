"""Plugin discovery: built-ins through entry points, local folders on POSEZOO_PLUGINS_PATH, broken plugins."""

from __future__ import annotations

import json
import os
import textwrap

import pytest

from clitools import posezoo_env, run_posezoo
from conftest import REPO, SHARED

LOCAL_PLUGIN = textwrap.dedent(
    '''
    """A local plugin: a spec built from the full-body one, plus its own registry entry."""
    from dataclasses import replace

    from posezoo import hookimpl
    from posezoo_plugins.blazepose_full import SPEC

    __version__ = "0.3"


    @hookimpl
    def register_models(register):
        register(replace(SPEC, name="my-pose"))


    @hookimpl
    def registry_entries():
        detector = {
            "name": "my_detector.tflite",
            "url": "https://example.org/my_detector.tflite",
            "digest": "sha256:" + "11" * 32,
            "format": "tflite",
        }
        landmark = dict(detector, name="my_landmark.tflite", digest="sha256:" + "22" * 32)
        return {
            "my-pose": {
                "plugin": "mypose",
                "description": "my local pose model",
                "licence": "MIT",
                "source": "https://example.org/my-pose",
                "default_variant": "base",
                "variants": {"base": {"files": {"detector": detector, "landmark": landmark}}},
            }
        }
    '''
)


def _plugin_dir(tmp_path, **modules: str):
    folder = tmp_path / "plugins"
    folder.mkdir(exist_ok=True)
    for name, source in modules.items():
        (folder / f"{name}.py").write_text(source)
    return folder


def test_builtin_plugins_come_from_entry_points(tmp_path):
    result = run_posezoo("plugins", env=posezoo_env(tmp_path), script=True)  # the real console script
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert "entry point of posezoo" in rows["blazepose-full"]
    assert "entry point of posezoo" in rows["blazepose-upper"]


def test_local_plugin_appears_in_list_and_info(tmp_path):
    folder = _plugin_dir(tmp_path, mypose=LOCAL_PLUGIN)
    env = posezoo_env(tmp_path, POSEZOO_PLUGINS_PATH=str(folder))
    result = run_posezoo("list", env=env)
    assert result.returncode == 0, result.stderr
    assert "my-pose" in result.stdout and "mypose" in result.stdout
    assert "blazepose-full" in result.stdout
    info = run_posezoo("info", "my-pose", "--json", env=env)
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["plugin"] == "mypose"
    plugins = run_posezoo("plugins", env=env)
    assert "mypose" in plugins.stdout and "0.3" in plugins.stdout and str(folder) in plugins.stdout


def test_broken_plugins_are_one_line_warnings_and_the_others_still_load(tmp_path):
    folder = _plugin_dir(
        tmp_path,
        mypose=LOCAL_PLUGIN,
        aa_broken_import="import does_not_exist_anywhere\n__posezoo_plugin__ = 'aa_broken_import'\n",
        bb_raises="from posezoo import hookimpl\n@hookimpl\ndef register_models(register):\n    raise RuntimeError('boom')\n",
        cc_taken=(
            "from posezoo import hookimpl\nfrom posezoo_plugins.blazepose_full import SPEC\n"
            "@hookimpl\ndef register_models(register):\n    register(SPEC)\n"
        ),
        dd_bad_registry="from posezoo import hookimpl\n@hookimpl\ndef registry_entries():\n    return {'x-model': {'plugin': 1}}\n",
    )
    (folder / "ee_taken.py").write_text("__posezoo_plugin__ = 'blazepose-full'\n")  # a plugin name that is taken
    (folder / "ff_syntax.py").write_text("from posezoo import hookimpl\n@hookimpl\ndef register_models(register:\n")
    env = posezoo_env(tmp_path, POSEZOO_PLUGINS_PATH=str(folder))
    result = run_posezoo("list", env=env)
    assert result.returncode == 0, result.stderr
    assert "my-pose" in result.stdout and "blazepose-full" in result.stdout
    warnings = [l for l in result.stderr.splitlines() if l.strip()]
    assert all(l.startswith("posezoo: warning: plugin '") for l in warnings), result.stderr
    text = "\n".join(warnings)
    assert "'aa_broken_import'" in text and "ModuleNotFoundError" in text
    assert "'bb_raises'" in text and "RuntimeError: boom" in text
    assert "'cc_taken'" in text and "'blazepose-full' not registered" in text
    assert "'dd_bad_registry'" in text and "unknown key" not in text and "missing key" in text
    assert "'blazepose-full'" in text and "name is taken" in text
    assert "'ff_syntax'" in text and "cannot read it: SyntaxError" in text
    assert len(warnings) == 6


def test_missing_plugin_folder_is_a_warning(tmp_path):
    env = posezoo_env(tmp_path, POSEZOO_PLUGINS_PATH=str(tmp_path / "nope") + os.pathsep)
    result = run_posezoo("list", env=env)
    assert result.returncode == 0
    assert "does not exist" in result.stderr and "blazepose-full" in result.stdout


def test_python_api_lists_models():
    import posezoo

    assert {"blazepose-full", "blazepose-upper"} <= set(posezoo.list_models())


# ------------------------------------------------------------------------ developing a plugin in a folder

HELPER_SCRIPT = textwrap.dedent(
    '''
    """A helper script beside the plugin (it makes test data): importing it would write a file and exit."""
    import sys
    from pathlib import Path

    Path(__file__).with_name("helper-ran.txt").write_text("imported")
    sys.exit(4)


    def hookimpl_like():  # a function named like a hook marker is not a marker
        pass
    '''
)

PACKAGE_INIT = textwrap.dedent(
    '''
    """The plugin under development: its hooks live in a submodule, so __init__ names the plugin."""
    from .hooks import register_models, registry_entries  # noqa: F401

    __posezoo_plugin__ = "acme-pose"
    __version__ = "0.2.dev0"
    '''
)

PACKAGE_HOOKS = textwrap.dedent(
    '''
    from dataclasses import replace
    from importlib import resources
    from pathlib import Path

    from posezoo import hookimpl
    from posezoo_plugins.blazepose_full import SPEC


    @hookimpl
    def register_models(register):
        register(replace(SPEC, name="acme-pose"))


    @hookimpl
    def registry_entries():
        return Path(str(resources.files(__package__).joinpath("registry.yaml")))
    '''
)

PACKAGE_REGISTRY = textwrap.dedent(
    """\
    version: 1
    models:
      acme-pose:
        plugin: acme-pose
        description: BlazePose full under the name its package will ship
        licence: Apache-2.0
        source: https://example.org/acme-pose
        default_variant: full
        variants:
          full:
            files:
              detector:
                name: acme_detector.tflite
                url: https://example.org/acme_detector.tflite
                digest: sha256:1111111111111111111111111111111111111111111111111111111111111111
                format: tflite
              landmark:
                name: acme_landmark.tflite
                url: https://example.org/acme_landmark.tflite
                digest: sha256:2222222222222222222222222222222222222222222222222222222222222222
                format: tflite
    """
)


def test_only_plugin_modules_are_imported_from_the_folder(tmp_path):
    """A helper script in POSEZOO_PLUGINS_PATH that writes a file and exits when imported is left
    alone: only modules with a ``@hookimpl`` function or ``__posezoo_plugin__`` are plugins."""
    folder = _plugin_dir(tmp_path, mypose=LOCAL_PLUGIN, make_data=HELPER_SCRIPT)
    (folder / "notes").mkdir()  # a folder that is not a package
    (folder / "notes" / "todo.py").write_text("raise SystemExit(5)\n")
    (folder / "lib").mkdir()  # a package without hooks or a name
    (folder / "lib" / "__init__.py").write_text("raise SystemExit(6)\n")
    env = posezoo_env(tmp_path, POSEZOO_PLUGINS_PATH=str(folder))
    result = run_posezoo("plugins", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert not (folder / "helper-ran.txt").exists()
    names = [line.split()[0] for line in result.stdout.splitlines()[1:] if line.strip()]
    assert "mypose" in names and "make_data" not in names and "lib" not in names and "notes" not in names


def test_a_plugin_in_development_has_the_name_it_will_be_installed_under(tmp_path):
    """``__posezoo_plugin__`` names a folder plugin as its entry point will, so the registry.yaml it
    ships (``plugin: acme-pose``) works before it is installed."""
    folder = tmp_path / "plugins"
    package = folder / "acme_pose"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(PACKAGE_INIT)
    (package / "hooks.py").write_text(PACKAGE_HOOKS)
    (package / "registry.yaml").write_text(PACKAGE_REGISTRY)
    env = posezoo_env(tmp_path, POSEZOO_PLUGINS_PATH=str(folder))
    plugins = run_posezoo("plugins", env=env)
    assert plugins.returncode == 0 and plugins.stderr == "", plugins.stderr
    (row,) = [line for line in plugins.stdout.splitlines() if line.startswith("acme-pose ")]
    assert "0.2.dev0" in row and str(package / "__init__.py") in row
    info = run_posezoo("info", "acme-pose", "--json", env=env)
    assert info.returncode == 0 and info.stderr == "", info.stderr
    data = json.loads(info.stdout)
    assert data["plugin"] == "acme-pose"


@pytest.mark.skipif(SHARED is None, reason="needs ../shared (the hand files and photo)")
def test_the_hands_example_runs_from_its_source_folder(tmp_path, shared_models, testdata):
    """The example package, not installed, on POSEZOO_PLUGINS_PATH: its registry names the plugin
    ``mediapipe-hands`` (its entry point), and ``__posezoo_plugin__`` gives the folder copy that name."""
    from mirror import build_mirror
    from test_hands_plugin import HAND_PHOTO

    mirror = tmp_path / "mirror"
    build_mirror(shared_models, mirror)
    env = posezoo_env(
        tmp_path, POSEZOO_PLUGINS_PATH=str(REPO / "docs" / "examples" / "posezoo-hands"),
        POSEZOO_MIRROR=str(mirror), POSEZOO_OFFLINE="1",
    )  # fmt: skip
    result = run_posezoo("run", "mediapipe-hands", "-i", str(testdata / HAND_PHOTO), "--json", "hand.jsonl", "--no-display",
                         env=env, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr, result.stderr
    record = json.loads((tmp_path / "hand.jsonl").read_text())
    assert record["model"] == "mediapipe-hands" and len(record["poses"][0]["landmarks"]) == 21
