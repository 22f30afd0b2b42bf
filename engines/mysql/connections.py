"""Connections to MySQL/MariaDB targets and what their errors mean for an engine."""

from __future__ import annotations

from enum import Enum
from typing import Any

import pymysql

from engines.base import EngineError, PermanentEngineError, RetryableEngineError
from engines.targets import Target, parse_mysql_dsn, redact

CONNECTION_ERRORS = frozenset({0, 1040, 1053, 1927, 2002, 2003, 2006, 2013, 2014, 2055, 4031})
LOCK_ERRORS = frozenset({1205, 1213})  # lock wait timeout, deadlock


class MysqlErrorKind(Enum):
    CONNECTION = "connection"  # the server or the network: try again later
    LOCK_WAIT = "lock_wait"  # someone holds a lock we need: try again later
    REJECTED = "rejected"  # the server refused the statement: a verdict


def error_kind(exc: pymysql.MySQLError) -> MysqlErrorKind:
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
    if code in LOCK_ERRORS:
        return MysqlErrorKind.LOCK_WAIT
    if code in CONNECTION_ERRORS or isinstance(exc, pymysql.err.InterfaceError) or 2000 <= code < 3000:
        return MysqlErrorKind.CONNECTION
    return MysqlErrorKind.REJECTED


def classify(exc: pymysql.MySQLError, doing: str) -> EngineError:
    """An engine error for a target error, with the server's own message and no credentials."""
    text = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
    code = exc.args[0] if exc.args else "?"
    message = redact(f"{doing}: {text} (MySQL error {code})")
    if error_kind(exc) is MysqlErrorKind.REJECTED:
        return PermanentEngineError(message)
    return RetryableEngineError(message)


def connect(target: Target, namespace: str | None = None, **kwargs: object) -> pymysql.Connection:
    """A short-timeout autocommit connection to the target, in `namespace` if given."""
    address = parse_mysql_dsn(target.dsn)
    params: dict[str, Any] = address.connect_kwargs()
    params.update({"connect_timeout": 5, "read_timeout": 60, "write_timeout": 60})
    params.update(kwargs)
    return pymysql.connect(database=namespace or address.schema, **params)
