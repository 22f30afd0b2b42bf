"""Checksum before cutover: compare source and shadow chunk by chunk, without locks.

Each chunk is compared inside one `START TRANSACTION WITH CONSISTENT SNAPSHOT`. Because the
triggers change the shadow in the writer's own transaction, any snapshot sees source and shadow
equal, so the comparison needs no lock. First a cheap aggregate (row count and the sum of a CRC32
of every row) on each side; only when those differ is the chunk compared row by row with `<=>`
across a primary key join, which is the arbiter: values whose type the ALTER changed (INT to
BIGINT, DATETIME to DATETIME(6)) print differently but compare equal by value, while a lossy
conversion (a truncated string) is a real difference.

A chunk that differs is repaired once (re-copied under shared locks); if it still differs, the
step fails naming the keys. A pass that repaired anything is followed by a second full pass,
which must be clean: a repair can only be trusted if nothing disturbed it.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pymysql.connections import Connection

from engines.spirit.columnmap import ColumnMap
from engines.spirit.keyset import Key, key_range, order_by
from engines.spirit.naming import TableNames, quote

MAX_KEYS_REPORTED = 10


@dataclass(frozen=True)
class ChunkComparison:
    source_rows: int
    shadow_rows: int
    differing: int

    @property
    def equal(self) -> bool:
        return self.differing == 0 and self.source_rows == self.shadow_rows


def _join_on(cmap: ColumnMap) -> str:
    return " AND ".join(f"s.{quote(k)} = n.{quote(k)}" for k in cmap.key)


def _differs(cmap: ColumnMap) -> str:
    terms = [f"n.{quote(cmap.key[0])} IS NULL"]
    terms += [f"NOT (s.{quote(a)} <=> n.{quote(b)})" for a, b in cmap.pairs if a not in cmap.key]
    return " OR ".join(terms)


def _row_crc(columns: tuple[str, ...], nullable: tuple[bool, ...] = ()) -> str:
    """CONCAT_WS skips NULLs, so a NULL marker per column that may hold one tells `a,NULL`
    from `NULL,a`; a column NOT NULL on both sides needs none (a quarter of the formula's cost
    on a typical table).

    Summed, not BIT_XOR'ed as pt-table-checksum does: CRC32 is affine, so rows of equal length
    whose strings changed by the same bits at the same place (a column off by one in two rows)
    change their CRCs by the same value, which XOR cancels in pairs and a sum does not."""
    values = ", ".join(quote(c) for c in columns)
    maybe = nullable if len(nullable) == len(columns) else (True,) * len(columns)
    nulls = ", ".join(f"ISNULL({quote(c)})" for c, n in zip(columns, maybe, strict=True) if n)
    if not nulls:
        return f"CRC32(CONCAT_WS('#', {values}))"
    return f"CRC32(CONCAT_WS('#', {values}, CONCAT({nulls})))"


def chunk_sums(
    conn: Connection,
    table: str,
    columns: tuple[str, ...],
    where: str,
    params: list[object],
    nullable: tuple[bool, ...] = (),
    *,
    own_snapshot: bool = True,
) -> tuple[int, int]:
    """(rows, sum of row CRCs) of one side's chunk: in a snapshot of its own, or with
    `own_snapshot=False` in the connection's current transaction (held_snapshots.py keeps one
    open for a whole step)."""
    with conn.cursor() as cur:
        if own_snapshot:
            cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        try:
            cur.execute(
                f"SELECT COUNT(*), COALESCE(SUM({_row_crc(columns, nullable)}), 0) FROM {table} "
                f"FORCE INDEX (PRIMARY) WHERE {where}",
                params,
            )
            count, crc = cur.fetchone()  # type: ignore[misc]
        finally:
            if own_snapshot:
                cur.execute("COMMIT")
    return int(count), int(crc)


def sums_of_both_sides(
    source_conn: Connection,
    shadow_conn: Connection,
    names: TableNames,
    cmap: ColumnMap,
    where: str,
    params: list[object],
    *,
    own_snapshots: bool = True,
) -> tuple[tuple[int, int], tuple[int, int]]:
    """`chunk_sums` of the source and of the shadow read at the same time, one per connection
    (the server uses two cores): (source, shadow)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        shadow_side = pool.submit(
            chunk_sums, shadow_conn, names.q(names.shadow), cmap.shadow, where, params,
            cmap.nullable, own_snapshot=own_snapshots,
        )  # fmt: skip
        source = chunk_sums(
            source_conn, names.q(), cmap.source, where, params, cmap.nullable,
            own_snapshot=own_snapshots,
        )  # fmt: skip
        return source, shadow_side.result()


def compare(
    conn: Connection,
    names: TableNames,
    cmap: ColumnMap,
    low: Key | None,
    high: Key | None,
    peer: Connection | None = None,
) -> ChunkComparison:
    """Compare keys in (low, high] of source and shadow.

    With a `peer` connection the two aggregates run at the same time, one per connection (the
    server uses two cores), each in its own snapshot. Equal sums from two instants are as good
    a proof as from one; unequal sums may only mean a write landed in between, so the verdict
    is then always taken again by `compare_exactly`, in one snapshot.
    """
    where, params = key_range(cmap.key, low, high)
    if peer is not None:
        source, shadow = sums_of_both_sides(conn, peer, names, cmap, where, params)
        if source == shadow:
            return ChunkComparison(source[0], shadow[0], 0)
    return compare_exactly(conn, names, cmap, low, high)


def same_sums(
    conn: Connection, names: TableNames, cmap: ColumnMap, low: Key | None, high: Key | None
) -> ChunkComparison | None:
    """The cheap aggregate of both sides of keys in (low, high], in one snapshot: the chunk's
    comparison when they agree, None when only `compare` can judge (the trailing checksum leaves
    such a chunk to the checksum phase, which repairs)."""
    where, params = key_range(cmap.key, low, high)
    with conn.cursor() as cur:
        cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        try:
            sums = _aggregates(cur, names, cmap, where, params)
        finally:
            cur.execute("COMMIT")
    if sums[0] != sums[1]:
        return None
    return ChunkComparison(sums[0][0], sums[1][0], 0)


def _aggregates(
    cur: Any, names: TableNames, cmap: ColumnMap, where: str, params: Sequence[Any]
) -> list[tuple[int, int]]:
    """(rows, summed row checksum) of the source and of the shadow over the same key range, in
    the caller's snapshot: equal pairs mean the chunk agrees."""
    sums = []
    for table, columns in ((names.q(), cmap.source), (names.q(names.shadow), cmap.shadow)):
        cur.execute(
            f"SELECT COUNT(*), COALESCE(SUM({_row_crc(columns, cmap.nullable)}), 0) "
            f"FROM {table} FORCE INDEX (PRIMARY) WHERE {where}",
            params,
        )
        count, crc = cur.fetchone()
        sums.append((int(count), int(crc)))
    return sums


def compare_exactly(
    conn: Connection, names: TableNames, cmap: ColumnMap, low: Key | None, high: Key | None
) -> ChunkComparison:
    """Compare keys in (low, high] of source and shadow in one consistent snapshot."""
    if cmap.changed:
        return _compare_converted(conn, names, cmap, low, high)
    src_where, src_params = key_range(cmap.key, low, high, alias="s.")
    new_where, new_params = key_range(cmap.key, low, high)
    with conn.cursor() as cur:
        cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        try:
            sums = _aggregates(cur, names, cmap, new_where, new_params)
            if sums[0] == sums[1]:
                return ChunkComparison(sums[0][0], sums[1][0], 0)
            cur.execute(
                f"SELECT COUNT(*) FROM {names.q(names.shadow)} WHERE {new_where}", new_params
            )
            shadow_rows = int(cur.fetchone()[0])  # type: ignore[index]
            cur.execute(
                f"SELECT COUNT(*), COALESCE(SUM({_differs(cmap)}), 0) "
                f"FROM {names.q()} s LEFT JOIN {names.q(names.shadow)} n ON {_join_on(cmap)} "
                f"WHERE {src_where}",
                src_params,
            )
            source_rows, differing = cur.fetchone()  # type: ignore[misc]
        finally:
            cur.execute("COMMIT")
    return ChunkComparison(int(source_rows), shadow_rows, int(differing))


def _compare_converted(
    conn: Connection, names: TableNames, cmap: ColumnMap, low: Key | None, high: Key | None
) -> ChunkComparison:
    """Like `compare_exactly`, for an ALTER that changes column types: the source's rows are
    first stored in a temporary table of the shadow's definition, so they go through exactly
    the conversion the copy made (a DECIMAL rounded, a SET reordered, a BINARY padded, a
    DATETIME(6) cut to DATETIME(3)), and then compared value for value. The rows are read in
    the snapshot and written back through the client, so no lock is taken on the source."""
    temp = quote(f"_sb_cmp_{names.table}"[:64])
    same = ColumnMap(tuple((b, b) for _, b in cmap.pairs), cmap.key)
    src_where, src_params = key_range(cmap.key, low, high, alias="s.")
    new_where, new_params = key_range(cmap.key, low, high)
    shadow_cols = ", ".join(quote(c) for c in cmap.shadow)
    with conn.cursor() as cur:
        cur.execute(f"DROP TEMPORARY TABLE IF EXISTS {temp}")
        cur.execute(f"CREATE TEMPORARY TABLE {temp} LIKE {names.q(names.shadow)}")
        try:
            cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
            try:
                cur.execute(
                    f"SELECT {', '.join(quote(c) for c in cmap.source)} FROM {names.q()} "
                    f"WHERE {new_where}",
                    new_params,
                )
                rows = cur.fetchall()
                if rows:
                    marks = ", ".join(["%s"] * len(cmap.shadow))
                    cur.executemany(
                        f"INSERT IGNORE INTO {temp} ({shadow_cols}) VALUES ({marks})", rows
                    )
                cur.execute(
                    f"SELECT COUNT(*) FROM {names.q(names.shadow)} WHERE {new_where}", new_params
                )
                shadow_rows = int(cur.fetchone()[0])  # type: ignore[index]
                cur.execute(
                    f"SELECT COUNT(*), COALESCE(SUM({_differs(same)}), 0) FROM {temp} s "
                    f"LEFT JOIN {names.q(names.shadow)} n ON {_join_on(same)} WHERE {src_where}",
                    src_params,
                )
                copied, differing = cur.fetchone()  # type: ignore[misc]
            finally:
                cur.execute("COMMIT")
        finally:
            cur.execute(f"DROP TEMPORARY TABLE IF EXISTS {temp}")
    source_rows = len(rows)
    return ChunkComparison(source_rows, shadow_rows, int(differing) + source_rows - int(copied))


def differing_keys(
    conn: Connection,
    names: TableNames,
    cmap: ColumnMap,
    low: Key | None,
    high: Key | None,
    limit: int = MAX_KEYS_REPORTED,
) -> list[Key]:
    """Up to `limit` keys that are missing, extra or different in the shadow."""
    src_where, src_params = key_range(cmap.key, low, high, alias="s.")
    new_where, new_params = key_range(cmap.key, low, high, alias="n.")
    keys: list[Key] = []
    with conn.cursor() as cur:
        cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        try:
            cols = ", ".join(f"s.{quote(k)}" for k in cmap.key)
            cur.execute(
                f"SELECT {cols} FROM {names.q()} s LEFT JOIN {names.q(names.shadow)} n "
                f"ON {_join_on(cmap)} WHERE {src_where} AND ({_differs(cmap)}) "
                f"ORDER BY {order_by(cmap.key, 's.')} LIMIT {int(limit)}",
                src_params,
            )
            keys.extend(tuple(r) for r in cur.fetchall())
            cols = ", ".join(f"n.{quote(k)}" for k in cmap.key)
            cur.execute(
                f"SELECT {cols} FROM {names.q(names.shadow)} n LEFT JOIN {names.q()} s "
                f"ON {_join_on(cmap)} WHERE {new_where} AND s.{quote(cmap.key[0])} IS NULL "
                f"ORDER BY {order_by(cmap.key, 'n.')} LIMIT {int(limit)}",
                new_params,
            )
            keys.extend(tuple(r) for r in cur.fetchall())
        finally:
            cur.execute("COMMIT")
    return keys[: int(limit)]


def repair(
    conn: Connection, names: TableNames, cmap: ColumnMap, low: Key | None, high: Key | None
) -> None:
    """Make the shadow's chunk equal to the source's: lock the source range (writers wait),
    empty the shadow range, copy it again. Plain INSERT, not IGNORE: a row that cannot be stored
    (a new unique key it violates, a value too long in strict mode) fails with the server's words.
    """
    where, params = key_range(cmap.key, low, high)
    shadow_cols = ", ".join(quote(c) for c in cmap.shadow)
    source_cols = ", ".join(quote(c) for c in cmap.source)
    with conn.cursor() as cur:
        cur.execute("BEGIN")
        try:
            cur.execute(
                f"SELECT COUNT(*) FROM (SELECT 1 FROM {names.q()} WHERE {where} "
                "LOCK IN SHARE MODE) locked",
                params,
            )
            cur.execute(f"DELETE FROM {names.q(names.shadow)} WHERE {where}", params)
            cur.execute(
                f"INSERT INTO {names.q(names.shadow)} ({shadow_cols}) SELECT {source_cols} "
                f"FROM {names.q()} WHERE {where} ORDER BY {order_by(cmap.key)} LOCK IN SHARE MODE",
                params,
            )
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
