"""Full deploys through the planetscale engine against the emulator: the happy paths and the
user controls (deferred cutover, revert, skip-revert, cancel, volume)."""

from __future__ import annotations

import contextlib
import time
import uuid
from dataclasses import replace

import pytest

from engines.base import (
    ApplyOptions,
    ControlNotApplicable,
    EngineState,
    NamespaceChange,
    PermanentEngineError,
    RetryableEngineError,
    TableChange,
)
from engines.planetscale import PlanetScaleEngine
from tests.integration.planetscale.orchestrator_loop import (
    StateBox,
    branches_named,
    control,
    drive,
    request,
    start,
    tagged_deploy_requests,
)
from tests.support.emulator_process import EmulatorProcess

ONE_ALTER = (
    NamespaceChange(
        "commerce",
        (TableChange("product", "ALTER TABLE product ADD COLUMN sku VARCHAR(32) NULL", "alter"),),
    ),
)


def new_context() -> str:
    return f"apply-{uuid.uuid4().hex[:16]}"


def test_full_deploy_two_keyspaces_and_vschema_completes(emulator: EmulatorProcess) -> None:
    context, box = new_context(), StateBox()
    engine = PlanetScaleEngine(emulator.target())
    req = request(context, box, options=ApplyOptions(skip_revert=True))
    start(engine, req, box)
    result = drive(engine, req, box, emulator)
    assert result.state is EngineState.COMPLETED, result.message
    assert emulator.columns("commerce", "product") == ["id", "name", "price", "sku"]
    assert "coupon" in emulator.tables("commerce")
    rows = emulator.sql("commerce", "SELECT name FROM product ORDER BY id")
    assert [r[0] for r in rows] == ["apple", "pear", "fig", "kiwi", "lime"]
    assert emulator.sql("customers", "SHOW INDEX FROM customer WHERE Key_name='idx_email'")
    vschema = emulator.api("GET", "/branches/main/keyspaces/customers/vschema").json()["raw"]
    assert '"customer"' in vschema
    assert len(branches_named(emulator, box.state["branch"])) == 1
    assert len(tagged_deploy_requests(emulator, context)) == 1
    observed = {s.get("last_deploy_state") for s in box.history}
    assert {"in_progress", "in_progress_vschema", "complete"} <= observed
    engine.close()


def test_progress_reports_waiting_phases_and_per_table_progress(emulator: EmulatorProcess) -> None:
    box = StateBox()
    engine = PlanetScaleEngine(emulator.target())
    req = request(new_context(), box, options=ApplyOptions(skip_revert=True))
    start(engine, req, box)
    states, running_tables = [], []
    for _ in range(80):
        result = engine.progress(replace(req, resume_state=box.state))
        box.save(result.resume_state)
        states.append(result.state)
        if result.state is EngineState.RUNNING:
            running_tables += [t for t in result.tables if t.percent is not None]
        if result.state is EngineState.COMPLETED:
            break
        emulator.advance(1)
    assert states[-1] is EngineState.COMPLETED
    # The states in which the emulator makes the engine wait for a tick.
    for expected in (
        EngineState.PREPARING_BRANCH,
        EngineState.VALIDATING_DEPLOY_REQUEST,
        EngineState.WAITING_FOR_DEPLOY,
        EngineState.RUNNING,
    ):
        assert expected in states
    assert {(t.namespace, t.table) for t in running_tables} >= {("commerce", "product")}
    percents = [t.percent for t in running_tables if t.percent is not None]
    assert all(0 <= p <= 100 for p in percents) and max(percents) > 0


def test_progress_returns_within_the_step_budget(emulator: EmulatorProcess) -> None:
    box = StateBox()
    engine = PlanetScaleEngine(emulator.target())
    emulator.fault(kind="delay", target="get_deploy_request", delay_ms=3000, times=-1)
    req = request(new_context(), box, ONE_ALTER, step_budget=1.0)
    start(engine, req, box)
    for _ in range(4):
        began = time.monotonic()
        with contextlib.suppress(RetryableEngineError):
            engine.progress(replace(req, resume_state=box.state))
        assert time.monotonic() - began < 1.5
        emulator.advance(1)
    emulator.clear_faults()


def test_deferred_cutover_waits_then_cutover_control_completes(emulator: EmulatorProcess) -> None:
    box = StateBox()
    engine = PlanetScaleEngine(emulator.target())
    req = request(new_context(), box, options=ApplyOptions(defer_cutover=True, skip_revert=True))
    start(engine, req, box)
    waiting = drive(engine, req, box, emulator, until={EngineState.WAITING_FOR_CUTOVER})
    assert "cutover" in waiting.message
    for _ in range(3):  # waiting is stable: the engine does not cut over on its own
        emulator.advance(1)
        again = engine.progress(replace(req, resume_state=box.state))
        assert again.state is EngineState.WAITING_FOR_CUTOVER
    assert "sku" not in emulator.columns("commerce", "product")
    result = engine.cutover(control(req, box))
    assert result.accepted, result.message
    box.save(result.resume_state)
    repeat = engine.cutover(control(req, box))  # a repeated control is a harmless no-op
    assert repeat.accepted
    assert len(emulator.events("deploy_request.apply_deploy")) == 1
    done = drive(engine, req, box, emulator)
    assert done.state is EngineState.COMPLETED
    assert "sku" in emulator.columns("commerce", "product")


def test_revert_inside_the_window_restores_schema_and_keeps_rows(emulator: EmulatorProcess) -> None:
    box = StateBox()
    engine = PlanetScaleEngine(emulator.target())
    req = request(new_context(), box)
    start(engine, req, box)
    window = drive(engine, req, box, emulator, until={EngineState.REVERT_WINDOW})
    assert "revert window" in window.message
    assert "sku" in emulator.columns("commerce", "product")
    emulator.sql("commerce", "INSERT INTO product (name, price, sku) VALUES ('plum', 5, 'P-1')")
    result = engine.revert(control(req, box))
    assert result.accepted, result.message
    box.save(result.resume_state)
    done = drive(engine, req, box, emulator)
    assert done.state is EngineState.REVERTED
    assert emulator.columns("commerce", "product") == ["id", "name", "price"]
    assert "coupon" not in emulator.tables("commerce")
    names = [r[0] for r in emulator.sql("commerce", "SELECT name FROM product ORDER BY id")]
    assert names == ["apple", "pear", "fig", "kiwi", "lime", "plum"]
    vschema = emulator.api("GET", "/branches/main/keyspaces/customers/vschema").json()["raw"]
    assert '"customer"' not in vschema


def test_skip_revert_control_closes_the_window(emulator: EmulatorProcess) -> None:
    box = StateBox()
    engine = PlanetScaleEngine(emulator.target())
    req = request(new_context(), box, ONE_ALTER)
    start(engine, req, box)
    drive(engine, req, box, emulator, until={EngineState.REVERT_WINDOW})
    refused = engine.stop(control(req, box))
    assert not refused.accepted and "revert or skip-revert" in refused.message
    result = engine.skip_revert(control(req, box))
    assert result.accepted, result.message
    box.save(result.resume_state)
    done = drive(engine, req, box, emulator)
    assert done.state is EngineState.COMPLETED
    assert not engine.revert(control(req, box)).accepted
    assert "sku" in emulator.columns("commerce", "product")


def test_revert_window_ends_by_itself_without_skip(emulator: EmulatorProcess) -> None:
    box = StateBox()
    engine = PlanetScaleEngine(emulator.target())
    req = request(new_context(), box, ONE_ALTER)
    start(engine, req, box)
    drive(engine, req, box, emulator, until={EngineState.REVERT_WINDOW})
    emulator.advance(ticks=1, seconds=601)  # the emulator's window is 600 s
    done = drive(engine, req, box, emulator)
    assert done.state is EngineState.COMPLETED
    assert emulator.events("deploy_request.skip_revert") == []


def test_cancel_is_permanent_and_says_so(emulator: EmulatorProcess) -> None:
    box = StateBox()
    engine = PlanetScaleEngine(emulator.target())
    req = request(new_context(), box, ONE_ALTER, options=ApplyOptions(defer_cutover=True))
    start(engine, req, box)
    drive(engine, req, box, emulator, until={EngineState.WAITING_FOR_CUTOVER})
    result = engine.cancel(control(req, box))
    assert result.accepted and "permanent" in result.message
    box.save(result.resume_state)
    done = drive(engine, req, box, emulator)
    assert done.state is EngineState.CANCELLED
    assert "sku" not in emulator.columns("commerce", "product")
    with pytest.raises(ControlNotApplicable):
        engine.start(control(req, box))


def test_volume_sets_the_throttle_ratio_once(emulator: EmulatorProcess) -> None:
    box = StateBox()
    engine = PlanetScaleEngine(emulator.target())
    req = request(new_context(), box, ONE_ALTER, options=ApplyOptions(defer_cutover=True))
    start(engine, req, box)
    drive(engine, req, box, emulator, until={EngineState.RUNNING})
    assert engine.volume(control(req, box, "3")).accepted
    again = engine.volume(control(req, box, "3"))
    assert again.accepted and "already" in again.message
    number = box.state["dr_number"]
    assert emulator.api("GET", f"/deploy-requests/{number}/throttler").json()["ratio"] == 76
    assert len(emulator.events("deploy_request.throttle")) == 1
    assert not engine.volume(control(req, box, "12")).accepted


def test_ddl_rejected_by_the_branch_is_permanent_with_the_server_message(
    emulator: EmulatorProcess,
) -> None:
    box = StateBox()
    engine = PlanetScaleEngine(emulator.target())
    bad = (
        NamespaceChange(
            "commerce", (TableChange("product", "ALTER TABLE product DROP COLUMN nope", "alter"),)
        ),
    )
    req = request(new_context(), box, bad)
    start(engine, req, box)
    with pytest.raises(PermanentEngineError, match="nope"):
        drive(engine, req, box, emulator)
    assert tagged_deploy_requests(emulator, req.context) == []


def test_persistent_api_errors_raise_retryable(emulator: EmulatorProcess) -> None:
    box = StateBox()
    engine = PlanetScaleEngine(emulator.target())
    req = request(new_context(), box, ONE_ALTER, step_budget=1.0)
    emulator.fault(kind="error", target="get_branch", status=503, times=-1)
    with pytest.raises(RetryableEngineError, match="503"):
        engine.apply(req)
    emulator.clear_faults()
    assert box.state is not None and box.state["intent"] is None  # nothing attempted yet


def test_instant_deploy_skips_copy_and_window(emulator: EmulatorProcess) -> None:
    box = StateBox()
    engine = PlanetScaleEngine(emulator.target())
    req = request(new_context(), box, ONE_ALTER, options=ApplyOptions(extra={"instant_ddl": True}))
    start(engine, req, box)
    done = drive(engine, req, box, emulator)
    assert done.state is EngineState.COMPLETED
    assert box.state["instant"] is True
    observed = {s.get("last_deploy_state") for s in box.history}
    assert "in_progress" not in observed and "complete_pending_revert" not in observed


def test_deferred_deploy_waits_for_start(emulator: EmulatorProcess) -> None:
    box = StateBox()
    engine = PlanetScaleEngine(emulator.target())
    req = request(new_context(), box, ONE_ALTER,
                  options=ApplyOptions(skip_revert=True, extra={"defer_deploy": True}))  # fmt: skip
    start(engine, req, box)
    drive(engine, req, box, emulator, until={EngineState.WAITING_FOR_DEPLOY})
    emulator.advance(2)
    assert engine.progress(replace(req, resume_state=box.state)).state is EngineState.WAITING_FOR_DEPLOY
    result = engine.start(control(req, box))
    assert result.accepted
    box.save(result.resume_state)
    assert drive(engine, req, box, emulator).state is EngineState.COMPLETED


def test_no_secret_in_state_messages_or_events(emulator: EmulatorProcess) -> None:
    box = StateBox()
    engine = PlanetScaleEngine(emulator.target())
    req = request(new_context(), box, ONE_ALTER, options=ApplyOptions(skip_revert=True))
    start(engine, req, box)
    texts = []
    for _ in range(30):
        result = engine.progress(replace(req, resume_state=box.state))
        box.save(result.resume_state)
        texts += [result.message, *result.events, repr(result.resume_state)]
        if result.state is EngineState.COMPLETED:
            break
        emulator.advance(1)
    assert "tok-secret" not in "".join(texts)
    assert "tok-secret" not in repr(engine.target) and "tok-secret" not in repr(engine.ps)
    assert "pscale_pw_" not in "".join(texts)
