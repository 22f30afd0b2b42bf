"""Engine-level versions of the recovery scenarios of docs/architecture.md §10 that concern the engine.

The orchestration-level twins (storage, leases, workers) belong to schemabot's own tests; here
the engine is called exactly as the orchestrator will call it.
"""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest

from engines.base import (
    ApplyOptions,
    EngineState,
    NamespaceChange,
    PermanentEngineError,
    ResumeStateNotFound,
    RetryableEngineError,
    TableChange,
)
from engines.planetscale import PlanetScaleEngine
from tests.integration.planetscale.orchestrator_loop import (
    CHANGES,
    VSCHEMA,
    StateBox,
    branches_named,
    drive,
    request,
    start,
    tagged_deploy_requests,
)
from tests.support.emulator_process import EmulatorProcess


class StorageDown(Exception):
    """What schemabot's save_state raises when the state database is unreachable."""


def new_context() -> str:
    return f"apply-{uuid.uuid4().hex[:16]}"


def test_s1_apply_with_persisted_state_reattaches_to_same_branch_and_deploy_request(
    emulator: EmulatorProcess,
) -> None:
    box = StateBox()
    req = request(new_context(), box, options=ApplyOptions(defer_cutover=True, skip_revert=True))
    first = PlanetScaleEngine(emulator.target())
    start(first, req, box)
    drive(first, req, box, emulator, until={EngineState.RUNNING})
    persisted = dict(box.state or {})
    second = PlanetScaleEngine(emulator.target())  # the next owner
    result = second.apply(replace(req, resume_state=persisted))
    assert result.accepted and result.reattached
    assert result.resume_state["branch"] == persisted["branch"]
    assert result.resume_state["dr_number"] == persisted["dr_number"]
    box.save(result.resume_state)
    drive(second, req, box, emulator, until={EngineState.WAITING_FOR_CUTOVER})
    assert len(emulator.events("branch.create")) == 1
    assert len(emulator.events("deploy_request.create")) == 1


def test_s5_state_save_fails_after_accepted_reattach_next_owner_creates_nothing(
    emulator: EmulatorProcess,
) -> None:
    box = StateBox()
    req = request(new_context(), box, options=ApplyOptions(skip_revert=True))
    engine = PlanetScaleEngine(emulator.target())
    start(engine, req, box)
    drive(engine, req, box, emulator, until={EngineState.WAITING_FOR_DEPLOY, EngineState.RUNNING})
    persisted = dict(box.state or {})

    def broken_save(_: dict[str, object]) -> None:
        raise StorageDown("state database unreachable")

    # The reattach is accepted; the orchestrator's save of what it returned then fails. The
    # engine must not swallow errors of its own saves either: progress propagates them untouched.
    reattach = PlanetScaleEngine(emulator.target()).apply(replace(req, resume_state=persisted))
    assert reattach.accepted and reattach.resume_state is not None
    emulator.advance(1)  # the deploy moves on, so the next progress has something to save
    with pytest.raises(StorageDown):
        PlanetScaleEngine(emulator.target()).progress(
            replace(req, resume_state=persisted, save_state=broken_save)
        )
    # Next owner: same persisted state (nothing was written), reattaches, creates nothing new.
    box.state = persisted
    next_owner = PlanetScaleEngine(emulator.target())
    start(next_owner, req, box)
    assert drive(next_owner, req, box, emulator).state is EngineState.COMPLETED
    assert len(emulator.events("branch.create")) == 1
    assert len(emulator.events("deploy_request.create")) == 1
    assert len(branches_named(emulator, persisted["branch"])) == 1


def test_s5_save_state_error_before_create_propagates_and_nothing_is_created(
    emulator: EmulatorProcess,
) -> None:
    def broken_save(_: dict[str, object]) -> None:
        raise StorageDown("lease lost")

    req = replace(request(new_context(), StateBox()), save_state=broken_save)
    with pytest.raises(StorageDown):
        PlanetScaleEngine(emulator.target()).apply(req)
    assert emulator.events("branch.create") == []  # persist before act: no save, no branch


STOPS = [
    EngineState.PREPARING_BRANCH,
    EngineState.VALIDATING_DEPLOY_REQUEST,
    EngineState.RUNNING,
    EngineState.REVERT_WINDOW,
]


@pytest.mark.parametrize("stop_at", STOPS)
def test_s6_accepted_apply_always_returns_a_resume_state(
    emulator: EmulatorProcess, stop_at: EngineState
) -> None:
    box = StateBox()
    req = request(new_context(), box)
    engine = PlanetScaleEngine(emulator.target())
    fresh = engine.apply(req)
    assert fresh.accepted and fresh.resume_state is not None
    box.save(fresh.resume_state)
    if stop_at is not EngineState.PREPARING_BRANCH:
        drive(engine, req, box, emulator, until={stop_at})
    again = PlanetScaleEngine(emulator.target()).apply(replace(req, resume_state=box.state))
    assert again.accepted and again.resume_state is not None
    assert again.resume_state["format"] == 1


def test_s7_state_returned_by_progress_is_what_the_next_progress_needs(
    emulator: EmulatorProcess,
) -> None:
    box = StateBox()
    req = request(new_context(), box, options=ApplyOptions(skip_revert=True))
    engine = PlanetScaleEngine(emulator.target())
    start(engine, req, box)
    for _ in range(40):
        # A brand-new engine each poll: only the returned state carries the apply forward.
        result = PlanetScaleEngine(emulator.target()).progress(replace(req, resume_state=box.state))
        assert result.resume_state is not None
        # What progress returns is the last thing it saved (nothing newer is only in memory).
        assert box.state == result.resume_state
        if result.state is EngineState.COMPLETED:
            break
        emulator.advance(1)
    assert result.state is EngineState.COMPLETED
    assert len(emulator.events("deploy_request.create")) == 1


def test_s8_fresh_path_reuses_branch_name_and_adopts_tagged_deploy_request(
    emulator: EmulatorProcess,
) -> None:
    context, box = new_context(), StateBox()
    req = request(context, box, options=ApplyOptions(skip_revert=True))
    engine = PlanetScaleEngine(emulator.target())
    start(engine, req, box)
    drive(engine, req, box, emulator, until={EngineState.VALIDATING_DEPLOY_REQUEST})
    lost = dict(box.state or {})
    assert lost["dr_number"] is not None

    # The resume state is lost: the fresh path runs again with the same context.
    box2 = StateBox()
    again = PlanetScaleEngine(emulator.target())
    result = again.apply(replace(req, resume_state=None, save_state=box2.save))
    assert result.accepted and result.reattached
    assert result.resume_state["branch"] == lost["branch"]
    assert result.resume_state["dr_number"] == lost["dr_number"]
    box2.save(result.resume_state)
    done = drive(again, replace(req, save_state=box2.save), box2, emulator)
    assert done.state is EngineState.COMPLETED
    assert len(emulator.events("branch.create")) == 1
    assert len(emulator.events("deploy_request.create")) == 1
    assert len(tagged_deploy_requests(emulator, context)) == 1


def test_s8_fresh_path_on_a_branch_that_already_has_the_ddl_does_not_rerun_it(
    emulator: EmulatorProcess,
) -> None:
    """State lost after the DDL ran on the branch but before a deploy request existed."""
    context, box = new_context(), StateBox()
    req = request(context, box, options=ApplyOptions(skip_revert=True), step_budget=1.0)
    engine = PlanetScaleEngine(emulator.target())
    start(engine, req, box)
    emulator.fault(kind="error", target="list_deploy_requests", status=503, times=-1)
    with pytest.raises(RetryableEngineError):
        drive(engine, req, box, emulator)
    emulator.clear_faults()
    assert set(box.state["ddl_done"]) == {"commerce/product/0", "commerce/coupon/1",
                                         "customers/customer/0"}  # fmt: skip
    box2 = StateBox()
    again = PlanetScaleEngine(emulator.target())
    req2 = replace(req, save_state=box2.save)
    start(again, req2, box2)
    assert box2.state["branch_adopted"] is True
    assert drive(again, req2, box2, emulator).state is EngineState.COMPLETED
    assert len(emulator.events("branch.create")) == 1
    assert len(tagged_deploy_requests(emulator, context)) == 1
    assert "sku" in emulator.columns("commerce", "product")


def test_s8_two_tagged_deploy_requests_are_an_error_for_a_human(emulator: EmulatorProcess) -> None:
    context, box = new_context(), StateBox()
    req = request(context, box)
    engine = PlanetScaleEngine(emulator.target())
    start(engine, req, box)
    drive(engine, req, box, emulator, until={EngineState.VALIDATING_DEPLOY_REQUEST})
    notes = f"duplicate\n\nschemabot-apply: {context}\n"
    created = emulator.api("POST", "/deploy-requests", branch=box.state["branch"], notes=notes)
    assert created.status_code == 201
    with pytest.raises(PermanentEngineError, match="close all but one"):
        PlanetScaleEngine(emulator.target()).apply(
            replace(req, resume_state=None, save_state=StateBox().save)
        )


def test_s8_resume_state_names_a_vanished_deploy_request_not_found(
    emulator: EmulatorProcess,
) -> None:
    box = StateBox()
    req = request(new_context(), box)
    engine = PlanetScaleEngine(emulator.target())
    start(engine, req, box)
    drive(engine, req, box, emulator, until={EngineState.VALIDATING_DEPLOY_REQUEST})
    emulator.admin("POST", "vanish", number=box.state["dr_number"])
    with pytest.raises(ResumeStateNotFound):
        PlanetScaleEngine(emulator.target()).apply(replace(req, resume_state=box.state))
    with pytest.raises(ResumeStateNotFound):
        engine.progress(replace(req, resume_state=box.state))


def test_s8_resume_state_names_a_vanished_branch_not_found(emulator: EmulatorProcess) -> None:
    box = StateBox()
    req = request(new_context(), box)
    engine = PlanetScaleEngine(emulator.target())
    start(engine, req, box)
    emulator.advance(1)
    emulator.admin("POST", "vanish", branch=box.state["branch"])
    with pytest.raises(ResumeStateNotFound):
        PlanetScaleEngine(emulator.target()).apply(replace(req, resume_state=box.state))
    assert len(emulator.events("branch.create")) == 1  # and no second branch was opened


def test_get_error_is_never_read_as_gone(emulator: EmulatorProcess) -> None:
    box = StateBox()
    req = request(new_context(), box, step_budget=1.0)
    engine = PlanetScaleEngine(emulator.target())
    start(engine, req, box)
    drive(engine, req, box, emulator, until={EngineState.VALIDATING_DEPLOY_REQUEST})
    # A 404 without PlanetScale's typed body (a proxy, a load balancer) is not "gone".
    emulator.fault(kind="error", target="get_deploy_request", status=404, code="oops", times=-1)
    with pytest.raises(RetryableEngineError):
        PlanetScaleEngine(emulator.target()).apply(replace(req, resume_state=box.state))
    emulator.clear_faults()
    emulator.fault(kind="error", target="get_deploy_request", status=500, times=-1)
    with pytest.raises(RetryableEngineError):
        engine.progress(replace(req, resume_state=box.state))
    emulator.clear_faults()


def test_s10_vschema_only_namespace_deploys(emulator: EmulatorProcess) -> None:
    box = StateBox()
    changes = (NamespaceChange("customers", (), vschema_changed=True, vschema=VSCHEMA),)
    req = request(new_context(), box, changes)
    engine = PlanetScaleEngine(emulator.target())
    start(engine, req, box)
    done = drive(engine, req, box, emulator)
    assert done.state is EngineState.COMPLETED
    vschema = emulator.api("GET", "/branches/main/keyspaces/customers/vschema").json()["raw"]
    assert '"customer"' in vschema
    assert "in_progress_vschema" in {s.get("last_deploy_state") for s in box.history}


def test_s10_vschema_flag_without_document_fails_closed(emulator: EmulatorProcess) -> None:
    changes = (NamespaceChange("customers", (), vschema_changed=True, vschema=None),)
    with pytest.raises(PermanentEngineError, match="no VSchema"):
        PlanetScaleEngine(emulator.target()).apply(request(new_context(), StateBox(), changes))
    assert emulator.events("branch.create") == []


def test_s12_one_grouped_apply_makes_one_branch_and_one_deploy_request_for_all_keyspaces(
    emulator: EmulatorProcess,
) -> None:
    context, box = new_context(), StateBox()
    req = request(context, box, CHANGES, options=ApplyOptions(skip_revert=True))
    engine = PlanetScaleEngine(emulator.target())
    start(engine, req, box)
    assert drive(engine, req, box, emulator).state is EngineState.COMPLETED
    (dr,) = tagged_deploy_requests(emulator, context)
    diff = emulator.api("GET", f"/deploy-requests/{dr['number']}/diff").json()["data"]
    assert {(d["keyspace_name"], d["name"]) for d in diff} == {
        ("commerce", "product"), ("commerce", "coupon"), ("customers", "customer"),
        ("customers", "vschema"),
    }  # fmt: skip
    assert len(emulator.events("branch.create")) == 1


def test_unexpected_change_in_deploy_request_is_refused(emulator: EmulatorProcess) -> None:
    """Main changed after the branch was made: deploying would undo someone's change."""
    box = StateBox()
    changes = (
        NamespaceChange(
            "commerce", (TableChange("product", "ALTER TABLE product ADD COLUMN sku INT", "alter"),)
        ),
    )
    req = request(new_context(), box, changes)
    engine = PlanetScaleEngine(emulator.target())
    start(engine, req, box)
    emulator.advance(1)  # branch provisioned from main
    emulator.sql("commerce", "CREATE TABLE audit (id INT PRIMARY KEY)")  # main moves on
    with pytest.raises(PermanentEngineError, match="audit"):
        drive(engine, req, box, emulator)


# -- DROP TABLE of an absent table: the rule of every engine (docs/architecture.md §5.1) ------------


def _drop(table: str, ddl: str) -> tuple[NamespaceChange, ...]:
    return (NamespaceChange("commerce", (TableChange(table, ddl, "drop"),)),)


def test_drop_of_an_absent_table_fails_and_if_exists_completes_saying_so(emulator: EmulatorProcess) -> None:
    box = StateBox()
    req = request(new_context(), box, _drop("nosuch", "DROP TABLE nosuch"))
    engine = PlanetScaleEngine(emulator.target())
    start(engine, req, box)
    with pytest.raises(PermanentEngineError, match="does not exist; use DROP TABLE IF EXISTS"):
        drive(engine, req, box, emulator)

    box = StateBox()
    options = ApplyOptions(skip_revert=True)
    req = request(new_context(), box, _drop("nosuch", "DROP TABLE IF EXISTS nosuch"), options=options)
    start(engine, req, box)
    events: list[str] = []
    for _ in range(60):
        result = engine.progress(replace(req, resume_state=box.state))
        assert result.resume_state is not None
        box.save(result.resume_state)
        events += result.events
        if result.state in (EngineState.COMPLETED, EngineState.FAILED):
            break
        emulator.advance(1)
    assert result.state is EngineState.COMPLETED, result.message
    assert "commerce.nosuch was already absent (DROP TABLE IF EXISTS did nothing)" in events, events
    assert box.state is not None and box.state["ddl_absent"] == ["commerce/nosuch/0"]


def test_a_drop_that_ran_before_its_worker_died_is_done_not_absent(
    emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The DROP ran on the branch and the worker died before recording it: the intent saved
    before the DROP tells the next owner the table is gone because of it."""
    from engines.planetscale.branch_sql import BranchSQL

    real = BranchSQL.run_ddl

    def run_then_die(self: BranchSQL, *args: object) -> None:
        real(self, *args)  # type: ignore[arg-type]
        raise SystemExit("worker killed right after its DROP")

    box = StateBox()
    options = ApplyOptions(skip_revert=True)
    req = request(new_context(), box, _drop("product", "DROP TABLE product"), options=options)
    first = PlanetScaleEngine(emulator.target())
    start(first, req, box)
    monkeypatch.setattr(BranchSQL, "run_ddl", run_then_die)
    with pytest.raises(SystemExit):
        drive(first, req, box, emulator)
    assert (box.state or {}).get("intent", {}).get("call") == "ddl"
    monkeypatch.setattr(BranchSQL, "run_ddl", real)

    second = PlanetScaleEngine(emulator.target())
    final = drive(second, replace(req, resume_state=box.state), box, emulator)
    assert final.state is EngineState.COMPLETED, final.message
    assert box.state is not None and box.state["ddl_absent"] == []
    assert "product" not in emulator.tables("commerce")
