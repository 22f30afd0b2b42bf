"""The planetscale engine driven by schemabot's orchestration, in process: real storage (SQLite
and MariaDB), leases, ticks and the recovery sweep, the real engine against a real emulator
process. These are the twins of tests/integration/test_resume_scenarios.py (fake engine) and
of the engine-level tests beside this file (no orchestration): here what is checked is what
schemabot hands the engine, what it stores, and what ends up on the emulator's MariaDB.

Messages are played by the recording dispatcher; the emulator only moves when a test advances
it (one tick after each delivered message), so every run is deterministic.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest

from engines.base import NamespaceChange
from engines.planetscale.naming import branch_name
from schemabot import driver
from schemabot.api import ApplyStatus, ChangeSet
from schemabot.driver import TickOutcome
from schemabot.errors import ControlRejected
from schemabot.recovery import recovery_sweep
from schemabot.runtime import Runtime
from schemabot.settings import Settings
from schemabot.storage import reads
from tests.conftest import FAST
from tests.support.emulator_process import EmulatorProcess
from tests.support.harness import FaultyDatabase, RecordingDispatcher, deliver, durable_view, kill_owner
from tests.support.planetscale_engines import (
    PLUGINS,
    RecordingPlanetScaleEngine,
    StateDroppingPlanetScaleEngine,
)
from tests.support.steps import clear_resume_state, client, operation, set_apply_state, status, submit

VSCHEMA = {"sharded": False, "tables": {"customer": {}}}
ADD_SKU = "ALTER TABLE product ADD COLUMN sku VARCHAR(32) NULL"
CREATE_COUPON = "CREATE TABLE coupon (id INT PRIMARY KEY, code VARCHAR(16) NOT NULL)"
INDEX_EMAIL = "ALTER TABLE customer ADD INDEX idx_email (email)"
TWO_KEYSPACES_AND_VSCHEMA = [
    ChangeSet(namespace="commerce", ddl=[ADD_SKU, CREATE_COUPON]),
    ChangeSet(namespace="customers", ddl=[INDEX_EMAIL], vschema=VSCHEMA),
]
ONE_ALTER = [ChangeSet(namespace="commerce", ddl=[ADD_SKU])]
PRODUCTS = ["apple", "pear", "fig", "kiwi", "lime"]


@pytest.fixture
def settings(state_url: str, emulator: EmulatorProcess) -> Settings:
    """Overrides the suite's fake-engine settings: the target `ps` is the emulator."""
    dsn = (f"planetscale://tok-id:tok-secret@acme/shop?main_branch=main&api_url={emulator.api_url}"
           "&create_settle_seconds=0")
    return Settings.model_validate(
        {"database_url": state_url, "engine_plugins": PLUGINS, "targets": {"ps": dsn}, **FAST}
    )


@pytest.fixture(autouse=True)
def _fresh_recordings() -> Iterator[None]:
    RecordingPlanetScaleEngine.reset()
    StateDroppingPlanetScaleEngine.drop_reattach_state = False
    StateDroppingPlanetScaleEngine.dropped_as = None
    yield
    RecordingPlanetScaleEngine.reset()
    StateDroppingPlanetScaleEngine.drop_reattach_state = False
    StateDroppingPlanetScaleEngine.dropped_as = None


# -- helpers ----------------------------------------------------------------------------------


def drive(
    rt: Runtime,
    dispatcher: RecordingDispatcher,
    emulator: EmulatorProcess,
    apply_id: str,
    *states: str,
    max_messages: int = 120,
) -> ApplyStatus:
    """Deliver messages until the apply is in one of `states`; the emulator ticks once after
    each message, as its clock would between two polls."""
    seen: list[str] = []
    for _ in range(max_messages):
        st = status(rt, apply_id)
        if st.state in states:
            return st
        if not seen or seen[-1] != st.state:
            seen.append(st.state)
        message = dispatcher.take()
        assert message is not None, f"no message left while {apply_id} is {st.state} ({st.error})"
        deliver(rt, message)
        emulator.advance(1)
    raise AssertionError(f"{apply_id} never reached {states}; went through {seen}")


def deliver_next(rt: Runtime, dispatcher: RecordingDispatcher) -> object:
    message = dispatcher.take()
    assert message is not None, "no message queued"
    return deliver(rt, message)


def persisted(rt: Runtime, apply_id: str) -> dict[str, Any]:
    """The engine resume state stored on the apply's one operation."""
    state = operation(rt, apply_id).resume_context
    assert state is not None, f"{apply_id} has no persisted resume state"
    return dict(state)


def sweep_and_claim(rt: Runtime, dispatcher: RecordingDispatcher, apply_id: str) -> int:
    """One recovery sweep; it must claim exactly this apply, as an orphan (every test here
    kills an owner that had claimed it, even when it died before the apply left `pending`).
    Returns the new token."""
    report = recovery_sweep(rt)
    assert [(c.apply_id, c.reason) for c in report.claimed] == [(apply_id, "orphaned")], report
    message = dispatcher.take()
    assert message is not None and message.name == "resume_apply", message
    return report.claimed[0].token


def one_of_everything(emulator: EmulatorProcess, apply_id: str) -> None:
    """Exactly one branch and one deploy request exist for the apply, each created once."""
    branches = [b for b in emulator.api("GET", "/branches").json()["data"] if b["name"] != "main"]
    assert [b["name"] for b in branches] == [branch_name(apply_id)]
    tagged = [
        dr
        for dr in emulator.api("GET", "/deploy-requests").json()["data"]
        if f"schemabot-apply: {apply_id}" in (dr.get("notes") or "")
    ]
    assert len(tagged) == 1, tagged
    assert len(emulator.events("branch.create")) == 1
    assert len(emulator.events("deploy_request.create")) == 1


def main_vschema(emulator: EmulatorProcess, keyspace: str) -> dict[str, Any]:
    raw = emulator.api("GET", f"/branches/main/keyspaces/{keyspace}/vschema").json()["raw"]
    return dict(json.loads(raw or "{}"))


def has_email_index(emulator: EmulatorProcess) -> bool:
    return bool(emulator.sql("customers", "SHOW INDEX FROM customer WHERE Key_name='idx_email'"))


def product_names(emulator: EmulatorProcess) -> list[str]:
    return [str(r[0]) for r in emulator.sql("commerce", "SELECT name FROM product ORDER BY id")]


# -- full deploys and controls ----------------------------------------------------------------


def test_full_deploy_of_two_keyspaces_and_a_vschema_completes_and_changes_main(
    rt: Runtime, dispatcher: RecordingDispatcher, emulator: EmulatorProcess
) -> None:
    assert main_vschema(emulator, "customers") != VSCHEMA
    apply_id = submit(rt, "planetscale", TWO_KEYSPACES_AND_VSCHEMA, target="ps", skip_revert=True)

    final = drive(rt, dispatcher, emulator, apply_id, "completed", "failed", "failed_retryable")
    assert final.state == "completed", final.error
    assert {(t.namespace, t.table, t.state) for t in final.tasks} == {
        ("commerce", "product", "completed"),
        ("commerce", "coupon", "completed"),
        ("customers", "customer", "completed"),
        ("customers", "", "completed"),  # the VSchema task
    }
    assert emulator.columns("commerce", "product") == ["id", "name", "price", "sku"]
    assert "coupon" in emulator.tables("commerce")
    assert has_email_index(emulator)
    assert main_vschema(emulator, "customers") == VSCHEMA
    assert product_names(emulator) == PRODUCTS  # the rows survived the deploy
    one_of_everything(emulator, apply_id)
    assert dispatcher.messages == []  # finished: no next tick
    assert reads.snapshot(rt.db, apply_id).apply.lease_owner is None


def test_deferred_cutover_waits_until_a_cutover_request_then_completes(
    rt: Runtime, dispatcher: RecordingDispatcher, emulator: EmulatorProcess
) -> None:
    apply_id = submit(rt, "planetscale", ONE_ALTER, target="ps", defer_cutover=True, skip_revert=True)
    drive(rt, dispatcher, emulator, apply_id, "waiting_for_cutover")
    for _ in range(3):  # it waits: more polls and ticks do not cut over
        deliver_next(rt, dispatcher)
        emulator.advance(1)
    assert status(rt, apply_id).state == "waiting_for_cutover"
    assert "sku" not in emulator.columns("commerce", "product")
    assert emulator.events("deploy_request.apply_deploy") == []

    receipt = client(rt).request_control(apply_id, "cutover")
    final = drive(rt, dispatcher, emulator, apply_id, "completed", "failed", "failed_retryable")
    assert final.state == "completed", final.error
    assert "sku" in emulator.columns("commerce", "product")
    assert len(emulator.events("deploy_request.apply_deploy")) == 1
    done = [e for e in client(rt).log(apply_id) if e.event == "control" and "control_id" in (e.detail or {})]
    assert [(e.detail or {})["control_id"] for e in done] == [receipt.control_id]
    assert (done[0].message or "").startswith("cutover: done")
    one_of_everything(emulator, apply_id)


def test_revert_inside_the_revert_window_ends_reverted_with_the_old_schema(
    rt: Runtime, dispatcher: RecordingDispatcher, emulator: EmulatorProcess
) -> None:
    vschema_before = main_vschema(emulator, "customers")
    apply_id = submit(rt, "planetscale", TWO_KEYSPACES_AND_VSCHEMA, target="ps")
    drive(rt, dispatcher, emulator, apply_id, "revert_window")
    assert "sku" in emulator.columns("commerce", "product")  # live during the window
    assert main_vschema(emulator, "customers") == VSCHEMA

    client(rt).request_control(apply_id, "revert")
    final = drive(rt, dispatcher, emulator, apply_id, "reverted", "completed", "failed", "failed_retryable")
    assert final.state == "reverted", final.error
    assert emulator.columns("commerce", "product") == ["id", "name", "price"]
    assert "coupon" not in emulator.tables("commerce")
    assert not has_email_index(emulator)
    assert main_vschema(emulator, "customers") == vschema_before
    assert product_names(emulator) == PRODUCTS
    assert len(emulator.events("deploy_request.revert")) == 1
    one_of_everything(emulator, apply_id)


def test_skip_revert_inside_the_revert_window_completes_and_keeps_the_change(
    rt: Runtime, dispatcher: RecordingDispatcher, emulator: EmulatorProcess
) -> None:
    apply_id = submit(rt, "planetscale", ONE_ALTER, target="ps")
    drive(rt, dispatcher, emulator, apply_id, "revert_window")
    client(rt).request_control(apply_id, "skip_revert")
    final = drive(rt, dispatcher, emulator, apply_id, "completed", "reverted", "failed", "failed_retryable")
    assert final.state == "completed", final.error
    assert emulator.columns("commerce", "product") == ["id", "name", "price", "sku"]
    assert len(emulator.events("deploy_request.skip_revert")) == 1
    one_of_everything(emulator, apply_id)


# -- resume state (docs/architecture.md §10: S1, S5, S6, S7, S8) -----------------------------


def test_s1_resume_after_the_owner_died_hands_the_engine_exactly_the_persisted_state(
    rt: Runtime, dispatcher: RecordingDispatcher, emulator: EmulatorProcess
) -> None:
    apply_id = submit(rt, "ps_recording", TWO_KEYSPACES_AND_VSCHEMA, target="ps", skip_revert=True)
    drive(rt, dispatcher, emulator, apply_id, "running")
    state = persisted(rt, apply_id)
    assert state["dr_number"] is not None
    kill_owner(rt, dispatcher, apply_id)

    token = sweep_and_claim(rt, dispatcher, apply_id)
    assert driver.tick(rt, apply_id, token, 0) is TickOutcome.CONTINUES
    resumed = RecordingPlanetScaleEngine.of("apply")[-1]
    assert resumed.received == state
    assert resumed.returned is not None and resumed.returned["dr_number"] == state["dr_number"]
    resumes = [e for e in client(rt).log(apply_id) if e.event == "resume"]
    assert [e.message for e in resumes] == [
        f"reattached at deploy request #{state['dr_number']} (in_progress)"
    ]

    final = drive(rt, dispatcher, emulator, apply_id, "completed", "failed", "failed_retryable")
    assert final.state == "completed", final.error
    one_of_everything(emulator, apply_id)


def test_s5_saving_the_state_after_an_accepted_reattach_fails_then_the_next_owner_creates_nothing(
    rt: Runtime, dispatcher: RecordingDispatcher, emulator: EmulatorProcess
) -> None:
    apply_id = submit(rt, "ps_recording", ONE_ALTER, target="ps", skip_revert=True)
    drive(rt, dispatcher, emulator, apply_id, "running")
    kill_owner(rt, dispatcher, apply_id)
    before = durable_view(rt.db, apply_id)
    assert isinstance(rt.db, FaultyDatabase)
    rt.db.failing.add("record_attach")

    token = sweep_and_claim(rt, dispatcher, apply_id)
    applies_before = len(RecordingPlanetScaleEngine.of("apply"))
    assert driver.tick(rt, apply_id, token, 0) is TickOutcome.EXITED
    reattach = RecordingPlanetScaleEngine.of("apply")[applies_before:]
    assert len(reattach) == 1 and reattach[0].returned is not None  # the engine accepted
    assert rt.db.failed == ["record_attach"]
    assert durable_view(rt.db, apply_id) == before  # ... and nothing was written
    assert status(rt, apply_id).state == "running"
    assert dispatcher.messages == []  # no next tick: only the sweep brings it back

    rt.db.failing.clear()
    kill_owner(rt, dispatcher, apply_id)
    token = sweep_and_claim(rt, dispatcher, apply_id)
    assert driver.tick(rt, apply_id, token, 0) is TickOutcome.CONTINUES
    final = drive(rt, dispatcher, emulator, apply_id, "completed", "failed", "failed_retryable")
    assert final.state == "completed", final.error
    assert (final.attempt, final.error) == (1, None)
    assert "sku" in emulator.columns("commerce", "product")
    one_of_everything(emulator, apply_id)


def test_s5_saving_the_attach_of_the_first_dispatch_fails_then_the_next_owner_reuses_the_branch(
    rt: Runtime, dispatcher: RecordingDispatcher, emulator: EmulatorProcess
) -> None:
    """The fresh path saved the branch name (persist before act) and created the branch; the
    attach record then fails. The next owner must reattach to that branch, not open another."""
    assert isinstance(rt.db, FaultyDatabase)
    rt.db.failing.add("record_attach")
    apply_id = submit(rt, "ps_recording", ONE_ALTER, target="ps", skip_revert=True)
    assert deliver_next(rt, dispatcher) is TickOutcome.EXITED
    assert status(rt, apply_id).state == "pending"
    assert len(emulator.events("branch.create")) == 1
    saved = persisted(rt, apply_id)
    assert saved["branch"] == branch_name(apply_id)

    rt.db.failing.clear()
    kill_owner(rt, dispatcher, apply_id)
    token = sweep_and_claim(rt, dispatcher, apply_id)
    assert driver.tick(rt, apply_id, token, 0) is TickOutcome.CONTINUES
    assert RecordingPlanetScaleEngine.of("apply")[-1].received == saved
    final = drive(rt, dispatcher, emulator, apply_id, "completed", "failed", "failed_retryable")
    assert final.state == "completed", final.error
    one_of_everything(emulator, apply_id)


def test_s6_reattach_accepted_without_a_resume_state_writes_nothing_and_fails_nothing(
    rt: Runtime, dispatcher: RecordingDispatcher, emulator: EmulatorProcess
) -> None:
    apply_id = submit(rt, "ps_dropping", ONE_ALTER, target="ps", skip_revert=True)
    drive(rt, dispatcher, emulator, apply_id, "running")
    kill_owner(rt, dispatcher, apply_id)
    before = durable_view(rt.db, apply_id)
    StateDroppingPlanetScaleEngine.drop_reattach_state = True

    for _ in range(2):  # every owner refuses the same way; the apply is never failed
        token = sweep_and_claim(rt, dispatcher, apply_id)
        assert driver.tick(rt, apply_id, token, 0) is TickOutcome.EXITED
        last = RecordingPlanetScaleEngine.of("apply")[-1]
        assert last.received is not None and last.returned is not None  # accepted, state dropped
        assert durable_view(rt.db, apply_id) == before
        assert dispatcher.messages == []
        kill_owner(rt, dispatcher, apply_id)

    StateDroppingPlanetScaleEngine.drop_reattach_state = False
    token = sweep_and_claim(rt, dispatcher, apply_id)
    assert driver.tick(rt, apply_id, token, 0) is TickOutcome.CONTINUES
    final = drive(rt, dispatcher, emulator, apply_id, "completed", "failed", "failed_retryable")
    assert final.state == "completed", final.error
    assert final.attempt == 1
    one_of_everything(emulator, apply_id)


def test_s7_every_state_the_engine_returns_is_persisted_and_handed_to_the_next_poll(
    rt: Runtime, dispatcher: RecordingDispatcher, emulator: EmulatorProcess
) -> None:
    apply_id = submit(rt, "ps_recording", TWO_KEYSPACES_AND_VSCHEMA, target="ps", skip_revert=True)
    checked = 0
    for _ in range(120):
        if status(rt, apply_id).is_terminal:
            break
        calls_before = len(RecordingPlanetScaleEngine.calls)
        message = dispatcher.take()
        assert message is not None
        deliver(rt, message)
        emulator.advance(1)
        new = RecordingPlanetScaleEngine.calls[calls_before:]
        if new and new[-1].method in ("apply", "progress"):
            # Persisted at the end of the tick: exactly what the engine returned.
            assert operation(rt, apply_id).resume_context == new[-1].returned
            checked += 1
    assert status(rt, apply_id).state == "completed"

    calls = [c for c in RecordingPlanetScaleEngine.calls if c.method in ("apply", "progress")]
    assert [c.method for c in calls[:2]] == ["apply", "progress"]
    for previous, call in itertools.pairwise(calls):
        assert call.received == previous.returned  # each poll continues from the last answer
    assert checked == len(calls) >= 6
    one_of_everything(emulator, apply_id)


def test_s8_state_lost_past_branch_preparation_fails_closed_without_calling_the_engine(
    rt: Runtime, dispatcher: RecordingDispatcher, emulator: EmulatorProcess
) -> None:
    apply_id = submit(rt, "ps_recording", ONE_ALTER, target="ps", skip_revert=True)
    drive(rt, dispatcher, emulator, apply_id, "running")
    kill_owner(rt, dispatcher, apply_id)
    clear_resume_state(rt, apply_id)
    before, calls_before = durable_view(rt.db, apply_id), len(RecordingPlanetScaleEngine.calls)
    events_before = emulator.events()

    token = sweep_and_claim(rt, dispatcher, apply_id)
    assert driver.tick(rt, apply_id, token, 0) is TickOutcome.FINISHED
    assert len(RecordingPlanetScaleEngine.calls) == calls_before  # the engine was not called
    after = durable_view(rt.db, apply_id)
    assert (after["tasks"], after["operations"]) == (before["tasks"], before["operations"])
    # Visible, with the reason and what to look for on the provider (issue 11, defect 6).
    st = status(rt, apply_id)
    assert st.state == "needs_attention", st
    assert "resume state is missing" in (st.attention or "")
    assert f"schemabot-apply: {apply_id}" in (st.attention or "")
    for _ in range(3):  # no later sweep claims it again: no `claimed` entry per sweep
        assert recovery_sweep(rt).claimed == []
    log = client(rt).log(apply_id)
    assert [e.new_state for e in log].count("needs_attention") == 1
    assert emulator.events() == events_before  # nothing at all happened on PlanetScale
    one_of_everything(emulator, apply_id)

    client(rt).request_control(apply_id, "cancel")  # the documented way out
    for _ in range(5):
        if status(rt, apply_id).state == "cancelled":
            break
        deliver_next(rt, dispatcher)
    assert status(rt, apply_id).state == "cancelled"
    assert len(RecordingPlanetScaleEngine.calls) == calls_before  # still nothing called blind


@pytest.mark.parametrize("lost_in", ["pending", "preparing_branch"])
def test_s8_state_lost_before_the_branch_is_ready_takes_the_fresh_path_on_the_same_branch(
    rt: Runtime, dispatcher: RecordingDispatcher, emulator: EmulatorProcess, lost_in: str
) -> None:
    apply_id = submit(rt, "ps_recording", ONE_ALTER, target="ps", skip_revert=True)
    # No emulator ticks: the branch exists but is not ready, so the apply cannot get further.
    # start_apply attaches (the apply stays pending); the first poll then waits for the branch.
    for _ in range(1 if lost_in == "pending" else 2):
        deliver_next(rt, dispatcher)
    assert status(rt, apply_id).state == lost_in
    branch = persisted(rt, apply_id)["branch"]
    kill_owner(rt, dispatcher, apply_id)
    clear_resume_state(rt, apply_id)

    token = sweep_and_claim(rt, dispatcher, apply_id)
    assert driver.tick(rt, apply_id, token, 0) is TickOutcome.CONTINUES
    fresh = RecordingPlanetScaleEngine.of("apply")[-1]
    assert fresh.received is None  # the fresh path: no state to hand over
    assert persisted(rt, apply_id)["branch"] == branch == branch_name(apply_id)
    assert fresh.returned is not None and fresh.returned["branch_adopted"] is True
    final = drive(rt, dispatcher, emulator, apply_id, "completed", "failed", "failed_retryable")
    assert final.state == "completed", final.error
    one_of_everything(emulator, apply_id)


def test_s8_fresh_path_is_refused_once_the_apply_says_it_is_past_the_branch(
    rt: Runtime, dispatcher: RecordingDispatcher, emulator: EmulatorProcess
) -> None:
    """The same lost state as above, but the stored apply state says the deploy request step
    was reached: schemabot must trust its own record over the engine's ability to look."""
    apply_id = submit(rt, "ps_recording", ONE_ALTER, target="ps", skip_revert=True)
    deliver_next(rt, dispatcher)  # start_apply: the branch is made
    kill_owner(rt, dispatcher, apply_id)
    clear_resume_state(rt, apply_id)
    set_apply_state(rt, apply_id, "creating_deploy_request")
    calls_before = len(RecordingPlanetScaleEngine.calls)

    token = sweep_and_claim(rt, dispatcher, apply_id)
    assert driver.tick(rt, apply_id, token, 0) is TickOutcome.FINISHED
    assert status(rt, apply_id).state == "needs_attention"
    assert len(RecordingPlanetScaleEngine.calls) == calls_before
    assert len(emulator.events("branch.create")) == 1
    assert emulator.events("deploy_request.create") == []


# -- rebuilding and dispatch (docs/architecture.md §10: S10, S12) ----------------------------


def test_s10_vschema_only_apply_resumes_with_one_flagged_namespace_and_completes(
    rt: Runtime, dispatcher: RecordingDispatcher, emulator: EmulatorProcess
) -> None:
    apply_id = submit(rt, "ps_recording", [ChangeSet(namespace="customers", vschema=VSCHEMA)], target="ps")
    drive(rt, dispatcher, emulator, apply_id, "validating_deploy_request", "waiting_for_deploy")
    kill_owner(rt, dispatcher, apply_id)
    token = sweep_and_claim(rt, dispatcher, apply_id)
    assert driver.tick(rt, apply_id, token, 0) is TickOutcome.CONTINUES

    expected = (NamespaceChange("customers", (), vschema_changed=True, vschema=VSCHEMA),)
    assert [c.changes for c in RecordingPlanetScaleEngine.of("apply")] == [expected, expected]
    final = drive(rt, dispatcher, emulator, apply_id, "completed", "failed", "failed_retryable")
    assert final.state == "completed", final.error
    assert [(t.namespace, t.table, t.action, t.ddl) for t in final.tasks] == [
        ("customers", "", "vschema_update", None)
    ]
    assert main_vschema(emulator, "customers") == VSCHEMA
    assert emulator.columns("commerce", "product") == ["id", "name", "price"]  # no table touched
    one_of_everything(emulator, apply_id)


def test_s12_all_keyspaces_go_through_one_grouped_engine_operation_also_on_resume(
    rt: Runtime, dispatcher: RecordingDispatcher, emulator: EmulatorProcess
) -> None:
    apply_id = submit(rt, "ps_recording", TWO_KEYSPACES_AND_VSCHEMA, target="ps", skip_revert=True)
    snap = reads.snapshot(rt.db, apply_id)
    assert len(snap.operations) == 1
    assert {t.operation_id for t in snap.tasks} == {snap.operations[0].operation_id}
    assert snap.operations[0].context == apply_id

    drive(rt, dispatcher, emulator, apply_id, "validating_deploy_request", "waiting_for_deploy")
    kill_owner(rt, dispatcher, apply_id)
    token = sweep_and_claim(rt, dispatcher, apply_id)
    driver.tick(rt, apply_id, token, 0)
    final = drive(rt, dispatcher, emulator, apply_id, "completed", "failed", "failed_retryable")
    assert final.state == "completed", final.error

    calls = RecordingPlanetScaleEngine.calls
    assert {c.context for c in calls} == {apply_id}  # never a task id: never one per task
    assert len(RecordingPlanetScaleEngine.of("apply")) == 2  # the first dispatch and the resume
    for call in calls:
        assert [(c.namespace, [t.table for t in c.tables], c.vschema_changed) for c in call.changes] == [
            ("commerce", ["product", "coupon"], False),
            ("customers", ["customer"], True),
        ]
    (dr,) = emulator.api("GET", "/deploy-requests").json()["data"]
    diff = emulator.api("GET", f"/deploy-requests/{dr['number']}/diff").json()["data"]
    assert {(d["keyspace_name"], d["name"]) for d in diff} == {
        ("commerce", "product"),
        ("commerce", "coupon"),
        ("customers", "customer"),
        ("customers", "vschema"),
    }
    one_of_everything(emulator, apply_id)


# -- issue 11: what the real engine and a real provider do to recovery --------------------------


def test_an_empty_state_returned_by_an_accepted_reattach_keeps_the_deploy_request_and_completes(
    rt: Runtime, dispatcher: RecordingDispatcher, emulator: EmulatorProcess
) -> None:
    apply_id = submit(rt, "ps_dropping", ONE_ALTER, target="ps", skip_revert=True)
    drive(rt, dispatcher, emulator, apply_id, "running")
    stored = persisted(rt, apply_id)
    assert stored["dr_number"] is not None
    kill_owner(rt, dispatcher, apply_id)
    before = durable_view(rt.db, apply_id)
    StateDroppingPlanetScaleEngine.drop_reattach_state = True
    StateDroppingPlanetScaleEngine.dropped_as = {}

    token = sweep_and_claim(rt, dispatcher, apply_id)
    assert driver.tick(rt, apply_id, token, 0) is TickOutcome.EXITED  # like no state at all
    assert durable_view(rt.db, apply_id) == before
    assert persisted(rt, apply_id) == stored  # still names the deploy request

    StateDroppingPlanetScaleEngine.drop_reattach_state = False
    kill_owner(rt, dispatcher, apply_id)
    token = sweep_and_claim(rt, dispatcher, apply_id)
    assert driver.tick(rt, apply_id, token, 0) is TickOutcome.CONTINUES
    final = drive(rt, dispatcher, emulator, apply_id, "completed", "failed", "failed_retryable")
    assert final.state == "completed", final.error
    one_of_everything(emulator, apply_id)


def test_stop_of_a_running_deploy_through_the_real_engine_ends_cancelled_not_stuck_stopped(
    rt: Runtime, dispatcher: RecordingDispatcher, emulator: EmulatorProcess
) -> None:
    emulator.fault(kind="stall", deploy_state="in_progress", times=-1)  # hold the deploy mid-copy
    apply_id = submit(rt, "ps_recording", ONE_ALTER, target="ps", skip_revert=True)
    drive(rt, dispatcher, emulator, apply_id, "running")
    number = persisted(rt, apply_id)["dr_number"]

    client(rt).request_control(apply_id, "stop")
    final = drive(rt, dispatcher, emulator, apply_id, "cancelled", "stopped", "failed", "completed")
    assert final.state == "cancelled", final  # PlanetScale cannot pause: stop cancels, for good
    assert [t.state for t in final.tasks] == ["cancelled"]
    dr = emulator.api("GET", f"/deploy-requests/{number}").json()
    assert dr["deployment_state"] in ("in_progress_cancel", "complete_cancel", "cancelled"), dr
    controls = [e for e in client(rt).log(apply_id) if e.event == "control"]
    assert controls and "stop: done" in (controls[-1].message or "")
    with pytest.raises(ControlRejected):
        client(rt).request_control(apply_id, "start")  # nothing is left half-stopped
    emulator.clear_faults()


def test_a_provider_outage_longer_than_the_retry_budget_during_a_deploy_never_fails_the_apply(
    rt: Runtime, dispatcher: RecordingDispatcher, emulator: EmulatorProcess
) -> None:
    apply_id = submit(rt, "ps_recording", ONE_ALTER, target="ps", skip_revert=True)
    drive(rt, dispatcher, emulator, apply_id, "running")  # deploy request #N is deploying
    number = persisted(rt, apply_id)["dr_number"]
    kill_owner(rt, dispatcher, apply_id)
    # Every API call answers HTTP 500 while the deploy goes on on PlanetScale's side.
    emulator.fault(kind="error", path="/(branches|deploy-requests)", status=500, times=-1)

    budget = rt.settings.retry_budget
    for _ in range(budget + 2):  # each claim is one more attempt: past the whole budget
        report = recovery_sweep(rt)
        assert report.expired == [], "the retry budget ended an apply whose deploy is running"
        for claimed in report.claimed:
            driver.tick(rt, claimed.apply_id, claimed.token, 0)
        dispatcher.drop_all()
        emulator.advance(1)  # the deploy carries on, and finishes, while the API is down
    st = status(rt, apply_id)
    assert st.state == "waiting_for_provider", st
    assert st.attempt > budget
    attention = st.attention or ""
    # The last failure is the injected 500, or on a loaded machine the client's read timeout.
    assert f"deploy request #{number}" in attention and ("HTTP 500" in attention or "no answer" in attention)

    emulator.clear_faults()
    _expire_backoff(rt, apply_id)
    report = recovery_sweep(rt)
    assert [c.apply_id for c in report.claimed] == [apply_id]
    final = drive(rt, dispatcher, emulator, apply_id, "completed", "failed", "cancelled")
    assert final.state == "completed", final.error
    assert final.attention is None
    assert "sku" in emulator.columns("commerce", "product")
    one_of_everything(emulator, apply_id)
    log = client(rt).log(apply_id)
    assert [e.new_state for e in log].count("waiting_for_provider") == 1  # one entry per reason


def _expire_backoff(rt: Runtime, apply_id: str) -> None:
    import sqlalchemy as sa

    from schemabot.storage.clock import db_now
    from schemabot.storage.models import Apply

    rt.db.run(
        lambda s: s.execute(sa.update(Apply).where(Apply.apply_id == apply_id).values(retry_after=db_now(-1)))
    )


def test_an_apply_that_needs_attention_is_adopted_and_completes_on_its_one_deploy_request(
    rt: Runtime, dispatcher: RecordingDispatcher, emulator: EmulatorProcess
) -> None:
    apply_id = submit(rt, "ps_recording", ONE_ALTER, target="ps", skip_revert=True)
    drive(rt, dispatcher, emulator, apply_id, "running")
    number = persisted(rt, apply_id)["dr_number"]
    kill_owner(rt, dispatcher, apply_id)
    clear_resume_state(rt, apply_id)
    token = sweep_and_claim(rt, dispatcher, apply_id)
    assert driver.tick(rt, apply_id, token, 0) is TickOutcome.FINISHED
    assert "`adopt`" in (status(rt, apply_id).attention or "")

    with pytest.raises(ControlRejected):
        client(rt).request_control(apply_id, "cutover")
    client(rt).request_control(apply_id, "adopt")  # the operator checked: one tagged request
    final = drive(rt, dispatcher, emulator, apply_id, "completed", "failed", "cancelled")
    assert final.state == "completed", (final.state, final.error, final.attention)
    assert final.attention is None
    assert "sku" in emulator.columns("commerce", "product")
    one_of_everything(emulator, apply_id)  # the same branch and deploy request, none created again
    assert persisted(rt, apply_id)["dr_number"] == number
    with pytest.raises(ControlRejected):
        client(rt).request_control(apply_id, "adopt")
