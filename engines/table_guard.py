"""What every MySQL engine checks on the target before it changes a table
(docs/architecture.md §8 invariant 9): the table's advisory lock (one name for all engines, so a
direct ALTER and a spirit step never run on a table at once), and no other engine's unfinished
work on it (a spirit checkpoint that is not finished, its triggers, its shadow table), so that
work begun outside this state database is caught too. A run that ended (done, cancelled, or
failed: its tombstone) holds nothing; what its clean-up may have left, if that was cut short,
is caught by the trigger and shadow checks.

The names are spirit's own (engines/spirit/naming.py), read from there so they cannot drift.
"""

from __future__ import annotations

from typing import Any

from engines.spirit.checkpoint import FINISHED
from engines.spirit.naming import CHECKPOINT_TABLE, TableNames, quote


def lock_name(schema: str, table: str) -> str:
    """The GET_LOCK name every engine takes for `schema.table`."""
    return TableNames(schema, table).lock_name


def take_lock(cur: Any, schema: str, table: str) -> bool:
    """Take the table's advisory lock on this connection without waiting; False when busy."""
    cur.execute("SELECT GET_LOCK(%s, 0)", (lock_name(schema, table),))
    row = cur.fetchone()
    return bool(row and row[0] == 1)


def spirit_work(cur: Any, schema: str, table: str) -> str | None:
    """Why spirit's unfinished work is on `schema.table`, or None when there is none."""
    names = TableNames(schema, table)
    cur.execute(
        "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
        (schema, CHECKPOINT_TABLE),
    )
    if cur.fetchone() is not None:
        cur.execute(
            f"SELECT context, phase FROM {quote(schema)}.{quote(CHECKPOINT_TABLE)} "
            f"WHERE table_name = %s AND phase NOT IN ({', '.join(['%s'] * len(FINISHED))}) LIMIT 1",
            (table, *FINISHED),
        )
        row = cur.fetchone()
        if row is not None:
            return f"a spirit change ({row[0]}, phase {row[1]}) is unfinished on {schema}.{table}"
    cur.execute(
        "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s "
        "AND EVENT_OBJECT_TABLE = %s",
        (schema, table),
    )
    ours = set(names.triggers)
    found = sorted(r[0] for r in cur.fetchall() if r[0] in ours)
    if found:
        return f"spirit's triggers {', '.join(found)} are on {schema}.{table}"
    cur.execute(
        "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
        (schema, names.shadow),
    )
    if cur.fetchone() is not None:
        return f"spirit's shadow table {schema}.{names.shadow} exists"
    return None
