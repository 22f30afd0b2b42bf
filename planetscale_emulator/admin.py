"""Admin actions for tests and demos: reset, advance ticks and clock, force a state, make things
vanish, list events and faults. They are served under `/admin` without authentication; the
emulator is a local development tool and never faces a network."""

from __future__ import annotations

from typing import Any

from planetscale_emulator import branch_users, branches, faults, physical, serializers, tick
from planetscale_emulator import deploy_states as ds
from planetscale_emulator.config import MAIN_BRANCH_ID
from planetscale_emulator.errors import invalid
from planetscale_emulator.transitions import set_state
from planetscale_emulator.world import World


def status(world: World, boot_id: str) -> dict[str, Any]:
    with world.lock:
        rows = world.store.query("SELECT id, name, ready FROM branches ORDER BY id")
        return {
            "org": world.config.org,
            "database": world.config.database,
            "keyspaces": list(world.config.keyspaces),
            "main_branch": world.config.main_branch,
            "mysql_host": world.config.host,
            "mysql_port": world.config.mysql_port,
            "boot_id": boot_id,
            "boots": int(world.store.get_setting("boots", "0") or 0),
            "now": world.now(),
            "clock_offset": world.clock.offset(),
            "tick_interval": world.config.tick_interval,
            "revert_window_seconds": world.config.revert_window_seconds,
            "branches": {
                str(r["name"]): {
                    "ready": bool(r["ready"]),
                    "databases": {
                        ks: world.config.physical_database(int(r["id"]), ks)
                        for ks in world.config.keyspaces
                    },
                }
                for r in rows
            },
        }


def reset(world: World, boot_id: str) -> dict[str, Any]:
    """Back to a fresh database: only main, with empty keyspaces; no events, no faults."""
    with world.lock:
        for schema in physical.schemas_with_prefix(world.store, world.config.db_prefix + "_"):
            if schema != world.config.meta_schema:
                physical.drop_database(world.store, schema)
        for pw in world.store.query("SELECT username FROM passwords"):
            branch_users.drop(world.store, str(pw["username"]))
        for table in ("vschemas", "passwords", "deploy_requests", "events", "faults", "branches"):
            world.store.execute(f"DELETE FROM {table}")
        world.store.execute("ALTER TABLE deploy_requests AUTO_INCREMENT = 1")
        world.store.execute("DELETE FROM settings WHERE k='clock_offset'")
        world.bootstrap()
    return status(world, boot_id)


def advance(world: World, body: dict[str, Any]) -> dict[str, Any]:
    """Move the clock forward by `seconds` (default 0), then run `ticks` ticks (default 1)."""
    seconds = float(body.get("seconds", 0) or 0)
    ticks = int(body.get("ticks", 1))
    if seconds < 0 or ticks < 0:
        raise invalid("seconds and ticks must not be negative")
    with world.lock:
        if seconds:
            world.clock.advance(seconds)
    tick.run(world, ticks)
    with world.lock:
        rows = world.store.query("SELECT number, deployment_state FROM deploy_requests")
        return {
            "now": world.now(),
            "deploy_requests": {str(r["number"]): r["deployment_state"] for r in rows},
        }


def force_state(world: World, body: dict[str, Any]) -> dict[str, Any]:
    number, state = int(body["number"]), str(body.get("deployment_state", ""))
    if state not in ds.ALL_STATES:
        raise invalid(f"unknown deployment state {state!r}")
    with world.lock:
        world.deploy_request_row(number)
        fields: dict[str, Any] = {}
        if state == ds.COMPLETE_PENDING_REVERT:
            fields["revert_expires_at"] = world.now() + world.config.revert_window_seconds
        set_state(world, number, state, **fields)
        world.event("admin.force_state", str(number), state=state)
        return serializers.deploy_request(
            world.config, world.deploy_request_row(number), world.now()
        )


def vanish(world: World, body: dict[str, Any]) -> dict[str, Any]:
    """Make a branch (`branch`) or a deploy request (`number`) disappear without a trace."""
    with world.lock:
        if "branch" in body:
            row = world.branch_row(str(body["branch"]))
            if int(row["id"]) == MAIN_BRANCH_ID:
                raise invalid("main cannot vanish")
            branches.remove(world, int(row["id"]))
            world.event("admin.vanish", str(body["branch"]), what="branch")
            return {"vanished": {"branch": body["branch"]}}
        if "number" in body:
            number = int(body["number"])
            world.deploy_request_row(number)
            world.store.execute("DELETE FROM deploy_requests WHERE number=%s", (number,))
            world.event("admin.vanish", str(number), what="deploy_request")
            return {"vanished": {"number": number}}
        raise invalid("give `branch` or `number`")


def events(world: World, query: dict[str, str]) -> dict[str, Any]:
    rows = world.store.events(int(query.get("since", 0) or 0), query.get("kind"))
    return {"data": rows}


def add_fault(world: World, body: dict[str, Any]) -> dict[str, Any]:
    with world.lock:
        fault = faults.add_fault(world.store, body, world.now())
        world.event("admin.fault", str(fault.id), fault_kind=fault.kind)
        return fault.as_dict()


def list_faults(world: World) -> dict[str, Any]:
    with world.lock:
        return {"data": [f.as_dict() for f in faults.list_faults(world.store)]}


def clear_faults(world: World) -> None:
    with world.lock:
        faults.clear_faults(world.store)
