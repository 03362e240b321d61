"""Converter versions, as the format table (:mod:`posezoo.supply.formats`) holds them: bumped there
whenever a converter's output changes, so that cached conversions made by an older one are converted
again (see :func:`posezoo.supply.convert.conversion_key`)."""

from posezoo.supply.formats import FORMATS

CONVERTER_VERSION = FORMATS["tflite"].version  # TFLite -> ONNX
TFJS_CONVERTER_VERSION = FORMATS["tfjs"].version  # TF.js graph model -> ONNX
