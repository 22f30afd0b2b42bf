"""Controls (docs/architecture.md §10: S20-S23), classification (S24-S27) and ownership rules that
need no worker process (S13, S18, S19, §8 invariant 2): real storage on SQLite and MariaDB, the fake
engine."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from engines.base import EngineState, ProgressResult, TableProgress
from schemabot import driver
from schemabot.api import ChangeSet
from schemabot.control_rules import check_request
from schemabot.driver import TickOutcome
from schemabot.errors import ControlRejected, LeaseLost
from schemabot.recovery import recovery_sweep
from schemabot.runtime import Runtime
from schemabot.settings import Settings
from schemabot.states import State
from schemabot.storage import fenced_writes, leases, reads
from schemabot.storage.control_requests import add_control
from schemabot.storage.database import Database
from schemabot.storage.models import Apply, ControlRequest
from tests.support.fake_engine import FakeTarget
from tests.support.harness import (
    FaultyDatabase,
    RecordingDispatcher,
    deliver,
    durable_view,
    kill_owner,
    pump,
)
from tests.support.steps import client, operation, run_until, status, submit


def _sweep_and_resume(rt: Runtime, dispatcher: RecordingDispatcher) -> None:
    report = recovery_sweep(rt)
    assert report.claimed, "the sweep claimed nothing"


# -- controls ---------------------------------------------------------------------------------


def test_s20_deferred_cutover_survives_a_restart_via_recovering(
    rt: Runtime, dispatcher: RecordingDispatcher, fake_target: FakeTarget
) -> None:
    apply_id = submit(rt, "fake", defer_cutover=True)
    run_until(rt, dispatcher, apply_id, "waiting_for_cutover")
    kill_owner(rt, dispatcher, apply_id)
    _sweep_and_resume(rt, dispatcher)

    st = run_until(rt, dispatcher, apply_id, "recovering")
    assert [t.state for t in st.tasks] == ["recovering"]
    with pytest.raises(ControlRejected, match="recovering after a restart"):
        client(rt).request_control(apply_id, "cutover")

    run_until(rt, dispatcher, apply_id, "waiting_for_cutover")
    client(rt).request_control(apply_id, "cutover")
    assert run_until(rt, dispatcher, apply_id, "completed").state == "completed"
    log = [e.message or "" for e in client(rt).log(apply_id)]
    assert any(m.startswith("reattached at row 10 of 10") for m in log), log


def test_s21_stop_restart_all_workers_then_start_continues_where_it_was(
    rt: Runtime, dispatcher: RecordingDispatcher, fake_target: FakeTarget
) -> None:
    fake_target.set_knob("rows_total", 20)
    apply_id = submit(rt, "fake")
    run_until(rt, dispatcher, apply_id, "running")
    deliver(rt, dispatcher.take())  # type: ignore[arg-type]
    client(rt).request_control(apply_id, "stop")
    st = run_until(rt, dispatcher, apply_id, "stopped")
    assert dispatcher.messages == []  # a stopped apply has no driver and no ticks
    rows_at_stop = fake_target.work(st.tasks[0].task_id)["rows_done"]
    assert 0 < rows_at_stop < 20

    dispatcher.drop_all()  # every worker restarts: nothing in flight
    assert recovery_sweep(rt).claimed == []  # a stopped apply is not an orphan
    client(rt).request_control(apply_id, "start")
    assert [m.name for m in dispatcher.messages] == ["recovery_sweep"]
    pump(rt, dispatcher, until=lambda: status(rt, apply_id).state == "completed")
    progress_rows = [c for c in fake_target.calls("progress")]
    assert fake_target.work(st.tasks[0].task_id)["created"] == 1
    assert len(progress_rows) <= 20 // 2 + 3  # continued, not restarted from row 0


def test_s22_stop_in_the_revert_window_is_refused(
    rt: Runtime, dispatcher: RecordingDispatcher, fake_target: FakeTarget
) -> None:
    apply_id = submit(rt, "fakevitess")
    run_until(rt, dispatcher, apply_id, "revert_window")
    with pytest.raises(ControlRejected, match="use revert or skip-revert"):
        client(rt).request_control(apply_id, "stop")
    client(rt).request_control(apply_id, "skip-revert")
    assert run_until(rt, dispatcher, apply_id, "completed").state == "completed"


def test_revert_in_the_window_reverts(rt: Runtime, dispatcher: RecordingDispatcher) -> None:
    apply_id = submit(rt, "fakevitess")
    run_until(rt, dispatcher, apply_id, "revert_window")
    client(rt).request_control(apply_id, "revert")
    assert run_until(rt, dispatcher, apply_id, "reverted").state == "reverted"


def test_s23_cutover_recorded_while_the_worker_was_dead_is_carried_out(
    rt: Runtime, dispatcher: RecordingDispatcher, fake_target: FakeTarget
) -> None:
    apply_id = submit(rt, "fake", defer_cutover=True)
    run_until(rt, dispatcher, apply_id, "waiting_for_cutover")
    kill_owner(rt, dispatcher, apply_id)
    client(rt).request_control(apply_id, "cutover")  # stored: nobody is alive to run it

    _sweep_and_resume(rt, dispatcher)
    run_until(rt, dispatcher, apply_id, "recovering")
    assert status(rt, apply_id).state == "recovering"  # held, not refused, while recovering
    assert run_until(rt, dispatcher, apply_id, "completed").state == "completed"
    cutovers = [c for c in fake_target.calls("cutover")]
    assert len(cutovers) == 1


def test_cancel_cleans_up_and_cancels_every_unfinished_task(
    rt: Runtime, dispatcher: RecordingDispatcher, fake_target: FakeTarget
) -> None:
    apply_id = submit(rt, "fake", [ChangeSet(namespace="n", ddl=["ALTER TABLE a ADD c INT", "DROP TABLE b"])])
    run_until(rt, dispatcher, apply_id, "running")
    client(rt).request_control(apply_id, "cancel")
    st = run_until(rt, dispatcher, apply_id, "cancelled")
    assert [t.state for t in st.tasks] == ["cancelled", "cancelled"]
    assert len(fake_target.calls("cancel")) == 1


def test_a_stop_the_engine_carries_out_as_a_cancel_ends_cancelled_not_stopped(
    rt: Runtime, dispatcher: RecordingDispatcher, fake_target: FakeTarget
) -> None:
    """A PlanetScale deploy cannot pause: its stop cancels. The apply must not sit in `stopped`
    waiting for a `start` the engine will refuse."""
    fake_target.set_knob("stop_cancels", True)
    apply_id = submit(rt, "fakevitess")
    run_until(rt, dispatcher, apply_id, "running")
    client(rt).request_control(apply_id, "stop")
    st = run_until(rt, dispatcher, apply_id, "cancelled", "stopped")
    assert st.state == "cancelled"
    assert [t.state for t in st.tasks] == ["cancelled"]


def test_a_repeated_control_is_stored_once(rt: Runtime, dispatcher: RecordingDispatcher) -> None:
    apply_id = submit(rt, "fake")
    run_until(rt, dispatcher, apply_id, "running")
    first = client(rt).request_control(apply_id, "stop")
    second = client(rt).request_control(apply_id, "stop")
    assert first.created and not second.created and first.control_id == second.control_id


def test_a_control_still_pending_when_the_apply_ends_is_refused_with_why(
    rt: Runtime, dispatcher: RecordingDispatcher
) -> None:
    """A stop asked while the tick that completes the apply runs (seen with the real spirit
    engine on a table one step copies) was left `pending` forever on a completed apply."""
    apply_id = submit(rt, "fake")
    run_until(rt, dispatcher, apply_id, "running")
    control_id, _ = add_control(rt.db, apply_id, "stop", None)  # after the tick read the controls

    def complete(session: Session) -> None:  # what that tick writes at its end
        apply = session.scalars(sa.select(Apply).where(Apply.apply_id == apply_id)).one()
        fenced_writes.set_apply_state(session, apply, State.COMPLETED, "completed", token=None)

    rt.db.run(complete)
    request = rt.db.run(lambda session: session.get(ControlRequest, control_id), write=False)
    assert (request.status, request.pending_kind) == ("rejected", None)
    assert request.message == "the apply ended (completed) before this request was carried out"
    assert "stop: rejected: the apply ended (completed)" in [e.message for e in client(rt).log(apply_id)][-1]
    # Asked after it ended: refused under the apply row's lock, nothing stored.
    with pytest.raises(ControlRejected):
        add_control(rt.db, apply_id, "stop", None, allowed=lambda state: check_request("stop", state))
    with pytest.raises(ControlRejected):
        client(rt).request_control(apply_id, "stop")
    assert reads.snapshot(rt.db, apply_id).pending_controls == []


def test_volume_is_carried_out_and_remembered(
    rt: Runtime, dispatcher: RecordingDispatcher, fake_target: FakeTarget
) -> None:
    apply_id = submit(rt, "fake")
    run_until(rt, dispatcher, apply_id, "running")
    client(rt).request_control(apply_id, "volume", 9)
    st = run_until(rt, dispatcher, apply_id, "completed")
    assert st.options["volume"] == 9
    assert fake_target.work(st.tasks[0].task_id)["volume"] == 9


# -- classification ---------------------------------------------------------------------------


def test_s24_retryable_errors_are_retried_with_attempts_then_fail_past_the_budget(
    rt: Runtime, dispatcher: RecordingDispatcher, fake_target: FakeTarget
) -> None:
    apply_id = submit(rt, "fake", [ChangeSet(namespace="n", ddl=["ALTER TABLE a ADD c INT", "DROP TABLE b"])])
    fake_target.inject("progress", "retryable", times=100, message="target unreachable")
    st = run_until(rt, dispatcher, apply_id, "failed_retryable")
    assert (st.attempt, st.error) == (1, "target unreachable")

    for attempt in range(2, rt.settings.retry_budget + 1):
        report = recovery_sweep(rt)
        assert [c.reason for c in report.claimed] == ["retry"]
        deliver(rt, dispatcher.take())  # type: ignore[arg-type]
        st = run_until(rt, dispatcher, apply_id, "failed_retryable")
        assert st.attempt == attempt

    report = recovery_sweep(rt)
    assert report.expired == [apply_id] and report.claimed == []
    st = status(rt, apply_id)
    assert st.state == "failed" and "gave up after 5 attempts" in (st.error or "")
    assert "target unreachable" in (st.error or "")
    assert [t.state for t in st.tasks] == ["cancelled", "cancelled"]


def test_s24_a_retry_that_succeeds_clears_the_error(
    rt: Runtime, dispatcher: RecordingDispatcher, fake_target: FakeTarget
) -> None:
    apply_id = submit(rt, "fake")
    fake_target.inject("progress", "retryable", times=1, message="blip")
    run_until(rt, dispatcher, apply_id, "failed_retryable")
    recovery_sweep(rt)
    deliver(rt, dispatcher.take())  # type: ignore[arg-type]
    st = run_until(rt, dispatcher, apply_id, "completed")
    assert (st.attempt, st.error) == (2, None)


def test_s25_permanent_engine_error_fails_with_the_targets_message(
    rt: Runtime, dispatcher: RecordingDispatcher, fake_target: FakeTarget
) -> None:
    apply_id = submit(rt, "fake", [ChangeSet(namespace="n", ddl=["ALTER TABLE a ADD c INT", "DROP TABLE b"])])
    fake_target.inject("apply", "permanent", message="Unknown column 'zz' in 'a' (MySQL error 1054)")
    st = run_until(rt, dispatcher, apply_id, "failed")
    assert st.error == "Unknown column 'zz' in 'a' (MySQL error 1054)"
    assert [t.state for t in st.tasks] == ["failed", "cancelled"]
    assert recovery_sweep(rt).claimed == []  # terminal: never re-driven


def test_s26_a_late_tick_of_an_old_owner_never_overwrites_a_terminal_apply(
    rt: Runtime, dispatcher: RecordingDispatcher
) -> None:
    apply_id = submit(rt, "fake")
    run_until(rt, dispatcher, apply_id, "running")
    old = dispatcher.take()
    assert old is not None and old.name == "poll_progress"
    kill_owner(rt, dispatcher, apply_id)
    recovery_sweep(rt)
    assert run_until(rt, dispatcher, apply_id, "completed").state == "completed"

    assert driver.tick(rt, *old.args) is TickOutcome.STALE
    _, token, _seq = old.args
    late = ProgressResult(state=EngineState.FAILED, message="late")
    with pytest.raises(LeaseLost):
        fenced_writes.record_progress(
            rt.db, apply_id, token, operation_id=status(rt, apply_id).tasks[0].task_id, result=late
        )
    with pytest.raises(LeaseLost):
        fenced_writes.record_failure(
            rt.db, apply_id, token + 1, "late", retryable=False, operation_id=None, backoff_seconds=0
        )
    assert status(rt, apply_id).state == "completed"


def test_s27_task_state_never_moves_backwards_on_an_older_report(
    rt: Runtime, dispatcher: RecordingDispatcher
) -> None:
    apply_id = submit(rt, "fake", defer_cutover=True)
    st = run_until(rt, dispatcher, apply_id, "waiting_for_cutover")
    message = dispatcher.take()
    assert message is not None
    _, token, _ = message.args
    task = st.tasks[0]
    stale = ProgressResult(
        state=EngineState.RUNNING,
        tables=[TableProgress(task.namespace, task.table, EngineState.RUNNING, rows_copied=3, rows_total=10)],
    )
    new = fenced_writes.record_progress(rt.db, apply_id, token, operation(rt, apply_id).operation_id, stale)
    assert new.value == "waiting_for_cutover"
    after = status(rt, apply_id).tasks[0]
    assert (after.state, after.rows_copied) == ("waiting_for_cutover", 10)


# -- ownership without processes --------------------------------------------------------------


def test_s13_pending_apply_whose_start_message_was_lost_is_started_by_the_sweep(
    rt: Runtime, dispatcher: RecordingDispatcher
) -> None:
    dispatcher.fail_sends = True
    apply_id = submit(rt, "fake")
    dispatcher.fail_sends = False
    assert dispatcher.messages == []
    report = recovery_sweep(rt)
    assert [(c.apply_id, c.reason) for c in report.claimed] == [(apply_id, "unstarted")]
    assert run_until(rt, dispatcher, apply_id, "completed").state == "completed"


def test_s19_duplicate_and_stale_poll_messages_do_nothing(
    rt: Runtime, dispatcher: RecordingDispatcher, fake_target: FakeTarget
) -> None:
    apply_id = submit(rt, "fake")
    run_until(rt, dispatcher, apply_id, "running")
    message = dispatcher.take()
    assert message is not None and message.name == "poll_progress"
    calls = len(fake_target.calls("progress"))
    assert driver.tick(rt, *message.args) is TickOutcome.CONTINUES
    assert driver.tick(rt, *message.args) is TickOutcome.STALE  # redelivered duplicate
    apply_id_, token, seq = message.args
    assert driver.tick(rt, apply_id_, token - 1, seq + 1) is TickOutcome.STALE  # an old owner's
    assert len(fake_target.calls("progress")) == calls + 1
    assert start_again(rt, apply_id) is TickOutcome.NOT_CLAIMED  # duplicate start_apply


def start_again(rt: Runtime, apply_id: str) -> TickOutcome:
    return driver.start_apply(rt, apply_id)


def test_s18_two_sweeps_at_once_claim_each_orphan_once(
    settings: Settings, rt: Runtime, dispatcher: RecordingDispatcher
) -> None:
    dispatcher.fail_sends = True
    # One table each: two unfinished applies on one table are refused (docs/architecture.md §8 invariant 9).
    ids = [
        submit(rt, "fake", [ChangeSet(namespace="app", ddl=[f"ALTER TABLE t{i} ADD c INT"])])
        for i in range(12)
    ]
    dispatcher.fail_sends = False
    runtimes = [
        Runtime(
            settings=settings,
            db=Database(settings.database_url, 5.0),
            dispatcher=RecordingDispatcher(),
            owner=f"beat-{i}",
        )
        for i in range(2)
    ]
    barrier = threading.Barrier(2)
    claims: list[list[str]] = [[], []]

    def sweep(i: int) -> None:
        barrier.wait()
        claims[i] = [c.apply_id for c in recovery_sweep(runtimes[i]).claimed]

    threads = [threading.Thread(target=sweep, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    both = claims[0] + claims[1]
    assert sorted(both) == sorted(ids)  # every orphan claimed, none twice
    for r in runtimes:
        r.db.dispose()


@pytest.mark.parametrize(
    ("failing", "engine_fault"),
    [
        ("begin_tick", None),
        ("snapshot", None),
        ("record_progress", None),
        ("record_failure", "permanent"),  # the engine's verdict cannot be stored: store nothing
        ("record_failure", "retryable"),
        ("*", None),
    ],
)
def test_invariant2_state_database_failing_mid_tick_never_fails_the_apply(
    rt: Runtime,
    dispatcher: RecordingDispatcher,
    fake_target: FakeTarget,
    failing: str,
    engine_fault: str | None,
) -> None:
    apply_id = submit(rt, "fake")
    run_until(rt, dispatcher, apply_id, "running")
    before = durable_view(rt.db, apply_id)
    if engine_fault:
        fake_target.inject("progress", engine_fault, message="DDL rejected")
    assert isinstance(rt.db, FaultyDatabase)
    rt.db.failing = {failing}
    message = dispatcher.take()
    assert message is not None and message.name == "poll_progress"
    assert deliver(rt, message) is TickOutcome.EXITED
    rt.db.failing = set()
    assert durable_view(rt.db, apply_id) == before
    assert dispatcher.messages == []

    fake_target.clear_faults()
    kill_owner(rt, dispatcher, apply_id)  # the lease expires; the sweep re-drives
    recovery_sweep(rt)
    assert run_until(rt, dispatcher, apply_id, "completed").state == "completed"


def test_a_claim_on_a_live_lease_fails(rt: Runtime, dispatcher: RecordingDispatcher) -> None:
    apply_id = submit(rt, "fake")
    run_until(rt, dispatcher, apply_id, "running")
    # The token is 1 and the lease is live: a second claimant must not get it.
    claimed = leases.claim(rt.db, apply_id, expected_token=1, owner="thief", ttl=5, states=[State.RUNNING])
    assert claimed is None
    kill_owner(rt, dispatcher, apply_id)
    assert leases.claim(rt.db, apply_id, expected_token=1, owner="heir", ttl=5, states=[State.RUNNING]) == 2


def test_a_step_that_used_its_whole_budget_is_followed_at_once_an_early_one_waits(
    rt: Runtime, dispatcher: RecordingDispatcher, fake_target: FakeTarget
) -> None:
    """Local engine work (a copy) continues without the poll pause; observation is paced."""
    fake_target.set_knob("rows_total", 40)
    fake_target.set_knob("step_sleep", rt.settings.step_budget)  # a step that fills its budget
    rt.settings = rt.settings.model_copy(update={"poll_interval": 0.5})
    apply_id = submit(rt, "fake")
    run_until(rt, dispatcher, apply_id, "running")
    busy = dispatcher.take()
    assert busy is not None
    deliver(rt, busy)
    assert dispatcher.messages[-1].countdown == 0

    fake_target.set_knob("step_sleep", 0.0)
    deliver(rt, dispatcher.take())  # type: ignore[arg-type]
    assert dispatcher.messages[-1].countdown == 0.5


# -- issue 11: infrastructure is no verdict; in-flight provider work is never given up ---------


def drive_with_recovery(
    rt: Runtime, dispatcher: RecordingDispatcher, apply_id: str, *states: str, rounds: int = 200
) -> list[str]:
    """Deliver messages; whenever none is left (a tick exited), let the lease expire and sweep,
    as the beat would. Returns the apply states seen, until one of `states`."""
    seen: list[str] = []
    for _ in range(rounds):
        st = status(rt, apply_id)
        if not seen or seen[-1] != st.state:
            seen.append(st.state)
        if st.state in states:
            return seen
        message = dispatcher.take()
        if message is None:
            kill_owner(rt, dispatcher, apply_id)
            _expire_backoff(rt, apply_id)
            recovery_sweep(rt)
            continue
        deliver(rt, message)
    raise AssertionError(f"{apply_id} never reached {states}; saw {seen}")


def _expire_backoff(rt: Runtime, apply_id: str) -> None:
    import sqlalchemy as sa

    from schemabot.storage.clock import db_now
    from schemabot.storage.models import Apply

    rt.db.run(
        lambda s: s.execute(sa.update(Apply).where(Apply.apply_id == apply_id).values(retry_after=db_now(-1)))
    )


@pytest.mark.parametrize("infrastructure", ["broker", "statedb"])
def test_broker_and_state_db_errors_during_engine_steps_use_no_attempt_of_the_retry_budget(
    rt: Runtime, dispatcher: RecordingDispatcher, fake_target: FakeTarget, infrastructure: str
) -> None:
    apply_id = submit(rt, "fake")
    blips = rt.settings.retry_budget + 2  # more blips than the budget has attempts
    fake_target.inject("progress", infrastructure, times=blips, message="restarting")

    seen = drive_with_recovery(rt, dispatcher, apply_id, "completed", "failed")
    st = status(rt, apply_id)
    assert st.state == "completed", (seen, st.error)
    assert "failed_retryable" not in seen
    assert st.attempt == 1
    assert not fake_target.query("SELECT * FROM faults WHERE remaining > 0")  # every blip happened


def test_a_provider_outage_of_in_flight_vitess_work_outlasts_the_retry_budget_and_completes(
    rt: Runtime, dispatcher: RecordingDispatcher, fake_target: FakeTarget
) -> None:
    apply_id = submit(rt, "fakevitess", skip_revert=True)
    run_until(rt, dispatcher, apply_id, "running")  # deploy request #1 is open and running
    outage = rt.settings.retry_budget * 2
    fake_target.inject("progress", "retryable", times=outage, message="HTTP 500 from the provider")
    fake_target.inject("apply", "retryable", times=outage, message="HTTP 500 from the provider")

    run_until(rt, dispatcher, apply_id, "waiting_for_provider")
    st = status(rt, apply_id)
    assert "blocked on the provider" in (st.attention or "") and "deploy request #1" in (st.attention or "")
    for _ in range(outage + 2):  # far past the budget: the sweep never expires it
        report = recovery_sweep(rt)
        assert report.expired == []
        if report.claimed:
            pump(rt, dispatcher)
        _expire_backoff(rt, apply_id)
    assert status(rt, apply_id).attempt > rt.settings.retry_budget

    seen = drive_with_recovery(rt, dispatcher, apply_id, "completed", "failed", "cancelled")
    final = status(rt, apply_id)
    assert final.state == "completed", (seen, final.error)
    assert final.attention is None and final.error is None
    assert fake_target.created_total() == 1
    log = client(rt).log(apply_id)
    assert [e.new_state for e in log].count("waiting_for_provider") == 1  # one entry per reason
    assert not any(e.event == "claimed" and e.detail == {"reason": "retry"} for e in log)


def test_the_backoff_doubles_up_to_its_cap() -> None:
    assert [driver.retry_backoff(a, 2.0, 60.0) for a in (1, 2, 3, 5, 6, 40)] == [2, 4, 8, 32, 60, 60]


def test_an_engine_busy_for_many_polls_is_one_audit_entry(
    rt: Runtime, dispatcher: RecordingDispatcher, fake_target: FakeTarget
) -> None:
    fake_target.inject("apply", "busy", times=6)
    apply_id = submit(rt, "fake")
    final = run_until(rt, dispatcher, apply_id, "completed")
    assert final.attempt == 1
    busy = [e for e in client(rt).log(apply_id) if e.event == "busy"]
    assert len(busy) == 1, busy
