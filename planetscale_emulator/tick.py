"""One tick of the emulated world: branches get provisioned and deploy requests take one step.

A tick runs every `tick_interval` seconds in the background, or on demand through the admin API
(tests use that to move deploys as fast as they like without sleeping). Each deploy request
advances at most one state per tick, so every intermediate state is observable, and a stall
fault can hold it in any of them.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pymysql

from planetscale_emulator import branches, cutover, faults
from planetscale_emulator import deploy_states as ds
from planetscale_emulator.deploy_requests import current_plan, live_plan
from planetscale_emulator.errors import ApiError
from planetscale_emulator.schema_diff import Plan, instant_eligible, plan_summary
from planetscale_emulator.store import Row
from planetscale_emulator.transitions import finalize, set_state
from planetscale_emulator.world import World

# States in which a tick has work to do for a deploy request.
_MOVING = (
    ds.PENDING,
    ds.QUEUED,
    ds.SUBMITTING,
    ds.IN_PROGRESS,
    ds.PENDING_CUTOVER,
    ds.IN_PROGRESS_CUTOVER,
    ds.IN_PROGRESS_VSCHEMA,
    ds.COMPLETE_PENDING_REVERT,
    ds.IN_PROGRESS_REVERT,
    ds.IN_PROGRESS_CANCEL,
)


def run(world: World, count: int = 1) -> None:
    for _ in range(count):
        with world.lock:
            _tick_once(world)


def _tick_once(world: World) -> None:
    for row in world.store.query("SELECT id FROM branches WHERE ready=0 ORDER BY id"):
        branches.materialize(world, int(row["id"]))
    placeholders = ", ".join(["%s"] * len(_MOVING))
    rows = world.store.query(
        f"SELECT * FROM deploy_requests WHERE deployment_state IN ({placeholders}) ORDER BY number",
        _MOVING,
    )
    for row in rows:
        if row["state"] == "closed" and row["deployment_state"] == ds.PENDING:
            continue
        _step(world, world.deploy_request_row(int(row["number"])))
    _recheck_undeployed(world)


def _recheck_undeployed(world: World) -> None:
    """An open deploy request that was never deployed follows its branches, as on PlanetScale:
    when the branch (or main) changed since its diff was computed, it goes back to `pending` and
    the next tick computes the diff again. Once deployed, the stored plan is what runs."""
    rows = world.store.query(
        "SELECT * FROM deploy_requests WHERE state='open' AND deployment_state IN (%s, %s)"
        " AND queued_at IS NULL",
        (ds.READY, ds.NO_CHANGES),
    )
    for row in rows:
        try:
            live = live_plan(world, row)
        except ApiError:
            continue  # a branch is gone: nothing to follow
        if live.to_json() != row["plan"]:
            world.event("deploy_request.outdated", str(row["number"]))
            set_state(world, int(row["number"]), ds.PENDING, plan=None, operations=None)


def _step(world: World, row: Row) -> None:
    number, state = int(row["number"]), str(row["deployment_state"])
    stall = faults.first_deploy_fault(world.store, "stall", number, state)
    if stall is not None:
        faults.consume(world.store, stall)
        world.event("fault.stall", str(number), state=state)
        return
    failure = faults.first_deploy_fault(world.store, "fail_deploy", number, state)
    if failure is not None:
        faults.consume(world.store, failure)
        message = failure.message or f"deploy failed in {state} (injected)"
        world.event("fault.fail_deploy", str(number), state=state)
        _fail(world, row, message)
        return
    handler = _HANDLERS.get(state)
    if handler is not None:
        handler(world, row)


def _fail(world: World, row: Row, message: str) -> None:
    number = int(row["number"])
    before_deploy = row["deployment_state"] in (ds.PENDING, ds.READY)
    ops = _operations(row)
    for op in ops:
        if op["state"] != "complete":
            op["state"] = "error"
    set_state(
        world,
        number,
        ds.ERROR if before_deploy else ds.COMPLETE_ERROR,
        error_message=message,
        operations=json.dumps(ops),
    )


def _operations(row: Row) -> list[dict[str, Any]]:
    return list(json.loads(row["operations"] or "[]"))


def _on_pending(world: World, row: Row) -> None:
    """Compute the diff; a deploy request is deployable once it has one."""
    try:
        plan = current_plan(world, row)
    except ApiError as exc:
        _fail(world, row, exc.message)
        return
    now = world.now()
    ops = [
        {
            "id": f"op-{row['number']}-{i}",
            "keyspace_name": t.keyspace,
            "table_name": t.table,
            "operation_name": t.operation_name,
            "ddl_statement": t.ddl(),
            "state": "pending",
            "progress_percentage": 0,
            "eta_seconds": None,
            "created_at": now,
            "updated_at": now,
        }
        for i, t in enumerate(plan.tables, start=1)
    ]
    set_state(
        world,
        int(row["number"]),
        ds.NO_CHANGES if plan.empty else ds.READY,
        plan=plan.to_json(),
        operations=json.dumps(ops),
        instant_ddl_eligible=instant_eligible(plan),
    )
    world.event("deploy_request.diff", str(row["number"]), **plan_summary(plan))


def _on_queued(world: World, row: Row) -> None:
    placeholders = ", ".join(["%s"] * len(ds.HOLDS_QUEUE))
    busy = world.store.one(
        f"SELECT number FROM deploy_requests WHERE number<>%s AND into_branch=%s"
        f" AND deployment_state IN ({placeholders}) LIMIT 1",
        (row["number"], row["into_branch"], *ds.HOLDS_QUEUE),
    )
    if busy is None:
        set_state(world, int(row["number"]), ds.SUBMITTING)


def _set_ops(row: Row, state: str, progress: int | None = None) -> str:
    ops = _operations(row)
    for op in ops:
        op["state"] = state
        if progress is not None:
            op["progress_percentage"] = progress
    return json.dumps(ops)


def _on_submitting(world: World, row: Row) -> None:
    plan = Plan.from_json(row["plan"])
    number = int(row["number"])
    if not plan.tables:
        set_state(world, number, ds.IN_PROGRESS_VSCHEMA, started_at=world.now())
    elif row["instant_ddl"]:
        # INSTANT DDL changes metadata only: no copy phase, straight to the cutover.
        set_state(
            world,
            number,
            ds.IN_PROGRESS_CUTOVER,
            started_at=world.now(),
            operations=_set_ops(row, "in_progress"),
        )
    else:
        set_state(
            world,
            number,
            ds.IN_PROGRESS,
            started_at=world.now(),
            operations=_set_ops(row, "in_progress"),
        )


def _on_in_progress(world: World, row: Row) -> None:
    """Copy progress: 100% over `copy_ticks` ticks, slowed by the throttle ratio."""
    speed = (100 - int(row["throttle_ratio"])) / 100
    step = max(1, math.ceil(100 / world.config.copy_ticks * speed))
    ops = _operations(row)
    for op in ops:
        op["progress_percentage"] = min(100, int(op["progress_percentage"]) + step)
        remaining_ticks = math.ceil((100 - op["progress_percentage"]) / step)
        op["eta_seconds"] = int(remaining_ticks * max(world.config.tick_interval, 1))
        op["state"] = "ready_to_complete" if op["progress_percentage"] >= 100 else "in_progress"
        op["updated_at"] = world.now()
    number = int(row["number"])
    if all(op["progress_percentage"] >= 100 for op in ops):
        target = ds.IN_PROGRESS_CUTOVER if row["auto_cutover"] else ds.PENDING_CUTOVER
        set_state(
            world, number, target, operations=json.dumps(ops), ready_to_cutover_at=world.now()
        )
    else:
        world.store.execute(
            "UPDATE deploy_requests SET operations=%s, updated_at=%s WHERE number=%s",
            (json.dumps(ops), world.now(), number),
        )


def _on_pending_cutover(world: World, row: Row) -> None:
    if row["auto_cutover"]:
        set_state(world, int(row["number"]), ds.IN_PROGRESS_CUTOVER)


def _main_id(world: World, row: Row) -> int:
    return int(world.branch_row(str(row["into_branch"]))["id"])


def _on_cutover(world: World, row: Row) -> None:
    """Really change main's tables (see cutover.py), then the VSchema, then the revert window."""
    plan = Plan.from_json(row["plan"])
    number, main_id = int(row["number"]), _main_id(world, row)
    try:
        for change in plan.tables:
            schema = world.config.physical_database(main_id, change.keyspace)
            cutover.apply_table(world.store, schema, change, number)
    except pymysql.Error as exc:
        _fail(world, row, f"cutover failed: {exc.args[-1] if exc.args else exc}")
        return
    ops = _set_ops(row, "complete", 100)
    if plan.vschemas:
        set_state(world, number, ds.IN_PROGRESS_VSCHEMA, operations=ops, cutover_at=world.now())
    else:
        world.store.execute(
            "UPDATE deploy_requests SET operations=%s WHERE number=%s", (ops, number)
        )
        _finish_deploy(world, world.deploy_request_row(number))


def _on_vschema(world: World, row: Row) -> None:
    cutover.apply_vschemas(
        world.store, Plan.from_json(row["plan"]), _main_id(world, row), revert=False
    )
    _finish_deploy(world, row)


def _finish_deploy(world: World, row: Row) -> None:
    plan = Plan.from_json(row["plan"])
    now = world.now()
    number = int(row["number"])
    window = world.config.revert_window_seconds
    if plan.tables and not row["instant_ddl"] and window > 0:
        set_state(
            world,
            number,
            ds.COMPLETE_PENDING_REVERT,
            deployed_at=now,
            cutover_at=row["cutover_at"] or now,
            revert_expires_at=now + window,
        )
        return
    set_state(world, number, ds.COMPLETE, deployed_at=now, cutover_at=row["cutover_at"] or now)
    _after_complete(world, number)


def _after_complete(world: World, number: int) -> None:
    row = world.deploy_request_row(number)
    finalize(world, row)
    if row["auto_delete_branch"]:
        branch = world.store.one("SELECT id FROM branches WHERE name=%s", (row["branch"],))
        if branch is not None:
            branches.remove(world, int(branch["id"]))
            world.event("branch.delete", str(row["branch"]), reason="auto_delete_branch")


def _on_revert_window(world: World, row: Row) -> None:
    expires = row["revert_expires_at"]
    if expires is not None and world.now() >= float(expires):
        set_state(world, int(row["number"]), ds.COMPLETE)
        _after_complete(world, int(row["number"]))


def _on_revert(world: World, row: Row) -> None:
    plan = Plan.from_json(row["plan"])
    number, main_id = int(row["number"]), _main_id(world, row)
    try:
        for change in reversed(plan.tables):
            schema = world.config.physical_database(main_id, change.keyspace)
            cutover.revert_table(world.store, schema, change, number)
        cutover.apply_vschemas(world.store, plan, main_id, revert=True)
    except pymysql.Error as exc:
        _fail(world, row, f"revert failed: {exc.args[-1] if exc.args else exc}")
        return
    finalize(world, row)
    set_state(world, number, ds.COMPLETE_REVERT, operations=_set_ops(row, "reverted"))


def _on_cancel(world: World, row: Row) -> None:
    set_state(world, int(row["number"]), ds.COMPLETE_CANCEL, operations=_set_ops(row, "cancelled"))


_HANDLERS = {
    ds.PENDING: _on_pending,
    ds.QUEUED: _on_queued,
    ds.SUBMITTING: _on_submitting,
    ds.IN_PROGRESS: _on_in_progress,
    ds.PENDING_CUTOVER: _on_pending_cutover,
    ds.IN_PROGRESS_CUTOVER: _on_cutover,
    ds.IN_PROGRESS_VSCHEMA: _on_vschema,
    ds.COMPLETE_PENDING_REVERT: _on_revert_window,
    ds.IN_PROGRESS_REVERT: _on_revert,
    ds.IN_PROGRESS_CANCEL: _on_cancel,
}
