"""The zoo: plugins (``hookspecs``, ``plugins``) and the registry together; ``resolve`` turns a model
name into one resolution (registry entry, variant, spec, family, capabilities) made once at the edge
and passed down.
"""
