"""The registry: the built-in zoo, schema validation, user registries (API and the real CLI)."""

from __future__ import annotations

import copy
import hashlib

import pytest
import yaml

from clitools import one_line_error, posezoo_env, run_posezoo
from posezoo.errors import RegistryError, UnknownModelError
from posezoo.supply.registry import build_registry, builtin_registry_path, read_registry_file

GOOD_FILE = {
    "name": "tiny_detector.onnx",
    "url": "https://example.org/tiny_detector.onnx",
    "digest": "sha256:" + "ab" * 32,
    "size": 10,
    "format": "onnx",
}
GOOD_MODEL = {
    "plugin": "tiny",
    "description": "a tiny test model",
    "licence": "MIT",
    "source": "https://example.org/tiny",
    "default_variant": "base",
    "variants": {
        "base": {
            "files": {
                "detector": GOOD_FILE,
                "landmark": {**GOOD_FILE, "name": "tiny_landmark.onnx", "digest": "sha256:" + "cd" * 32},
            }
        }
    },
}


def registry_with(**changes) -> dict:
    model = copy.deepcopy(GOOD_MODEL)
    for path, value in changes.items():
        node = model
        *keys, last = path.split("__")
        for k in keys:
            node = node[k]
        node[last] = value
    return {"version": 1, "models": {"tiny-model": model}}


def test_builtin_registry_has_both_blazepose_models_with_shared_models_digests(shared_models):
    reg = build_registry(user_files=[])
    assert {"blazepose-full", "blazepose-upper"} <= set(reg.models)
    full = reg.model("blazepose-full")
    assert full.default_variant == "full" and list(full.variants) == ["lite", "full", "heavy"]
    upper = reg.model("blazepose-upper")
    assert upper.variant().files["landmark"].digest.startswith("git-blob-sha1:27ca7501")
    # every digest of a file present in ../shared matches SHA256SUMS; the detector is one file for all variants
    sums = dict(reversed(line.split()) for line in (shared_models / "SHA256SUMS").read_text().splitlines())
    published = set(sums.values())
    in_shared = {f.name for f in reg.files.values() if f.algorithm == "sha256" and f.hexdigest in published}
    assert in_shared >= {
        "pose_detection.tflite",
        "pose_landmark_lite_v0.8.9.tflite",
        "pose_landmark_full.tflite",
        "pose_landmark_heavy.tflite",
        "pose_detection_128_v0.7.12.tflite",
        "hand_recrop.tflite",
        "hand_landmark_full.tflite",
        "face_detection_short_range.tflite",
        "face_landmark.tflite",
    }
    # every file pinned by sha256 is one of ../shared's (hands and face files included)
    assert in_shared == {f.name for f in reg.files.values() if f.algorithm == "sha256"}
    assert all(f.size for f in reg.files.values()), "every registry file states its size"
    assert len({v.files["detector"].name for v in full.variants.values()}) == 1
    for rel, digest in sums.items():
        data = (shared_models / rel).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest


def test_unknown_model_and_variant_are_clear_errors():
    reg = build_registry(user_files=[])
    with pytest.raises(UnknownModelError, match="did you mean 'blazepose-full'"):
        reg.model("blazepose-ful")
    with pytest.raises(UnknownModelError, match="choose one of: lite, full, heavy"):
        reg.model("blazepose-full").variant("huge")


def test_valid_user_registry_adds_a_model(tmp_path):
    path = tmp_path / "user.yaml"
    path.write_text(yaml.safe_dump(registry_with()))
    reg = build_registry(user_files=[path])
    assert reg.model("tiny-model").variant().files["landmark"].name == "tiny_landmark.onnx"


BAD_REGISTRIES = {
    "bad-yaml": ("models: {tiny: [unclosed\n", "invalid YAML"),
    "unknown-key": (registry_with(colour="blue"), "unknown key 'colour'"),
    "unknown-file-key": (registry_with(variants__base__files__detector__mirror="x"), "unknown key 'mirror'"),
    "bad-digest": (registry_with(variants__base__files__detector__digest="md5:1234"), "not a valid digest"),
    "short-digest": (registry_with(variants__base__files__detector__digest="sha256:abcd"), "not a valid digest"),
    "duplicate-name": (
        registry_with(variants__base__files__landmark__name="tiny_detector.onnx"),
        "duplicate file name 'tiny_detector.onnx'",
    ),
    "dotdot-name": (registry_with(variants__base__files__detector__name="../evil.onnx"), "not a plain file name"),
    "slash-name": (registry_with(variants__base__files__detector__name="sub/dir.onnx"), "not a plain file name"),
    "http-url": (
        registry_with(variants__base__files__detector__url="http://example.org/x.onnx"),
        "is not an https URL",
    ),
    "missing-key": (registry_with(default_variant=None), "key 'default_variant' must be a non-empty string"),
    "bad-default": (registry_with(default_variant="nope"), "'nope' is not one of its variants"),
    "bad-format": (registry_with(variants__base__files__detector__format="pt"), "'pt' is not supported"),
    "duplicate-yaml-key": ("models:\n  a: {}\n  a: {}\n", "duplicate key 'a'"),
}


def _write(tmp_path, name, content):
    path = tmp_path / f"{name}.yaml"
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False))
    return path


@pytest.mark.parametrize("case", sorted(BAD_REGISTRIES))
def test_invalid_registry_is_refused_naming_file_model_and_key(tmp_path, case):
    content, expected = BAD_REGISTRIES[case]
    path = _write(tmp_path, case, content)
    with pytest.raises(RegistryError) as err:
        read_registry_file(path)
    message = str(err.value)
    assert expected in message and str(path) in message and "\n" not in message
    if case not in ("bad-yaml", "duplicate-yaml-key"):
        assert "model 'tiny-model'" in message


def test_duplicate_file_name_across_models_is_refused(tmp_path):
    other = registry_with()
    other["models"]["blazepose-clone"] = copy.deepcopy(other["models"].pop("tiny-model"))
    files = other["models"]["blazepose-clone"]["variants"]["base"]["files"]
    files["detector"]["name"] = "pose_detection.tflite"  # the built-in detector's name, other bytes
    path = _write(tmp_path, "clash", other)
    with pytest.raises(RegistryError, match="file name 'pose_detection.tflite' is already used"):
        build_registry(user_files=[path])


@pytest.mark.parametrize("case", ["bad-yaml", "unknown-key", "bad-digest", "duplicate-name", "dotdot-name", "http-url"])
def test_cli_exits_2_with_one_line_on_an_invalid_registry(tmp_path, case):
    content, expected = BAD_REGISTRIES[case]
    path = _write(tmp_path, case, content)
    result = run_posezoo("list", env=posezoo_env(tmp_path, POSEZOO_REGISTRY=str(path)))
    assert result.returncode == 2
    line = one_line_error(result)
    assert expected in line and path.name in line


def test_builtin_registry_is_the_repo_root_file():
    assert builtin_registry_path().name == "registry.yaml"
    assert read_registry_file(builtin_registry_path())
