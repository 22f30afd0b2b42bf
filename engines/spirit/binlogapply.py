"""Applying changed keys to the shadow: make each key's shadow row what the source holds now.

For a batch of primary keys read from the binlog (binlogreader.py):

    DELETE FROM shadow WHERE pk IN (...);
    REPLACE INTO shadow (...) SELECT ... FROM source WHERE pk IN (...) LOCK IN SHARE MODE;

- **Values come from the source, not from the events**: the server converts them exactly as the
  copy does (`INSERT ... SELECT` into the new definition), so a row is stored the way the
  blocking ALTER would store it, and no value goes through the client.
- **The locking read waits for the writer**: a transaction is written to the binlog before the
  storage engine makes it visible. A plain read right after its events were seen could still
  see the row before it; `LOCK IN SHARE MODE` waits for the writer's row lock, which goes at
  its commit, so the row read is the committed one. The shared locks last only the batch.
- **Idempotent**: applying a key again (a resumed read from an older saved position) writes the
  source's current row again. The shadow's final row of a key is written after the key's last
  change, whatever happened before.
- **REPLACE, and why it cannot hide a refusal here**: after the DELETE by primary key, REPLACE
  can only remove a shadow row that collides on another unique key. The binlog source is used
  only when every unique key of the new table is implied by a unique key the source already
  enforces on the same, unchanged columns (binlogsource.table_refusal); the source then never
  holds two rows that collide, so the collision is with a shadow row that is stale, whose change
  is later in the binlog and re-syncs it. A refusal of another kind (a value too long, a NULL
  for NOT NULL, out of range) is an error in strict mode and a warning otherwise; both fail the
  apply with the server's words, as the trigger path does.
"""

from __future__ import annotations

from collections.abc import Sequence

from pymysql.cursors import Cursor

from engines.base import PermanentEngineError
from engines.spirit.columnmap import ColumnMap
from engines.spirit.keyset import Key
from engines.spirit.naming import TableNames, quote

STATEMENT_KEYS = 500


def _where(key: Sequence[str], keys: Sequence[Key]) -> tuple[str, list[object]]:
    if len(key) == 1:
        marks = ", ".join(["%s"] * len(keys))
        return f"{quote(key[0])} IN ({marks})", [k[0] for k in keys]
    one = "(" + ", ".join(["%s"] * len(key)) + ")"
    cols = "(" + ", ".join(quote(c) for c in key) + ")"
    return f"{cols} IN ({', '.join([one] * len(keys))})", [v for k in keys for v in k]


def sync_keys(cur: Cursor, names: TableNames, cmap: ColumnMap, keys: Sequence[Key]) -> int:
    """Make the shadow rows of `keys` equal to the source's rows now (absent where the source
    has none). Runs in the caller's transaction (or under its table locks). Returns the number
    of rows written."""
    written = 0
    shadow_cols = ", ".join(quote(c) for c in cmap.shadow)
    source_cols = ", ".join(quote(c) for c in cmap.source)
    ordered = sorted(keys, key=lambda k: tuple((v is None, v) for v in k))
    for i in range(0, len(ordered), STATEMENT_KEYS):
        part = ordered[i : i + STATEMENT_KEYS]
        where, params = _where(cmap.key, part)
        cur.execute(f"DELETE FROM {names.q(names.shadow)} WHERE {where}", params)
        cur.execute(
            f"REPLACE INTO {names.q(names.shadow)} ({shadow_cols}) SELECT {source_cols} "
            f"FROM {names.q()} FORCE INDEX (PRIMARY) WHERE {where} LOCK IN SHARE MODE",
            params,
        )
        written += int(cur.rowcount)
        refused = refusal(cur)
        if refused is not None:
            raise PermanentEngineError(
                f"{names.label}: a write made during the change cannot be stored in the new "
                f"table: {refused}; a blocking ALTER would fail the same way"
            )
    return written


def refusal(cur: Cursor) -> str | None:
    """The first warning (not a note) of the last statement, as `(code) message`."""
    result = getattr(cur, "_result", None)
    if result is None or not getattr(result, "warning_count", 0):
        return None
    cur.execute("SHOW WARNINGS")
    for level, code, message in cur.fetchall():
        if str(level) != "Note":
            return f"({code}) {message}"
    return None
