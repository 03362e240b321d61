"""Drivers: what runs a resolved model over inputs. ``run`` (one input, a window, files), ``many``
(``run`` over many inputs), ``pool`` (every core), ``batch`` (Parquet rows, locally or on Ray Data),
``bench`` (timing), ``evaluate`` (COCO keypoint scores).
"""
