"""The measured copy rate (issue 13 §1: a copy's duration estimate) from stored applies, on SQLite
and MariaDB: rows copied over the time the tasks spent `running`, read from the audit log, not
from creation to completion (which counted time queued, stopped and waiting for the cutover)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from schemabot.planning.copy_rate import copy_rate, measured_copy_rate, running_seconds
from schemabot.runtime import Runtime
from schemabot.storage.models import Apply, ApplyLog, Task

pytestmark = pytest.mark.integration

T0 = datetime(2026, 1, 5, 12, 0, 0)


def store(
    rt: Runtime, apply_id: str, target: str, engine: str, rows: int, states: list[tuple[str, int]]
) -> None:
    """One completed apply with one task that went through `states` [(state, seconds after T0)]."""
    end = T0 + timedelta(seconds=states[-1][1])

    def work(session: sa.orm.Session) -> None:
        session.execute(
            sa.insert(Apply).values(
                apply_id=apply_id,
                request_hash="h",
                target=target,
                database="d",
                engine=engine,
                state="completed",
                options={},
                attempt=1,
                lease_token=0,
                poll_seq=0,
                created_at=T0,
                updated_at=end,
                completed_at=end,
            )
        )
        session.execute(
            sa.insert(Task).values(
                task_id=f"task-{apply_id}",
                apply_id=apply_id,
                seq=0,
                namespace="ns",
                table_name="t",
                ddl="ALTER TABLE t MODIFY a BIGINT",
                action="alter",
                state="completed",
                rows_copied=rows,
                rows_total=rows,
                created_at=T0,
                updated_at=end,
                completed_at=end,
            )
        )
        old = "pending"
        for state, seconds in states:
            session.execute(
                sa.insert(ApplyLog).values(
                    apply_id=apply_id,
                    task_id=f"task-{apply_id}",
                    event="task_state",
                    old_state=old,
                    new_state=state,
                    created_at=T0 + timedelta(seconds=seconds),
                )
            )
            old = state

    rt.db.run(work)


def test_the_rate_counts_only_the_time_spent_running(rt: Runtime) -> None:
    # Queued 100 s, copied 10 s, stopped 50 s, copied 10 s more, waited 300 s for a deferred
    # cutover: 20,000 rows in 20 s of copying is 1,000 rows/s (the old measure said 20000/470).
    store(
        rt,
        "apply-a",
        "shop",
        "spirit",
        20_000,
        [
            ("running", 100),
            ("stopped", 110),
            ("running", 160),
            ("waiting_for_cutover", 170),
            ("cutting_over", 470),
            ("completed", 471),
        ],
    )
    assert measured_copy_rate(rt.db, "shop") == pytest.approx(1000.0)
    # A second task copying 30,000 rows in 10 s: (20,000 + 30,000) / (20 + 10) s.
    store(rt, "apply-b", "shop", "spirit", 30_000, [("running", 5), ("completed", 15)])
    # Not counted: another target, another engine, a task with no running interval on record.
    store(rt, "apply-c", "other", "spirit", 1, [("running", 0), ("completed", 1000)])
    store(rt, "apply-d", "shop", "direct", 1, [("running", 0), ("completed", 1000)])
    store(rt, "apply-e", "shop", "spirit", 5, [("completed", 1000)])
    assert measured_copy_rate(rt.db, "shop") == pytest.approx(50_000 / 30)
    assert copy_rate(rt.db, "shop") == (pytest.approx(50_000 / 30), "measured")


def test_no_running_time_on_record_means_the_default(rt: Runtime) -> None:
    store(rt, "apply-e", "shop", "spirit", 5, [("completed", 1000)])
    assert measured_copy_rate(rt.db, "shop") is None
    assert copy_rate(rt.db, "shop") == (50_000.0, "default")


def test_running_seconds_sums_each_interval_per_task() -> None:
    at = lambda s: T0 + timedelta(seconds=s)  # noqa: E731
    moves = [
        ("a", "running", at(0)),
        ("b", "running", at(1)),
        ("a", "stopped", at(4)),
        ("a", "running", at(10)),
        ("b", "completed", at(3)),
        ("a", "completed", at(11)),
    ]
    assert running_seconds(moves) == {"a": 5.0, "b": 2.0}
