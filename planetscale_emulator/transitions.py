"""The single place where a deploy request's `deployment_state` changes, and the clean-up that
follows a deploy that can no longer be reverted."""

from __future__ import annotations

from typing import Any

from planetscale_emulator import cutover
from planetscale_emulator import deploy_states as ds
from planetscale_emulator.schema_diff import Plan
from planetscale_emulator.store import Row
from planetscale_emulator.world import World


def set_state(world: World, number: int, new_state: str, **fields: Any) -> None:
    """Move a deploy request, closing it when its deployment is finished, and log it."""
    row = world.deploy_request_row(number)
    now = world.now()
    fields.setdefault("updated_at", now)
    if new_state in ds.FINISHED and row["state"] != "closed":
        fields.update(state="closed", closed_at=now)
        fields.setdefault("finished_at", now)
    assignments = ", ".join(f"{k}=%s" for k in fields)
    world.store.execute(
        f"UPDATE deploy_requests SET deployment_state=%s, {assignments} WHERE number=%s",
        (new_state, *fields.values(), number),
    )
    if new_state != row["deployment_state"]:
        world.event("deploy_request.state", str(number), old=row["deployment_state"], new=new_state)


def finalize(world: World, row: Row) -> None:
    """A deploy is final (window over or skipped): drop the tables held for a revert."""
    into = world.store.one("SELECT id FROM branches WHERE name=%s", (row["into_branch"],))
    if into is None:
        return
    for change in Plan.from_json(row["plan"]).tables:
        schema = world.config.physical_database(int(into["id"]), change.keyspace)
        cutover.release_held_tables(world.store, schema, change, int(row["number"]))
