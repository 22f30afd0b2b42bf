"""An apply whose driver dies on every tick is parked, not re-driven forever (docs/architecture.md
§10 S30; issue 10 §4), and the sweep's writes keep the same columns as the driver's (issue 15 §5).

In-process: a driver "dies" here as it does in a worker killed mid-step: its tick began (the
message's sequence is spent, `leases.begin_tick`), then nothing more is written, its queued
messages vanish and its lease runs out. The real-process twin, with SIGKILLed workers, is
tests/chaos/test_orphan_limit_workers.py.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from schemabot.recovery import recovery_sweep
from schemabot.runtime import Runtime
from schemabot.storage import leases, reads
from schemabot.storage.clock import db_now
from schemabot.storage.models import Apply, Task
from tests.support.fake_engine import FakeTarget
from tests.support.harness import RecordingDispatcher, deliver, kill_owner
from tests.support.steps import client, run_until, status, submit

LIMIT = 2


def _limited(rt: Runtime, limit: int = LIMIT) -> None:
    rt.settings = rt.settings.model_copy(update={"orphan_claim_limit": limit})


def _die_in_next_tick(rt: Runtime, dispatcher: RecordingDispatcher, apply_id: str) -> None:
    """The next message is delivered to a worker that begins the tick and is killed in it."""
    message = dispatcher.take()
    assert message is not None and message.name in ("poll_progress", "resume_apply"), message
    apply_id_, token, seq = message.args
    assert leases.begin_tick(rt.db, apply_id_, token, seq, "doomed-worker:1", rt.settings.lease_ttl)
    kill_owner(rt, dispatcher, apply_id)


def _attach_then_die(rt: Runtime, dispatcher: RecordingDispatcher, apply_id: str) -> None:
    """A new owner's first tick reattaches (that works), its next tick dies in the engine step."""
    resume = dispatcher.take()
    assert resume is not None and resume.name == "resume_apply", resume
    deliver(rt, resume)
    _die_in_next_tick(rt, dispatcher, apply_id)


def _orphan_claims(rt: Runtime, apply_id: str) -> int:
    return reads.snapshot(rt.db, apply_id).apply.orphan_claims


def test_s30_an_apply_whose_driver_dies_every_tick_is_parked_and_adopt_drives_it_again(
    rt: Runtime, dispatcher: RecordingDispatcher, fake_target: FakeTarget
) -> None:
    _limited(rt)
    apply_id = submit(rt, "fake")
    deliver(rt, dispatcher.take())  # type: ignore[arg-type]  # start_apply: attached
    _die_in_next_tick(rt, dispatcher, apply_id)

    for n in range(1, LIMIT + 1):  # each death is claimed again, up to the limit
        report = recovery_sweep(rt)
        assert [(c.apply_id, c.reason) for c in report.claimed] == [(apply_id, "orphaned")]
        assert _orphan_claims(rt, apply_id) == n
        _attach_then_die(rt, dispatcher, apply_id)

    token_before = reads.snapshot(rt.db, apply_id).apply.lease_token
    tasks_before = [(t.task_id, t.state, t.rows_copied) for t in status(rt, apply_id).tasks]
    report = recovery_sweep(rt)
    assert [(c.apply_id, c.reason) for c in report.claimed] == [(apply_id, "parked")]
    assert dispatcher.take() is None  # nobody is sent to die again
    st = status(rt, apply_id)
    assert st.state == "needs_attention"
    assert st.attention is not None and f"died mid-tick {LIMIT + 1} times in a row" in st.attention
    assert f"schemabot adopt {apply_id}" in st.attention
    row = reads.snapshot(rt.db, apply_id).apply
    assert row.lease_token == token_before + 1 and row.lease_expires_at is None  # fenced, released
    parked = [e for e in client(rt).log(apply_id) if e.new_state == "needs_attention"]
    assert len(parked) == 1 and parked[0].detail == {"reason": "orphan_limit", "orphan_claims": LIMIT}
    assert recovery_sweep(rt).claimed == []  # parked means parked: the sweep leaves it alone
    assert [(t.task_id, t.state, t.rows_copied) for t in status(rt, apply_id).tasks] == tasks_before

    # The operator's way out: adopt (after fixing the cause) drives it again from where it was.
    client(rt).request_control(apply_id, "adopt")
    wake = dispatcher.take()  # an ownerless apply's request wakes the sweep at once
    assert wake is not None and wake.name == "recovery_sweep"
    assert [c.reason for c in deliver(rt, wake).claimed] == ["orphaned"]  # the requested claim
    deliver(rt, dispatcher.take())  # type: ignore[arg-type]  # carries the adopt out
    assert _orphan_claims(rt, apply_id) == 0
    assert [e.message for e in client(rt).log(apply_id) if e.event == "control"][-1] == (
        "adopt: done: adopted: driving it again"
    )
    final = run_until(rt, dispatcher, apply_id, "completed", "failed")
    assert final.state == "completed" and final.attention is None
    assert fake_target.created_total() == 1  # reattached every time, never created twice


def test_a_report_that_moves_the_apply_on_clears_the_count(
    rt: Runtime, dispatcher: RecordingDispatcher, fake_target: FakeTarget
) -> None:
    """Workers that die now and then, with the copy moving on between deaths, are no poison."""
    _limited(rt)
    fake_target.set_knob("rows_total", 40)
    apply_id = submit(rt, "fake")
    deliver(rt, dispatcher.take())  # type: ignore[arg-type]
    for _ in range(LIMIT * 3):
        _die_in_next_tick(rt, dispatcher, apply_id)
        assert [c.reason for c in recovery_sweep(rt).claimed] == ["orphaned"]
        assert _orphan_claims(rt, apply_id) == 1
        deliver(rt, dispatcher.take())  # type: ignore[arg-type]  # reattach
        deliver(rt, dispatcher.take())  # type: ignore[arg-type]  # a step that copies rows
        assert _orphan_claims(rt, apply_id) == 0
    assert run_until(rt, dispatcher, apply_id, "completed").state == "completed"


def test_lost_resume_messages_and_deliberate_exits_are_not_deaths(
    rt: Runtime, dispatcher: RecordingDispatcher, fake_target: FakeTarget
) -> None:
    """A claim whose message never ran (a broker outage) and a tick that exits on purpose (an
    infrastructure error inside the step) do not count: only a driver that died does."""
    _limited(rt, 1)
    apply_id = submit(rt, "fake")
    deliver(rt, dispatcher.take())  # type: ignore[arg-type]
    _die_in_next_tick(rt, dispatcher, apply_id)
    for _ in range(4):  # the broker loses every resume message: claimed again, never parked
        assert [c.reason for c in recovery_sweep(rt).claimed] == ["orphaned"]
        kill_owner(rt, dispatcher, apply_id)
    assert _orphan_claims(rt, apply_id) == 1
    fake_target.inject("progress", "broker", times=4, message="restarting")
    for _ in range(4):  # the tick exits without writing (InfrastructureUnavailable)
        assert [c.reason for c in recovery_sweep(rt).claimed] == ["orphaned"]
        deliver(rt, dispatcher.take())  # type: ignore[arg-type]  # reattach
        deliver(rt, dispatcher.take())  # type: ignore[arg-type]  # the step: broker error, exit
        assert dispatcher.take() is None
        kill_owner(rt, dispatcher, apply_id)
    assert status(rt, apply_id).state != "needs_attention"
    assert _orphan_claims(rt, apply_id) == 1
    recovery_sweep(rt)
    assert run_until(rt, dispatcher, apply_id, "completed").state == "completed"


def test_cancel_of_an_apply_parked_by_the_limit_lets_the_engine_clean_up(
    rt: Runtime, dispatcher: RecordingDispatcher, fake_target: FakeTarget
) -> None:
    _limited(rt, 1)
    apply_id = submit(rt, "fake")
    deliver(rt, dispatcher.take())  # type: ignore[arg-type]
    _die_in_next_tick(rt, dispatcher, apply_id)
    recovery_sweep(rt)
    _attach_then_die(rt, dispatcher, apply_id)
    assert [c.reason for c in recovery_sweep(rt).claimed] == ["parked"]

    client(rt).request_control(apply_id, "cancel")
    final = run_until(rt, dispatcher, apply_id, "cancelled")  # woken by the request itself
    assert final.state == "cancelled"
    assert len(fake_target.calls("cancel")) == 1  # the engine removed what it had set up


# -- issue 15 §5: the sweep's writes are the driver's writes ------------------------------------


def _age(rt: Runtime, apply_id: str) -> None:
    """Push every timestamp of the apply and its tasks an hour back, so a write shows."""
    old = db_now(-3600)
    rt.db.run(
        lambda s: (
            s.execute(sa.update(Apply).where(Apply.apply_id == apply_id).values(updated_at=old)),
            s.execute(sa.update(Task).where(Task.apply_id == apply_id).values(updated_at=old)),
        )
    )


def _recent(moment: datetime | None, rt: Runtime) -> bool:
    now = rt.db.run(lambda s: s.scalar(sa.select(db_now())), write=False)
    return moment is not None and abs((now - moment).total_seconds()) < 600


def test_a_sweep_claim_sets_updated_at(rt: Runtime, dispatcher: RecordingDispatcher) -> None:
    apply_id = submit(rt, "fake")
    deliver(rt, dispatcher.take())  # type: ignore[arg-type]
    kill_owner(rt, dispatcher, apply_id)
    _age(rt, apply_id)
    assert [c.reason for c in recovery_sweep(rt).claimed] == ["orphaned"]
    assert _recent(reads.snapshot(rt.db, apply_id).apply.updated_at, rt)


def test_expiry_past_the_retry_budget_sets_the_timestamps_of_the_apply_and_its_tasks(
    rt: Runtime, dispatcher: RecordingDispatcher, fake_target: FakeTarget
) -> None:
    rt.settings = rt.settings.model_copy(update={"retry_budget": 1})
    apply_id = submit(rt, "fake")
    fake_target.inject("apply", "retryable", message="target busy")
    deliver(rt, dispatcher.take())  # type: ignore[arg-type]
    assert status(rt, apply_id).state == "failed_retryable"
    _age(rt, apply_id)

    assert recovery_sweep(rt).expired == [apply_id]
    snap = reads.snapshot(rt.db, apply_id)
    assert snap.apply.state == "failed"
    assert _recent(snap.apply.updated_at, rt) and _recent(snap.apply.completed_at, rt)
    for task in snap.tasks:
        assert task.state == "cancelled"
        assert _recent(task.updated_at, rt) and _recent(task.completed_at, rt)
        assert task.completed_at == task.updated_at


def test_a_cancel_whose_engine_call_kills_the_worker_too_ends_without_the_engine(
    rt: Runtime, dispatcher: RecordingDispatcher, fake_target: FakeTarget
) -> None:
    """The operator's request must not loop either: when the engine's cancel of an apply parked
    by the limit kills its worker as well, the next owner cancels without calling the engine."""
    _limited(rt, 1)
    apply_id = submit(rt, "fake")
    deliver(rt, dispatcher.take())  # type: ignore[arg-type]
    _die_in_next_tick(rt, dispatcher, apply_id)
    recovery_sweep(rt)
    _attach_then_die(rt, dispatcher, apply_id)
    assert [c.reason for c in recovery_sweep(rt).claimed] == ["parked"]

    client(rt).request_control(apply_id, "cancel")
    wake = dispatcher.take()
    assert wake is not None and wake.name == "recovery_sweep"
    deliver(rt, wake)  # claims it for the request
    _die_in_next_tick(rt, dispatcher, apply_id)  # the owner dies inside the engine's cancel
    assert status(rt, apply_id).state == "needs_attention"
    assert [c.reason for c in recovery_sweep(rt).claimed] == ["orphaned"]  # the request, again
    final = run_until(rt, dispatcher, apply_id, "cancelled")
    assert fake_target.calls("cancel") == []
    done = [e.message for e in client(rt).log(apply_id) if e.event == "control"][-1] or ""
    assert "the engine's own cancel died with its worker too" in done
    assert final.state == "cancelled"


def _backoff_passed(rt: Runtime, apply_id: str) -> None:
    rt.db.run(
        lambda s: s.execute(sa.update(Apply).where(Apply.apply_id == apply_id).values(retry_after=db_now(-1)))
    )


def test_a_vitess_apply_waiting_for_the_provider_whose_retries_kill_the_worker_is_parked(
    rt: Runtime, dispatcher: RecordingDispatcher, fake_target: FakeTarget
) -> None:
    """waiting_for_provider is retried whatever the attempt (its work may be in flight on the
    provider), so without the limit a retry that kills its worker took one worker per backoff,
    forever. It is parked like an active apply; `adopt` drives it again and it completes."""
    _limited(rt)
    apply_id = submit(rt, "fakevitess", skip_revert=True)
    run_until(rt, dispatcher, apply_id, "running")
    fake_target.inject("progress", "retryable", times=1, message="HTTP 500 from the provider")
    run_until(rt, dispatcher, apply_id, "waiting_for_provider")

    for n in range(LIMIT + 1):  # each retry is handed to a worker that dies inside it
        _backoff_passed(rt, apply_id)
        report = recovery_sweep(rt)
        assert [(c.apply_id, c.reason) for c in report.claimed] == [(apply_id, "retry")], n
        _die_in_next_tick(rt, dispatcher, apply_id)
        assert status(rt, apply_id).state == "waiting_for_provider"
    assert _orphan_claims(rt, apply_id) == LIMIT

    _backoff_passed(rt, apply_id)
    report = recovery_sweep(rt)
    assert [(c.apply_id, c.reason) for c in report.claimed] == [(apply_id, "parked")]
    assert dispatcher.take() is None  # nobody is sent to die again
    st = status(rt, apply_id)
    assert st.state == "needs_attention" and st.attention is not None
    assert f"died mid-tick {LIMIT + 1} times in a row" in st.attention
    _backoff_passed(rt, apply_id)
    assert recovery_sweep(rt).claimed == []

    client(rt).request_control(apply_id, "adopt")
    final = run_until(rt, dispatcher, apply_id, "completed")
    assert final.state == "completed", final.error
    assert fake_target.created_total() == 1  # one deploy request through it all
