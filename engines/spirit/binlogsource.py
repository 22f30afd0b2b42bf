"""The binlog change source: no triggers; the shadow is kept current from the server's binary log.

At set-up the current binlog position is saved in the checkpoint before the first chunk is
copied. At every step after that (copy, index build, checksum, waiting for cutover), the engine
first *catches up*: it reads the source table's row events from the saved position up to the
position the server has reached now (binlogreader.py), makes the changed keys' shadow rows equal
to the source's (binlogapply.py), and saves the new position **in the same transaction** as
those shadow writes, so a worker killed at any instant leaves a position that says exactly which
changes are in the shadow; any worker continues from it. At cutover the catch-up runs once more
while the cutover holds the writers (cutover.read_locked_rename), up to the server's position.

Why the copy may read without shared locks (copier.py, `binlog=True`), and why copy and replay
converge: every change committed after the saved start position is in the binlog after it, and
every such change's key is synced from the source after the change is visible (the applier's
locking read waits for the writer). The applier runs at the start of each step, before any
chunk of the step is copied, and never while one is (copy lanes, parallel.py, copy disjoint key
ranges after it and within the step only); each writes the row it read at that moment, so a
later write of a key is never older than an earlier one. A key whose change is replayed before the copy
reaches it is inserted by the replay and overwritten by the copy with a version at least as new;
a key copied before its change is replayed is overwritten by the replay. The last write of every
key is therefore its final version. A row deleted after the copy read it is deleted by the
replay; one deleted before is never copied.

On a unique key besides the primary key, a `REPLACE` (the copy's or the replay's) deletes the
shadow row that holds the value. Copy lanes read at different instants, so the row deleted can be
the newer one: another lane read it after the application moved the value to it. Either way the
row deleted changed after the step's catch-up (the source never holds one value twice, so one of
the two rows changed between the two reads, both after the catch-up), its change is at or after
the saved position, and the next catch-up replays it. Tried with writers swapping unique values
between rows during a copy in three lanes (tests/integration/spirit/binlog/test_binlog_lanes.py).

The checksum compares source and shadow in snapshots opened while writers were held and the
shadow had every change (held_snapshots.py); a chunk that differs there, or in a step that could
not hold, is judged against the binlog (`judge`) before it counts as a difference.

Chosen automatically (`engine_options.change_source`, default `auto`) when the server logs in ROW
format with full images and the user may read the stream (binlogpos.server_refusal), and the
table suits it (`table_refusal`): its primary key is read exactly from the events (integers, or
strings in utf8/ascii), and every unique key of the new table is already enforced by the source
on the same, unchanged columns (otherwise only triggers can tell a real duplicate from a stale
one). `binlog` asked for where it cannot run is refused at preflight with the reason.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import pymysql
from pymysql.connections import Connection
from pymysql.cursors import Cursor

from engines.base import PermanentEngineError, RetryableEngineError
from engines.spirit import checkpoint
from engines.spirit.binlogapply import sync_keys
from engines.spirit.binlogpos import Position, current, purged_reason
from engines.spirit.binlogreader import (
    Batch,
    ChangeReader,
    KeyColumn,
    StreamInterrupted,
    read_changes,
)
from engines.spirit.checkpoint import Checkpoint
from engines.spirit.checksum import ChunkComparison, compare, differing_keys
from engines.spirit.columnmap import ColumnMap, map_columns
from engines.spirit.connection import error_text, is_transient
from engines.spirit.keyset import Key
from engines.spirit.naming import TableNames
from engines.spirit.plan import TablePlan
from engines.spirit.tableinfo import TableInfo, auto_increment, read_table
from engines.targets import Target, parse_mysql_dsn

MIN_CATCH_UP_SECONDS = 0.5
BINLOG = "binlog"
TRIGGERS = "triggers"
CHOICES = ("auto", TRIGGERS, BINLOG)

_INTEGERS = ("tinyint", "smallint", "mediumint", "int", "bigint")
_TEXT_KEYS = ("char", "varchar")
_EXACT_CHARSETS = ("utf8mb4", "utf8mb3", "utf8", "ascii")


def uses_binlog(cp: Checkpoint) -> bool:
    return cp.change_source == BINLOG


@dataclass(frozen=True)
class BinlogChangeSource:
    """The ChangeSource protocol (changesource.py) for the binary log."""

    names: TableNames
    position: Position | None

    def install(self, cur: Cursor) -> None:
        """Nothing is created on the table: the installation is the position from which changes
        are read, `binlogpos.current`, which set-up saves before the first chunk is copied."""

    def verify(self, cur: Cursor) -> str | None:
        if self.position is None:
            return "no binlog position was saved"
        return purged_reason(cur, self.position)

    def remove(self, cur: Cursor) -> None:
        """Nothing to remove: reading stops when the run does."""


# -- choosing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ColumnFacts:
    charset: str | None
    collation: str | None


def _column_facts(cur: Cursor, schema: str, table: str) -> dict[str, _ColumnFacts]:
    cur.execute(
        "SELECT COLUMN_NAME, CHARACTER_SET_NAME, COLLATION_NAME FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
        (schema, table),
    )
    return {
        str(n).lower(): _ColumnFacts(c and str(c), k and str(k)) for n, c, k in cur.fetchall()
    }


def _unique_keys(cur: Cursor, schema: str, table: str) -> dict[str, list[tuple[str, int | None]]]:
    """{index name: [(column lower-cased, prefix length or None), ...]} of the unique keys."""
    cur.execute(
        "SELECT INDEX_NAME, COLUMN_NAME, SUB_PART FROM information_schema.STATISTICS "
        "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND NON_UNIQUE = 0 "
        "ORDER BY INDEX_NAME, SEQ_IN_INDEX",
        (schema, table),
    )
    keys: dict[str, list[tuple[str, int | None]]] = {}
    for name, column, sub_part in cur.fetchall():
        keys.setdefault(str(name), []).append(
            (str(column).lower(), None if sub_part is None else int(sub_part))
        )
    return keys


def table_refusal(
    cur: Cursor, names: TableNames, source: TableInfo, shadow: TableInfo, cmap: ColumnMap
) -> str | None:
    """Why this table's change cannot be carried by the binlog source (None: it can)."""
    facts = _column_facts(cur, names.schema, names.table)
    for name in source.primary_key:
        column = source.column(name)
        base = (column.column_type if column else "").split("(")[0].split()[0].lower()
        charset = facts.get(name.lower(), _ColumnFacts(None, None)).charset
        if base in _INTEGERS or (base in _TEXT_KEYS and charset in _EXACT_CHARSETS):
            continue
        return (
            f"the primary key column {name} ({column.column_type if column else '?'}"
            f"{', ' + charset if charset else ''}) cannot be read exactly from the binlog "
            "events (integers and utf8/ascii strings can)"
        )
    shadow_facts = _column_facts(cur, names.schema, names.shadow)
    to_source = {new.lower(): old.lower() for old, new in cmap.pairs}
    unchanged = set()
    for old, new in cmap.pairs:
        before, after = source.column(old), shadow.column(new)
        same_type = before and after and before.column_type == after.column_type
        same_null = before and after and before.nullable == after.nullable
        f_old = facts.get(old.lower())
        f_new = shadow_facts.get(new.lower())
        if same_type and same_null and f_old == f_new:
            unchanged.add(old.lower())
    enforced = list(_unique_keys(cur, names.schema, names.table).values())
    for index, parts in _unique_keys(cur, names.schema, names.shadow).items():
        mapped: dict[str, int | None] = {}
        for part, prefix in parts:
            if part in to_source:
                mapped[to_source[part]] = prefix
        if not any(_implies(key, mapped, unchanged) for key in enforced):
            return (
                f"the new table's unique key {index} is not already enforced by the source on "
                "the same unchanged columns; only triggers can tell a duplicate the ALTER must "
                "refuse from a row not yet brought up to date"
            )
    return None


def _implies(
    enforced: Sequence[tuple[str, int | None]], wanted: dict[str, int | None], unchanged: set[str]
) -> bool:
    """Whether the source's unique key `enforced` makes `wanted` unique too: every column of it
    is in `wanted`, unchanged by the ALTER, and at least as long a prefix."""
    for column, prefix in enforced:
        if column not in wanted or column not in unchanged:
            return False
        longer = wanted[column]
        if longer is not None and (prefix is None or longer < prefix):
            return False
    return True


# -- catching up --------------------------------------------------------------------------------


class Readers:
    """The engine object's open binlog streams, one per table: a stream that stands exactly at
    the checkpoint's position continues from there; any other is closed and a new one opened."""

    def __init__(self) -> None:
        self._open: dict[tuple[str, str], ChangeReader] = {}

    def get(
        self,
        connect_kwargs: dict[str, Any],
        names: TableNames,
        key: Sequence[KeyColumn],
        start: Position,
    ) -> ChangeReader:
        where = (names.schema, names.table)
        reader = self._open.get(where)
        fits = reader is not None and reader.safe == start and reader.key == tuple(key)
        if reader is not None and fits and not reader.broken:
            return reader
        if reader is not None:
            with suppress(Exception):
                reader.close()
        reader = ChangeReader(connect_kwargs, names.schema, names.table, key, start)
        self._open[where] = reader
        return reader

    def close(self) -> None:
        for reader in self._open.values():
            with suppress(Exception):
                reader.close()
        self._open.clear()


def key_columns(source: TableInfo) -> list[KeyColumn]:
    """Each primary key column's place in the row image (every column counts, generated ones
    too, in table order)."""
    order = [c.name for c in source.columns]
    out = []
    for name in source.primary_key:
        column = source.column(name)
        out.append(KeyColumn(order.index(name), name, column.column_type if column else ""))
    return out


def catch_up(
    conn: Connection,
    target: Target,
    names: TableNames,
    source: TableInfo,
    cmap: ColumnMap,
    cp: Checkpoint,
    deadline: float,
    *,
    touched: set[Key] | None = None,
    readers: Readers | None = None,
    complete: bool = False,
) -> Checkpoint:
    """Apply the source's changes from the saved position up to the server's position now (or
    until `deadline`); the keys applied are added to `touched` when given. `readers`: streams
    kept open by the engine object, reused when one stands at the saved position. `complete`:
    the server's position must be reached (the cutover), else RetryableEngineError. Each batch of shadow
    writes commits with the new position."""
    # Like the copy's one chunk, a catch-up always gets a little time, whatever the step's
    # budget: otherwise a backlog could outgrow every step.
    deadline = max(deadline, time.monotonic() + MIN_CATCH_UP_SECONDS)
    start = Position.load(cp.binlog_position)
    if start is None:
        raise RetryableEngineError(f"{names.label}: the checkpoint has no binlog position")
    with conn.cursor() as cur:
        try:
            goal = current(cur)
        except pymysql.MySQLError as error:
            raise RetryableEngineError(
                f"{names.label}: reading the binlog position: {error_text(error)}"
            ) from error
        kwargs = dict(parse_mysql_dsn(target.dsn).connect_kwargs())
        if readers is None or start >= goal:
            batches = read_changes(
                kwargs, names.schema, names.table, key_columns(source), start, goal, deadline
            )
        else:
            reader = readers.get(kwargs, names, key_columns(source), start)
            batches = reader.read(goal, deadline)
        reached = False
        try:
            while True:
                try:
                    batch = next(batches)
                except StopIteration:
                    break
                except (StreamInterrupted, pymysql.MySQLError) as error:
                    raise RetryableEngineError(
                        f"{names.label}: reading the binlog from {start}: {error_text(error)}"
                    ) from error
                cp = _apply(cur, names, cmap, cp, batch)
                if touched is not None:
                    touched |= batch.keys
                reached = batch.reached_target
        finally:
            batches.close()
    if complete and not reached:
        raise RetryableEngineError(
            f"{names.label}: the binlog could not be read up to {goal} in time"
        )
    return cp


def _apply(
    cur: Cursor, names: TableNames, cmap: ColumnMap, cp: Checkpoint, batch: Batch
) -> Checkpoint:
    """One batch's shadow writes, with the position after it in the same transaction."""
    keys = sorted(batch.keys)
    try:
        cur.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
        cur.execute("BEGIN")
        try:
            sync_keys(cur, names, cmap, keys)
            cp = cp.but(binlog_position=batch.position.dump())
            checkpoint.save(cur, cp)
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
    except pymysql.MySQLError as error:
        if is_transient(error):  # a lost connection (2006, 2013) included
            raise RetryableEngineError(
                f"{names.label}: applying the binlog: {error_text(error)}"
            ) from error
        raise PermanentEngineError(
            f"{names.label}: a write made during the change cannot be stored in the new table: "
            f"{error_text(error)}; a blocking ALTER would fail the same way"
        ) from error
    return cp


def columns_now(cur: Cursor, plan: TablePlan) -> tuple[TableInfo, ColumnMap]:
    """The source's description and the column mapping, as the copy uses them."""
    names = plan.names
    source = read_table(cur, names.schema, names.table)
    shadow = read_table(cur, names.schema, names.shadow)
    if source is None or shadow is None:
        raise RetryableEngineError(f"{plan.label}: the source or the shadow table is missing")
    st = plan.statement
    return source, map_columns(source, shadow, st.renames, st.dropped)


def catch_up_plan(
    conn: Connection,
    target: Target,
    plan: TablePlan,
    cp: Checkpoint,
    deadline: float,
    *,
    readers: Readers | None = None,
    complete: bool = False,
) -> Checkpoint:
    """`catch_up` for a table whose description is not at hand (the cutover)."""
    with conn.cursor() as cur:
        source, cmap = columns_now(cur, plan)
    return catch_up(
        conn,
        target,
        plan.names,
        source,
        cmap,
        cp,
        deadline,
        readers=readers,
        complete=complete,
    )


def writes_missed_by_the_rename(
    cur: Cursor, target: Target, names: TableNames, cp: Checkpoint, deadline: float
) -> set[Key] | None:
    """After the cutover's RENAME: keys of the source's rows written between the last catch-up
    (the checkpoint's position, taken under the cutover lock) and the RENAME itself. Empty when
    the lock held, as it must; not empty only if the lock's holder died after it was last seen
    alive and before the RENAME queued behind it (cutover.read_locked_rename): those writes are
    in `_sb_<t>_old` and nowhere else. None when it cannot be told (no position, the old table
    gone, the RENAME not found in time)."""
    start = Position.load(cp.binlog_position)
    old = read_table(cur, names.schema, names.old)
    if start is None or old is None:
        return None
    goal = current(cur)
    moved = f"{names.q()} TO {names.q(names.old)}".upper()
    kwargs = dict(parse_mysql_dsn(target.dsn).connect_kwargs())
    reader = ChangeReader(kwargs, names.schema, names.table, key_columns(old), start)
    try:
        keys, found = reader.keys_until_query(
            lambda q: q.startswith("RENAME TABLE") and moved in q, goal, deadline
        )
    except (StreamInterrupted, pymysql.MySQLError):
        return None
    finally:
        reader.close()
    return keys if found else None


def carry_counter(cur: Cursor, names: TableNames) -> None:
    """Under the cutover lock, after the last catch-up: the shadow's AUTO_INCREMENT counter up to
    the source's when the source's moved on without a row to show for it (an insert rolled back,
    the highest row deleted), as a blocking ALTER keeps the counter."""
    source = auto_increment(cur, names.schema, names.table)
    shadow = auto_increment(cur, names.schema, names.shadow)
    if source is not None and (shadow is None or shadow < source):
        cur.execute(f"ALTER TABLE {names.q(names.shadow)} AUTO_INCREMENT = {int(source)}")


JUDGE_TRIES = 2
SYNC_LIMIT = 5000


def judge(
    conn: Connection,
    peer: Connection | None,
    target: Target,
    names: TableNames,
    source: TableInfo,
    cmap: ColumnMap,
    cp: Checkpoint,
    low: Key | None,
    high: Key | None,
    deadline: float,
    readers: Readers | None = None,
) -> tuple[Checkpoint, ChunkComparison | None]:
    """Compare the chunk (low, high] in a window in which none of its rows changed: catch up to
    P0, compare (one snapshot, at T), catch up again to P1 collecting the keys changed in
    between. Every change committed before T is before P1 in the binlog; when none of (P0, P1]
    touches the chunk, the source's chunk at T is what it was at P0, which the shadow holds, so
    the comparison is exact. Otherwise the window is tried again, JUDGE_TRIES times; then the
    keys that differ now are synced from the source like replayed ones (a locking read each, no
    range lock) and the chunk counts as equal: those keys are now the source's, the others were
    equal, and every later change is replayed. None when more than SYNC_LIMIT keys differ (the
    caller repairs the chunk)."""
    cp = catch_up(conn, target, names, source, cmap, cp, deadline, readers=readers)
    integer_key = all(
        (source.column(k) is not None)
        and source.column(k).column_type.split("(")[0].split()[0].lower() in _INTEGERS  # type: ignore[union-attr]
        for k in cmap.key
    )
    for _ in range(JUDGE_TRIES):
        result = compare(conn, names, cmap, low, high, peer)
        touched: set[Key] = set()
        cp = catch_up(
            conn, target, names, source, cmap, cp, deadline, touched=touched, readers=readers
        )
        if not any(_within(k, low, high, integer_key) for k in touched):
            return cp, result
        if time.monotonic() > deadline:
            break
    keys = differing_keys(conn, names, cmap, low, high, limit=SYNC_LIMIT + 1)
    if len(keys) > SYNC_LIMIT:
        return cp, None
    here = Position.load(cp.binlog_position)
    assert here is not None  # catch_up above refused a checkpoint without one
    with conn.cursor() as cur:
        cp = _apply(cur, names, cmap, cp, Batch(set(keys), here, True))
    return cp, ChunkComparison(result.source_rows, result.source_rows, 0)


def _within(key: Key, low: Key | None, high: Key | None, comparable: bool) -> bool:
    """Whether `key` is in (low, high]; any key counts when keys do not compare in Python as
    they do on the server (strings under a collation)."""
    if not comparable:
        return True
    return (low is None or tuple(key) > tuple(low)) and (high is None or tuple(key) <= tuple(high))
