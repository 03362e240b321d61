"""Input and output: frames in (``sources``, ``items``), poses out (``sinks``, ``parquet``, ``coco``),
pictures (``draw``, ``worldplot``). Knows poses, not families.
"""
