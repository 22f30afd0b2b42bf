"""Reading table definitions from a MySQL/MariaDB target, and the scratch schema the plan uses.

The scratch schema (`_sb_plan_<created, unix seconds>_<random>`) lives on the target's server
next to the live schema. The desired `CREATE TABLE` statements are loaded into it so the server
normalises them, and the rehearsal runs each planned ALTER on an empty copy of the live table in
it. It is always dropped when the plan ends, whatever happened; a plan process that is killed
cannot, so each new scratch schema first drops the leftovers: those older than LEFTOVER_SECONDS
by their name whose lock is free. The creator holds GET_LOCK(<name>) on its connection from
before CREATE DATABASE until after DROP DATABASE, and the server frees it when that connection
ends (a killed process): a scratch schema in use is never dropped, however long its plan runs.
Names without the time (from before) are left alone: their age cannot be told. Nothing outside
the scratch schemas is written (docs/architecture.md §8 invariant 10).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pymysql

from schemabot.planning.tabledef import TableDef, parse_show_create, quote

SCRATCH_PREFIX = "_sb_plan_"
LEFTOVER_SECONDS = 3600
_TIMED_NAME = re.compile(r"^_sb_plan_(\d{10})_[0-9a-f]{8}$")


class DesiredSchemaError(ValueError):
    """A desired statement the server refused, with the server's message and the file."""


def table_names(cur: Any, schema: str) -> list[str]:
    cur.execute(
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s AND TABLE_TYPE='BASE TABLE' "
        "ORDER BY TABLE_NAME",
        (schema,),
    )
    return [str(r[0]) for r in cur.fetchall()]


def read_tables(cur: Any, schema: str, names: Sequence[str] | None = None) -> dict[str, TableDef]:
    """The definitions of `names` (default: every base table) in `schema`, keyed by name."""
    names = list(names) if names is not None else table_names(cur, schema)
    charsets: dict[str, dict[str, tuple[str | None, str | None]]] = {}
    cur.execute(
        "SELECT TABLE_NAME, COLUMN_NAME, CHARACTER_SET_NAME, COLLATION_NAME FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA=%s AND CHARACTER_SET_NAME IS NOT NULL",
        (schema,),
    )
    for table, column, charset, collation in cur.fetchall():
        charsets.setdefault(str(table), {})[str(column)] = (charset, collation)
    tables: dict[str, TableDef] = {}
    for name in names:
        cur.execute(f"SHOW CREATE TABLE {quote(schema)}.{quote(name)}")
        row = cur.fetchone()
        tables[name] = parse_show_create(str(row[1]), charsets.get(name, {}))
    return tables


def row_estimates(cur: Any, schema: str) -> dict[str, int]:
    cur.execute(
        "SELECT TABLE_NAME, TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s", (schema,)
    )
    return {str(name): int(rows or 0) for name, rows in cur.fetchall()}


def drop_leftovers(cur: Any, now: int, max_age: int = LEFTOVER_SECONDS) -> list[str]:
    """Drop the scratch schemas older than `max_age` seconds (by their name) that no connection
    holds the lock of; the names dropped."""
    cur.execute(
        "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE %s",
        (SCRATCH_PREFIX.replace("_", "\\_") + "%",),
    )
    dropped = []
    for (name,) in cur.fetchall():
        m = _TIMED_NAME.match(str(name))
        if m is None or now - int(m.group(1)) < max_age:
            continue
        cur.execute("SELECT GET_LOCK(%s, 0)", (name,))
        if cur.fetchone()[0] != 1:
            continue  # a plan is using it
        try:
            cur.execute(f"DROP DATABASE IF EXISTS {quote(name)}")
            dropped.append(str(name))
        finally:
            cur.execute("SELECT RELEASE_LOCK(%s)", (name,))
    return dropped


@contextmanager
def scratch_schema(conn: pymysql.Connection, like_schema: str | None = None) -> Iterator[str]:
    """A fresh scratch schema with the live schema's default character set, locked while in use;
    always dropped. Leftovers of killed plans are dropped first (`drop_leftovers`)."""
    with conn.cursor() as cur:
        cur.execute("SELECT UNIX_TIMESTAMP()")
        row = cur.fetchone()
        assert row is not None
        now = int(row[0])  # the server's clock: every plan process reads the same one
        drop_leftovers(cur, now)
        name = f"{SCRATCH_PREFIX}{now}_{uuid.uuid4().hex[:8]}"
        cur.execute("SELECT GET_LOCK(%s, 0)", (name,))
        charset, collation = "utf8mb4", None
        if like_schema:
            cur.execute(
                "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA "
                "WHERE SCHEMA_NAME=%s",
                (like_schema,),
            )
            row = cur.fetchone()
            if row:
                charset, collation = row
        cur.execute(
            f"CREATE DATABASE {quote(name)} CHARACTER SET {charset}"
            + (f" COLLATE {collation}" if collation else "")
        )
    try:
        yield name
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {quote(name)}")
            cur.execute("SELECT RELEASE_LOCK(%s)", (name,))


def load_desired(cur: Any, scratch: str, statements: Sequence[tuple[str, str]]) -> None:
    """Run each (origin, CREATE TABLE) in the scratch schema, without foreign key checks (the
    files come in any order). Raises DesiredSchemaError naming the origin."""
    cur.execute(f"USE {quote(scratch)}")
    cur.execute("SET SESSION foreign_key_checks=0")
    try:
        for origin, statement in statements:
            try:
                cur.execute(statement)
            except pymysql.MySQLError as exc:
                message = exc.args[1] if len(exc.args) > 1 else str(exc)
                raise DesiredSchemaError(f"{origin}: the server refuses the statement: {message}") from None
    finally:
        cur.execute("SET SESSION foreign_key_checks=1")
