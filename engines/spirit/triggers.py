"""Trigger-based change source: three AFTER triggers copy every write on the source to the shadow.

- insert: `INSERT` the new row into the shadow; if its key is already there, delete that row and
  `INSERT` again.
- update: when the primary key changed, delete the old key; then as for an insert. Keys are
  compared null-safe (`<=>`).
- delete: delete the key from the shadow.

Insert first, delete only on a duplicate: a `DELETE` of a key the shadow does not hold yet (a row
the copy has not reached) takes a gap lock on the shadow, and the copy's next rows go into that
gap. Under `innodb_autoinc_lock_mode=1` the copy's `INSERT ... SELECT` holds the shadow's AUTO-INC
lock while it waits for that gap, and the trigger's own `INSERT` then waits for the AUTO-INC lock:
a deadlock the server resolved by failing the application's write (1213; issue 12, profiled with
`bench/online_copy.py --private-server`). The rows stored are the same: the new row replaces whatever
the shadow held under its key, and a duplicate of a new unique key still fails the second
`INSERT` and is recorded as a refused write.

Never `REPLACE`: it would silently delete a *different* shadow row that collides with the new
one on a unique key the ALTER adds, and the apply would complete with that row gone. A plain
INSERT in the triggers' strict sql_mode fails instead when the row cannot be stored as the
blocking ALTER would store it (a duplicate of a new unique key, a value too long, a NULL for a
NOT NULL column). The application's write must not fail because of the engine, so a handler
catches exactly those errors (`CAPTURED`: data errors, never lock waits or deadlocks), and
records the server's number and words in `_<t>_err`, in the writer's own transaction; the engine
reads that table before every step and before the cutover, and fails the apply cleanly with the
server's reason (what gh-ost calls "panic on warnings").

They are created delete first and insert last: a row inserted and then deleted between two
CREATE TRIGGERs would otherwise stay in the shadow with no delete trigger to remove it.
`verify` compares each trigger's body with the one these columns would produce now, so a trigger
that was dropped, recreated differently, or no longer matches the tables is caught.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pymysql.cursors import Cursor

from engines.spirit.columnmap import ColumnMap
from engines.spirit.naming import TableNames, quote

# Errors a row can meet when stored in the new definition (the ones a blocking ALTER would fail
# with): duplicate entry, NULL in NOT NULL, out of range, truncated, wrong value, too long,
# incorrect string, check constraint, foreign key.
CAPTURED = (1062, 1048, 1264, 1265, 1292, 1366, 1367, 1406, 1416, 1452, 3819, 4025)


def _normalize(sql: str) -> str:
    return re.sub(r"\s+", " ", sql).strip()


@dataclass(frozen=True)
class TriggerChangeSource:
    names: TableNames
    columns: ColumnMap

    def _insert_new_row(self) -> str:
        shadow_cols = ", ".join(quote(c) for c in self.columns.shadow)
        values = ", ".join(f"NEW.{quote(c)}" for c in self.columns.source)
        return f"INSERT INTO {self.names.q(self.names.shadow)} ({shadow_cols}) VALUES ({values})"

    def _upsert_new_row(self) -> tuple[str, str]:
        """Insert the new row; on a duplicate (its key already in the shadow, or a new unique
        key), delete the row under its key and insert again, outside the inner handler, so that a
        second duplicate (a new unique key) is recorded as a refused write."""
        shadow = self.names.q(self.names.shadow)
        return (
            "BEGIN DECLARE CONTINUE HANDLER FOR 1062 SET sb_dup = 1; "
            f"{self._insert_new_row()}; END",
            f"IF sb_dup = 1 THEN DELETE IGNORE FROM {shadow} WHERE {self._key_is('NEW')}; "
            f"{self._insert_new_row()}; END IF",
        )

    def _guarded(self, *statements: str) -> str:
        """`statements` in a block whose data errors are recorded, not raised. A handler for a
        code also catches that code's warnings and notes (a DECIMAL rounded is note 1265, which
        the blocking ALTER accepts too): only errors (SQLSTATE class other than 01) count."""
        codes = ", ".join(str(c) for c in CAPTURED)
        record = (
            f"INSERT INTO {self.names.q(self.names.errors)} (errno, message) "
            "VALUES (sb_errno, sb_message)"
        )
        return (
            "BEGIN DECLARE sb_errno INT DEFAULT 0; DECLARE sb_message TEXT DEFAULT ''; "
            "DECLARE sb_state CHAR(5) DEFAULT '00000'; DECLARE sb_dup INT DEFAULT 0; "
            f"DECLARE CONTINUE HANDLER FOR {codes} BEGIN GET DIAGNOSTICS CONDITION 1 "
            "sb_errno = MYSQL_ERRNO, sb_message = MESSAGE_TEXT, sb_state = RETURNED_SQLSTATE; "
            f"IF sb_state NOT LIKE '01%' THEN {record}; END IF; END; "
            + " ".join(f"{s};" for s in statements)
            + " END"
        )

    def _key_is(self, row: str) -> str:
        return " AND ".join(f"{quote(c)} <=> {row}.{quote(c)}" for c in self.columns.key)

    def bodies(self) -> dict[str, tuple[str, str]]:
        """{trigger name: (event, body)} in creation order."""
        key_changed = " OR ".join(
            f"NOT (OLD.{quote(c)} <=> NEW.{quote(c)})" for c in self.columns.key
        )
        delete_old = (
            f"DELETE IGNORE FROM {self.names.q(self.names.shadow)} "
            f"WHERE ({key_changed}) AND {self._key_is('OLD')}"
        )
        shadow = self.names.q(self.names.shadow)
        return {
            self.names.trigger_delete: (
                "DELETE",
                f"DELETE IGNORE FROM {shadow} WHERE {self._key_is('OLD')}",
            ),
            self.names.trigger_update: (
                "UPDATE",
                self._guarded(delete_old, *self._upsert_new_row()),
            ),
            self.names.trigger_insert: (
                "INSERT",
                self._guarded(*self._upsert_new_row()),
            ),
        }

    def install(self, cur: Cursor) -> None:
        cur.execute(
            f"CREATE TABLE IF NOT EXISTS {self.names.q(self.names.errors)} ("
            "n BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, errno INT NOT NULL, message TEXT, "
            "at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB "
            "DEFAULT CHARSET=utf8mb4 COMMENT='schemabot spirit: writes the new table refused'"
        )
        for name, (event, body) in self.bodies().items():
            cur.execute(
                f"CREATE TRIGGER {self.names.q(name)} AFTER {event} ON {self.names.q()} "
                f"FOR EACH ROW {body}"
            )

    def verify(self, cur: Cursor) -> str | None:
        found = existing_triggers(cur, self.names.schema, self.names.table)
        for name, (event, body) in self.bodies().items():
            if name not in found:
                return f"trigger {name} is missing"
            timing, manipulation, statement = found[name]
            if (timing, manipulation) != ("AFTER", event) or _normalize(statement) != _normalize(
                body
            ):
                return f"trigger {name} was changed"
        return None

    def remove(self, cur: Cursor) -> None:
        drop_triggers(cur, self.names)


def existing_triggers(cur: Cursor, schema: str, table: str) -> dict[str, tuple[str, str, str]]:
    """{name: (timing, event, body)} of the triggers on `schema.table`."""
    cur.execute(
        "SELECT TRIGGER_NAME, ACTION_TIMING, EVENT_MANIPULATION, ACTION_STATEMENT "
        "FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = %s "
        "AND EVENT_OBJECT_TABLE = %s",
        (schema, table),
    )
    return {str(n): (str(t), str(e), str(s)) for n, t, e, s in cur.fetchall()}


def drop_triggers(cur: Cursor, names: TableNames) -> None:
    """Drop the engine's triggers wherever they are (after cutover they sit on `_<t>_old`),
    then the table they record refused writes in (no trigger refers to it any more)."""
    for name in names.triggers:
        cur.execute(f"DROP TRIGGER IF EXISTS {names.q(name)}")
    cur.execute(f"DROP TABLE IF EXISTS {names.q(names.errors)}")


def refused_writes(cur: Cursor, names: TableNames) -> str | None:
    """The first write the triggers could not store in the shadow, as `(errno) message`."""
    cur.execute(
        "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
        (names.schema, names.errors),
    )
    if cur.fetchone() is None:
        return None
    cur.execute(f"SELECT errno, message FROM {names.q(names.errors)} ORDER BY n LIMIT 1")
    row = cur.fetchone()
    return None if row is None else f"({row[0]}) {row[1]}"
