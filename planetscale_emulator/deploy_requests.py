"""Deploy request endpoints: create, read, list, close, and the calls that drive a deploy.

Calls only *start* transitions (deploy queues, apply-deploy starts the cutover, revert starts
the revert); the work itself happens on later ticks (see `tick.py`), so a client sees the same
intermediate states it would see on PlanetScale. Each call checks the current state first and
answers 422 with PlanetScale-style wording when the deploy request is not in a state that
accepts it.
"""

from __future__ import annotations

from typing import Any

from planetscale_emulator import deploy_states as ds
from planetscale_emulator import serializers
from planetscale_emulator.errors import invalid, not_found, unprocessable
from planetscale_emulator.schema_diff import Plan, compute_plan
from planetscale_emulator.store import Row
from planetscale_emulator.transitions import finalize, set_state
from planetscale_emulator.world import World, public_id


def _render(world: World, row: Row) -> dict[str, Any]:
    return serializers.deploy_request(world.config, row, world.now())


def create(world: World, body: dict[str, Any]) -> dict[str, Any]:
    branch = str(body.get("branch") or "")
    into = str(body.get("into_branch") or world.config.main_branch)
    with world.lock:
        source = world.branch_row(branch)
        target = world.branch_row(into)
        if source["production"]:
            raise unprocessable("A deploy request needs a development branch as its source")
        if not target["production"]:
            raise unprocessable(f"Branch {into} is not a production branch")
        if not source["ready"]:
            raise unprocessable(f"Branch {branch} is not ready yet")
        now = world.now()
        number = world.store.execute(
            "INSERT INTO deploy_requests (public_id, branch, into_branch, state, deployment_state,"
            " notes, auto_cutover, auto_delete_branch, created_at, updated_at)"
            " VALUES (%s, %s, %s, 'open', %s, %s, %s, %s, %s, %s)",
            (
                public_id(),
                branch,
                into,
                ds.PENDING,
                str(body.get("notes") or ""),
                bool(body.get("auto_cutover", False)),
                bool(body.get("auto_delete_branch", False)),
                now,
                now,
            ),
        )
        world.event("deploy_request.create", str(number), branch=branch, into_branch=into)
        return _render(world, world.deploy_request_row(number))


def get(world: World, number: int) -> dict[str, Any]:
    with world.lock:
        return _render(world, world.deploy_request_row(number))


def list_filtered(world: World, query: dict[str, str]) -> dict[str, Any]:
    """`state` filters open/closed; `branch` and `into_branch` filter by branch name."""
    sql, args = "SELECT * FROM deploy_requests WHERE 1=1", []
    for field in ("state", "branch", "into_branch"):
        if query.get(field):
            sql += f" AND {field}=%s"
            args.append(query[field])
    with world.lock:
        rows = world.store.query(sql + " ORDER BY number DESC", args)
        return serializers.page([_render(world, r) for r in rows])


def close(world: World, number: int, body: dict[str, Any]) -> dict[str, Any]:
    if body.get("state") != "closed":
        raise invalid("only {'state': 'closed'} can be set on a deploy request")
    with world.lock:
        row = world.deploy_request_row(number)
        if row["deployment_state"] in ds.DEPLOYING:
            raise unprocessable("A deploy request cannot be closed while it is being deployed")
        if row["state"] != "closed":
            now = world.now()
            world.store.execute(
                "UPDATE deploy_requests SET state='closed', closed_at=%s, updated_at=%s"
                " WHERE number=%s",
                (now, now, number),
            )
            world.event("deploy_request.close", str(number))
        return _render(world, world.deploy_request_row(number))


def _act(world: World, number: int, action: str, **fields: Any) -> dict[str, Any]:
    with world.lock:
        row = world.deploy_request_row(number)
        current = str(row["deployment_state"])
        target = ds.action_target(action, current)
        if target is None:
            raise unprocessable(
                f"Deploy request {number} cannot {action.replace('-', ' ')} in state {current}"
            )
        if row["state"] == "closed":
            raise unprocessable(f"Deploy request {number} is closed")
        world.event(f"deploy_request.{action.replace('-', '_')}", str(number), old=current)
        set_state(world, number, target, **fields)
        if target == ds.COMPLETE:
            finalize(world, world.deploy_request_row(number))
        return _render(world, world.deploy_request_row(number))


def deploy(world: World, number: int, body: dict[str, Any]) -> dict[str, Any]:
    with world.lock:
        row = world.deploy_request_row(number)
        instant = bool(body.get("instant_ddl", False))
        if instant and not row["instant_ddl_eligible"]:
            raise unprocessable(f"Deploy request {number} is not eligible for instant deployment")
        return _act(world, number, "deploy", queued_at=world.now(), instant_ddl=instant)


def apply_deploy(world: World, number: int) -> dict[str, Any]:
    return _act(world, number, "apply-deploy", cutover_at=None)


def cancel(world: World, number: int) -> dict[str, Any]:
    return _act(world, number, "cancel")


def revert(world: World, number: int) -> dict[str, Any]:
    return _act(world, number, "revert")


def skip_revert(world: World, number: int) -> dict[str, Any]:
    return _act(world, number, "skip-revert", revert_expires_at=None)


def auto_apply(world: World, number: int, body: dict[str, Any]) -> dict[str, Any]:
    """Turn auto cutover on or off; a deploy waiting in pending_cutover then proceeds."""
    enable = bool(body.get("enable", True))
    with world.lock:
        row = _set_while_unfinished(world, number, "auto_cutover", enable, "auto_apply", enable=enable)
        return _render(world, row)


def _set_while_unfinished(
    world: World, number: int, column: str, value: object, event: str, **detail: object
) -> Row:
    """Set one setting of a deploy request that has not finished (422 otherwise), record the
    event, and return the row as it is now. The caller holds `world.lock`."""
    row = world.deploy_request_row(number)
    if row["deployment_state"] in ds.FINISHED:
        raise unprocessable(f"Deploy request {number} is already finished")
    world.store.execute(
        f"UPDATE deploy_requests SET {column}=%s, updated_at=%s WHERE number=%s",
        (value, world.now(), number),
    )
    world.event(f"deploy_request.{event}", str(number), **detail)
    return world.deploy_request_row(number)


def get_throttler(world: World, number: int) -> dict[str, Any]:
    with world.lock:
        row = world.deploy_request_row(number)
        return _throttler(world, row)


def _throttler(world: World, row: Row) -> dict[str, Any]:
    ratio = int(row["throttle_ratio"])
    return {
        "keyspaces": list(world.config.keyspaces),
        "ratio": ratio,
        "configurations": [{"keyspace_name": ks, "ratio": ratio} for ks in world.config.keyspaces],
    }


def patch_throttler(world: World, number: int, body: dict[str, Any]) -> dict[str, Any]:
    try:
        ratio = int(body["ratio"])
    except (KeyError, TypeError, ValueError):
        raise invalid("ratio must be an integer between 0 and 95") from None
    if not 0 <= ratio <= 95:
        raise invalid("ratio must be an integer between 0 and 95")
    with world.lock:
        row = _set_while_unfinished(world, number, "throttle_ratio", ratio, "throttle", ratio=ratio)
        return _throttler(world, row)


def operations(world: World, number: int) -> dict[str, Any]:
    with world.lock:
        return serializers.page(serializers.operations(world.deploy_request_row(number)))


def current_plan(world: World, row: Row) -> Plan:
    """The stored plan once computed; before that, what the diff would be right now."""
    if row["plan"]:
        return Plan.from_json(row["plan"])
    return live_plan(world, row)


def live_plan(world: World, row: Row) -> Plan:
    """What the diff between the deploy request's two branches is right now."""
    branch = world.store.one("SELECT * FROM branches WHERE name=%s", (row["branch"],))
    into = world.store.one("SELECT * FROM branches WHERE name=%s", (row["into_branch"],))
    if branch is None or into is None:
        raise not_found(f"Branch {row['branch'] if branch is None else row['into_branch']}")
    return compute_plan(
        world.branch_tables(int(into["id"])),
        world.branch_tables(int(branch["id"])),
        world.branch_vschemas(int(into["id"])),
        world.branch_vschemas(int(branch["id"])),
    )


def diff(world: World, number: int) -> dict[str, Any]:
    """One entry per changed table (`kind: table`) and per changed VSchema (`kind: vschema`)."""
    with world.lock:
        plan = current_plan(world, world.deploy_request_row(number))
        items: list[dict[str, Any]] = [
            {
                "name": t.table,
                "keyspace_name": t.keyspace,
                "kind": "table",
                "operation_name": t.operation_name,
                "raw": t.diff_text(),
                "html": "",
            }
            for t in plan.tables
        ]
        items += [
            {
                "name": "vschema",
                "keyspace_name": v.keyspace,
                "kind": "vschema",
                "operation_name": "VSCHEMA",
                "raw": v.diff_text(),
                "html": "",
            }
            for v in plan.vschemas
        ]
        return serializers.page(items)
