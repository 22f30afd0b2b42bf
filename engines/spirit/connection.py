"""Connections to the target and the translation of server errors into the contract's errors.

A connection is opened once per step at most: GET_LOCK belongs to the connection, so a step that
silently reconnected would keep working without the lock that proves it owns the table. A lost
connection therefore fails the step (retryable) instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import pymysql
from pymysql.constants import CLIENT

from engines.base import PermanentEngineError, RetryableEngineError
from engines.mysql.connections import connect as mysql_connect
from engines.mysql.errors import error_code, is_permanent, is_transient
from engines.targets import Target, redact

# Session settings for every engine connection: short waits, so that a blocked DDL never queues
# the application's own queries behind it for long, and a blocked chunk fails fast and retries.
SESSION_SETTINGS = (
    "SET SESSION lock_wait_timeout = 5",
    "SET SESSION innodb_lock_wait_timeout = 5",
    "SET SESSION time_zone = '+00:00'",
    # A 0 in an AUTO_INCREMENT column is a value to copy, not a request for a new one (the
    # server's own ALTER keeps it); the triggers inherit this mode from the session creating them.
    "SET SESSION sql_mode = CONCAT_WS(',', NULLIF(@@SESSION.sql_mode, ''), 'NO_AUTO_VALUE_ON_ZERO')",
    "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
)

# An engine connection lives for one step (the orchestrator closes the engine after each tick),
# so it is never idle for long unless its process is frozen (SIGSTOP, a paused VM). The server
# then closes it after this many idle seconds, which releases the tables' GET_LOCKs so another
# worker can take over; with the server's default (8 hours) a frozen worker would block the
# table that long. The frozen process, when thawed, finds its connection gone and its lease lost.
IDLE_SESSION_SECONDS = 60


def error_text(error: BaseException) -> str:
    """`(code) message` as the server said it, without anything that could hold a credential."""
    code = error_code(error)
    args: tuple[Any, ...] = tuple(getattr(error, "args", ()))
    message = str(args[1]) if len(args) > 1 else str(error)
    return redact(f"({code}) {message}" if code is not None else message)


def connect(target: Target) -> pymysql.connections.Connection:
    """Open an autocommit connection with the engine's session settings.

    The shared connection (engines/mysql/connections.py), with spirit's differences: rows
    *matched* count as affected (FOUND_ROWS), a longer connect timeout, and no read or write
    timeout, since a chunk copy or a checksum may legitimately run for minutes."""
    try:
        conn = mysql_connect(
            target,
            client_flag=CLIENT.FOUND_ROWS,
            connect_timeout=10,
            read_timeout=None,
            write_timeout=None,
        )
        with conn.cursor() as cur:
            for statement in SESSION_SETTINGS:
                cur.execute(statement)
            cur.execute(f"SET SESSION wait_timeout = {int(IDLE_SESSION_SECONDS)}")
    except pymysql.MySQLError as error:
        raise RetryableEngineError(
            f"cannot connect to target {target.name}: {error_text(error)}"
        ) from None
    return conn


@contextmanager
def target_errors(doing: str) -> Iterator[None]:
    """Translate server errors raised while `doing` something into engine errors.

    An error the server will always give (engines/mysql/errors.py: a syntax or definition error,
    a name taken, a value that does not fit) is permanent. Anything else unexpected on the
    engine's own bookkeeping is retryable: the next step re-reads the checkpoint and either
    continues or fails for a reason it can name.
    """
    try:
        yield
    except pymysql.MySQLError as error:
        if is_permanent(error):
            raise PermanentEngineError(f"{doing}: {error_text(error)}") from error
        raise RetryableEngineError(f"{doing}: {error_text(error)}") from error


@contextmanager
def user_ddl_errors(doing: str) -> Iterator[None]:
    """Like `target_errors`, for the user's own DDL: a non-transient refusal is permanent and
    carries the target's message (an unknown column stays an unknown column)."""
    try:
        yield
    except pymysql.MySQLError as error:
        if is_transient(error):
            raise RetryableEngineError(f"{doing}: {error_text(error)}") from error
        raise PermanentEngineError(
            f"{doing}: the target rejected it: {error_text(error)}"
        ) from error


def close_quietly(conn: pymysql.connections.Connection | None) -> None:
    """Close a connection that may already be dead; closing it is all that matters (a lock it
    held dies with it on the server)."""
    if conn is not None:
        with suppress(Exception):
            conn.close()
