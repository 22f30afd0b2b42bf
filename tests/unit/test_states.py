"""State derivation and the forward-only rule (docs/architecture.md §8 invariant 5)."""

from __future__ import annotations

import pytest

from schemabot.states import TERMINAL, State, derive_apply_state, task_transition_allowed

S = State


@pytest.mark.parametrize(
    ("tasks", "expected"),
    [
        ([], S.PENDING),
        ([S.PENDING, S.PENDING], S.PENDING),
        ([S.COMPLETED, S.COMPLETED], S.COMPLETED),
        ([S.COMPLETED, S.PENDING], S.RUNNING),  # sequential, between two tasks
        ([S.COMPLETED, S.RUNNING, S.PENDING], S.RUNNING),
        ([S.WAITING_FOR_CUTOVER, S.RUNNING], S.RUNNING),  # grouped: one table still copying
        ([S.WAITING_FOR_CUTOVER, S.WAITING_FOR_CUTOVER], S.WAITING_FOR_CUTOVER),
        ([S.RECOVERING, S.WAITING_FOR_CUTOVER], S.RECOVERING),
        ([S.CUTTING_OVER, S.WAITING_FOR_CUTOVER], S.CUTTING_OVER),
        ([S.REVERT_WINDOW, S.REVERT_WINDOW], S.REVERT_WINDOW),
        ([S.REVERTED, S.REVERTED], S.REVERTED),
        ([S.FAILED, S.RUNNING], S.FAILED),
        ([S.CANCELLED, S.COMPLETED], S.CANCELLED),
        ([S.STOPPED, S.STOPPED, S.COMPLETED], S.STOPPED),
        ([S.PREPARING_BRANCH, S.WAITING_FOR_DEPLOY], S.PREPARING_BRANCH),
        ([S.WAITING_FOR_DEPLOY, S.RUNNING], S.WAITING_FOR_DEPLOY),
    ],
)
def test_apply_state_is_derived_from_task_states(tasks: list[State], expected: State) -> None:
    assert derive_apply_state(tasks) is expected


@pytest.mark.parametrize(
    ("current", "reported", "allowed"),
    [
        (S.PENDING, S.RUNNING, True),
        (S.RUNNING, S.WAITING_FOR_CUTOVER, True),
        (S.WAITING_FOR_CUTOVER, S.RUNNING, False),  # docs/architecture.md §10 S27: a stale report
        (S.RECOVERING, S.RUNNING, False),  # still proving readiness: stay recovering
        (S.RECOVERING, S.WAITING_FOR_CUTOVER, True),
        (S.CUTTING_OVER, S.WAITING_FOR_CUTOVER, False),
        (S.REVERT_WINDOW, S.REVERTED, True),
        (S.RUNNING, S.REVERTED, False),
        (S.RUNNING, S.FAILED, True),
        (S.RUNNING, S.STOPPED, True),
        (S.STOPPED, S.RUNNING, True),
        (S.PREPARING_BRANCH, S.PENDING, False),
    ],
)
def test_task_reports_never_move_backwards(current: State, reported: State, allowed: bool) -> None:
    assert task_transition_allowed(current, reported) is allowed


@pytest.mark.parametrize("terminal", sorted(TERMINAL))
def test_terminal_tasks_never_change(terminal: State) -> None:
    assert not any(task_transition_allowed(terminal, other) for other in State)
