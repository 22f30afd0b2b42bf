"""Issue 15 §1: the metrics say what happened (docs/architecture.md §5.8).

- the copy rate of a task is its rows over the time *it* spent copying (its `running` spells in
  the audit log), not over the time since the apply started: a second table copied after the
  first, or a copy that was stopped for a while, is not reported slower than it copies;
- an apply that fails because its retries ran out is counted as that, not as a permanent error;
- a tick that exits on infrastructure is counted under the apply's engine, and a driver fenced
  out (LeaseLost) is not counted at all: another driver owns the apply, nothing failed.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from schemabot import driver, events, metrics
from schemabot.api import ChangeSet, Client
from schemabot.errors import LeaseLost, StorageUnavailable
from schemabot.migrate import upgrade
from schemabot.settings import Settings
from schemabot.storage import sweep
from schemabot.storage.clock import db_now
from schemabot.storage.models import Apply, ApplyLog, Task
from tests.support.harness import RecordingDispatcher


@pytest.fixture
def client(tmp_path: Path) -> Client:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    upgrade(database_url=url)
    settings = Settings(database_url=url, targets={"local": "mysql://root@127.0.0.1:3306/app"})
    return Client(settings, dispatcher=RecordingDispatcher())


def _rates(client: Client) -> dict[str, float]:
    found = {}
    for family in metrics.StateCollector(client.runtime.db).collect():
        if family.name == "schemabot_task_copy_rate_rows_per_second":
            found.update({s.labels["table"]: s.value for s in family.samples})
    return found


def _stage(client: Client, apply_id: str, spells: dict[str, list[tuple[int, int]]], rows: int) -> None:
    """The apply started 100 s ago; each table's `running` spells as (from, to) seconds ago
    (to 0: still running), and `rows` copied by each."""

    def work(session: Any) -> None:
        now = session.scalar(sa.select(db_now()))
        apply = session.get(Apply, apply_id) or session.scalars(
            sa.select(Apply).where(Apply.apply_id == apply_id)
        ).one()
        apply.state = "running"
        apply.started_at = now - timedelta(seconds=100)
        for task in session.scalars(sa.select(Task).where(Task.apply_id == apply_id)):
            task_spells = spells[task.table_name]
            task.state = "running" if task_spells[-1][1] == 0 else "stopped"
            task.rows_copied, task.rows_total = rows, 10 * rows
            for start, end in task_spells:
                session.add(_move(task, "pending", "running", now - timedelta(seconds=start)))
                if end:
                    session.add(_move(task, "running", "stopped", now - timedelta(seconds=end)))

    client.runtime.db.run(work)


def _move(task: Task, old: str, new: str, at: Any) -> ApplyLog:
    return ApplyLog(
        apply_id=task.apply_id, task_id=task.task_id, event="task_state", old_state=old,
        new_state=new, message="", created_at=at,
    )  # fmt: skip


def test_a_second_table_s_rate_counts_from_its_own_copy(client: Client) -> None:
    ddl = ["ALTER TABLE first ADD COLUMN c INT", "ALTER TABLE second ADD COLUMN c INT"]
    apply_id = client.submit_apply("local", "direct", [ChangeSet(ddl=ddl)]).apply_id
    # first copied from 100 s to 60 s ago and was stopped; second copies since 10 s ago.
    _stage(client, apply_id, {"first": [(100, 60)], "second": [(10, 0)]}, rows=1000)
    rates = _rates(client)
    assert rates["app.second"] == pytest.approx(100.0, rel=0.1)  # not 1000 / 100 s
    assert rates["app.first"] == pytest.approx(25.0, rel=0.1)  # its 40 s of copying, stopped since


def test_a_copy_stopped_for_a_while_counts_only_its_copying_time(client: Client) -> None:
    apply_id = client.submit_apply("local", "direct", ["ALTER TABLE t ADD COLUMN c INT"]).apply_id
    _stage(client, apply_id, {"t": [(100, 90), (10, 0)]}, rows=2000)  # 10 s, stopped 80 s, 10 s
    assert _rates(client)["app.t"] == pytest.approx(100.0, rel=0.1)


def _count(engine: str, klass: str) -> float:
    return metrics.ENGINE_ERRORS.labels(engine, klass)._value.get()


def test_an_apply_whose_retries_ran_out_is_not_counted_as_a_permanent_error(client: Client) -> None:
    apply_id = client.submit_apply("local", "direct", ["ALTER TABLE t ADD COLUMN c INT"]).apply_id

    def retryable(session: Any) -> None:
        apply = session.scalars(sa.select(Apply).where(Apply.apply_id == apply_id)).one()
        apply.state, apply.attempt, apply.error = "failed_retryable", 3, "connection refused"

    client.runtime.db.run(retryable)
    assert events.drain()
    before = (_count("direct", "permanent"), _count("direct", "retry_exhausted"))
    assert sweep.expire_retryables(client.runtime.db, retry_budget=3, max_age=86400) == [apply_id]
    assert events.drain()  # observed from the committed audit entry, as in a worker
    after = (_count("direct", "permanent"), _count("direct", "retry_exhausted"))
    assert after == (before[0], before[1] + 1)


@pytest.mark.parametrize("error", [LeaseLost("fenced out"), StorageUnavailable("state db down")])
def test_an_exited_tick_is_counted_under_its_engine_and_a_fenced_out_one_not_at_all(
    client: Client, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    apply_id = client.submit_apply("local", "direct", ["ALTER TABLE t ADD COLUMN c INT"]).apply_id
    monkeypatch.setattr(driver.leases, "begin_tick", lambda *a, **k: True)
    monkeypatch.setattr(driver, "_note_exit", lambda *a, **k: None)

    def exits(self: Any, snap: Any) -> None:  # after the tick has read the apply
        raise error

    monkeypatch.setattr(driver._Tick, "_current_operation", exits)
    before = {e: _count(e, "infrastructure") for e in ("direct", "unknown")}
    assert driver.tick(client.runtime, apply_id, 1, 0) == driver.TickOutcome.EXITED
    after = {e: _count(e, "infrastructure") for e in ("direct", "unknown")}
    expected = 0 if isinstance(error, LeaseLost) else 1
    assert after == {"direct": before["direct"] + expected, "unknown": before["unknown"]}
