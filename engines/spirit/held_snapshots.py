"""Source and shadow read at one instant at which the shadow had every change (binlog source).

With triggers the shadow is written in the source's own transaction, so a chunk compared in one
snapshot is exact. With the binlog source the shadow trails the source by the events not yet
replayed: under writes, a chunk compared in a plain snapshot often differs for that reason alone,
and `binlogsource.judge` then retries the comparison in quiet windows and syncs keys one by one,
which was most of the checksum's time under load (4x pt-online-schema-change at 200 writes/s).

Spirit's way instead: hold the writers for a moment (`LOCK TABLES t READ` on a connection of its
own), replay the binlog up to the server's position, open a consistent snapshot on two reading
connections, release. In those snapshots the shadow equals the source as of that instant, if the
copy was right, whatever is written afterwards (and what is, is replayed later): a chunk whose
sums agree there is proved; one whose sums differ is left to the judged comparison as before.

One hold per checksum step with time for it (`MIN_STEP_SECONDS`): a snapshot lives as long as
its connection, and a step's connections end with it. The hold is bounded: the lock is asked for
with a short wait, most of the backlog is replayed before it, and a last replay that does not
finish in time gives up the snapshots for this step (the judged comparison runs as before).
Writers wait at most that long, once per step. The chunks are the snapshot's own (rows inserted
since are brought by the binlog, not compared), so a checksum never chases the inserts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import pymysql
from pymysql.connections import Connection

from engines.base import EngineError
from engines.spirit import checksum
from engines.spirit.checksum import ChunkComparison
from engines.spirit.columnmap import ColumnMap
from engines.spirit.connection import close_quietly, connect
from engines.spirit.keyset import Key, key_range
from engines.spirit.naming import TableNames
from engines.targets import Target

LOCK_WAIT_SECONDS = 1
"""How long the hold waits for the table's metadata lock (an open transaction on the table)."""
LAST_REPLAY_SECONDS = 0.5
"""The most the last replay may take while writers are held; longer, and this step goes without."""
MIN_STEP_SECONDS = 0.25
"""A hold costs three connections, a lock and a replay (tens of milliseconds): a step with less
time left than this compares as before rather than spend most of it holding (tests run steps of
30 ms; the service's are 2 s)."""


@dataclass
class HeldSnapshots:
    """Two connections, each in a consistent snapshot opened while writers were held and the
    shadow had every change: one reads the source, the other the shadow, at the same instant."""

    source: Connection
    shadow: Connection

    def compare(
        self, names: TableNames, cmap: ColumnMap, low: Key | None, high: Key | None
    ) -> ChunkComparison | None:
        """The chunk (low, high] of both sides in the held snapshots, read at the same time: its
        comparison when the sums agree (proved), None when they differ (a real difference, or
        one the judged comparison settles)."""
        where, params = key_range(cmap.key, low, high)
        source, shadow = checksum.sums_of_both_sides(
            self.source, self.shadow, names, cmap, where, params, own_snapshots=False
        )
        if source != shadow:
            return None
        return ChunkComparison(source[0], shadow[0], 0)

    def close(self) -> None:
        for conn in (self.source, self.shadow):
            try:
                with conn.cursor() as cur:
                    cur.execute("COMMIT")
            except pymysql.MySQLError:
                pass
            close_quietly(conn)


def hold(
    target: Target,
    names: TableNames,
    replay_all: Callable[[float], None],
    *,
    lock_wait_seconds: int = LOCK_WAIT_SECONDS,
    last_replay_seconds: float = LAST_REPLAY_SECONDS,
) -> HeldSnapshots | None:
    """Open the two snapshots at an instant at which the shadow has every change of the source:
    writers held by `LOCK TABLES t READ`, `replay_all(deadline)` (the binlog replayed up to the
    server's position, or an EngineError), snapshots opened, writers released. None when the
    lock or the last replay did not come in time: nothing is held, the caller compares as before.
    The caller replays most of the backlog first, so that little is left under the lock."""
    holder: Connection | None = None
    source: Connection | None = None
    shadow: Connection | None = None
    try:
        holder, source, shadow = connect(target), connect(target), connect(target)
        with holder.cursor() as hc:
            hc.execute(f"SET SESSION lock_wait_timeout = {int(lock_wait_seconds)}")
            hc.execute(f"LOCK TABLES {names.q()} READ")
            try:
                replay_all(time.monotonic() + last_replay_seconds)
                for reader in (source, shadow):
                    with reader.cursor() as cur:
                        cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
            finally:
                hc.execute("UNLOCK TABLES")
    except (pymysql.MySQLError, EngineError):
        for opened in (source, shadow):
            if opened is not None:
                close_quietly(opened)
        return None
    finally:
        if holder is not None:
            close_quietly(holder)
    assert source is not None and shadow is not None
    return HeldSnapshots(source, shadow)
