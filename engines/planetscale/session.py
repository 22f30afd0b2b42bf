"""One engine call's working set: the request, its resume state, the budget, the clients.

`save` is the engine's only way to persist; it calls the orchestrator's `save_state` and lets
whatever that raises propagate untouched (a lost lease or a dead state database must stop the
engine at once).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engines.base import EngineState, OperationRequest, TableProgress
from engines.planetscale.api import PlanetScaleAPI
from engines.planetscale.branch_sql import BranchSQL
from engines.planetscale.budget import Budget
from engines.planetscale.resume_state import PSResumeState
from engines.planetscale.target import PlanetScaleTarget


@dataclass(frozen=True)
class Waiting:
    """What a step returns when there is nothing more to do in this call."""

    state: EngineState
    message: str
    tables: tuple[TableProgress, ...] = ()


@dataclass
class Session:
    target: PlanetScaleTarget
    api: PlanetScaleAPI
    sql: BranchSQL
    request: OperationRequest
    state: PSResumeState
    budget: Budget
    events: list[str] = field(default_factory=list)

    def save(self) -> None:
        self.request.save_state(self.state.to_dict())

    def intend(self, call: str, **details: Any) -> None:
        """Persist before act: record the side effect about to happen, durably."""
        self.state.intent = {"call": call, **details}
        self.save()

    def intent_is(self, call: str) -> bool:
        return self.state.intent is not None and self.state.intent.get("call") == call

    def set_phase(self, phase: str) -> None:
        if phase != self.state.phase:
            self.events.append(f"phase {self.state.phase} -> {phase}")
            self.state.phase = phase
        self.state.intent = None
        self.save()

    def finish(self, final: EngineState, message: str) -> Waiting:
        self.state.final_state = final.value
        self.state.message = message
        self.set_phase("done")
        return Waiting(final, message)

    @property
    def dr_number(self) -> int:
        assert self.state.dr_number is not None
        return self.state.dr_number
