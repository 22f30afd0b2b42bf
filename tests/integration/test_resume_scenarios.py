"""Recovery scenarios about engine resume state and dispatch (docs/architecture.md §10: S1-S12), orchestration
level: real storage (SQLite and MariaDB), the recording fake engine, messages played in-process.
The same scenarios with the real engines live beside those engines' tests."""

from __future__ import annotations

import json

import sqlalchemy as sa

from schemabot import driver
from schemabot.api import ChangeSet
from schemabot.driver import TickOutcome
from schemabot.recovery import recovery_sweep
from schemabot.runtime import Runtime
from schemabot.storage.models import ApplyOperation
from tests.support.fake_engine import FakeTarget
from tests.support.harness import FaultyDatabase, RecordingDispatcher, deliver, durable_view, kill_owner
from tests.support.steps import (
    clear_resume_state,
    client,
    operation,
    run_until,
    set_apply_state,
    set_task_operation,
    status,
    submit,
)

TWO_KEYSPACES = [
    ChangeSet(namespace="ks1", ddl=["ALTER TABLE a ADD COLUMN c INT", "CREATE TABLE b (id INT PRIMARY KEY)"]),
    ChangeSet(namespace="ks2", ddl=["ALTER TABLE d ADD COLUMN e INT"]),
]


def orphan(
    rt: Runtime,
    dispatcher: RecordingDispatcher,
    engine: str,
    changes: list[ChangeSet] | None = None,
    **options: object,
) -> str:
    """Submit, drive until running, then let its worker die (messages lost, lease expired)."""
    apply_id = submit(rt, engine, changes, **options)
    run_until(rt, dispatcher, apply_id, "running")
    kill_owner(rt, dispatcher, apply_id)
    return apply_id


def untouched(view: dict[str, object]) -> dict[str, object]:
    """The durable view without the apply's own state: what fail-closed must leave alone while
    it shows the apply as needing attention."""
    return {k: v for k, v in view.items() if k != "apply"}


def resume_tick(rt: Runtime, dispatcher: RecordingDispatcher) -> TickOutcome:
    """One sweep claims the orphan; its resume message is delivered. Returns that tick's outcome."""
    report = recovery_sweep(rt)
    assert len(report.claimed) == 1, report
    message = dispatcher.take()
    assert message is not None and message.name == "resume_apply"
    return driver.tick(rt, *message.args)


def test_s1_grouped_resume_hands_the_engine_exactly_the_persisted_state(
    rt: Runtime, dispatcher: RecordingDispatcher, fake_target: FakeTarget
) -> None:
    apply_id = submit(rt, "fakevitess", TWO_KEYSPACES)
    run_until(rt, dispatcher, apply_id, "running")
    persisted = operation(rt, apply_id).resume_context
    assert persisted is not None
    kill_owner(rt, dispatcher, apply_id)

    assert resume_tick(rt, dispatcher) is TickOutcome.CONTINUES
    applies = fake_target.calls("apply")
    assert json.loads(applies[-1]["resume_state"]) == persisted
    assert fake_target.created_total() == 1
    run_until(rt, dispatcher, apply_id, "completed", "revert_window")


def test_s2_grouped_mysql_resume_without_state_passes_the_context_alone(
    rt: Runtime, dispatcher: RecordingDispatcher, fake_target: FakeTarget
) -> None:
    apply_id = orphan(rt, dispatcher, "fake", defer_cutover=True)
    clear_resume_state(rt, apply_id)

    resume_tick(rt, dispatcher)
    last = fake_target.calls("apply")[-1]
    assert (last["context"], json.loads(last["resume_state"])) == (apply_id, None)
    assert fake_target.created_total() == 1  # reattached through the target, not recreated


def test_s3_resume_state_read_failure_writes_nothing_and_skips_the_engine(
    rt: Runtime, dispatcher: RecordingDispatcher, fake_target: FakeTarget
) -> None:
    apply_id = orphan(rt, dispatcher, "fakevitess", TWO_KEYSPACES)
    before, calls_before = durable_view(rt.db, apply_id), len(fake_target.calls())
    assert isinstance(rt.db, FaultyDatabase)
    rt.db.failing.add("read_resume_state")

    assert resume_tick(rt, dispatcher) is TickOutcome.EXITED
    assert rt.db.failed == ["read_resume_state"]
    assert durable_view(rt.db, apply_id) == before
    assert len(fake_target.calls()) == calls_before
    assert dispatcher.messages == []  # no next tick: the lease expires, the sweep retries


def test_s4_vitess_tasks_not_linked_to_one_operation_write_nothing(
    rt: Runtime, dispatcher: RecordingDispatcher, fake_target: FakeTarget
) -> None:
    apply_id = orphan(rt, dispatcher, "fakevitess", TWO_KEYSPACES)
    set_task_operation(rt, apply_id, None)
    before, calls_before = durable_view(rt.db, apply_id), len(fake_target.calls())

    assert resume_tick(rt, dispatcher) is TickOutcome.FINISHED
    assert untouched(durable_view(rt.db, apply_id)) == untouched(before)
    assert len(fake_target.calls()) == calls_before
    st = status(rt, apply_id)
    assert st.state == "needs_attention" and "not linked to exactly one operation" in (st.attention or "")


def test_s4_mysql_tasks_not_linked_fall_back_to_the_context_alone(
    rt: Runtime, dispatcher: RecordingDispatcher, fake_target: FakeTarget
) -> None:
    apply_id = orphan(rt, dispatcher, "fake", TWO_KEYSPACES[:1], defer_cutover=True)
    set_task_operation(rt, apply_id, "op-unknown")

    assert resume_tick(rt, dispatcher) is TickOutcome.CONTINUES
    last = fake_target.calls("apply")[-1]
    assert (last["context"], json.loads(last["resume_state"])) == (apply_id, None)


def test_s5_saving_the_state_after_a_reattach_fails_then_the_next_owner_reattaches(
    rt: Runtime, dispatcher: RecordingDispatcher, fake_target: FakeTarget
) -> None:
    apply_id = orphan(rt, dispatcher, "fakevitess", TWO_KEYSPACES)
    before = durable_view(rt.db, apply_id)
    assert isinstance(rt.db, FaultyDatabase)
    rt.db.failing.add("record_attach")

    assert resume_tick(rt, dispatcher) is TickOutcome.EXITED
    assert len(fake_target.calls("apply")) == 2  # the engine did accept the reattach
    assert durable_view(rt.db, apply_id) == before  # ... but nothing was written
    assert status(rt, apply_id).state == "running"

    rt.db.failing.clear()
    kill_owner(rt, dispatcher, apply_id)
    resume_tick(rt, dispatcher)
    final = run_until(rt, dispatcher, apply_id, "completed", "revert_window")
    assert final.state in ("completed", "revert_window")
    assert fake_target.created_total() == 1


def test_s6_vitess_reattach_accepted_without_state_writes_nothing(
    rt: Runtime, dispatcher: RecordingDispatcher, fake_target: FakeTarget
) -> None:
    apply_id = orphan(rt, dispatcher, "fakevitess", TWO_KEYSPACES)
    before = durable_view(rt.db, apply_id)
    fake_target.inject("apply", "no_state")

    assert resume_tick(rt, dispatcher) is TickOutcome.EXITED
    assert durable_view(rt.db, apply_id) == before
    assert status(rt, apply_id).state == "running"


def test_s7_returned_state_is_persisted_and_reaches_the_next_progress_poll(
    rt: Runtime, dispatcher: RecordingDispatcher, fake_target: FakeTarget
) -> None:
    apply_id = orphan(rt, dispatcher, "fakevitess", TWO_KEYSPACES)
    resume_tick(rt, dispatcher)  # attach: the engine returns a state
    returned = operation(rt, apply_id).resume_context
    assert returned == {
        "format": 1,
        "context": apply_id,
        "phase": "copy",
        "rows_done": 2,
        "branch": f"sb-{apply_id}",
        "deploy_request": 1,
    }
    message = dispatcher.take()
    assert message is not None and message.name == "poll_progress"
    driver.tick(rt, *message.args)
    assert json.loads(fake_target.calls("progress")[-1]["resume_state"]) == returned


def test_s8_vitess_state_missing_past_branch_preparation_fails_closed(
    rt: Runtime, dispatcher: RecordingDispatcher, fake_target: FakeTarget
) -> None:
    apply_id = orphan(rt, dispatcher, "fakevitess", TWO_KEYSPACES)
    clear_resume_state(rt, apply_id)
    before, calls_before = durable_view(rt.db, apply_id), len(fake_target.calls())

    assert resume_tick(rt, dispatcher) is TickOutcome.FINISHED
    assert len(fake_target.calls()) == calls_before  # the engine was not called
    assert untouched(durable_view(rt.db, apply_id)) == untouched(before)  # tasks, operation as they were
    assert fake_target.created_total() == 1


def test_s8_vitess_state_missing_while_preparing_branch_takes_the_fresh_path(
    rt: Runtime, dispatcher: RecordingDispatcher, fake_target: FakeTarget
) -> None:
    # The first owner dies right after attaching: the branch is named, nothing is deployed yet.
    apply_id = submit(rt, "fakevitess", TWO_KEYSPACES)
    deliver(rt, dispatcher.take())  # type: ignore[arg-type]
    kill_owner(rt, dispatcher, apply_id)
    clear_resume_state(rt, apply_id)
    set_apply_state(rt, apply_id, "preparing_branch")

    assert resume_tick(rt, dispatcher) is TickOutcome.CONTINUES
    assert json.loads(fake_target.calls("apply")[-1]["resume_state"]) is None
    assert operation(rt, apply_id).resume_context["branch"] == f"sb-{apply_id}"  # the same name
    assert fake_target.created_total() == 1


# -- issue 11: empty states, fail-closed made visible ------------------------------------------


def test_an_empty_state_from_an_accepted_reattach_never_overwrites_the_stored_one(
    rt: Runtime, dispatcher: RecordingDispatcher, fake_target: FakeTarget
) -> None:
    apply_id = orphan(rt, dispatcher, "fakevitess", TWO_KEYSPACES)
    persisted = operation(rt, apply_id).resume_context
    before = durable_view(rt.db, apply_id)
    fake_target.inject("apply", "empty_state")  # accepted, but the state names nothing

    assert resume_tick(rt, dispatcher) is TickOutcome.EXITED  # handled like no state at all
    assert durable_view(rt.db, apply_id) == before
    assert operation(rt, apply_id).resume_context == persisted  # deploy request #1 still named

    kill_owner(rt, dispatcher, apply_id)
    resume_tick(rt, dispatcher)
    final = run_until(rt, dispatcher, apply_id, "completed", "revert_window", "failed")
    assert final.state in ("completed", "revert_window"), final.error
    assert fake_target.created_total() == 1


def test_a_saved_empty_state_past_branch_preparation_fails_closed_like_a_missing_one(
    rt: Runtime, dispatcher: RecordingDispatcher, fake_target: FakeTarget
) -> None:
    apply_id = orphan(rt, dispatcher, "fakevitess", TWO_KEYSPACES)
    rt.db.run(
        lambda s: s.execute(
            sa.update(ApplyOperation).where(ApplyOperation.apply_id == apply_id).values(resume_context={})
        )
    )
    calls_before = len(fake_target.calls())

    resume_tick(rt, dispatcher)
    assert len(fake_target.calls()) == calls_before  # the engine was not called
    assert fake_target.created_total() == 1  # no second deploy request
    assert status(rt, apply_id).state == "needs_attention"


def test_fail_closed_is_visible_logged_once_and_resolved_by_cancel(
    rt: Runtime, dispatcher: RecordingDispatcher, fake_target: FakeTarget
) -> None:
    apply_id = orphan(rt, dispatcher, "fakevitess", TWO_KEYSPACES)
    clear_resume_state(rt, apply_id)
    calls_before = len(fake_target.calls())

    resume_tick(rt, dispatcher)
    st = status(rt, apply_id)
    assert st.state == "needs_attention"
    assert "resume state is missing" in (st.attention or "")
    assert f"schemabot-apply: {apply_id}" in (st.attention or "")  # what to look for, by name
    assert st.to_dict()["attention"] == st.attention  # the HTTP status JSON carries it
    listed = {a.apply_id: a for a in client(rt).list_applies()}
    assert listed[apply_id].attention == st.attention

    for _ in range(3):  # later sweeps leave it alone: no claim, no new audit entry
        assert recovery_sweep(rt).claimed == []
    log = client(rt).log(apply_id)
    assert [e.event for e in log].count("claimed") == 1
    assert [e.new_state for e in log].count("needs_attention") == 1

    client(rt).request_control(apply_id, "cancel")  # wakes the sweep, which hands it an owner
    final = run_until(rt, dispatcher, apply_id, "cancelled", max_messages=20)
    assert [t.state for t in final.tasks] == ["cancelled"] * 3
    assert len(fake_target.calls()) == calls_before  # cancelled without calling the engine blind
    # Ending it went through the one writer of terminal states: completed_at is set and its
    # tables are free again (docs/architecture.md §8 invariant 9), so a new apply on them starts.
    assert final.completed_at is not None
    assert submit(rt, "fakevitess", TWO_KEYSPACES) != apply_id


def test_status_shows_the_outcome_of_the_last_resume(
    rt: Runtime, dispatcher: RecordingDispatcher, fake_target: FakeTarget
) -> None:
    apply_id = orphan(rt, dispatcher, "fakevitess", TWO_KEYSPACES)
    assert status(rt, apply_id).resume_outcome is None
    resume_tick(rt, dispatcher)
    assert status(rt, apply_id).resume_outcome == "reattached at row 2 of 10"


def test_s10_vschema_only_apply_resumes_with_one_flagged_namespace(
    rt: Runtime, dispatcher: RecordingDispatcher, fake_target: FakeTarget
) -> None:
    orphan(rt, dispatcher, "fakevitess", [ChangeSet(namespace="ks", vschema={"sharded": True})])
    resume_tick(rt, dispatcher)
    changes = json.loads(fake_target.calls("apply")[-1]["changes"])
    assert changes == [{"namespace": "ks", "vschema_changed": True, "tables": []}]


def test_s12_vitess_apply_resumes_through_one_grouped_engine_apply(
    rt: Runtime, dispatcher: RecordingDispatcher, fake_target: FakeTarget
) -> None:
    apply_id = orphan(rt, dispatcher, "fakevitess", TWO_KEYSPACES)
    resume_tick(rt, dispatcher)

    applies = fake_target.calls("apply")
    assert len(applies) == 2 and {a["context"] for a in applies} == {apply_id}
    assert json.loads(applies[-1]["changes"]) == [
        {
            "namespace": "ks1",
            "vschema_changed": False,
            "tables": [
                ["a", "ALTER TABLE a ADD COLUMN c INT", "alter"],
                ["b", "CREATE TABLE b (id INT PRIMARY KEY)", "create"],
            ],
        },
        {
            "namespace": "ks2",
            "vschema_changed": False,
            "tables": [["d", "ALTER TABLE d ADD COLUMN e INT", "alter"]],
        },
    ]


def test_s12_sequential_mysql_apply_runs_one_engine_operation_per_task(
    rt: Runtime, dispatcher: RecordingDispatcher, fake_target: FakeTarget
) -> None:
    apply_id = submit(rt, "fake", TWO_KEYSPACES)
    final = run_until(rt, dispatcher, apply_id, "completed")
    contexts = [c["context"] for c in fake_target.calls("apply")]
    assert contexts == [t.task_id for t in final.tasks]


def test_an_owner_that_exits_without_writing_still_says_why_in_status(
    rt: Runtime, dispatcher: RecordingDispatcher, fake_target: FakeTarget
) -> None:
    apply_id = orphan(rt, dispatcher, "fakevitess", TWO_KEYSPACES)
    before = durable_view(rt.db, apply_id)
    fake_target.inject("apply", "no_state", times=3)

    for _ in range(3):
        assert resume_tick(rt, dispatcher) is TickOutcome.EXITED
        assert durable_view(rt.db, apply_id) == before  # nothing of its progress is written
        kill_owner(rt, dispatcher, apply_id)
    st = status(rt, apply_id)
    assert st.state == "running" and "returned no resume state" in (st.attention or "")
    assert [e.event for e in client(rt).log(apply_id)].count("stuck") == 1  # once per reason

    resume_tick(rt, dispatcher)
    final = run_until(rt, dispatcher, apply_id, "completed", "revert_window", "failed")
    assert final.state in ("completed", "revert_window") and final.attention is None
