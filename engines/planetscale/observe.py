"""Watching a deploy to its end, and the two calls the engine makes on its own while it does.

- cutover (apply-deploy) when the deploy waits in `pending_cutover` and the user did not defer
  it, or asked for it (`cutover_requested`, persisted so a new owner honours it);
- skip-revert when the user asked to skip the revert window, or the window the user set
  (`revert_window_seconds`) is over; otherwise PlanetScale closes the window itself.

Both are read-before-act: the deploy request's state says whether the call is still needed.
"""

from __future__ import annotations

import time
from datetime import datetime

from engines.base import EngineState, TableProgress
from engines.planetscale import deploy_states as ds
from engines.planetscale.api import ApiError, ApiUnreachable
from engines.planetscale.retry import retrying
from engines.planetscale.session import Session, Waiting
from engines.planetscale.setup import failure_message, get_dr, note_dr

_WITH_OPERATIONS = frozenset({"in_progress", "pending_cutover", "in_progress_cutover"})


def _seconds_since(timestamp: str) -> float:
    when = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    return time.time() - when.timestamp()


def _should_skip_revert(s: Session) -> bool:
    options = s.request.options
    if options.skip_revert or s.state.skip_revert_requested:
        return True
    window = options.revert_window_seconds
    if window is None:
        return False  # PlanetScale's own window applies
    if window <= 0:
        return True
    return s.state.deployed_at is not None and _seconds_since(s.state.deployed_at) >= window


def tables_of(s: Session, overall: EngineState, deploy_state: str) -> tuple[TableProgress, ...]:
    if deploy_state not in _WITH_OPERATIONS:
        return ()
    operations = retrying(
        s.budget, lambda: s.api.operations(s.dr_number, s.budget), "reading deploy operations"
    )
    return tuple(
        TableProgress(
            namespace=str(op.get("keyspace_name")),
            table=str(op.get("table_name")),
            state=overall,
            percent=float(op["progress_percentage"])
            if op.get("progress_percentage") is not None
            else None,
            eta_seconds=int(op["eta_seconds"]) if op.get("eta_seconds") is not None else None,
            message=str(op.get("state") or ""),
        )
        for op in operations
    )


def _act(s: Session, action: str) -> None:
    """Call apply-deploy or skip-revert once; an unanswered or refused call is re-read next."""
    s.intend(action.replace("-", "_"), number=s.state.dr_number)
    try:
        s.api.action(s.dr_number, action, s.budget)
        s.events.append(f"{action} on deploy request #{s.state.dr_number}")
    except (ApiUnreachable, ApiError):
        pass  # the next read of the deploy request says whether it happened
    s.state.intent = None
    s.save()


def step_deploying(s: Session) -> Waiting | None:
    for _ in range(4):
        dr = get_dr(s)
        state = note_dr(s, dr)
        overall, message = ds.engine_state(state)
        message = f"deploy request #{s.state.dr_number}: {message}"
        if state in ds.TERMINAL:
            if overall is EngineState.FAILED:
                message += f" ({failure_message(dr)})"
            return s.finish(overall, message)
        if state == "pending_cutover":
            if s.request.options.defer_cutover and not s.state.cutover_requested:
                return Waiting(
                    EngineState.WAITING_FOR_CUTOVER, message, tables_of(s, overall, state)
                )
            _act(s, "apply-deploy")
            continue
        if state == "complete_pending_revert" and _should_skip_revert(s):
            _act(s, "skip-revert")
            continue
        return Waiting(overall, message, tables_of(s, overall, state))
    return Waiting(ds.engine_state(s.state.last_deploy_state or "")[0], "deploy in progress")
