"""Copying one chunk of rows from the source to the shadow.

`INSERT IGNORE ... SELECT ... LOCK IN SHARE MODE` in key order: the shared locks make a concurrent
delete of a row in the chunk wait until the chunk is committed, after which the delete trigger
removes it from the shadow, so a deleted row cannot come back; IGNORE skips rows the triggers
already put there (theirs are newer). The caller commits the chunk together with the checkpoint.

IGNORE would also turn every other refusal into a warning and store a changed row (a value
truncated, clamped, a NULL made 0) or none (a duplicate of a new unique key), where the blocking
ALTER fails. So the chunk's warnings are read, and anything but a duplicate primary key fails
the copy with the server's words ("panic on warnings").
`LOCK IN SHARE MODE` rather than `FOR SHARE`: MariaDB 10.11 knows only the former, MySQL 8 both.

With the binlog change source (`binlog=True`) no trigger writes the shadow behind the copy's
back, so the chunk is `REPLACE ... SELECT` read without locks, in a READ COMMITTED transaction
(the caller's; InnoDB then reads the source consistently instead of taking shared locks, which
is what made the application's writes wait). Why that converges with the replayed events is in
binlogsource.py; REPLACE overwrites a row the replay put there first with a version at least as
new, and a collision on another unique key is only with a stale row (binlogapply.py).
"""

from __future__ import annotations

from pymysql.cursors import Cursor

from engines.base import PermanentEngineError
from engines.spirit.columnmap import ColumnMap
from engines.spirit.keyset import Key, key_range, order_by
from engines.spirit.lanes import autoinc_lock_serialises
from engines.spirit.naming import TableNames, quote
from engines.spirit.tableinfo import TableInfo


def copy_chunk(
    cur: Cursor,
    names: TableNames,
    cmap: ColumnMap,
    low: Key | None,
    high: Key | None,
    *,
    lock_first: bool = False,
    binlog: bool = False,
) -> int:
    """Copy keys in (low, high]; returns the number of rows inserted.

    `lock_first`: take the chunk's shared locks on the source in a statement of their own before
    the `INSERT ... SELECT`. Where the shadow has an AUTO_INCREMENT column under
    `innodb_autoinc_lock_mode` 0 or 1, the `INSERT ... SELECT` holds the shadow's table-level
    AUTO-INC lock from its first row to its end; if it then waits for a source row that an
    application's transaction holds, whose trigger waits for that AUTO-INC lock to insert into
    the shadow, the server fails one of them (1213), usually the application's write. With the
    chunk's rows and gaps locked first (no AUTO-INC lock held yet), the `INSERT ... SELECT` finds
    them all its own. Same rows, same order: exactness does not change."""
    where, params = key_range(cmap.key, low, high)
    if lock_first and not binlog:
        cur.execute(
            f"SELECT COUNT(*) FROM {names.q()} FORCE INDEX (PRIMARY) WHERE {where} "
            "LOCK IN SHARE MODE",
            params,
        )
        cur.fetchall()
    verb, lock = ("REPLACE", "") if binlog else ("INSERT IGNORE", " LOCK IN SHARE MODE")
    cur.execute(
        f"{verb} INTO {names.q(names.shadow)} ({', '.join(quote(c) for c in cmap.shadow)}) "
        f"SELECT {', '.join(quote(c) for c in cmap.source)} FROM {names.q()} FORCE INDEX (PRIMARY) "
        f"WHERE {where} ORDER BY {order_by(cmap.key)}{lock}",
        params,
    )
    inserted = int(cur.rowcount)
    refused = _refusal(cur)
    if refused is not None:
        raise PermanentEngineError(
            f"{names.label}: copying rows: the new table refuses a row: {refused}; "
            "a blocking ALTER would fail the same way"
        )
    return inserted


def needs_lock_first(cur: Cursor, shadow: TableInfo) -> bool:
    """Whether chunks take their source locks first (`copy_chunk`): this server holds the
    shadow's AUTO-INC lock for a whole `INSERT ... SELECT`."""
    return autoinc_lock_serialises(cur, shadow) is not None


def _refusal(cur: Cursor) -> str | None:
    """The first warning of the last statement that is not a skipped duplicate primary key."""
    result = getattr(cur, "_result", None)
    if result is None or not getattr(result, "warning_count", 0):
        return None
    cur.execute("SHOW WARNINGS")
    for level, code, message in cur.fetchall():
        if str(level) == "Note":
            continue
        if int(code) == 1062 and str(message).endswith("for key 'PRIMARY'"):
            continue
        return f"({code}) {message}"
    return None
