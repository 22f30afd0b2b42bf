"""Changes done directly, without a copy: ALTERs the server can do instantly, CREATE and DROP.

Each is idempotent from what the target shows, so a worker that dies right after the statement
leaves nothing ambiguous: a CREATE whose table exists with the same definition is done, a DROP
whose table is gone is done, an instant ALTER whose table already has the expected definition
(that of the empty shadow the same clauses produced) is done.
"""

from __future__ import annotations

from collections.abc import Callable

import pymysql
from pymysql.cursors import Cursor

from engines.base import PermanentEngineError
from engines.mysql.ddl_text import absent_table_message, already_absent_message
from engines.spirit.connection import error_code, is_transient, user_ddl_errors
from engines.spirit.naming import TableNames
from engines.spirit.plan import TablePlan
from engines.spirit.statement import Statement
from engines.spirit.tableinfo import fingerprint_of, show_create, table_exists

# ER_ALTER_OPERATION_NOT_SUPPORTED(_REASON): "ALGORITHM=INSTANT is not supported ..."
NOT_INSTANT_CODES = frozenset({1845, 1846})


def try_instant(cur: Cursor, statement: Statement) -> bool:
    """Run the ALTER with ALGORITHM=INSTANT. False when the server says it cannot."""
    try:
        cur.execute(statement.alter_instant())
    except pymysql.MySQLError as error:
        if error_code(error) in NOT_INSTANT_CODES or (
            not is_transient(error) and "INSTANT" in str(error).upper()
        ):
            return False
        with user_ddl_errors(f"{statement.schema}.{statement.table}: instant ALTER"):
            raise
    return True


def create_table(cur: Cursor, statement: Statement, names: TableNames) -> str:
    """CREATE TABLE, or accept an existing table with exactly the definition it would create."""
    label = f"{names.schema}.{names.table}"
    if not table_exists(cur, names.schema, names.table):
        with user_ddl_errors(f"{label}: CREATE TABLE"):
            cur.execute(statement.create_as(names.schema, names.table))
        return "created"
    cur.execute(f"DROP TABLE IF EXISTS {names.q(names.shadow)}")
    with user_ddl_errors(f"{label}: CREATE TABLE"):
        cur.execute(statement.create_as(names.schema, names.shadow))
    try:
        wanted = fingerprint_of(show_create(cur, names.schema, names.shadow) or "")
        existing = fingerprint_of(show_create(cur, names.schema, names.table) or "")
    finally:
        cur.execute(f"DROP TABLE IF EXISTS {names.q(names.shadow)}")
    if wanted != existing:
        raise PermanentEngineError(f"{label}: the table exists with a different definition")
    return "already there"


def drop_table(cur: Cursor, plan: TablePlan, intended: Callable[[], None], ours: bool) -> str:
    """DROP TABLE with the one rule of every engine for an absent table (docs/architecture.md
    §5.1): dropped by an earlier attempt of this operation (`ours`: its intent was recorded
    before the DROP) is done; absent at the first attempt fails, unless the statement says
    IF EXISTS, which completes as "already absent". `intended()` records the intent before the
    DROP runs, so a worker that dies right after it is never told "it was not there"."""
    names, statement = plan.names, plan.statement
    label = f"{names.schema}.{names.table}"
    if not table_exists(cur, names.schema, names.table):
        if ours:
            return "dropped (by an earlier attempt of this operation)"
        if statement.if_exists:
            return already_absent_message(label)
        raise PermanentEngineError(absent_table_message(label))
    intended()
    with user_ddl_errors(f"{label}: DROP TABLE"):
        cur.execute(f"DROP TABLE {names.q()}")
    return "dropped"
