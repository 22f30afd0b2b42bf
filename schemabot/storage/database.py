"""Connections to the state database, transactions, and the transient-error policy.

Every unit of work against the state database is a function run by `run_in_transaction`, which
retries it for a few seconds when the error is transient (lost connection, server gone, lock wait
timeout, deadlock, read-only server, a locked SQLite file) and then raises `StorageUnavailable`.
Callers treat that as "exit without writing": the lease expires and the sweep re-drives. This is
how a state-database outage never produces a terminal state (docs/architecture.md §7).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
)

from engines.mysql.tls import open_connection, tls_connect_args
from engines.targets import redact
from schemabot.errors import StorageUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

# MySQL/MariaDB error numbers that mean "try again": the statement may succeed on a new
# connection or a moment later. Everything else (syntax, constraint) is a bug or a verdict.
TRANSIENT_MYSQL_ERRORS = frozenset(
    {
        1040,  # too many connections
        1053,  # server shutdown in progress
        1205,  # lock wait timeout
        1213,  # deadlock
        1290,  # --read-only (failover in progress)
        1836,  # read-only mode
        1927,  # connection was killed (MariaDB)
        2002,  # cannot connect via socket
        2003,  # cannot connect
        2006,  # server has gone away
        2013,  # lost connection during query
        2014,  # commands out of sync (after an interrupted read)
        2055,  # lost connection at reading
        4031,  # disconnected by the server (inactivity)
    }
)


# PostgreSQL SQLSTATEs that mean "try again" (classes 08 connection and 57 operator intervention,
# plus serialization failure, deadlock, lock not available, too many connections, read-only).
TRANSIENT_POSTGRESQL_STATES = frozenset({"40001", "40P01", "55P03", "53300", "25006"})


def _postgresql_transient(orig: BaseException) -> bool | None:
    """None when `orig` is no PostgreSQL driver error."""
    if type(orig).__module__.split(".")[0] not in ("psycopg", "psycopg2"):
        return None
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if state is None:  # no answer from a server at all: cannot connect, connection lost
        return type(orig).__name__ in ("OperationalError", "InterfaceError")
    return state in TRANSIENT_POSTGRESQL_STATES or state[:2] in ("08", "57")


def is_transient_state_db_error(exc: BaseException) -> bool:
    """Is this state-database error worth retrying rather than reporting?"""
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None:
        postgresql = _postgresql_transient(exc.orig)
        if postgresql is not None:
            return postgresql
    if isinstance(exc, sa.exc.TimeoutError | sa.exc.DisconnectionError):
        return True  # pool checkout timeout, disconnect seen by pre-ping
    if isinstance(exc, sa.exc.DBAPIError):
        orig = exc.orig
        if isinstance(orig, sqlite3.OperationalError):
            text = str(orig).lower()
            return "locked" in text or "busy" in text or "unable to open" in text
        code = orig.args[0] if orig is not None and orig.args else None
        if isinstance(code, int) and code in TRANSIENT_MYSQL_ERRORS:
            return True
        # pymysql raises InterfaceError(0, '') / errors without a code on a dead socket.
        if isinstance(exc, sa.exc.InterfaceError | sa.exc.OperationalError) and code in (0, None):
            return True
    return isinstance(exc, ConnectionError | TimeoutError)


def _configure_sqlite(engine: Engine) -> None:
    """Make SQLite behave for several worker processes: WAL, a busy timeout, and BEGIN IMMEDIATE
    for write transactions so a read never has to upgrade to a write lock mid-transaction (which
    SQLite refuses at once, busy timeout or not)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves below
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=10000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def make_engine(url: str) -> Engine:
    """An SQLAlchemy engine for the state database, with timeouts so a dead server is noticed."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 10, "check_same_thread": False})
        _configure_sqlite(engine)
        return engine
    connect_args: dict[str, Any] = {}
    target: str | sa.URL = url
    if url.startswith("mysql"):
        # Without read/write timeouts a black-holed connection hangs a worker forever.
        connect_args = {"connect_timeout": 5, "read_timeout": 15, "write_timeout": 15}
        # TLS from the URL's ssl_ca/ssl_cert/ssl_key/ssl_mode, as for targets (engines/mysql/tls.py).
        parsed = sa.make_url(url)
        tls = {k: str(v) for k, v in parsed.query.items() if k.startswith("ssl")}
        connect_args.update(tls_connect_args(tls))
        target = parsed.difference_update_query(list(tls))
    elif url.startswith("postgresql"):
        # The same bounds as for MySQL: a dead server is noticed, a hung statement ends.
        connect_args = {
            "connect_timeout": 5,
            "keepalives": 1,
            "keepalives_idle": 10,
            "options": "-c statement_timeout=15000 -c lock_timeout=10000",
        }
    engine = sa.create_engine(
        target,
        pool_pre_ping=True,
        pool_recycle=1800,
        pool_size=5,
        max_overflow=5,
        pool_timeout=5,
        connect_args=connect_args,
    )
    if url.startswith("mysql"):

        @event.listens_for(engine, "do_connect")
        def _connect(_dialect: Any, _record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
            # The targets' connection class: its TLS context is made once (engines/mysql/tls.py).
            return open_connection(*cargs, **cparams)

    return engine


class Database:
    """The state database: an engine plus the one way to run a unit of work on it."""

    def __init__(self, url: str, retry_seconds: float = 3.0) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.retry_seconds = retry_seconds
        self._writer = self.engine.execution_options(sqlite_begin="IMMEDIATE")

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def run(self, work: Callable[[Session], T], *, write: bool = True) -> T:
        """Run `work(session)` in one transaction, retrying transient errors for a few seconds.

        `work` must be safe to run again from the start: a failed attempt is rolled back whole.
        """

        def attempt() -> T:
            bind = self._writer if write else self.engine
            with Session(bind=bind, expire_on_commit=False) as session, session.begin():
                return work(session)

        try:
            for tried in Retrying(
                retry=retry_if_exception(is_transient_state_db_error),
                stop=stop_after_delay(self.retry_seconds),
                wait=wait_exponential(multiplier=0.1, max=1.0),
                reraise=False,
            ):
                with tried:
                    return attempt()
        except RetryError as exc:
            cause = exc.last_attempt.exception()
            raise StorageUnavailable(
                f"state database unavailable: {redact(str(cause)).splitlines()[0]}"
            ) from cause
        raise AssertionError("unreachable")  # pragma: no cover - Retrying always returns or raises

    def dispose(self) -> None:
        self.engine.dispose()


_databases: dict[str, Database] = {}
_lock = threading.Lock()


def get_database(url: str, retry_seconds: float = 3.0) -> Database:
    """One Database per URL per process (worker processes fork: see `reset_after_fork`)."""
    with _lock:
        db = _databases.get(url)
        if db is None:
            db = _databases[url] = Database(url, retry_seconds)
        return db


def reset_after_fork() -> None:
    """Drop pooled connections inherited from a parent process; sockets must not be shared."""
    with _lock:
        for db in _databases.values():
            db.engine.dispose(close=False)
