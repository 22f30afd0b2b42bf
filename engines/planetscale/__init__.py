"""The planetscale engine: schema changes through PlanetScale branches and deploy requests."""

from __future__ import annotations

from typing import Any

__all__ = ["PlanetScaleEngine"]


def __getattr__(name: str) -> Any:
    # Imported lazily so that importing one of the engine's small modules (deploy_states, target)
    # does not pull in the whole engine.
    if name == "PlanetScaleEngine":
        from engines.planetscale.engine import PlanetScaleEngine

        return PlanetScaleEngine
    raise AttributeError(name)
