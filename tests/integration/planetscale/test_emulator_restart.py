"""The emulator keeps everything in MariaDB: killing and restarting it mid-deploy loses nothing,
and the engine carries on with the same branch and deploy request."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace

from engines.base import ApplyOptions, EngineState
from engines.planetscale import PlanetScaleEngine
from tests.integration.planetscale.orchestrator_loop import (
    StateBox,
    branches_named,
    drive,
    request,
    start,
    tagged_deploy_requests,
)
from tests.support.emulator_process import EmulatorProcess


def test_emulator_sigkilled_mid_deploy_restarts_and_the_deploy_completes(
    new_emulator: Callable[..., EmulatorProcess],
) -> None:
    emulator = new_emulator()
    context, box = f"apply-{uuid.uuid4().hex[:16]}", StateBox()
    req = request(context, box, options=ApplyOptions(skip_revert=True))
    engine = PlanetScaleEngine(emulator.target())
    start(engine, req, box)
    drive(engine, req, box, emulator, until={EngineState.RUNNING})
    before = emulator.api("GET", f"/deploy-requests/{box.state['dr_number']}").json()
    events_before = len(emulator.events())

    emulator.kill()  # no chance to tidy up
    emulator.start()  # same port, same MariaDB prefix

    after = emulator.api("GET", f"/deploy-requests/{box.state['dr_number']}").json()
    assert after["deployment_state"] == before["deployment_state"] == "in_progress"
    assert after["notes"] == before["notes"]
    assert len(emulator.events()) == events_before + 1  # only the new boot
    assert emulator.status()["boots"] == 2
    fresh = PlanetScaleEngine(emulator.target())
    reattached = fresh.apply(replace(req, resume_state=box.state))
    assert reattached.accepted and reattached.reattached
    done = drive(fresh, req, box, emulator)
    assert done.state is EngineState.COMPLETED
    assert len(branches_named(emulator, box.state["branch"])) == 1
    assert len(tagged_deploy_requests(emulator, context)) == 1
    assert "sku" in emulator.columns("commerce", "product")


def test_admin_restart_keeps_branches_passwords_and_the_clock(
    new_emulator: Callable[..., EmulatorProcess],
) -> None:
    emulator = new_emulator()
    assert emulator.api("POST", "/branches", name="dev", parent_branch="main").status_code == 201
    emulator.advance(ticks=1, seconds=120)
    password = emulator.api("POST", "/branches/dev/passwords", name="pw").json()
    clock = emulator.status()["now"]
    status = emulator.restart()
    assert status["boots"] == 2 and status["now"] >= clock
    assert emulator.api("GET", "/branches/dev").json()["ready"] is True
    listed = emulator.api("GET", "/branches/dev/passwords").json()["data"]
    assert [p["id"] for p in listed] == [password["id"]]
