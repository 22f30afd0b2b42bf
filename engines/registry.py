"""Which engine class serves which engine name.

Engines are imported lazily by dotted path, so a worker that never drives a PlanetScale apply
never imports its HTTP client, and extra engines (a test double, a user's own) can be plugged in
by path without touching this module.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from engines.base import Engine, Platform
from engines.targets import Target

BUILTIN_ENGINES: Mapping[str, str] = {
    "direct": "engines.direct:DirectEngine",
    "spirit": "engines.spirit:SpiritEngine",
    "planetscale": "engines.planetscale:PlanetScaleEngine",
}


class UnknownEngine(LookupError):
    pass


def engine_paths(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Built-in engines plus `extra` ({name: "module:Class"}); extra names win."""
    paths = dict(BUILTIN_ENGINES)
    paths.update(extra or {})
    return paths


def engine_class(name: str, extra: Mapping[str, str] | None = None) -> type[Engine]:
    paths = engine_paths(extra)
    try:
        path = paths[name]
    except KeyError:
        known = ", ".join(sorted(paths))
        raise UnknownEngine(f"unknown engine {name!r}; known engines: {known}") from None
    module_name, _, class_name = path.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, Engine)):
        raise TypeError(f"{path} is not an engines.base.Engine subclass")
    return cls


def engine_platform(name: str, extra: Mapping[str, str] | None = None) -> Platform:
    return engine_class(name, extra).platform


def build_engine(name: str, target: Target, extra: Mapping[str, str] | None = None) -> Engine:
    return engine_class(name, extra)(target)
