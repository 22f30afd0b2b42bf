"""Branch endpoints: create, read, delete, schema, keyspaces, VSchema and passwords.

A new branch starts not ready; the next tick creates its keyspace schemas with the parent's
table definitions (no rows) and VSchemas, then marks it ready, as PlanetScale's branch
provisioning does asynchronously. Clients therefore poll `ready` before using a branch.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from planetscale_emulator import branch_users, physical, serializers
from planetscale_emulator.config import BRANCH_NAME
from planetscale_emulator.errors import invalid, not_found, unprocessable
from planetscale_emulator.world import World, public_id

ROLES = ("reader", "writer", "admin", "readwriter")


def create(world: World, body: dict[str, Any]) -> dict[str, Any]:
    name = str(body.get("name") or "")
    parent = str(body.get("parent_branch") or world.config.main_branch)
    if not BRANCH_NAME.match(name):
        raise invalid(
            f"Name {name!r} is invalid: use lowercase letters, digits and dashes (max 63)"
        )
    with world.lock:
        parent_row = world.branch_row(parent)
        if world.store.one("SELECT id FROM branches WHERE name=%s", (name,)) is not None:
            # PlanetScale's wording; clients recognise a taken name by it.
            raise unprocessable("Name has already been taken")
        now = world.now()
        branch_id = world.store.execute(
            "INSERT INTO branches (public_id, name, parent_branch, production, ready, created_at,"
            " updated_at) VALUES (%s, %s, %s, 0, 0, %s, %s)",
            (public_id(), name, parent_row["name"], now, now),
        )
        world.event("branch.create", name, parent_branch=parent_row["name"], id=branch_id)
        return serializers.branch(world.config, world.branch_row(name))


def materialize(world: World, branch_id: int) -> None:
    """Give a new branch its keyspaces: the parent's definitions and VSchemas, no rows."""
    row = world.branch_by_id(branch_id)
    if row is None or row["ready"]:
        return
    parent = world.branch_row(str(row["parent_branch"]))
    for keyspace in world.config.keyspaces:
        physical.copy_definitions(
            world.store,
            world.config.physical_database(int(parent["id"]), keyspace),
            world.config.physical_database(branch_id, keyspace),
        )
    for keyspace, body in world.branch_vschemas(int(parent["id"])).items():
        world.store.execute(
            "INSERT IGNORE INTO vschemas (branch_id, keyspace, body) VALUES (%s, %s, %s)",
            (branch_id, keyspace, body),
        )
    world.store.execute(
        "UPDATE branches SET ready=1, updated_at=%s WHERE id=%s", (world.now(), branch_id)
    )
    world.event("branch.ready", str(row["name"]))


def get(world: World, name: str) -> dict[str, Any]:
    with world.lock:
        return serializers.branch(world.config, world.branch_row(name))


def list_all(world: World) -> dict[str, Any]:
    with world.lock:
        rows = world.store.query("SELECT * FROM branches ORDER BY id")
        return serializers.page([serializers.branch(world.config, r) for r in rows])


def remove(world: World, branch_id: int) -> None:
    """Drop a branch and everything it owns (shared by delete and the vanish fault)."""
    for keyspace in world.config.keyspaces:
        physical.drop_database(world.store, world.config.physical_database(branch_id, keyspace))
    for pw in world.store.query("SELECT username FROM passwords WHERE branch_id=%s", (branch_id,)):
        branch_users.drop(world.store, str(pw["username"]))
    with world.store.transaction():
        world.store.execute("DELETE FROM vschemas WHERE branch_id=%s", (branch_id,))
        world.store.execute("DELETE FROM passwords WHERE branch_id=%s", (branch_id,))
        world.store.execute("DELETE FROM branches WHERE id=%s", (branch_id,))


def delete(world: World, name: str) -> None:
    with world.lock:
        row = world.branch_row(name)
        if row["production"]:
            raise unprocessable("A production branch cannot be deleted")
        remove(world, int(row["id"]))
        world.event("branch.delete", name)


def _ready_row(world: World, name: str) -> dict[str, Any]:
    row = world.branch_row(name)
    if not row["ready"]:
        raise unprocessable(f"Branch {name} is not ready yet")
    return row


def _keyspace(world: World, keyspace: str) -> str:
    if keyspace not in world.config.keyspaces:
        raise not_found(f"Keyspace {keyspace}")
    return keyspace


def refresh_schema(world: World, name: str) -> dict[str, Any]:
    """The schema is read live from MariaDB; refreshing only stamps the branch."""
    with world.lock:
        row = _ready_row(world, name)
        world.store.execute(
            "UPDATE branches SET schema_refreshed_at=%s WHERE id=%s", (world.now(), row["id"])
        )
        world.event("branch.refresh_schema", name)
        return serializers.branch(world.config, world.branch_row(name))


def keyspaces(world: World, name: str) -> dict[str, Any]:
    with world.lock:
        row = world.branch_row(name)
        return serializers.page(
            [serializers.keyspace(ks, float(row["created_at"])) for ks in world.config.keyspaces]
        )


def schema(world: World, name: str, keyspace: str | None) -> dict[str, Any]:
    """The branch's table definitions, one entry per table: `{name, raw, html, keyspace_name}`."""
    with world.lock:
        row = _ready_row(world, name)
        wanted = [_keyspace(world, keyspace)] if keyspace else list(world.config.keyspaces)
        items = []
        for ks in wanted:
            db = world.config.physical_database(int(row["id"]), ks)
            for table, create in physical.tables(world.store, db).items():
                items.append({"name": table, "raw": create, "html": "", "keyspace_name": ks})
        return serializers.page(items)


def get_vschema(world: World, name: str, keyspace: str) -> dict[str, Any]:
    with world.lock:
        row = _ready_row(world, name)
        body = world.branch_vschemas(int(row["id"]))[_keyspace(world, keyspace)]
        return {"raw": body, "html": ""}


def patch_vschema(world: World, name: str, keyspace: str, body: dict[str, Any]) -> dict[str, Any]:
    raw = body.get("vschema")
    if not isinstance(raw, str):
        raise invalid("vschema must be a JSON document given as a string")
    try:
        document = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise invalid(f"vschema is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise invalid("vschema must be a JSON object")
    with world.lock:
        row = _ready_row(world, name)
        if row["production"]:
            # Production VSchemas change through deploy requests only (safe migrations).
            raise unprocessable("VSchema of a production branch changes through deploy requests")
        world.store.execute(
            "INSERT INTO vschemas (branch_id, keyspace, body) VALUES (%s, %s, %s) "
            "ON DUPLICATE KEY UPDATE body=VALUES(body)",
            (row["id"], _keyspace(world, keyspace), raw),
        )
        world.event("vschema.patch", name, keyspace=keyspace)
        return {"raw": raw, "html": ""}


def create_password(world: World, name: str, body: dict[str, Any]) -> dict[str, Any]:
    role = str(body.get("role") or "admin")
    if role not in ROLES:
        raise invalid(f"role must be one of {', '.join(ROLES)}")
    ttl = body.get("ttl")
    with world.lock:
        row = _ready_row(world, name)
        now = world.now()
        password_id = public_id()
        username, secret = f"u{secrets.token_hex(8)}", f"pscale_pw_{secrets.token_hex(16)}"
        # The user first: a stored password always has its user (a crash in between leaves a
        # user without password, which nobody can reach and the next reset drops).
        branch_users.create(world.store, world.config, username, secret, int(row["id"]), role)
        world.store.execute(
            "INSERT INTO passwords (id, branch_id, name, username, plain_text, role, created_at,"
            " expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (
                password_id,
                row["id"],
                str(body.get("name") or f"pw-{password_id}"),
                username,
                secret,
                role,
                now,
                None if not ttl else now + float(ttl),
            ),
        )
        world.event("password.create", name, id=password_id)
        pw = world.store.one("SELECT * FROM passwords WHERE id=%s", (password_id,))
        assert pw is not None
        return serializers.password(world.config, pw, row, with_secret=True)


def list_passwords(world: World, name: str) -> dict[str, Any]:
    with world.lock:
        row = world.branch_row(name)
        rows = world.store.query("SELECT * FROM passwords WHERE branch_id=%s", (row["id"],))
        return serializers.page(
            [serializers.password(world.config, p, row, with_secret=False) for p in rows]
        )


def delete_password(world: World, name: str, password_id: str) -> None:
    with world.lock:
        row = world.branch_row(name)
        pw = world.store.one(
            "SELECT username FROM passwords WHERE id=%s AND branch_id=%s", (password_id, row["id"])
        )
        if pw is None or not world.store.rowcount(
            "DELETE FROM passwords WHERE id=%s AND branch_id=%s", (password_id, row["id"])
        ):
            raise not_found(f"Password {password_id}")
        branch_users.drop(world.store, str(pw["username"]))


def credentials(world: World, username: str) -> tuple[str, int] | None:
    """(plain text password, branch id) for a live password, for the MySQL proxy."""
    with world.lock:
        row = world.store.one("SELECT * FROM passwords WHERE username=%s", (username,))
        if row is None:
            return None
        if row["expires_at"] is not None and row["expires_at"] < world.now():
            branch_users.drop(world.store, username)  # an expired password keeps no user
            return None
        return str(row["plain_text"]), int(row["branch_id"])
