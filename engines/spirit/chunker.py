"""Keyset chunking: the next chunk is the keys after the watermark, up to the N-th one.

Works for any primary key (integer, composite, string): the boundary is found by walking the
primary key index from the watermark, never by arithmetic on key values, so gaps and skew do not
matter. N adapts after every chunk so that one chunk takes about the target time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pymysql.cursors import Cursor

from engines.spirit.keyset import Key, after, order_by
from engines.spirit.naming import quote

MIN_CHUNK = 100
MAX_CHUNK = 500_000
MAX_GROWTH = 2.0


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


@dataclass
class ChunkSizer:
    """Resizes chunks towards `target_seconds`, at most doubling or halving per chunk."""

    size: int
    target_seconds: float

    def record(self, rows: int, seconds: float) -> None:
        if rows < self.size or seconds <= 0:
            return  # a short last chunk says nothing about the rate
        wanted = self.size * self.target_seconds / max(seconds, 1e-3)
        wanted = min(max(wanted, self.size / MAX_GROWTH), self.size * MAX_GROWTH)
        self.size = int(min(max(wanted, MIN_CHUNK), MAX_CHUNK))
