"""The copy rate of a target, measured from its earlier spirit applies (the task rows of the state
database, docs/architecture.md §2)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from schemabot.planning.config import DEFAULT_COPY_ROWS_PER_SECOND
from schemabot.storage.database import Database
from schemabot.storage.models import Apply, Task


def measured_copy_rate(db: Database, target: str, limit: int = 20) -> float | None:
    """Rows per second over the last `limit` completed spirit tasks that copied rows, or None."""

    def work(session: Session) -> float | None:
        rows = session.execute(
            sa.select(Task.rows_copied, Task.created_at, Task.completed_at)
            .join(Apply, Apply.apply_id == Task.apply_id)
            .where(
                Apply.target == target.lower(),
                # The task's own engine (0006; a mixed apply's spirit tasks count), else the apply's.
                sa.func.coalesce(Task.engine, Apply.engine) == "spirit",
                Task.state == "completed",
                Task.rows_copied > 0,
                Task.completed_at.is_not(None),
            )
            .order_by(Task.id.desc())
            .limit(limit)
        ).all()
        copied = sum(int(r.rows_copied) for r in rows)
        seconds = sum((r.completed_at - r.created_at).total_seconds() for r in rows)
        return copied / seconds if copied and seconds > 0 else None

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
