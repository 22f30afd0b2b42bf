"""The engine survives the two ways a side-effecting call goes wrong, for each such call
(create branch, create deploy request, deploy, apply-deploy):

- the emulator performs the call and then loses the response (the client sees a dropped
  connection), and the same engine carries on;
- the worker process is SIGKILLed right after the call was answered, and a fresh engine resumes
  from the last state the worker saved.

Either way, at the end there is exactly one branch and one deploy request for the apply, each
call took effect once, and the apply completes with main changed.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from engines.base import ApplyOptions, EngineState
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
from tests.support.emulator_process import REPO, EmulatorProcess

CALLS = ("create_branch", "create_deploy_request", "deploy", "apply_deploy")
EVENT_OF = {
    "create_branch": "branch.create",
    "create_deploy_request": "deploy_request.create",
    "deploy": "deploy_request.deploy",
    "apply_deploy": "deploy_request.apply_deploy",
}


def assert_exactly_one_of_everything(emulator: EmulatorProcess, context: str, branch: str, call: str) -> None:
    assert len(branches_named(emulator, branch)) == 1
    assert len(tagged_deploy_requests(emulator, context)) == 1
    assert len(emulator.events("branch.create")) == 1
    assert len(emulator.events("deploy_request.create")) == 1
    assert len(emulator.events("deploy_request.deploy")) == 1
    # apply-deploy is called only when the cutover is deferred (the apply_deploy cases);
    # otherwise the deploy request cuts over by itself.
    assert len(emulator.events("deploy_request.apply_deploy")) == (call == "apply_deploy")
    assert "sku" in emulator.columns("commerce", "product")
    assert "coupon" in emulator.tables("commerce")


@pytest.mark.parametrize("call", CALLS)
def test_lost_response_of_each_call_leaves_one_branch_and_one_deploy_request(
    emulator: EmulatorProcess, call: str
) -> None:
    context, box = f"apply-{uuid.uuid4().hex[:16]}", StateBox()
    engine = PlanetScaleEngine(emulator.target())
    # apply-deploy is the engine's own call when the cutover is not deferred: make it explicit.
    options = ApplyOptions(skip_revert=True, defer_cutover=call == "apply_deploy")
    req = request(context, box, options=options)
    emulator.fault(kind="lose_response", target=call)
    start(engine, req, box)
    result = drive(engine, req, box, emulator,
                   until={EngineState.COMPLETED, EngineState.WAITING_FOR_CUTOVER})  # fmt: skip
    if result.state is EngineState.WAITING_FOR_CUTOVER:
        cut = engine.cutover(control(req, box))  # the answer to apply-deploy gets lost
        assert cut.accepted, cut.message
        box.save(cut.resume_state)
        result = drive(engine, req, box, emulator)
    assert result.state is EngineState.COMPLETED, result.message
    assert len(emulator.events("fault.lose_response")) == 1
    assert_exactly_one_of_everything(emulator, context, box.state["branch"], call)


@pytest.mark.parametrize("call", CALLS)
def test_worker_killed_right_after_each_call_resumes_without_duplicates(
    emulator: EmulatorProcess, call: str, tmp_path: Path
) -> None:
    context = f"apply-{uuid.uuid4().hex[:16]}"
    state_file = tmp_path / "resume_state.json"
    config = {
        "target_dsn": emulator.target().dsn,
        "admin_url": emulator.base,
        "context": context,
        "state_file": str(state_file),
        "kill_after": call,
        "defer_cutover": call == "apply_deploy",
    }
    child = subprocess.run(
        [sys.executable, "-m", "tests.integration.planetscale.child_worker", json.dumps(config)],
        cwd=REPO, capture_output=True, timeout=60,
    )  # fmt: skip
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-2000:]
    assert len(emulator.events(EVENT_OF[call])) == 1  # the call happened before the kill

    # A new owner: a fresh engine with the last state the dead worker saved.
    box = StateBox(path=state_file)
    saved = box.load()
    assert saved is not None and saved["intent"] is not None  # it died between intent and result
    assert saved["intent"]["call"] == call
    engine = PlanetScaleEngine(emulator.target())
    options = ApplyOptions(skip_revert=True, defer_cutover=call == "apply_deploy")
    req = request(context, box, options=options)
    start(engine, req, box)
    result = drive(engine, req, box, emulator)
    assert result.state is EngineState.COMPLETED, result.message
    assert_exactly_one_of_everything(emulator, context, box.state["branch"], call)
    if call == "create_branch":
        assert box.state["branch_created"] is True
    engine.close()


def test_reattach_after_kill_reports_where_it_resumes(emulator: EmulatorProcess) -> None:
    context, box = f"apply-{uuid.uuid4().hex[:16]}", StateBox()
    engine = PlanetScaleEngine(emulator.target())
    req = request(context, box, options=ApplyOptions(defer_cutover=True))
    start(engine, req, box)
    drive(engine, req, box, emulator, until={EngineState.WAITING_FOR_CUTOVER})
    fresh = PlanetScaleEngine(emulator.target())
    result = fresh.apply(replace(req, resume_state=box.state))
    assert result.accepted and result.reattached
    assert result.resume_point == f"deploy request #{box.state['dr_number']} (pending_cutover)"


@pytest.mark.parametrize("call", ["create_branch", "create_deploy_request", "deploy"])
def test_connection_dropped_before_each_call_is_retried_once_safely(
    emulator: EmulatorProcess, call: str
) -> None:
    context, box = f"apply-{uuid.uuid4().hex[:16]}", StateBox()
    engine = PlanetScaleEngine(emulator.target())
    req = request(context, box, options=ApplyOptions(skip_revert=True))
    emulator.fault(kind="drop", target=call)
    start(engine, req, box)
    assert drive(engine, req, box, emulator).state is EngineState.COMPLETED
    assert len(emulator.events("fault.drop")) == 1
    assert_exactly_one_of_everything(emulator, context, box.state["branch"], call)


def test_deploy_stalled_in_queue_waits_then_completes(emulator: EmulatorProcess) -> None:
    context, box = f"apply-{uuid.uuid4().hex[:16]}", StateBox()
    engine = PlanetScaleEngine(emulator.target())
    req = request(context, box, options=ApplyOptions(skip_revert=True))
    emulator.fault(kind="stall", deploy_state="queued", times=5)
    start(engine, req, box)
    drive(engine, req, box, emulator, until={EngineState.WAITING_FOR_DEPLOY})
    for _ in range(4):
        emulator.advance(1)
        waiting = engine.progress(replace(req, resume_state=box.state))
        assert waiting.state is EngineState.WAITING_FOR_DEPLOY
    assert drive(engine, req, box, emulator).state is EngineState.COMPLETED


def test_failed_deploy_reports_failed_with_the_reason(emulator: EmulatorProcess) -> None:
    context, box = f"apply-{uuid.uuid4().hex[:16]}", StateBox()
    engine = PlanetScaleEngine(emulator.target())
    req = request(context, box)
    emulator.fault(kind="fail_deploy", message="replica lag too high")
    start(engine, req, box)
    result = drive(engine, req, box, emulator)
    assert result.state is EngineState.FAILED
    assert "replica lag too high" in result.message
    assert "sku" not in emulator.columns("commerce", "product")
    # The end is stable: later polls report the same without asking PlanetScale again.
    assert engine.progress(replace(req, resume_state=box.state)).state is EngineState.FAILED
