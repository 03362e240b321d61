"""Plugin discovery: built-ins through entry points, local folders on POSEZOO_PLUGINS_PATH, broken plugins."""

from __future__ import annotations

import json
import os
import textwrap

from clitools import posezoo_env, run_posezoo

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
        aa_broken_import="import does_not_exist_anywhere\n",
        bb_raises="from posezoo import hookimpl\n@hookimpl\ndef register_models(register):\n    raise RuntimeError('boom')\n",
        cc_taken=(
            "from posezoo import hookimpl\nfrom posezoo_plugins.blazepose_full import SPEC\n"
            "@hookimpl\ndef register_models(register):\n    register(SPEC)\n"
        ),
        dd_bad_registry="from posezoo import hookimpl\n@hookimpl\ndef registry_entries():\n    return {'x-model': {'plugin': 1}}\n",
    )
    (folder / "blazepose-full.py").write_text("x = 1\n")  # a plugin name that is taken
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
    assert len(warnings) == 5


def test_missing_plugin_folder_is_a_warning(tmp_path):
    env = posezoo_env(tmp_path, POSEZOO_PLUGINS_PATH=str(tmp_path / "nope") + os.pathsep)
    result = run_posezoo("list", env=env)
    assert result.returncode == 0
    assert "does not exist" in result.stderr and "blazepose-full" in result.stdout


def test_python_api_lists_models():
    import posezoo

    assert {"blazepose-full", "blazepose-upper"} <= set(posezoo.list_models())
