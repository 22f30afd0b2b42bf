"""An apply whose tables run on different engines (issue 13 §2; docs/architecture.md §5.10, S28,
S29): orchestration with real storage (SQLite, MariaDB) and two fake engines, `fake` (copies,
defers a cutover when asked) and `fakenative` (declares itself native, like direct).
The same through the real engines and a real worker: tests/integration/test_mixed_engines_real.py
and tests/chaos/test_mixed_engine_workers.py."""

from __future__ import annotations

import pytest

from schemabot import metrics
from schemabot.api import ChangeSet
from schemabot.errors import ValidationError
from schemabot.recovery import recovery_sweep
from schemabot.runtime import Runtime
from schemabot.status_text import render
from schemabot.storage import reads
from tests.support.fake_engine import FakeTarget
from tests.support.harness import RecordingDispatcher, deliver, kill_owner, pump
from tests.support.steps import client, run_until, status

THREE_TABLES = [
    ChangeSet(
        namespace="app",
        ddl=[
            "ALTER TABLE t1 MODIFY id BIGINT",
            "ALTER TABLE t2 ADD COLUMN c INT",
            "ALTER TABLE t3 MODIFY id BIGINT",
        ],
    )
]
CHOICES = [
    ("fake", "the server would copy the table"),
    ("fakenative", "the server changes it instantly"),
    ("fake", "the server would copy the table"),
]


def _submit_mixed(rt: Runtime, **options: object) -> str:
    return client(rt).submit_apply("fake", "auto", THREE_TABLES, engine_choices=CHOICES, **options).apply_id


def _engine_of_calls(fake_target: FakeTarget, method: str) -> list[tuple[str, str]]:
    return [(c["context"], c["engine"]) for c in fake_target.calls(method)]


def test_s28_each_operation_of_a_mixed_apply_goes_to_its_own_engine_native_first(
    rt: Runtime, dispatcher: RecordingDispatcher, fake_target: FakeTarget
) -> None:
    apply_id = _submit_mixed(rt)
    st = status(rt, apply_id)
    assert st.engine == "auto"
    # Stored per task, with the reason; the native task runs first, the others in the order given.
    assert [(t.table, t.engine, t.engine_reason) for t in st.tasks] == [
        ("t2", "fakenative", "the server changes it instantly"),
        ("t1", "fake", "the server would copy the table"),
        ("t3", "fake", "the server would copy the table"),
    ]
    text = render(st, st.tasks)
    assert "engine=fakenative (the server changes it instantly)" in text
    ops = reads.snapshot(rt.db, apply_id).operations
    assert [o.context for o in ops] == [t.task_id for t in st.tasks]  # not atomic: one each

    final = run_until(rt, dispatcher, apply_id, "completed", "failed")
    assert final.state == "completed", final
    by_task = {t.task_id: t.engine for t in final.tasks}
    assert _engine_of_calls(fake_target, "apply") == [(t.task_id, by_task[t.task_id]) for t in final.tasks]
    assert {c for c, e in _engine_of_calls(fake_target, "progress")} == set(by_task)
    assert all(by_task[c] == e for c, e in _engine_of_calls(fake_target, "progress"))
    submitted = next(e for e in client(rt).log(apply_id) if e.event == "submitted")
    assert "per task: 1 on fakenative, 2 on fake" in (submitted.message or "")


def test_s28_a_deferred_mixed_apply_waits_only_for_the_copying_engines_cutover(
    rt: Runtime, dispatcher: RecordingDispatcher, fake_target: FakeTarget
) -> None:
    apply_id = _submit_mixed(rt, defer_cutover=True)
    ops = reads.snapshot(rt.db, apply_id).operations
    st = status(rt, apply_id)
    # The native task alone (never deferred, never grouped); the copying engine's two tables are
    # one operation (the one predicate: deferred means grouped), context = the apply id.
    assert [o.context for o in ops] == [st.tasks[0].task_id, apply_id]

    waiting = run_until(rt, dispatcher, apply_id, "waiting_for_cutover", "failed")
    assert [(t.table, t.state) for t in waiting.tasks] == [
        ("t2", "completed"),  # a native change is live once its statement returns
        ("t1", "waiting_for_cutover"),
        ("t3", "waiting_for_cutover"),
    ]
    defer_seen = {(c["engine"], c["defer_cutover"]) for c in fake_target.calls()}
    assert defer_seen == {("fakenative", 0), ("fake", 1)}
    assert client(rt).wait(apply_id, timeout=1).state == "waiting_for_cutover"  # as asked

    # The owner dies while waiting: the copying engine's operation re-proves readiness (S20).
    kill_owner(rt, dispatcher, apply_id)
    assert recovery_sweep(rt).claimed
    run_until(rt, dispatcher, apply_id, "recovering")
    run_until(rt, dispatcher, apply_id, "waiting_for_cutover")
    client(rt).request_control(apply_id, "cutover")
    final = run_until(rt, dispatcher, apply_id, "completed", "failed")
    assert final.state == "completed"
    [cutover] = fake_target.calls("cutover")
    assert (cutover["engine"], cutover["context"]) == ("fake", apply_id)
    assert fake_target.work(st.tasks[0].task_id)["created"] == 1
    assert fake_target.work(apply_id)["created"] == 1


def test_s29_an_owner_lost_between_two_engines_resumes_at_the_next_operation(
    rt: Runtime, dispatcher: RecordingDispatcher, fake_target: FakeTarget
) -> None:
    apply_id = _submit_mixed(rt)
    first = status(rt, apply_id).tasks[0]
    pump(rt, dispatcher, until=lambda: status(rt, apply_id).tasks[0].state == "completed")
    assert [t.state for t in status(rt, apply_id).tasks] == ["completed", "pending", "pending"]
    calls_before = len(fake_target.calls())

    kill_owner(rt, dispatcher, apply_id)
    assert [c.apply_id for c in recovery_sweep(rt).claimed] == [apply_id]
    final = run_until(rt, dispatcher, apply_id, "completed", "failed")
    assert final.state == "completed"
    after = fake_target.calls()[calls_before:]
    assert first.task_id not in {c["context"] for c in after}  # the native task is not run again
    assert [(c["context"], c["engine"]) for c in after if c["method"] == "apply"] == [
        (t.task_id, "fake") for t in final.tasks[1:]
    ]
    assert all(fake_target.work(t.task_id)["created"] == 1 for t in final.tasks)


def test_s29_an_owner_lost_inside_the_native_operation_reattaches_it_with_its_own_engine(
    rt: Runtime, dispatcher: RecordingDispatcher, fake_target: FakeTarget
) -> None:
    apply_id = _submit_mixed(rt)
    first = status(rt, apply_id).tasks[0]
    pump(rt, dispatcher, until=lambda: bool(fake_target.calls("progress")))
    kill_owner(rt, dispatcher, apply_id)
    assert [c.apply_id for c in recovery_sweep(rt).claimed] == [apply_id]
    deliver(rt, dispatcher.take())  # type: ignore[arg-type]
    reattach = fake_target.calls("apply")[-1]
    assert (reattach["context"], reattach["engine"]) == (first.task_id, "fakenative")
    assert run_until(rt, dispatcher, apply_id, "completed", "failed").state == "completed"
    assert fake_target.work(first.task_id)["created"] == 1


def test_stop_and_start_move_every_unfinished_task_and_go_to_the_current_operations_engine(
    rt: Runtime, dispatcher: RecordingDispatcher, fake_target: FakeTarget
) -> None:
    fake_target.set_knob("rows_total", 20)
    apply_id = _submit_mixed(rt)
    pump(rt, dispatcher, until=lambda: status(rt, apply_id).tasks[1].state == "running")
    client(rt).request_control(apply_id, "stop")
    stopped = run_until(rt, dispatcher, apply_id, "stopped")
    assert [t.state for t in stopped.tasks] == ["completed", "stopped", "stopped"]
    [stop] = fake_target.calls("stop")
    assert (stop["engine"], stop["context"]) == ("fake", stopped.tasks[1].task_id)
    gauges = rt.db.run(metrics._read_state, write=False)["tasks"]  # per-task metrics: own engine
    assert {(g["table_name"], g["engine"]) for g in gauges} == {("t1", "fake"), ("t3", "fake")}

    client(rt).request_control(apply_id, "start")
    pump(rt, dispatcher, until=lambda: status(rt, apply_id).state == "completed")
    [start] = fake_target.calls("start")
    assert (start["engine"], start["context"]) == ("fake", stopped.tasks[1].task_id)


def test_cancel_keeps_the_native_change_that_already_ran_and_cancels_the_rest(
    rt: Runtime, dispatcher: RecordingDispatcher, fake_target: FakeTarget
) -> None:
    fake_target.set_knob("rows_total", 20)
    apply_id = _submit_mixed(rt)
    pump(rt, dispatcher, until=lambda: status(rt, apply_id).tasks[1].state == "running")
    client(rt).request_control(apply_id, "cancel")
    final = run_until(rt, dispatcher, apply_id, "cancelled")
    assert [t.state for t in final.tasks] == ["completed", "cancelled", "cancelled"]
    [cancel] = fake_target.calls("cancel")
    assert (cancel["engine"], cancel["context"]) == ("fake", final.tasks[1].task_id)


def test_auto_with_one_engine_for_every_table_is_an_apply_of_that_engine(
    rt: Runtime, dispatcher: RecordingDispatcher
) -> None:
    same = [("fake", "copy")] * 3
    apply_id = client(rt).submit_apply("fake", "auto", THREE_TABLES, engine_choices=same).apply_id
    st = status(rt, apply_id)
    assert st.engine == "fake" and [t.table for t in st.tasks] == ["t1", "t2", "t3"]
    assert {(t.engine, t.engine_reason) for t in st.tasks} == {("fake", "copy")}
    explicit = client(rt).submit_apply(
        "fake", "fake", [ChangeSet(namespace="other", ddl=["ALTER TABLE t9 ADD COLUMN c INT"])]
    )
    [task] = status(rt, explicit.apply_id).tasks
    assert (task.engine, task.engine_reason) == ("fake", None)  # named by the user: no reason
    head, line = render(status(rt, explicit.apply_id), [task]).splitlines()
    assert "engine=fake" in head and "engine=" not in line


@pytest.mark.parametrize(
    ("engine", "choices", "message"),
    [
        ("auto", None, "chooses per table from a plan"),
        ("auto", [("fake", "x")], "1 entries for 3 DDL statements"),
        ("auto", [("fake", "x"), ("fakevitess", "y"), ("fake", "x")], "only MySQL engines mix"),
        ("auto", [("fake", "x"), ("nope", "y"), ("fake", "x")], "unknown engine 'nope'"),
        ("fake", [("fake", "x")] * 3, "only taken with engine 'auto'"),
        ("auto", [("fake", "x"), ("fakenative", "y"), ("fakecopy", "z")], "at most one may copy"),
    ],
)
def test_a_mixed_submit_that_cannot_run_is_refused_and_nothing_is_stored(
    rt: Runtime, engine: str, choices: list[tuple[str, str]] | None, message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        client(rt).submit_apply("fake", engine, THREE_TABLES, engine_choices=choices)
    assert client(rt).list_applies() == []


def test_a_task_stored_before_migration_0006_runs_on_the_applys_engine(
    rt: Runtime, dispatcher: RecordingDispatcher, fake_target: FakeTarget
) -> None:
    import sqlalchemy as sa

    from schemabot.storage.models import Task

    apply_id = client(rt).submit_apply("fake", "fake", THREE_TABLES).apply_id
    rt.db.run(lambda s: s.execute(sa.update(Task).where(Task.apply_id == apply_id).values(engine=None)))
    assert {t.engine for t in status(rt, apply_id).tasks} == {"fake"}  # shown as the apply's
    assert run_until(rt, dispatcher, apply_id, "completed", "failed").state == "completed"
    assert {c["engine"] for c in fake_target.calls()} == {"fake"}
