"""The copy in parallel lanes (lanes.py): one thread and one connection per lane, inside one step.

Why threads inside the step rather than a Celery task per lane: a step is how the engine owns a
table. Its GET_LOCK lives on the step's main connection and dies with the process, so a
SIGKILLed worker takes every lane down with it and no lane can go on writing for an owner that is
gone; the next step, in any process, re-reads every lane's watermark and goes on. Lanes as tasks
would need a lock per lane, a way to know all lanes of a run had stopped before the checksum
phase, and a broker round-trip per chunk. Threads cost nothing here: each lane's thread waits on
its socket while the server copies (pymysql releases the GIL), so the parallelism is the
server's.

Each lane copies its chunks in key order within its range, on its own connection, and commits
each chunk in one transaction with the checkpoint row, which carries every lane's watermark: the
lanes take turns only for that UPDATE and the COMMIT (a mutex in this process, so they never wait
for each other on the checkpoint's row lock). A lane with a second connection checksums its
previous chunk behind its copy (trailing.py). The step's main connection, which holds the lock,
only watches: it asks the throttle about once a second and stops the lanes when it says so, and
pings its own connection every few seconds, so the server never closes it as idle (which would
free the table) and the lanes stop if it is gone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import pymysql
from pymysql.connections import Connection
from pymysql.cursors import Cursor

from engines.base import PermanentEngineError, RetryableEngineError
from engines.spirit import checkpoint
from engines.spirit.checkpoint import Checkpoint, Phase
from engines.spirit.chunker import Chunker
from engines.spirit.connection import error_text
from engines.spirit.copier import copy_chunk
from engines.spirit.lanes import Lane, LanePlan
from engines.spirit.plan import TablePlan
from engines.spirit.resume_rules import RunView
from engines.spirit.trailing import Trailer
from engines.spirit.volume import Pace

WATCH_SECONDS = 0.2
PING_SECONDS = 5.0

LaneConnections = list[tuple[Connection, Connection | None]]
"""Per lane: the copy's connection and, for the trailing checksum, a second one (or None)."""


@dataclass(frozen=True)
class LaneSupply:
    """What the engine gives the copy for lanes: the `copy_lanes` option and a source of
    connections (`connections(n)` gives n pairs, opened with the engine's session settings)."""

    wanted: int | str | None
    connections: Callable[[int], LaneConnections]


@dataclass
class _Shared:
    """The run's checkpoint and lanes as committed; changed only under `mutex`."""

    cp: Checkpoint
    plan: LanePlan
    after: str
    mutex: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    errors: list[BaseException] = field(default_factory=list)
    rows: int = 0
    events: list[str] = field(default_factory=list)

    def commit(
        self, cur: Cursor, index: int, lane: Lane, rows: int, summed_rows: int, in_txn: bool
    ) -> None:
        """Write `lane` and the counts into the checkpoint (and COMMIT the lane's open chunk
        transaction with it); the copy moves on to `after` when every lane is done."""
        with self.mutex:
            lanes = list(self.plan.lanes)
            lanes[index] = lane
            plan = replace(self.plan, lanes=tuple(lanes))
            done = all(each.copy_done for each in plan.lanes)
            new = self.cp.but(
                copy_lanes=plan.dump(),
                rows_copied=self.cp.rows_copied + rows,
                rows_checksummed=self.cp.rows_checksummed + summed_rows,
                phase=self.after if done else self.cp.phase,
                chunk_size=lane.size,
            )
            checkpoint.save(cur, new)
            if in_txn:
                cur.execute("COMMIT")
            self.cp, self.plan = new, plan
            self.rows += rows


def copy(
    conn: Connection,
    plan: TablePlan,
    view: RunView,
    lane_plan: LanePlan,
    chunker: Chunker,
    pace: Pace,
    deadline: float,
    rows_added: Callable[[int, float], None],
    sleep: Callable[[float], None],
    throttled: Callable[[], str | None] | None,
    connections: LaneConnections,
) -> tuple[Checkpoint, str | None, list[str]]:
    """Run every unfinished lane until the deadline, its end, the throttle or an error.
    Returns the checkpoint as committed, the throttle's reason if it stopped the lanes, and the
    events. `conn` (holding the table's lock) only watches."""
    cp = view.checkpoint
    after = Phase.INDEX if cp.deferred_keys else Phase.CHECKSUM
    shared = _Shared(cp, lane_plan, after)
    started = time.monotonic()
    threads = [
        threading.Thread(
            target=_lane,
            args=(index, connections[index], plan, view, chunker, pace, deadline, shared, sleep),
            name=f"copy-lane-{index}",
            daemon=True,
        )
        for index, lane in enumerate(lane_plan.lanes)
        if not lane.copy_done
    ]
    for thread in threads:
        thread.start()
    why: str | None = None
    next_ping = time.monotonic() + PING_SECONDS
    while any(thread.is_alive() for thread in threads):
        for thread in threads:
            thread.join(WATCH_SECONDS / max(len(threads), 1))
        if time.monotonic() >= next_ping and not shared.stop.is_set():
            # The lock's connection is idle while the lanes work: keep the server from closing
            # it as idle (which would free the table for another worker), and stop the lanes if
            # it is gone.
            next_ping = time.monotonic() + PING_SECONDS
            try:
                conn.ping(reconnect=False)
            except BaseException as error:
                shared.errors.append(
                    RetryableEngineError(f"{plan.label}: the step lost its connection: {error}")
                )
                shared.stop.set()
        if throttled is not None and why is None and not shared.stop.is_set():
            try:
                why = throttled()
            except BaseException as error:  # the lanes stop; the error is the step's
                shared.errors.append(error)
                why = None
                shared.stop.set()
            if why:
                shared.stop.set()
    rows_added(shared.rows, time.monotonic() - started)
    if shared.errors:
        permanent = [e for e in shared.errors if isinstance(e, PermanentEngineError)]
        raise (permanent or shared.errors)[0]
    events = list(shared.events)
    if shared.cp.phase != Phase.COPY:
        then = "index build" if shared.cp.phase == Phase.INDEX else "checksum"
        events.append(
            f"{plan.label}: copy finished ({shared.cp.rows_copied} rows, "
            f"{len(lane_plan.lanes)} lanes); {then} begins"
        )
    return shared.cp, why, events


def _time_left(deadline: float, expected: float) -> bool:
    return time.monotonic() + expected <= deadline


def _lane(
    index: int,
    connections: tuple[Connection, Connection | None],
    plan: TablePlan,
    view: RunView,
    chunker: Chunker,
    pace: Pace,
    deadline: float,
    shared: _Shared,
    sleep: Callable[[float], None],
) -> None:
    conn, peer = connections
    lane = shared.plan.lanes[index]
    trailer = Trailer(peer, plan.names, view.columns, view.checkpoint, caught_up=lane.caught_up)
    try:
        _copy_lane(index, conn, lane, trailer, plan, view, chunker, pace, deadline, shared, sleep)
    except BaseException as error:
        shared.errors.append(error)
        shared.stop.set()
    finally:
        trailer.close()
        event = trailer.event(f"{plan.label} (lane {index + 1})")
        if event:
            shared.events.append(event)


def _copy_lane(
    index: int,
    conn: Connection,
    lane: Lane,
    trailer: Trailer,
    plan: TablePlan,
    view: RunView,
    chunker: Chunker,
    pace: Pace,
    deadline: float,
    shared: _Shared,
    sleep: Callable[[float], None],
) -> None:
    names, cmap = plan.names, view.columns
    binlog = view.checkpoint.change_source == "binlog"  # no shared locks (copier.py)
    sizer = chunker.sizer(lane.size, pace.chunk_seconds, pace.fixed_chunk)
    retries = 0
    last_error: pymysql.MySQLError | None = None
    copied_any = False
    first = True
    while (
        not lane.copy_done
        and not shared.stop.is_set()
        and (first or sizer.fits_before(deadline))
    ):
        first = False
        t0 = time.monotonic()
        low = lane.copy_low
        try:
            with conn.cursor() as cur:
                high, last = lane.cap(chunker.next(cur, low, sizer.size))
                if binlog:
                    cur.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
                cur.execute("BEGIN")
                try:
                    inserted = copy_chunk(cur, names, cmap, low, high, binlog=binlog)
                    new = replace(
                        lane,
                        copied=int(high[0]) if high is not None else lane.copied,
                        copy_done=last,
                        size=sizer.size,
                    )
                    # The previous chunk's comparison ran meanwhile; it is recorded with this one.
                    new, summed_rows = _trailed(new, trailer)
                    rows = inserted if chunker.by_span or last else sizer.size
                    shared.commit(cur, index, new, rows, summed_rows, in_txn=True)
                except BaseException:
                    cur.execute("ROLLBACK")
                    raise
        except pymysql.MySQLError as error:
            # A lock wait or deadlock (with the application's writes or another lane): shrink
            # and retry, as the single-lane copy does.
            sizer.retry_smaller(error, retries, f"{plan.label}: copying a chunk in lane {index + 1}")
            retries += 1
            last_error = error
            continue
        lane = new
        copied_any = True
        trailer.submit(low, high)
        seconds = time.monotonic() - t0
        sizer.record(seconds, full=not last)
        lane = replace(lane, size=sizer.size)
        pause = pace.pause_ratio * seconds
        if pause > 0 and not lane.copy_done and _time_left(deadline, pause):
            sleep(pause)
    if trailer.pending:
        # The last comparison of the step: recorded on its own.
        new, summed_rows = _trailed(lane, trailer)
        if summed_rows or new != lane:
            with conn.cursor() as cur:
                shared.commit(cur, index, new, 0, summed_rows, in_txn=False)
    if not copied_any and last_error is not None:
        raise RetryableEngineError(
            f"{plan.label}: copying a chunk in lane {index + 1}: {error_text(last_error)}"
        )


def _trailed(lane: Lane, trailer: Trailer) -> tuple[Lane, int]:
    """`lane` with the pending trailing comparison accounted for, and its rows."""
    agreed = trailer.take()
    if agreed is None:
        return lane, 0
    high, rows = agreed
    summed = int(high[0])
    return replace(lane, summed=summed, sum_done=lane.end is not None and summed >= lane.end), rows
