"""Reading the facts the checks need from the target, once per set-up."""

from __future__ import annotations

from pymysql.cursors import Cursor

from engines.spirit.binlogpos import read_settings, server_refusal
from engines.spirit.check import CheckContext
from engines.spirit.cutover import is_sentry
from engines.spirit.naming import TableNames
from engines.spirit.statement import Statement
from engines.spirit.tableinfo import TableInfo, table_exists
from engines.spirit.triggers import existing_triggers

VARIABLES = ("log_bin", "log_bin_trust_function_creators")


def _on_off(value: object) -> str:
    """MySQL answers 1/0 for these switches, MariaDB too; the checks speak ON/OFF."""
    text = str(value).upper()
    return {"1": "ON", "0": "OFF"}.get(text, text)


def gather(
    cur: Cursor,
    statement: Statement,
    source: TableInfo | None,
    uses_copy: bool,
    change_source: str = "auto",
) -> CheckContext:
    names = TableNames(statement.schema, statement.table)
    triggers = [
        name
        for name in existing_triggers(cur, names.schema, names.table)
        if name not in names.triggers
    ]
    cur.execute(
        "SELECT CONSTRAINT_NAME FROM information_schema.KEY_COLUMN_USAGE "
        "WHERE REFERENCED_TABLE_NAME IS NOT NULL AND ("
        "(TABLE_SCHEMA = %s AND TABLE_NAME = %s) OR "
        "(REFERENCED_TABLE_SCHEMA = %s AND REFERENCED_TABLE_NAME = %s))",
        (names.schema, names.table, names.schema, names.table),
    )
    foreign_keys = sorted({str(r[0]) for r in cur.fetchall()})
    cur.execute("SHOW GRANTS FOR CURRENT_USER()")
    grants = [str(r[0]) for r in cur.fetchall()]
    # @@GLOBAL works on MySQL 8 and MariaDB alike (information_schema.GLOBAL_VARIABLES does not).
    cur.execute("SELECT " + ", ".join(f"@@GLOBAL.{v}" for v in VARIABLES))
    row = cur.fetchone() or ()
    variables = {name: _on_off(value) for name, value in zip(VARIABLES, row, strict=False)}
    return CheckContext(
        statement=statement,
        source=source,
        uses_copy=uses_copy,
        triggers=triggers,
        foreign_keys=foreign_keys,
        grants=grants,
        variables=variables,
        old_table_exists=table_exists(cur, names.schema, names.old)
        and not is_sentry(cur, names.schema, names.old),
        change_source=change_source,
        binlog_refusal=server_refusal(read_settings(cur), grants),
    )
