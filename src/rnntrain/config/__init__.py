"""Run configuration: frozen dataclasses, validated once, stored as TOML.

``schema`` (validation helpers) is imported by every layer; ``run`` (the whole run
config) imports every layer, so it is loaded lazily here to keep imports acyclic.
"""
_RUN_NAMES = ("RunConfig", "TrainConfig", "dumps", "from_dict", "load_config", "to_plain")


def __getattr__(name):
    if name in _RUN_NAMES:
        from . import run
        return getattr(run, name)
    raise AttributeError(name)


__all__ = list(_RUN_NAMES)
