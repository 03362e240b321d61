"""The model seam: what every family implements and the generic pieces it builds on.

``model`` (the :class:`PoseModel` template, :class:`Pose`, :class:`Family`), ``regions`` (regions as
plain data, box detectors, models that predict inside given regions, the top-down pipeline), ``runtime``
(onnxruntime sessions), ``preprocess`` (colour, crops, letterbox, TensorFlow-style resampling), ``warp`` (OpenCV 4's fixed-point affine warp),
``tracking`` (filters, box identities, IoU), ``timing`` and ``numeric``. Names no family.
"""
