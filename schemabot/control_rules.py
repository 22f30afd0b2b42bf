"""Which controls an apply accepts in which state: checked when a person asks, and again when the
lease holder carries the request out (the state may have moved in between).

One table of rules serves both moments, so the CLI's refusal and the driver's decision agree.
The single difference is `recovering`: a cutover *asked for* during recovery is refused with an
explanation, but a cutover *recorded earlier* (while its worker was dead and the apply still said
waiting_for_cutover) is held until the engine proves readiness, then carried out
(docs/architecture.md §10 S20, S23).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from engines.base import CONTROL_KINDS
from schemabot.errors import ControlRejected, ValidationError
from schemabot.states import State

VOLUME_RANGE = range(1, 12)
_STOPPABLE = {
    State.PENDING,
    State.PREPARING_BRANCH,
    State.APPLYING_BRANCH_CHANGES,
    State.CREATING_DEPLOY_REQUEST,
    State.VALIDATING_DEPLOY_REQUEST,
    State.WAITING_FOR_DEPLOY,
    State.RUNNING,
    State.RECOVERING,
    State.WAITING_FOR_CUTOVER,
}
_CANCELLABLE = _STOPPABLE | {
    State.STOPPED,
    State.FAILED_RETRYABLE,
    State.WAITING_FOR_PROVIDER,
    State.NEEDS_ATTENTION,
}
# Requests that give an ownerless apply a driver again (the sweep claims it for them).
WAKING_KINDS: tuple[str, ...] = ("start", "cancel", "adopt")
# States without an owner, where a start, cancel or adopt request wakes the sweep.
OWNERLESS_REQUEST_STATES = frozenset({State.STOPPED, State.FAILED_RETRYABLE, State.NEEDS_ATTENTION})
_VOLUME = _STOPPABLE - {State.PENDING}

# Controls carried out by schemabot alone, never handed to an engine. `adopt`: an apply that
# needs attention because its Vitess resume state is lost may let the engine find its branch and
# deploy request again by name and tag (the operator has checked there is exactly one).
ORCHESTRATION_KINDS: tuple[str, ...] = ("adopt",)
ALL_KINDS: tuple[str, ...] = (*CONTROL_KINDS, *ORCHESTRATION_KINDS)

RECOVERING_MESSAGE = (
    "the apply is recovering after a restart: the engine is proving the copy is ready again. "
    "Cutover is accepted once it shows waiting_for_cutover"
)


class Decision(Enum):
    RUN = "run"
    HOLD = "hold"  # keep the request pending; carry it out in a later tick
    REJECT = "reject"


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    reason: str = ""


def normalise_kind(kind: str) -> str:
    name = kind.strip().lower().replace("-", "_")
    if name not in ALL_KINDS:
        known = ", ".join(k.replace("_", "-") for k in ALL_KINDS)
        raise ValidationError(f"unknown control {kind!r}; expected one of {known}")
    return name


def normalise_value(kind: str, value: str | int | None) -> str | None:
    if kind != "volume":
        if value is not None:
            raise ValidationError(f"the {kind} control takes no value")
        return None
    try:
        level = int(str(value))
    except ValueError:
        raise ValidationError(f"volume must be an integer from 1 to 11, not {value!r}") from None
    if level not in VOLUME_RANGE:
        raise ValidationError(f"volume must be from 1 to 11, not {level}")
    return str(level)


def _rule(kind: str, state: State) -> str | None:
    """None if `kind` may run in `state`, else the reason it may not."""
    if state.is_terminal:
        return f"the apply is {state.value}; nothing to {kind.replace('_', '-')}"
    if kind == "adopt":
        if state is State.NEEDS_ATTENTION:
            return None
        return f"adopt is for an apply that needs attention (this one is {state.value})"
    if state is State.REVERT_WINDOW and kind in ("stop", "cancel", "start", "cutover", "volume"):
        return "the change is live and in its revert window: use revert or skip-revert"
    if state is State.CUTTING_OVER and kind in ("stop", "cancel", "start", "volume"):
        return "the apply is cutting over and cannot be interrupted now"
    if kind == "stop":
        if state is State.STOPPED:
            return "the apply is already stopped"
        return None if state in _STOPPABLE else f"an apply in state {state.value} cannot be stopped"
    if kind == "start":
        return (
            None if state is State.STOPPED else f"only a stopped apply can be started (it is {state.value})"
        )
    if kind == "cutover":
        if state is State.RECOVERING:
            return RECOVERING_MESSAGE
        if state is State.WAITING_FOR_CUTOVER:
            return None
        return f"the apply is {state.value}; cutover is possible in waiting_for_cutover"
    if kind == "cancel":
        return None if state in _CANCELLABLE else f"an apply in state {state.value} cannot be cancelled"
    if kind in ("revert", "skip_revert"):
        if state is State.REVERT_WINDOW:
            return None
        return f"the apply is {state.value}; {kind.replace('_', '-')} is possible in the revert window"
    if kind == "volume":
        return None if state in _VOLUME else f"volume cannot change while the apply is {state.value}"
    return f"unknown control {kind}"


def check_request(kind: str, state: State) -> None:
    """Raise ControlRejected if a person may not ask for `kind` now."""
    reason = _rule(kind, state)
    if reason is not None:
        raise ControlRejected(reason)


def decide(kind: str, state: State) -> Verdict:
    """At execution time: run the request, hold it for a later tick, or reject it (with why)."""
    if kind == "cutover" and state is State.RECOVERING:
        return Verdict(Decision.HOLD, RECOVERING_MESSAGE)
    reason = _rule(kind, state)
    return Verdict(Decision.RUN) if reason is None else Verdict(Decision.REJECT, reason)
