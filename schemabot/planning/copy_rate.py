"""The copy rate of a target, measured from its earlier spirit applies (the task rows and the
audit log of the state database, docs/architecture.md §2).

The copy time of a task is the time it spent in `running`, from the `task_state` entries of the
audit log (every task state change writes one: storage/fenced_writes.py:set_task_state): each
interval from entering `running` to its next state, summed (a stopped and restarted copy runs
twice). Not `completed_at - created_at`: that adds the time queued, stopped, recovering, waiting
for a deferred cutover and cutting over, and made the rate low by as much as those lasted.
A task with no `running` interval on record tells nothing and is left out.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from schemabot.planning.config import DEFAULT_COPY_ROWS_PER_SECOND
from schemabot.states import State
from schemabot.storage.database import Database
from schemabot.storage.models import Apply, ApplyLog, Task


def running_seconds(transitions: Iterable[tuple[str, str | None, datetime]]) -> dict[str, float]:
    """{task_id: seconds in `running`} from (task_id, new_state, at) in the order they happened."""
    entered: dict[str, datetime] = {}
    seconds: dict[str, float] = {}
    for task_id, new_state, at in transitions:
        started = entered.pop(task_id, None)
        if started is not None:
            seconds[task_id] = seconds.get(task_id, 0.0) + (at - started).total_seconds()
        if new_state == State.RUNNING.value:
            entered[task_id] = at
    return seconds


def measured_copy_rate(db: Database, target: str, limit: int = 20) -> float | None:
    """Rows per second over the last `limit` completed spirit tasks that copied rows, or None."""

    def work(session: Session) -> float | None:
        tasks = session.execute(
            sa.select(Task.task_id, Task.apply_id, Task.rows_copied)
            .join(Apply, Apply.apply_id == Task.apply_id)
            .where(
                Apply.target == target.lower(),
                # The task's own engine (0006; a mixed apply's spirit tasks count), else the apply's.
                sa.func.coalesce(Task.engine, Apply.engine) == "spirit",
                Task.state == "completed",
                Task.rows_copied > 0,
            )
            .order_by(Task.id.desc())
            .limit(limit)
        ).all()
        if not tasks:
            return None
        transitions = session.execute(
            sa.select(ApplyLog.task_id, ApplyLog.new_state, ApplyLog.created_at)
            .where(
                ApplyLog.apply_id.in_({t.apply_id for t in tasks}),
                ApplyLog.task_id.in_([t.task_id for t in tasks]),
                ApplyLog.event == "task_state",
            )
            .order_by(ApplyLog.id)
        ).all()
        seconds = running_seconds((str(r.task_id), r.new_state, r.created_at) for r in transitions)
        timed = [t for t in tasks if seconds.get(t.task_id, 0.0) > 0]
        copied = sum(int(t.rows_copied) for t in timed)
        total = sum(seconds[t.task_id] for t in timed)
        return copied / total if copied and total > 0 else None

    return db.run(work, write=False)


def copy_rate(db: Database | None, target: str) -> tuple[float, str]:
    """(rows per second, "measured" | "default"). A state database that cannot answer means the
    default: a plan never fails for want of history."""
    if db is not None:
        try:
            rate = measured_copy_rate(db, target)
        except Exception:  # any storage trouble: fall back to the documented default
            rate = None
        if rate:
            return rate, "measured"
    return float(DEFAULT_COPY_ROWS_PER_SECOND), "default"
