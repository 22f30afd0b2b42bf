"""Reading which rows of one table changed between two binlog positions.

The stream comes from `mysql-replication` (python-mysql-replication), opened as a replica would:
a dump from a file and offset, in *blocking* mode (its non-blocking mode loops forever on MariaDB,
bench/binlog_read.py) with a heartbeat from the server every `HEARTBEAT_SECONDS`, so the reader
wakes up at least that often even when nothing is written. It stops by itself:

- when it reaches the `target` position (the log's end taken before the read began), or
- at the caller's deadline, at the last transaction boundary before it.

Only the primary key of each changed row is taken from the events (before and after images of
an update, so a key change syncs both keys); the applier (binlogapply.py) re-reads the rows
themselves from the source, so no value is ever converted by the client. Keys are handed out at
transaction boundaries only (after an XID, a COMMIT or a DDL, never inside a transaction): a
position saved there is one a later reader can start from, with every table map it needs.

The library reconnects silently after a lost connection, at whatever position it had reached,
which may be inside a transaction whose table map it would then lack: a second connection of
the stream is treated as an error instead (the step fails, the next one starts from the saved
position).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any

import pymysql
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.event import (
    GtidEvent,
    MariadbGtidEvent,
    QueryEvent,
    RotateEvent,
    XAPrepareEvent,
    XidEvent,
)
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

from engines.mysql.tls import open_connection
from engines.spirit.binlogpos import Position
from engines.spirit.keyset import Key

# The library warns at every connection that MariaDB's binlog_row_metadata is not FULL; the
# reader needs no column names (it reads the key by position), so the warning says nothing.
logging.getLogger("pymysqlreplication").setLevel(logging.ERROR)

HEARTBEAT_SECONDS = 0.5
READ_TIMEOUT_SECONDS = 30
"""A silent server (no event, no heartbeat) for this long fails the read instead of hanging."""

_INT_BITS = {"tinyint": 8, "smallint": 16, "mediumint": 24, "int": 32, "bigint": 64}


class StreamInterrupted(RuntimeError):
    """The replication connection was lost during a read; nothing after the last boundary
    handed out is trusted."""


@dataclass(frozen=True)
class KeyColumn:
    """Where a primary key column sits in the row image, and how to read its value."""

    ordinal: int
    name: str
    column_type: str

    def value(self, values: dict[str, Any]) -> Any:
        raw = values.get(self.name, values.get(f"UNKNOWN_COL{self.ordinal}"))
        base = self.column_type.split("(")[0].split()[0].lower()
        if isinstance(raw, int) and raw < 0 and "unsigned" in self.column_type.lower():
            # Without FULL row metadata the library does not know the column is unsigned.
            raw += 1 << _INT_BITS.get(base, 64)
        return raw


@dataclass
class Batch:
    """Keys changed by complete transactions, and the boundary after the last of them."""

    keys: set[Key]
    position: Position
    reached_target: bool


def _settings(connect_kwargs: dict[str, Any]) -> dict[str, Any]:
    settings = {k: v for k, v in connect_kwargs.items() if k not in ("autocommit", "database")}
    settings["read_timeout"] = READ_TIMEOUT_SECONDS
    settings["connect_timeout"] = 10
    return settings


class ChangeReader:
    """One replication stream of one table, kept open between reads while the engine object
    lives (opening one costs a few tens of milliseconds: a connection, the dump request), and
    positioned at `safe`, the last transaction boundary handed out. A reader is reused only when
    the checkpoint's position is its `safe` (binlogsource.py); anything else opens a new one."""

    def __init__(
        self,
        connect_kwargs: dict[str, Any],
        schema: str,
        table: str,
        key: Sequence[KeyColumn],
        start: Position,
    ) -> None:
        self.schema, self.table, self.key = schema, table, tuple(key)
        self.safe = start
        self.broken = False
        self._done: set[Key] = set()
        self._in_transaction: set[Key] = set()
        self._inside = False
        connections = 0

        def connect(**kwargs: Any) -> pymysql.connections.Connection:
            nonlocal connections
            if kwargs.get("db") != "information_schema":
                connections += 1
                if connections > 1:
                    raise StreamInterrupted("the binlog stream lost its connection")
            return open_connection(**kwargs)

        self._stream = BinLogStreamReader(
            connection_settings=_settings(connect_kwargs),
            server_id=random.randint(1_000_000_000, 4_000_000_000),
            log_file=start.file,
            log_pos=start.offset,
            resume_stream=True,
            blocking=True,
            slave_heartbeat=HEARTBEAT_SECONDS,
            only_schemas=[schema],
            only_tables=[table],
            filter_non_implemented_events=False,
            freeze_schema=True,
            # Only the key is used, and it is read exactly (binlogsource.table_refusal); another
            # column in a charset the library cannot decode must not stop the read.
            ignore_decode_errors=True,
            pymysql_wrapper=connect,
            enable_logging=False,
        )

    def read(
        self, target: Position, deadline: float, batch_keys: int = 2000
    ) -> Generator[Batch, None, None]:
        """Batches of changed keys from `safe` towards `target`, each ending at a transaction
        boundary. The last batch says whether `target` was reached (False: the deadline came
        first). Any failure leaves the reader `broken` (not to be reused)."""
        try:
            while self.safe < target and time.monotonic() < deadline:
                self._next()
                if len(self._done) >= batch_keys and self.safe < target:
                    yield self._take(False)
            yield self._take(self.safe >= target)
        except BaseException:
            self.broken = True
            raise

    def _take(self, reached: bool) -> Batch:
        batch = Batch(self._done, self.safe, reached)
        self._done = set()
        return batch

    def _next(self) -> None:
        stream = self._stream
        event = stream.fetchone()
        if event is None:
            raise StreamInterrupted("the server ended the binlog stream")
        here = Position(stream.log_file, int(stream.log_pos))
        if isinstance(event, (WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent)):
            if event.schema == self.schema and event.table == self.table:
                for row in event.rows:
                    for image in ("values", "before_values", "after_values"):
                        if image in row:
                            self._in_transaction.add(
                                tuple(k.value(row[image]) for k in self.key)
                            )
        elif isinstance(event, (MariadbGtidEvent, GtidEvent)):
            self._inside = True
        elif isinstance(event, (XidEvent, XAPrepareEvent)) or (
            isinstance(event, QueryEvent) and _query(event) != "BEGIN"
        ):
            self._inside = False
            self._done |= self._in_transaction
            self._in_transaction = set()
            self.safe = here
        elif isinstance(event, RotateEvent):
            if not self._inside:
                self.safe = Position(event.next_binlog, int(event.position))
        elif not self._inside:
            # Caught up (a heartbeat), or an event outside any transaction (a binlog
            # checkpoint, a GTID list): the stream's position is a boundary.
            self.safe = max(self.safe, here)

    def keys_until_query(
        self, is_it: Callable[[str], bool], target: Position, deadline: float
    ) -> tuple[set[Key], bool]:
        """Keys of the table's rows changed from `safe` up to the first query event `is_it`
        accepts (a statement, upper-cased), and whether that event was met before `target` or
        the deadline. Used once, after the cutover's RENAME: a row changed between the last
        catch-up and the RENAME is a write the shadow never got."""
        keys: set[Key] = set()
        stream = self._stream
        while time.monotonic() < deadline:
            event = stream.fetchone()
            if event is None:
                raise StreamInterrupted("the server ended the binlog stream")
            if isinstance(event, (WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent)):
                if event.schema == self.schema and event.table == self.table:
                    for row in event.rows:
                        for image in ("values", "before_values", "after_values"):
                            if image in row:
                                keys.add(tuple(k.value(row[image]) for k in self.key))
            elif isinstance(event, QueryEvent) and is_it(_query(event)):
                return keys, True
            if Position(stream.log_file, int(stream.log_pos)) >= target:
                return keys, False
        return keys, False

    def close(self) -> None:
        self._stream.close()


def read_changes(
    connect_kwargs: dict[str, Any],
    schema: str,
    table: str,
    key: Sequence[KeyColumn],
    start: Position,
    target: Position,
    deadline: float,
    batch_keys: int = 2000,
) -> Generator[Batch, None, None]:
    """`ChangeReader.read` on a reader of its own, closed at the end."""
    if start >= target:
        yield Batch(set(), start, True)
        return
    reader = ChangeReader(connect_kwargs, schema, table, key, start)
    try:
        yield from reader.read(target, deadline, batch_keys)
    finally:
        reader.close()


def _query(event: QueryEvent) -> str:
    query = event.query
    text = query.decode(errors="replace") if isinstance(query, bytes) else str(query)
    return text.strip().upper()
