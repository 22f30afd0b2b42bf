"""Trigger-based change source: three AFTER triggers copy every write on the source to the shadow.

- insert: `REPLACE INTO shadow` the new row (it may already be there from the copy).
- update: when the primary key changed, delete the old key from the shadow, then `REPLACE` the
  new row. Keys are compared null-safe (`<=>`).
- delete: delete the key from the shadow.

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


def _normalize(sql: str) -> str:
    return re.sub(r"\s+", " ", sql).strip()


@dataclass(frozen=True)
class TriggerChangeSource:
    names: TableNames
    columns: ColumnMap

    def _replace_new_row(self) -> str:
        shadow_cols = ", ".join(quote(c) for c in self.columns.shadow)
        values = ", ".join(f"NEW.{quote(c)}" for c in self.columns.source)
        return f"REPLACE INTO {self.names.q(self.names.shadow)} ({shadow_cols}) VALUES ({values})"

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
        return {
            self.names.trigger_delete: (
                "DELETE",
                f"DELETE IGNORE FROM {self.names.q(self.names.shadow)} WHERE {self._key_is('OLD')}",
            ),
            self.names.trigger_update: (
                "UPDATE",
                f"BEGIN {delete_old}; {self._replace_new_row()}; END",
            ),
            self.names.trigger_insert: ("INSERT", self._replace_new_row()),
        }

    def install(self, cur: Cursor) -> None:
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
    """Drop the engine's triggers wherever they are (after cutover they sit on `_<t>_old`)."""
    for name in names.triggers:
        cur.execute(f"DROP TRIGGER IF EXISTS {names.q(name)}")
