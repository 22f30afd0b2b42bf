"""Apply and task states, their terminal flags, the forward-only rule and the one derivation.

Task states are the engine's vocabulary (`engines.base.EngineState`) plus `recovering`; the apply
adds `failed_retryable`. The apply state is derived from its task states by `derive_apply_state`
alone, except for `failed_retryable`, which is a verdict on the apply's last attempt rather than
on any table.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from engines.base import EngineState


class State(StrEnum):
    PENDING = "pending"
    PREPARING_BRANCH = "preparing_branch"
    APPLYING_BRANCH_CHANGES = "applying_branch_changes"
    CREATING_DEPLOY_REQUEST = "creating_deploy_request"
    VALIDATING_DEPLOY_REQUEST = "validating_deploy_request"
    WAITING_FOR_DEPLOY = "waiting_for_deploy"
    RUNNING = "running"
    STOPPED = "stopped"
    # After a restart of a deferred-cutover apply: waiting for the engine to prove readiness.
    RECOVERING = "recovering"
    WAITING_FOR_CUTOVER = "waiting_for_cutover"
    CUTTING_OVER = "cutting_over"
    REVERT_WINDOW = "revert_window"
    # Apply only: the last attempt failed transiently; the sweep re-drives it.
    FAILED_RETRYABLE = "failed_retryable"
    # Apply only: the provider does not answer while work of this apply may be in flight there
    # (a deploy request may be running). Re-driven with capped backoff for as long as it takes;
    # the retry budget never ends it (docs/architecture.md §8 invariant 8).
    WAITING_FOR_PROVIDER = "waiting_for_provider"
    # Apply only: recovery refuses to go on without a person (its resume state is lost past
    # branch preparation). The reason is in `attention`; the way out is `cancel`.
    NEEDS_ATTENTION = "needs_attention"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REVERTED = "reverted"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL

    @classmethod
    def from_engine(cls, state: EngineState) -> State:
        return cls(state.value)


TERMINAL: frozenset[State] = frozenset({State.COMPLETED, State.FAILED, State.CANCELLED, State.REVERTED})

VITESS_SETUP: tuple[State, ...] = (
    State.PREPARING_BRANCH,
    State.APPLYING_BRANCH_CHANGES,
    State.CREATING_DEPLOY_REQUEST,
    State.VALIDATING_DEPLOY_REQUEST,
    State.WAITING_FOR_DEPLOY,
)

# States a user asked to wait in: `--wait` returns there, and the driver keeps its lease.
WAITING_STATES: frozenset[State] = frozenset({State.WAITING_FOR_CUTOVER, State.REVERT_WINDOW})

# Non-terminal states in which no driver is expected to hold a lease.
PARKED: frozenset[State] = frozenset(
    {State.STOPPED, State.FAILED_RETRYABLE, State.WAITING_FOR_PROVIDER, State.NEEDS_ATTENTION}
)

# Apply-only verdicts on the last attempt, not derived from the tasks; a successful engine step
# replaces them with the derived state.
VERDICTS: frozenset[State] = frozenset(
    {State.FAILED_RETRYABLE, State.WAITING_FOR_PROVIDER, State.NEEDS_ATTENTION}
)

ACTIVE: frozenset[State] = frozenset(set(State) - TERMINAL - PARKED)

# Position of each task state on the way to completion. An engine report may move a task to an
# equal or later position only: a stale report (a slow poll of an old owner, an engine that has
# not yet caught up after a restart) must never move a stored task backwards
# (docs/architecture.md §8 invariant 5).
_RANK: dict[State, int] = {
    State.PENDING: 0,
    State.PREPARING_BRANCH: 1,
    State.APPLYING_BRANCH_CHANGES: 2,
    State.CREATING_DEPLOY_REQUEST: 3,
    State.VALIDATING_DEPLOY_REQUEST: 4,
    State.WAITING_FOR_DEPLOY: 5,
    State.RUNNING: 6,
    State.STOPPED: 6,
    State.RECOVERING: 7,
    State.WAITING_FOR_CUTOVER: 8,
    State.CUTTING_OVER: 9,
    State.REVERT_WINDOW: 10,
    State.COMPLETED: 11,
    State.FAILED: 11,
    State.CANCELLED: 11,
    State.REVERTED: 11,
}


def rank(state: State) -> int:
    return _RANK[state]


def task_transition_allowed(current: State, reported: State) -> bool:
    """May an engine report move a task from `current` to `reported`?

    Terminal tasks never change. Otherwise the report must not go backwards. `reverted` is
    reachable only from the revert window (a completed change is not reverted behind our back).
    """
    if current.is_terminal:
        return False
    if reported is State.REVERTED:
        return current in (State.REVERT_WINDOW, State.CUTTING_OVER)
    return rank(reported) >= rank(current)


def derive_apply_state(task_states: Iterable[State]) -> State:
    """The apply's state from its tasks' states; the first rule that matches wins.

    The order encodes what a person watching needs to know first: a failure anywhere, then a
    cancellation, then anything still in flight, earliest phase first, then waiting states.
    """
    states = list(task_states)
    if not states:
        return State.PENDING
    present = set(states)
    if State.FAILED in present:
        return State.FAILED
    if State.CANCELLED in present:
        return State.CANCELLED
    if State.REVERTED in present and present <= {State.REVERTED, State.COMPLETED}:
        return State.REVERTED
    if present == {State.COMPLETED}:
        return State.COMPLETED
    if State.STOPPED in present:
        return State.STOPPED
    for setup in VITESS_SETUP:
        if setup in present:
            return setup
    if State.RUNNING in present:
        return State.RUNNING
    if State.RECOVERING in present:
        return State.RECOVERING
    if State.CUTTING_OVER in present:
        return State.CUTTING_OVER
    if State.PENDING in present:
        # Some tasks done or waiting, some not begun: a sequential apply between two tasks.
        return State.PENDING if present == {State.PENDING} else State.RUNNING
    if State.WAITING_FOR_CUTOVER in present:
        return State.WAITING_FOR_CUTOVER
    if State.REVERT_WINDOW in present:
        return State.REVERT_WINDOW
    if State.REVERTED in present:
        return State.REVERTED
    return State.RUNNING
