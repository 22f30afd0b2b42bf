"""Throttling by the database's health (docs/architecture.md §6): the copy pauses while a replica
lags too far behind or while too many threads run on the primary.

- Replicas are named on the target's DSN: `mysql://u:p@primary:3306/db?replica=host:port`
  (several: `replica=h1:3306,h2:3306`). They are reached with the DSN's user and password and
  called r1, r2, ... in that order. Their lag is `Seconds_Behind_Master` (MariaDB, MySQL 5.7) or
  `Seconds_Behind_Source` (MySQL 8). A replica whose replication is stopped (the value is NULL),
  that is not a replica at all, or that cannot be reached counts as too far behind: the copy
  must not outrun a replica nobody can see.
- `Threads_running` of the primary (`SHOW GLOBAL STATUS`), which counts the engine's own
  connection, is compared with a maximum.

Limits come per apply from `engine_options`: `max_replica_lag_seconds` (default 10 when replicas
are named) and `max_threads_running` (default: not checked). A throttled step copies nothing and
says why, e.g. `throttled: replica r1 (db2:3306) lag 12 s > 5 s`; the next step looks again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass

import pymysql
from pymysql.connections import Connection
from pymysql.cursors import Cursor

from engines.mysql.tls import open_connection
from engines.options import SpiritOptions
from engines.targets import Target, parse_mysql_dsn

DEFAULT_MAX_LAG_SECONDS = 10.0
CHECK_INTERVAL_SECONDS = 1.0
"""Within a step, how often the copy looks again between chunks."""


@dataclass(frozen=True)
class Limits:
    replicas: tuple[tuple[str, int], ...] = ()
    max_lag_seconds: float = DEFAULT_MAX_LAG_SECONDS
    max_threads_running: int | None = None

    @property
    def active(self) -> bool:
        return bool(self.replicas) or self.max_threads_running is not None


def parse_replicas(text: str) -> tuple[tuple[str, int], ...]:
    """`h1:3306,h2` -> (("h1", 3306), ("h2", 3306)); ValueError for a malformed entry."""
    found = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        host, _, port = part.rpartition(":") if ":" in part else (part, "", "3306")
        if not host or not port.isdigit():
            raise ValueError(f"replica must be host or host:port, not {part!r}")
        found.append((host, int(port)))
    return tuple(found)


def limits_for(target: Target, options: SpiritOptions) -> Limits:
    try:
        address = parse_mysql_dsn(target.dsn)
    except ValueError:
        return Limits()
    replicas = parse_replicas(address.options.get("replica", ""))
    lag = options.max_replica_lag_seconds
    return Limits(
        replicas=replicas,
        max_lag_seconds=DEFAULT_MAX_LAG_SECONDS if lag is None else float(lag),
        max_threads_running=options.max_threads_running,
    )


def _lag(conn: Connection) -> tuple[float | None, str | None]:
    """(seconds behind, None) or (None, why the lag is unknown)."""
    with conn.cursor(pymysql.cursors.DictCursor) as cur:
        try:
            cur.execute("SHOW REPLICA STATUS")
        except pymysql.MySQLError:
            cur.execute("SHOW SLAVE STATUS")
        row = cur.fetchone()
    if not row:
        return None, "is not replicating"
    value = row.get("Seconds_Behind_Source", row.get("Seconds_Behind_Master"))
    if value is None:
        return None, "has replication stopped"
    return float(value), None


class Throttler:
    """Looks at the replicas and the primary; keeps its replica connections between checks."""

    def __init__(self, target: Target, connect_timeout: float = 2.0) -> None:
        self.target = target
        self.connect_timeout = connect_timeout
        self._replicas: dict[tuple[str, int], Connection] = {}

    def _replica(self, host: str, port: int) -> Connection:
        conn = self._replicas.get((host, port))
        if conn is not None:
            try:
                conn.ping(reconnect=False)
                return conn
            except Exception:
                with suppress(Exception):
                    conn.close()
        address = parse_mysql_dsn(self.target.dsn)
        conn = open_connection(
            host=host,
            port=port,
            user=address.user,
            password=address.password,
            autocommit=True,
            connect_timeout=int(max(self.connect_timeout, 1)),
            read_timeout=int(max(self.connect_timeout, 1)) * 5,
        )
        self._replicas[(host, port)] = conn
        return conn

    def reason(self, primary: Cursor, limits: Limits) -> str | None:
        """Why the copy must pause now, or None."""
        if limits.max_threads_running is not None:
            primary.execute("SHOW GLOBAL STATUS LIKE 'Threads_running'")
            row = primary.fetchone()
            running = int(row[1]) if row else 0
            if running > limits.max_threads_running:
                return f"Threads_running {running} > {limits.max_threads_running} on the primary"
        for n, (host, port) in enumerate(limits.replicas, start=1):
            name = f"replica r{n} ({host}:{port})"
            try:
                lag, why = _lag(self._replica(host, port))
            except pymysql.MySQLError as error:
                self._forget(host, port)
                return f"{name} cannot be read: {error.args[-1] if error.args else error}"
            if why is not None:
                return f"{name} {why}"
            assert lag is not None
            if lag > limits.max_lag_seconds:
                return f"{name} lag {lag:g} s > {limits.max_lag_seconds:g} s"
        return None

    def _forget(self, host: str, port: int) -> None:
        conn = self._replicas.pop((host, port), None)
        if conn is not None:
            with suppress(Exception):
                conn.close()

    def close(self) -> None:
        for host, port in list(self._replicas):
            self._forget(host, port)


class Gate:
    """The check as the copy loop uses it: at most once per CHECK_INTERVAL_SECONDS."""

    def __init__(
        self,
        throttler: Throttler,
        primary: Cursor,
        limits: Limits,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.throttler, self.primary, self.limits, self.clock = throttler, primary, limits, clock
        self._next = 0.0
        self.last: str | None = None

    def closed(self) -> str | None:
        if not self.limits.active:
            return None
        now = self.clock()
        if now >= self._next:
            self.last = self.throttler.reason(self.primary, self.limits)
            self._next = now + CHECK_INTERVAL_SECONDS
        return self.last
