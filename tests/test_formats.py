"""The format table: one row per format, read by the registry (validation), fetch (archives) and convert
(converters and their versions); converters stay unimported until a conversion is due."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

import posezoo.supply.convert
from httpserver import home, mirror_dir  # noqa: F401  (pytest fixtures)
from posezoo.errors import ConvertError, RegistryError
from posezoo.supply import formats
from posezoo.supply.cache import Cache
from posezoo.supply.convert import ensure_onnx
from posezoo.supply.convert.versions import CONVERTER_VERSION, TFJS_CONVERTER_VERSION
from posezoo.supply.formats import FORMATS
from posezoo.supply.registry import FileEntry, read_registry_file


def test_the_table_names_every_format_once_with_what_it_needs():
    assert formats.names(formats.MODEL) == ("tflite", "tfjs", "onnx")
    assert formats.names(formats.ARCHIVE) == ("zip", "tar.gz")
    for name, fmt in FORMATS.items():
        assert fmt.name == name
        if fmt.is_model:
            assert fmt.open_member is None and not fmt.suffixes
            assert (fmt.converter is None) == (fmt.version is None) == fmt.is_onnx
        else:
            assert fmt.open_member is not None and fmt.suffixes and fmt.converter is None
    # the converters are names of posezoo.supply.convert's lazy exports; the versions are the table's
    assert {f.converter for f in FORMATS.values() if f.converter} <= set(dir(posezoo.supply.convert))
    assert (CONVERTER_VERSION, TFJS_CONVERTER_VERSION) == (FORMATS["tflite"].version, FORMATS["tfjs"].version)
    assert formats.archive_format_of("Bundle.TGZ").name == "tar.gz"
    assert formats.archive_format_of("x.tar.gz").name == "tar.gz" and formats.archive_format_of("x.zip").name == "zip"
    assert formats.archive_format_of("x.tar") is None
    with pytest.raises(RegistryError, match=r"format 'rar' is not a known archive format \(use one of: zip, tar.gz\)"):
        formats.lookup("rar", formats.ARCHIVE)


def test_registry_validation_lists_the_tables_model_formats(tmp_path):
    path = tmp_path / "r.yaml"
    entry = {"name": "m.pt", "url": "https://e.org/m.pt", "digest": "sha256:" + "ab" * 32, "format": "pt"}
    model = {"plugin": "p", "description": "d", "licence": "MIT", "source": "https://e.org", "default_variant": "v",
             "variants": {"v": {"files": {"model": entry}}}}
    path.write_text(yaml.safe_dump({"models": {"m": model}}))
    with pytest.raises(RegistryError) as err:
        read_registry_file(path)
    assert "key 'format': 'pt' is not supported (use one of: tflite, tfjs, onnx)" in str(err.value)
    entry.update(format="onnx", shards=[{"name": "s.bin", "url": "https://e.org/s.bin", "digest": "sha256:" + "cd" * 32}])
    path.write_text(yaml.safe_dump({"models": {"m": model}}))
    with pytest.raises(RegistryError, match="key 'shards' is only for format tfjs, not onnx"):
        read_registry_file(path)


@pytest.mark.parametrize("fmt,what", [("pt", "is not a known format"), ("zip", "is an archive, not a model")])
def test_ensure_onnx_refuses_what_the_table_cannot_convert(home, fmt, what):
    entry = FileEntry("m.bin", "https://example.invalid/m.bin", "sha256:" + "0" * 64, fmt)
    with pytest.raises(ConvertError) as err:
        ensure_onnx(entry, Cache())
    assert f"cannot convert m.bin: format {fmt!r} {what} (model formats: tflite, tfjs, onnx)" == str(err.value)


def test_ensure_onnx_calls_the_converter_the_table_names(home, mirror_dir, monkeypatch):
    """A format added to the table is converted by the function it names, with its version in the key."""
    from posezoo.supply.fetch import fetch_file
    from posezoo.supply.registry import build_registry

    detector = build_registry(user_files=[]).files["pose_detection.tflite"]
    calls = []

    def convert_other(src, dst, *, model_name=None):
        calls.append((Path(src).name, model_name))
        Path(dst).write_bytes(b"onnx")

    monkeypatch.setattr(posezoo.supply.convert, "convert_other", convert_other, raising=False)
    monkeypatch.setitem(FORMATS, "other", replace(FORMATS["tflite"], name="other", converter="convert_other", version="o-1"))
    entry = replace(detector, format="other")
    fetch_file(entry, mirror=str(mirror_dir), progress=False)
    assert ensure_onnx(entry).read_bytes() == b"onnx"
    assert calls == [("pose_detection.tflite", "pose_detection.tflite")]
    assert Cache().manifest(entry.name)["onnx"]["converter_version"].startswith("o-1/")


def test_importing_the_zoo_loads_no_converter():
    code = ("import sys, posezoo.zoo.resolve, posezoo.supply.formats; "
            "print(sorted(m for m in sys.modules if m == 'onnx' or m.startswith('onnx.') "
            "or m in ('posezoo.supply.convert.tflite', 'posezoo.supply.convert.tfjs', 'tarfile')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
