"""The planetscale engine: schema changes through PlanetScale branches and deploy requests."""

from __future__ import annotations

from typing import Any

__all__ = ["PlanetScaleEngine"]


def __getattr__(name: str) -> Any:
    # Imported lazily so that `engines.planetscale.emulator` does not pull in the engine.
    if name == "PlanetScaleEngine":
        from engines.planetscale.engine import PlanetScaleEngine

        return PlanetScaleEngine
    raise AttributeError(name)
