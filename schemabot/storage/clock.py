"""Database time, so that ownership never depends on the clocks of worker hosts.

`db_now(offset)` renders as the database's own UTC clock plus an offset in seconds:
`UTC_TIMESTAMP(6) + INTERVAL n MICROSECOND` on MySQL/MariaDB, the statement's UTC time on
PostgreSQL, `strftime(...)` on SQLite (in the
exact text format SQLAlchemy stores SQLite datetimes in, so comparisons stay lexicographic-safe).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from schemabot.storage.models import Timestamp


class db_now(FunctionElement[Any]):
    """The database's current UTC time plus `offset` seconds (may be negative)."""

    type = Timestamp
    inherit_cache = True
    name = "db_now"

    def __init__(self, offset: float = 0.0) -> None:
        super().__init__(sa.literal(round(offset * 1_000_000), sa.BigInteger))


@compiles(db_now, "mysql")
@compiles(db_now, "mariadb")
def _mysql_now(element: db_now, compiler: Any, **kw: Any) -> str:
    return f"(UTC_TIMESTAMP(6) + INTERVAL {compiler.process(element.clauses, **kw)} MICROSECOND)"


@compiles(db_now, "sqlite")
def _sqlite_now(element: db_now, compiler: Any, **kw: Any) -> str:
    # '%f' is SS.SSS; three zeros make it the six-digit form SQLAlchemy writes.
    micros = compiler.process(element.clauses, **kw)
    return (
        "strftime('%Y-%m-%d %H:%M:%f000', 'now', "
        f"printf('%+.6f seconds', CAST({micros} AS REAL) / 1000000.0))"
    )


@compiles(db_now, "postgresql")
def _postgresql_now(element: db_now, compiler: Any, **kw: Any) -> str:
    # statement_timestamp(), not now(): now() is the start of the transaction.
    micros = compiler.process(element.clauses, **kw)
    return f"((statement_timestamp() AT TIME ZONE 'UTC') + {micros} * INTERVAL '1 microsecond')"


@compiles(db_now)
def _default_now(element: db_now, compiler: Any, **kw: Any) -> str:
    raise sa.exc.CompileError(f"db_now() has no rendering for the {compiler.dialect.name} dialect")
