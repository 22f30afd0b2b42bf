"""Connections to MySQL/MariaDB targets and what their errors mean for an engine.

What an error *is* comes from engines/mysql/errors.py, the one classification; this module only
turns it into the engine contract's errors (a transient error is retryable, anything else is
the server's verdict on the statement)."""

from __future__ import annotations

from enum import Enum
from typing import Any

import pymysql

from engines.base import EngineError, PermanentEngineError, RetryableEngineError
from engines.mysql.errors import is_connection_error, is_lock_wait, is_transient
from engines.mysql.tls import open_connection
from engines.targets import Target, parse_mysql_dsn, redact


class MysqlErrorKind(Enum):
    CONNECTION = "connection"  # the server or the network: try again later
    LOCK_WAIT = "lock_wait"  # someone holds a lock we need: try again later
    OTHER = "other"  # anything else: transient or a verdict, as `classify` says


def error_kind(exc: pymysql.MySQLError) -> MysqlErrorKind:
    """Which of the cases direct handles apart an error is (engines/mysql/errors.py decides)."""
    if is_lock_wait(exc):
        return MysqlErrorKind.LOCK_WAIT
    if is_connection_error(exc):
        return MysqlErrorKind.CONNECTION
    return MysqlErrorKind.OTHER


def classify(exc: pymysql.MySQLError, doing: str) -> EngineError:
    """An engine error for a target error, with the server's own message and no credentials."""
    text = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
    code = exc.args[0] if exc.args else "?"
    message = redact(f"{doing}: {text} (MySQL error {code})")
    if is_transient(exc):
        return RetryableEngineError(message)
    return PermanentEngineError(message)


def connect(target: Target, namespace: str | None = None, **kwargs: object) -> pymysql.Connection:
    """A short-timeout autocommit connection to the target, in `namespace` if given."""
    address = parse_mysql_dsn(target.dsn)
    params: dict[str, Any] = address.connect_kwargs()
    params.update({"connect_timeout": 5, "read_timeout": 60, "write_timeout": 60})
    params.update(kwargs)
    return open_connection(database=namespace or address.schema, **params)
