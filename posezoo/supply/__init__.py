"""The supply chain: what the zoo holds and how its files reach a verified, converted state.

``registry`` (models, variants, files with URL, digest, size) -> ``fetch`` (download, resume, mirror,
offline) -> ``hashes`` (verify) -> ``cache`` (the verified files and their conversions, written through
``atomic``) -> ``convert`` (TFLite and TF.js graphs to ONNX, exactly). Nothing here runs a model.
"""
