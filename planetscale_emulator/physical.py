"""The MariaDB schemas behind keyspaces: reading and copying table definitions.

A keyspace on a branch is one MariaDB schema (see `EmulatorConfig.physical_database`). A new
branch gets main's table definitions without their rows, as a PlanetScale development branch
does. Tables whose names start with `_sb` are the emulator's own (tables held for a revert) and
are invisible to the API.
"""

from __future__ import annotations

import re

from planetscale_emulator.store import Store

HELD_TABLE_PREFIX = "_sb"
_AUTO_INCREMENT = re.compile(r"\s+AUTO_INCREMENT=\d+")


def normalize_create(create_sql: str) -> str:
    """SHOW CREATE TABLE without the parts that change with data (the AUTO_INCREMENT counter)."""
    return _AUTO_INCREMENT.sub("", create_sql).strip()


def table_exists(store: Store, schema: str, table: str) -> bool:
    row = store.one(
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s AND TABLE_NAME=%s",
        (schema, table),
    )
    return row is not None


def show_create(store: Store, schema: str, table: str) -> str | None:
    if not table_exists(store, schema, table):
        return None
    row = store.one(f"SHOW CREATE TABLE `{schema}`.`{table}`")
    assert row is not None
    return normalize_create(str(row["Create Table"]))


def tables(store: Store, schema: str) -> dict[str, str]:
    """{table: normalized CREATE TABLE} of the visible base tables of `schema`."""
    rows = store.query(
        "SELECT TABLE_NAME FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA=%s AND TABLE_TYPE='BASE TABLE' ORDER BY TABLE_NAME",
        (schema,),
    )
    out: dict[str, str] = {}
    for row in rows:
        name = str(row["TABLE_NAME"])
        if name.startswith(HELD_TABLE_PREFIX):
            continue
        create = show_create(store, schema, name)
        if create is not None:
            out[name] = create
    return out


def insertable_columns(store: Store, schema: str, table: str) -> list[str]:
    """Columns a copy can write: generated columns are computed, never inserted."""
    rows = store.query(
        "SELECT COLUMN_NAME, EXTRA FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA=%s AND TABLE_NAME=%s ORDER BY ORDINAL_POSITION",
        (schema, table),
    )
    return [str(r["COLUMN_NAME"]) for r in rows if "GENERATED" not in str(r["EXTRA"] or "").upper()]


def create_database(store: Store, name: str) -> None:
    store.execute(f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4")


def drop_database(store: Store, name: str) -> None:
    store.execute(f"DROP DATABASE IF EXISTS `{name}`")


def copy_definitions(store: Store, source: str, target: str) -> None:
    """Create in `target` every visible table of `source`, empty. Idempotent."""
    create_database(store, target)
    existing = set(tables(store, target))
    for name, create in tables(store, source).items():
        if name not in existing:
            store.execute_in(target, create)


def schemas_with_prefix(store: Store, prefix: str) -> list[str]:
    rows = store.query(
        "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE %s",
        (prefix.replace("_", r"\_") + "%",),
    )
    return [str(r["SCHEMA_NAME"]) for r in rows]
