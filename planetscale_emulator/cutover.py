"""Applying a deploy request's plan to main's databases, and undoing it.

The cutover really changes main: a new table is created, a dropped table is set aside, and an
altered table is rebuilt the way an online schema change does it (new table with the branch's
definition, rows copied over for the columns both share, then one atomic multi-table RENAME).
The table it replaces is kept under a held name until the revert window closes, and a revert
rebuilds the previous definition from the *current* rows, so rows written during the window
survive a revert, as on PlanetScale.

Every step checks where main already is before acting, so a cutover or revert interrupted by a
crash of the emulator simply runs again on the next tick.
"""

from __future__ import annotations

import hashlib

from planetscale_emulator import physical
from planetscale_emulator.schema_diff import Plan, TablePlan, canonical_vschema
from planetscale_emulator.store import Store


def held_name(kind: str, number: int, table: str) -> str:
    """`_sb<kind><dr>_<table>`, shortened with a hash when MariaDB's 64-char limit requires."""
    name = f"{physical.HELD_TABLE_PREFIX}{kind}{number}_{table}"
    if len(name) <= 64:
        return name
    digest = hashlib.sha1(table.encode()).hexdigest()[:16]
    return f"{physical.HELD_TABLE_PREFIX}{kind}{number}_{digest}"


def _with_table_name(create: str, old: str, new: str) -> str:
    head = f"CREATE TABLE `{old}`"
    if not create.startswith(head):
        raise ValueError(f"unexpected CREATE TABLE statement for {old}")
    return f"CREATE TABLE `{new}`" + create[len(head) :]


def _rebuild(store: Store, schema: str, table: str, create: str, number: int, tag: str) -> str:
    """Replace `table` with one built from `create`, copying shared columns; return the held
    name of the replaced table."""
    shadow = held_name("n" + tag, number, table)
    held = held_name("o" + tag, number, table)
    store.execute(f"DROP TABLE IF EXISTS `{schema}`.`{shadow}`")
    store.execute_in(schema, _with_table_name(create, table, shadow))
    old_cols = physical.insertable_columns(store, schema, table)
    new_cols = set(physical.insertable_columns(store, schema, shadow))
    shared = ", ".join(f"`{c}`" for c in old_cols if c in new_cols)
    if shared:
        store.execute(
            f"INSERT INTO `{schema}`.`{shadow}` ({shared}) "
            f"SELECT {shared} FROM `{schema}`.`{table}`"
        )
    store.execute(f"DROP TABLE IF EXISTS `{schema}`.`{held}`")
    store.execute(
        f"RENAME TABLE `{schema}`.`{table}` TO `{schema}`.`{held}`, "
        f"`{schema}`.`{shadow}` TO `{schema}`.`{table}`"
    )
    return held


def apply_table(store: Store, schema: str, change: TablePlan, number: int) -> None:
    current = physical.show_create(store, schema, change.table)
    if change.kind == "create":
        if current is None and change.after:
            store.execute_in(schema, change.after)
    elif change.kind == "drop":
        if current is not None:
            held = held_name("d", number, change.table)
            store.execute(f"DROP TABLE IF EXISTS `{schema}`.`{held}`")
            store.execute(f"RENAME TABLE `{schema}`.`{change.table}` TO `{schema}`.`{held}`")
    elif current is not None and change.after and current != change.after:
        _rebuild(store, schema, change.table, change.after, number, "")


def revert_table(store: Store, schema: str, change: TablePlan, number: int) -> None:
    current = physical.show_create(store, schema, change.table)
    if change.kind == "create":
        if current is not None:
            store.execute(f"DROP TABLE `{schema}`.`{change.table}`")
    elif change.kind == "drop":
        held = held_name("d", number, change.table)
        if current is None and physical.table_exists(store, schema, held):
            store.execute(f"RENAME TABLE `{schema}`.`{held}` TO `{schema}`.`{change.table}`")
    elif current is not None and change.before and current != change.before:
        replaced = _rebuild(store, schema, change.table, change.before, number, "r")
        store.execute(f"DROP TABLE IF EXISTS `{schema}`.`{replaced}`")


def release_held_tables(store: Store, schema: str, change: TablePlan, number: int) -> None:
    """Once a deploy can no longer be reverted, the set-aside tables go."""
    for kind in ("o", "d"):
        store.execute(f"DROP TABLE IF EXISTS `{schema}`.`{held_name(kind, number, change.table)}`")


def apply_vschemas(store: Store, plan: Plan, branch_id: int, *, revert: bool) -> None:
    for change in plan.vschemas:
        body = change.before if revert else change.after
        row = store.one(
            "SELECT body FROM vschemas WHERE branch_id=%s AND keyspace=%s",
            (branch_id, change.keyspace),
        )
        if row is not None and canonical_vschema(str(row["body"])) == canonical_vschema(body):
            continue
        store.execute(
            "INSERT INTO vschemas (branch_id, keyspace, body) VALUES (%s, %s, %s) "
            "ON DUPLICATE KEY UPDATE body=VALUES(body)",
            (branch_id, change.keyspace, body),
        )
