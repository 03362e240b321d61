"""Drivers: what runs a resolved model over inputs. ``frames`` (the one options type,
``PredictOptions``, and the one frame loop, ``frame_poses``, every driver below uses), ``run`` (one
input, a window, files), ``many`` (``run`` over many inputs), ``pool`` (every core), ``batch`` (Parquet
rows, locally or on Ray Data), ``bench`` (timing), ``evaluate`` (COCO keypoint scores).
"""
