"""The real planetscale engine, observed: subclasses registered through `engine_plugins` so that
orchestration tests can see exactly what schemabot hands the engine and what it gets back.

They change nothing of the engine's behaviour except where a test asks for it (dropping the
state of a reattach, docs/architecture.md §10 S6). Calls are kept on the class because the
orchestrator builds a fresh engine for every tick; the in-process tests reset them per test with `reset()`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import ClassVar

from engines.base import (
    ApplyRequest,
    ApplyResult,
    ControlRequest,
    ControlResult,
    NamespaceChange,
    OperationRequest,
    ProgressRequest,
    ProgressResult,
    ResumeState,
)
from engines.planetscale import PlanetScaleEngine


@dataclass(frozen=True)
class EngineCall:
    """One call as the engine saw it: what it was handed and the state it handed back."""

    method: str
    context: str
    changes: tuple[NamespaceChange, ...]
    received: ResumeState | None
    returned: ResumeState | None


class RecordingPlanetScaleEngine(PlanetScaleEngine):
    """The planetscale engine, recording every call it serves (in this process)."""

    calls: ClassVar[list[EngineCall]] = []

    @classmethod
    def reset(cls) -> None:
        cls.calls.clear()

    @classmethod
    def of(cls, method: str) -> list[EngineCall]:
        return [c for c in cls.calls if c.method == method]

    def _record(self, method: str, request: OperationRequest, returned: ResumeState | None) -> None:
        type(self).calls.append(
            EngineCall(
                method=method,
                context=request.context,
                changes=tuple(request.changes),
                # Copies: the engine mutates nothing it is handed, but a test must compare with
                # what was handed *then*, not with a dict that a later step might share.
                received=copy.deepcopy(request.resume_state),
                returned=copy.deepcopy(returned),
            )
        )

    def apply(self, request: ApplyRequest) -> ApplyResult:
        received = copy.deepcopy(request.resume_state)
        result = super().apply(request)
        self._record("apply", replace(request, resume_state=received), result.resume_state)
        return result

    def progress(self, request: ProgressRequest) -> ProgressResult:
        received = copy.deepcopy(request.resume_state)
        result = super().progress(request)
        self._record("progress", replace(request, resume_state=received), result.resume_state)
        return result

    def _recorded_control(self, kind: str, request: ControlRequest, result: ControlResult) -> ControlResult:
        self._record(kind, request, result.resume_state)
        return result

    def cutover(self, request: ControlRequest) -> ControlResult:
        return self._recorded_control("cutover", request, super().cutover(request))

    def revert(self, request: ControlRequest) -> ControlResult:
        return self._recorded_control("revert", request, super().revert(request))

    def skip_revert(self, request: ControlRequest) -> ControlResult:
        return self._recorded_control("skip_revert", request, super().skip_revert(request))


class StateDroppingPlanetScaleEngine(RecordingPlanetScaleEngine):
    """Accepts a reattach as the real engine does, then "forgets" to return the resume state
    while `drop_reattach_state` is set: the engine bug that the guard of docs/architecture.md §10 S6
    is there for."""

    drop_reattach_state: ClassVar[bool] = False
    # What it returns instead of the state: None, or an empty `{}` (issue 11, defect 1).
    dropped_as: ClassVar[ResumeState | None] = None

    def apply(self, request: ApplyRequest) -> ApplyResult:
        result = super().apply(request)
        if type(self).drop_reattach_state and request.resume_state is not None:
            return replace(result, resume_state=type(self).dropped_as)
        return result


PLUGINS = {
    "ps_recording": f"{__name__}:RecordingPlanetScaleEngine",
    "ps_dropping": f"{__name__}:StateDroppingPlanetScaleEngine",
}
