"""Full deploys through the planetscale engine against the emulator: the happy paths and the
user controls (deferred cutover, revert, skip-revert, cancel, volume)."""

from __future__ import annotations

import uuid

import pytest

from engines.base import (
    ApplyOptions,
    EngineState,
    NamespaceChange,
    PermanentEngineError,
    TableChange,
)
from engines.planetscale import PlanetScaleEngine
from tests.integration.planetscale.driver import (
    VSCHEMA,
    StateBox,
    branches_named,
    control,
    drive,
    request,
    start,
    tagged_deploy_requests,
)
from tests.support.planetscale_emulator import EmulatorProcess


def new_context() -> str:
    return f"apply-{uuid.uuid4().hex[:16]}"


def test_full_deploy_two_keyspaces_and_vschema_completes(emulator: EmulatorProcess) -> None:
    context, box = new_context(), StateBox()
    engine = PlanetScaleEngine(emulator.target())
    req = request(context, box, options=ApplyOptions(skip_revert=True))
    start(engine, req, box)
    seen = []
    result = drive(engine, req, box, emulator)
    seen = [s.get("last_deploy_state") for s in box.history]
    assert result.state is EngineState.COMPLETED, result.message
    assert emulator.columns("commerce", "product") == ["id", "name", "price", "sku"]
    assert "coupon" in emulator.tables("commerce")
    assert emulator.sql("commerce", "SELECT name FROM product ORDER BY id") == [
        ("apple",),
        ("pear",),
        ("fig",),
        ("kiwi",),
        ("lime",),
    ]
    indexes = emulator.sql("customers", "SHOW INDEX FROM customer WHERE Key_name='idx_email'")
    assert indexes
    vschema = emulator.api("GET", "/branches/main/keyspaces/customers/vschema").json()["raw"]
    assert '"customer"' in vschema
    assert len(branches_named(emulator, box.state["branch"])) == 1
    assert len(tagged_deploy_requests(emulator, context)) == 1
    assert "in_progress" in seen
    engine.close()
