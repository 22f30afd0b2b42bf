"""Keyset chunking: the next chunk is the keys after the watermark, up to the N-th one.

Works for any primary key (integer, composite, string): the boundary is found by walking the
primary key index from the watermark, so gaps and skew do not matter. N adapts after every chunk
so that one chunk takes about the target time.

A primary key of one integer column is chunked by key span instead (`(low, low + span]`): no
boundary query at all, which on a million rows saves most of a second. Gaps only make chunks
cheaper, and the span adapts by time the same way; the chunk holding the current maximum key is
the last one (rows inserted after it are carried by the triggers).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import pymysql
from pymysql.cursors import Cursor

from engines.base import RetryableEngineError
from engines.mysql.errors import lost_mid_query
from engines.spirit.connection import error_text, is_transient
from engines.spirit.keyset import Key, after, order_by
from engines.spirit.naming import quote

MIN_CHUNK = 100
MAX_CHUNK = 500_000
MAX_GROWTH = 2.0
MAX_CHUNK_RETRIES = 5  # lock waits or deadlocks of one chunk retried within a step


def next_boundary(
    cur: Cursor, table_sql: str, key: Sequence[str], low: Key | None, size: int
) -> Key | None:
    """The `size`-th key after `low` (inclusive upper bound of the chunk), or None when fewer
    than `size` keys remain (the chunk is then the rest of the table)."""
    cols = ", ".join(quote(c) for c in key)
    where, params = ("1=1", []) if low is None else after(key, low)
    cur.execute(
        f"SELECT {cols} FROM {table_sql} FORCE INDEX (PRIMARY) WHERE {where} "
        f"ORDER BY {order_by(key)} LIMIT 1 OFFSET {max(size, 1) - 1}",
        params,
    )
    row = cur.fetchone()
    return None if row is None else tuple(row)


INTEGER_TYPES = ("tinyint", "smallint", "mediumint", "int", "bigint")
MAX_SPAN = 2**62


def is_integer_key(key_types: Sequence[str]) -> bool:
    return len(key_types) == 1 and key_types[0].split("(")[0].split()[0].lower() in INTEGER_TYPES


def next_span_boundary(
    cur: Cursor, table_sql: str, column: str, low: Key | None, span: int
) -> Key | None:
    """`low + span`, or None when that reaches the current maximum key (the last chunk)."""
    cur.execute(
        f"SELECT MIN({quote(column)}), MAX({quote(column)}) FROM {table_sql}"
        if low is None
        else f"SELECT NULL, MAX({quote(column)}) FROM {table_sql}"
    )
    row = cur.fetchone()
    if row is None or row[1] is None:
        return None
    start = int(low[0]) if low is not None else int(row[0]) - 1
    high = start + max(span, 1)
    return None if high >= int(row[1]) else (high,)


@dataclass
class ChunkSizer:
    """Resizes chunks towards `target_seconds`, at most doubling or halving per chunk."""

    size: int
    target_seconds: float
    limit: int = MAX_CHUNK
    fixed: bool = False
    last_seconds: float | None = None

    def record(self, seconds: float, full: bool = True) -> None:
        """Adapt after a chunk that took `seconds`; a short last chunk (`full=False`) says
        nothing about the rate."""
        if not full or seconds <= 0:
            return
        self.last_seconds = seconds
        if self.fixed:
            return
        wanted = self.size * self.target_seconds / max(seconds, 1e-3)
        wanted = min(max(wanted, self.size / MAX_GROWTH), self.size * MAX_GROWTH)
        self.size = int(min(max(wanted, MIN_CHUNK), self.limit))

    def fits_before(self, deadline: float) -> bool:
        """Whether the next chunk should end before `deadline`. It should take the target time
        when its size adapts (an early, smaller one at most MAX_GROWTH times the last one's);
        a fixed size (`chunk_rows`) is not steered towards the target, so it takes what the
        last one took. Judging a fixed chunk by the target made a step whose budget is under
        the volume's chunk time copy one chunk per lane (1 s steps at volume 11: 1.5 s)."""
        if self.last_seconds is None:
            expected = self.target_seconds
        elif self.fixed:
            expected = self.last_seconds
        else:
            expected = min(self.target_seconds, self.last_seconds * MAX_GROWTH)
        return time.monotonic() + expected <= deadline

    def retry_smaller(self, error: pymysql.MySQLError, retries: int, what: str) -> None:
        """After a chunk's transaction failed: return (with the chunk halved, unless its size is
        fixed) when the error is a lock wait or deadlock worth retrying at once; else raise
        RetryableEngineError naming `what`, for the next step. A lost connection (2006, 2013) is
        never retried here: the step's connection and its table lock went with it."""
        if not is_transient(error) or retries >= MAX_CHUNK_RETRIES or lost_mid_query(error):
            raise RetryableEngineError(f"{what}: {error_text(error)}") from error
        if not self.fixed:
            self.size = max(MIN_CHUNK, self.size // 2)


@dataclass(frozen=True)
class Chunker:
    """Finds chunk boundaries for one table, by span or by walking the index."""

    table_sql: str
    key: tuple[str, ...]
    by_span: bool

    def sizer(self, size: int, target_seconds: float, fixed: int | None = None) -> ChunkSizer:
        limit = MAX_SPAN if self.by_span else MAX_CHUNK
        if fixed is not None:
            return ChunkSizer(max(fixed, 1), target_seconds, limit, fixed=True)
        return ChunkSizer(size, target_seconds, limit)

    def next(self, cur: Cursor, low: Key | None, size: int) -> Key | None:
        if self.by_span:
            return next_span_boundary(cur, self.table_sql, self.key[0], low, size)
        return next_boundary(cur, self.table_sql, self.key, low, size)
