"""Converter versions: bumped whenever a converter's output changes, so that cached conversions made
by an older one are converted again (see :func:`posezoo.supply.convert.conversion_key`)."""

CONVERTER_VERSION = "5"  # TFLite -> ONNX
TFJS_CONVERTER_VERSION = "tfjs-1"  # TF.js graph model -> ONNX
