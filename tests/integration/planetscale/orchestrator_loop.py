"""Drive the planetscale engine exactly as the orchestrator does: `apply`, then `progress` in a
loop with the last resume state, persisting every state the engine saves or returns.

`StateBox` stands in for schemabot's storage (a dict, or a JSON file when the "worker" is a
child process that gets SIGKILLed).
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from engines.base import (
    ApplyOptions,
    ControlRequest,
    EngineState,
    NamespaceChange,
    OperationRequest,
    ProgressResult,
    ResumeState,
    TableChange,
)
from engines.planetscale import PlanetScaleEngine
from tests.support.emulator_process import EmulatorProcess

TERMINAL = {EngineState.COMPLETED, EngineState.FAILED, EngineState.CANCELLED, EngineState.REVERTED}

VSCHEMA = {"sharded": False, "tables": {"customer": {}}}

CHANGES = (
    NamespaceChange(
        "commerce",
        (
            TableChange("product", "ALTER TABLE product ADD COLUMN sku VARCHAR(32) NULL", "alter"),
            TableChange(
                "coupon",
                "CREATE TABLE coupon (id INT PRIMARY KEY, code VARCHAR(16) NOT NULL)",
                "create",
            ),
        ),
    ),
    NamespaceChange(
        "customers",
        (TableChange("customer", "ALTER TABLE customer ADD INDEX idx_email (email)", "alter"),),
        vschema_changed=True,
        vschema=VSCHEMA,
    ),
)


@dataclass
class StateBox:
    """The persisted resume state; `path` makes it survive the process that writes it."""

    path: Path | None = None
    state: ResumeState | None = None
    saves: int = 0
    history: list[ResumeState] = field(default_factory=list)

    def save(self, state: ResumeState) -> None:
        self.state = copy.deepcopy(state)
        self.saves += 1
        self.history.append(self.state)
        if self.path is not None:
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(state))
            os.replace(tmp, self.path)

    def load(self) -> ResumeState | None:
        if self.path is not None and self.path.exists():
            self.state = json.loads(self.path.read_text())
        return self.state


def request(
    context: str,
    box: StateBox,
    changes: Iterable[NamespaceChange] = CHANGES,
    options: ApplyOptions | None = None,
    step_budget: float = 5.0,
) -> OperationRequest:
    return OperationRequest(
        context=context,
        changes=tuple(changes),
        options=options or ApplyOptions(),
        resume_state=box.state,
        save_state=box.save,
        step_budget=step_budget,
    )


def control(req: OperationRequest, box: StateBox, value: str | None = None) -> ControlRequest:
    return ControlRequest(
        context=req.context,
        changes=req.changes,
        options=req.options,
        resume_state=box.state,
        save_state=box.save,
        step_budget=req.step_budget,
        value=value,
    )


def start(engine: PlanetScaleEngine, req: OperationRequest, box: StateBox) -> None:
    result = engine.apply(replace(req, resume_state=box.state))
    assert result.accepted, result.message
    assert result.resume_state is not None, "an accepted Vitess apply must return its state"
    box.save(result.resume_state)


def drive(
    engine: PlanetScaleEngine,
    req: OperationRequest,
    box: StateBox,
    emulator: EmulatorProcess,
    until: set[EngineState] | frozenset[EngineState] = frozenset(TERMINAL),
    max_steps: int = 60,
) -> ProgressResult:
    """progress, persist, tick the emulator; until a state in `until` (bounded)."""
    seen: list[str] = []
    for _ in range(max_steps):
        result = engine.progress(replace(req, resume_state=box.state))
        assert result.resume_state is not None
        box.save(result.resume_state)
        seen.append(result.state.value)
        if result.state in until:
            return result
        emulator.advance(1)
    raise AssertionError(f"never reached {sorted(s.value for s in until)}; saw {seen}")


def tagged_deploy_requests(emulator: EmulatorProcess, context: str) -> list[dict[str, Any]]:
    body = emulator.api("GET", "/deploy-requests").json()
    return [dr for dr in body["data"] if f"schemabot-apply: {context}" in dr["notes"]]


def branches_named(emulator: EmulatorProcess, name: str) -> list[dict[str, Any]]:
    body = emulator.api("GET", "/branches").json()
    return [b for b in body["data"] if b["name"] == name]
