"""Deferred cutover: the sentinel table `_sb_sentinel` holds the cutover back while it exists.

One row per waiting context, in the schema of each table of the operation. The engine waits at
`waiting_for_cutover` while the table exists and holds its row; the cutover control deletes the
row, and drops the table once no other context waits on it. A person may also drop the table
by hand to release every deferred operation in that schema (Spirit's convention).

Creating the row and dropping an empty table are done under one named lock per schema, so a
context that is just creating its row can never have the table dropped under it by another
context's cutover (which would release it without consent).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from pymysql.cursors import Cursor

from engines.spirit.naming import SENTINEL_TABLE, quote
from engines.spirit.tableinfo import table_exists


def _guard(schema: str) -> str:
    return "sb_spirit_sentinel_" + hashlib.sha1(schema.encode()).hexdigest()[:40]


def _table(schema: str) -> str:
    return f"{quote(schema)}.{quote(SENTINEL_TABLE)}"


def _locked(cur: Cursor, schema: str) -> None:
    cur.execute("SELECT GET_LOCK(%s, 10)", (_guard(schema),))
    row = cur.fetchone()
    if not row or row[0] != 1:
        raise TimeoutError(f"could not take the sentinel lock of schema {schema}")


def _unlock(cur: Cursor, schema: str) -> None:
    cur.execute("SELECT RELEASE_LOCK(%s)", (_guard(schema),))
    cur.fetchall()


def hold(cur: Cursor, schemas: Iterable[str], context: str) -> None:
    """Create the sentinel row of `context` in every schema (idempotent)."""
    for schema in sorted(set(schemas)):
        _locked(cur, schema)
        try:
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {_table(schema)} (context VARCHAR(191) NOT NULL "
                "PRIMARY KEY, created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) "
                "ENGINE=InnoDB"
            )
            cur.execute(f"INSERT IGNORE INTO {_table(schema)} (context) VALUES (%s)", (context,))
        finally:
            _unlock(cur, schema)


def holding(cur: Cursor, schemas: Iterable[str], context: str) -> bool:
    """Whether the cutover of `context` is still held back in any of the schemas."""
    for schema in sorted(set(schemas)):
        if not table_exists(cur, schema, SENTINEL_TABLE):
            continue
        cur.execute(f"SELECT 1 FROM {_table(schema)} WHERE context = %s", (context,))
        if cur.fetchone() is not None:
            return True
    return False


def release(cur: Cursor, schemas: Iterable[str], context: str) -> None:
    """Let the cutover of `context` go; drop each sentinel table nobody else waits on."""
    for schema in sorted(set(schemas)):
        if not table_exists(cur, schema, SENTINEL_TABLE):
            continue
        _locked(cur, schema)
        try:
            cur.execute(f"DELETE FROM {_table(schema)} WHERE context = %s", (context,))
            cur.execute(f"SELECT COUNT(*) FROM {_table(schema)}")
            row = cur.fetchone()
            if row is not None and int(row[0]) == 0:
                cur.execute(f"DROP TABLE IF EXISTS {_table(schema)}")
        finally:
            _unlock(cur, schema)
