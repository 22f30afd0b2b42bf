"""What the engine needs to know about a table: columns, primary key and a definition fingerprint.

The fingerprint is a hash of `SHOW CREATE TABLE` with the table's own name and the AUTO_INCREMENT
counter taken out: it changes when someone alters the table out of band (a definitive reason to
start fresh) but not when rows are inserted, and it is equal for a table and its renamed self
(which is how cutover recovery tells which table is which).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from pymysql.cursors import Cursor

from engines.spirit.naming import quote

_HEADER = re.compile(r"^CREATE TABLE `(?:[^`]|``)+`", re.IGNORECASE)
_AUTO_INCREMENT = re.compile(r" AUTO_INCREMENT=\d+")


@dataclass(frozen=True)
class Column:
    name: str
    column_type: str
    generated: bool
    nullable: bool = True


@dataclass(frozen=True)
class TableInfo:
    schema: str
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    create_sql: str

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(self.create_sql)

    @property
    def copyable(self) -> tuple[str, ...]:
        """Columns that hold data (generated columns compute themselves)."""
        return tuple(c.name for c in self.columns if not c.generated)

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


def fingerprint_of(create_sql: str) -> str:
    normalized = _AUTO_INCREMENT.sub("", _HEADER.sub("CREATE TABLE _", create_sql.strip()))
    return hashlib.sha256(normalized.encode()).hexdigest()


def table_exists(cur: Cursor, schema: str, table: str) -> bool:
    cur.execute(
        "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
        (schema, table),
    )
    return cur.fetchone() is not None


def show_create(cur: Cursor, schema: str, table: str) -> str | None:
    if not table_exists(cur, schema, table):
        return None
    cur.execute(f"SHOW CREATE TABLE {quote(schema)}.{quote(table)}")
    row = cur.fetchone()
    return None if row is None else str(row[1])


def read_table(cur: Cursor, schema: str, table: str) -> TableInfo | None:
    """The table's description, or None when it does not exist."""
    create_sql = show_create(cur, schema, table)
    if create_sql is None:
        return None
    cur.execute(
        "SELECT COLUMN_NAME, COLUMN_TYPE, COALESCE(GENERATION_EXPRESSION, ''), IS_NULLABLE "
        "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s "
        "ORDER BY ORDINAL_POSITION",
        (schema, table),
    )
    columns = tuple(
        Column(str(n), str(t), bool(g), str(null) != "NO") for n, t, g, null in cur.fetchall()
    )
    cur.execute(
        "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s "
        "AND TABLE_NAME = %s AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX",
        (schema, table),
    )
    primary_key = tuple(str(r[0]) for r in cur.fetchall())
    return TableInfo(schema, table, columns, primary_key, create_sql)


def auto_increment(cur: Cursor, schema: str, table: str) -> int | None:
    """The table's AUTO_INCREMENT counter as SHOW CREATE TABLE tells it (None: no counter)."""
    create_sql = show_create(cur, schema, table)
    match = re.search(r" AUTO_INCREMENT=(\d+)", create_sql or "")
    return int(match[1]) if match else None


def estimated_rows(cur: Cursor, schema: str, table: str) -> int:
    """InnoDB's row estimate: cheap, and good enough for a percentage and an ETA."""
    cur.execute(
        "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
        "AND TABLE_NAME = %s",
        (schema, table),
    )
    row = cur.fetchone()
    return int(row[0] or 0) if row else 0
