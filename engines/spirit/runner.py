"""One step of work on one table: copy chunks, then checksum chunks, until the deadline.

Each copied chunk is committed in one transaction with the checkpoint row that accounts for it,
so after a kill at any instant the watermark says exactly which rows are in the shadow: a
resumed copy starts right after the last committed chunk and copies nothing twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import pymysql
from pymysql.connections import Connection

from engines.base import PermanentEngineError, RetryableEngineError
from engines.spirit import checkpoint, checksum, copier, lanes, parallel
from engines.spirit.checkpoint import Checkpoint, Phase
from engines.spirit.checksum import ChunkComparison
from engines.spirit.chunker import MIN_CHUNK, Chunker, is_integer_key
from engines.spirit.connection import error_text, is_transient
from engines.spirit.copier import copy_chunk
from engines.spirit.deferred import Deferred, build
from engines.spirit.held_snapshots import HeldSnapshots
from engines.spirit.keyset import Key, describe
from engines.spirit.lanes import LanePlan
from engines.spirit.parallel import LaneSupply
from engines.spirit.plan import TablePlan
from engines.spirit.resume_rules import RunView
from engines.spirit.tableinfo import estimated_rows, read_table
from engines.spirit.trailing import Trailer
from engines.spirit.volume import Pace

JUDGED_FIRST_CHUNK = 1000

Judge = Callable[
    [Checkpoint, Key | None, Key | None], tuple[Checkpoint, checksum.ChunkComparison | None]
]


@dataclass
class StepReport:
    """What one step did to one table, for the progress result."""

    rows_copied: int = 0
    seconds: float = 0.0
    events: list[str] = field(default_factory=list)
    throttled: str | None = None
    """Why the copy paused in this step (throttle.py), if it did."""


class CopyRate:
    """The copy's rate per table, smoothed over steps (an exponentially weighted mean), so an
    ETA does not follow one step's luck: the first steps are slow while chunks grow to their
    time, and a step cut short by a lock wait or the throttle says little. Kept by the engine
    object; a new worker starts from its first step again."""

    WEIGHT = 0.3

    def __init__(self) -> None:
        self._rates: dict[str, float] = {}

    def observe(self, label: str, report: StepReport | None) -> float | None:
        """The smoothed rows/s after this step's report (None: nothing measured yet)."""
        if report is not None and report.rows_copied and report.seconds > 0:
            sample = report.rows_copied / report.seconds
            before = self._rates.get(label)
            self._rates[label] = (
                sample if before is None else before + self.WEIGHT * (sample - before)
            )
        return self._rates.get(label)


def chunker_for(plan: TablePlan, view: RunView, pace: Pace) -> Chunker:
    """Span chunks for one integer key, unless a fixed chunk size is asked for: that size is
    a number of rows, which only walking the index gives on sparse keys."""
    types = []
    for name in view.columns.key:
        column = view.source.column(name)
        types.append(column.column_type if column else "")
    by_span = is_integer_key(types) and pace.fixed_chunk is None
    return Chunker(plan.names.q(), view.columns.key, by_span)


def _time_left(deadline: float, expected: float) -> bool:
    return time.monotonic() + expected <= deadline


def copy(
    conn: Connection,
    plan: TablePlan,
    view: RunView,
    pace: Pace,
    deadline: float,
    report: StepReport,
    sleep: Callable[[float], None] = time.sleep,
    throttled: Callable[[], str | None] | None = None,
    peer: Connection | None = None,
    supply: LaneSupply | None = None,
) -> Checkpoint:
    """Copy chunks until the deadline or the end of the table. Always copies at least one chunk,
    so a step budget shorter than one chunk still makes progress; `throttled` (throttle.py),
    asked before every further chunk, stops the step early with its reason. With `peer`, a
    second connection, each copied chunk is checksummed behind the copy (trailing.py). With
    `supply`, the first step of a run chooses its copy lanes (lanes.py), and a run with more
    than one copies them in parallel (parallel.py)."""
    if supply is not None:
        view = _with_lanes(conn, plan, view, pace, supply.wanted, report)
        lane_plan = LanePlan.load(view.checkpoint.copy_lanes)
        if lane_plan is not None and lane_plan.parallel:
            return _copy_in_lanes(
                conn, plan, view, lane_plan, pace, deadline, report, sleep, throttled, supply,
                trailing=peer is not None,
            )
    trailer = Trailer(peer, plan.names, view.columns, view.checkpoint)
    try:
        cp = _copy(conn, plan, view, pace, deadline, report, sleep, throttled, trailer)
        if trailer.active or trailer.differed is not None:
            cp = trailer.collect(cp)
            with conn.cursor() as cur:
                checkpoint.save(cur, cp)
        event = trailer.event(plan.label)
        if event:
            report.events.append(event)
        return cp
    finally:
        trailer.close()


def _with_lanes(
    conn: Connection,
    plan: TablePlan,
    view: RunView,
    pace: Pace,
    wanted: int | str | None,
    report: StepReport,
) -> RunView:
    """The view with the run's lane plan chosen and saved, once, before its first chunk. A run
    begun by an engine without lanes (a watermark, no plan) goes on in one lane."""
    cp = view.checkpoint
    if cp.copy_lanes is not None:
        return view
    names = plan.names
    with conn.cursor() as cur:
        if cp.copy_watermark is not None or cp.rows_copied:
            count, why = 1, "a copy begun in one lane"
        else:
            total = estimated_rows(cur, names.schema, names.table)
            count, why = lanes.choose(
                cur, view.source, view.shadow, view.columns.key, wanted, total
            )
        ranges: tuple[lanes.Lane, ...] = ()
        if count > 1:
            ranges = lanes.split(cur, names.q(), view.columns.key[0], count, cp.chunk_size)
            if not ranges:
                count, why = 1, "fewer keys than lanes"
        chosen = LanePlan(count, why, ranges)
        cp = cp.but(copy_lanes=chosen.dump())
        checkpoint.save(cur, cp)
    report.events.append(f"{plan.label}: copying in {chosen.describe()}")
    return replace(view, checkpoint=cp)


def _copy_in_lanes(
    conn: Connection,
    plan: TablePlan,
    view: RunView,
    lane_plan: LanePlan,
    pace: Pace,
    deadline: float,
    report: StepReport,
    sleep: Callable[[float], None],
    throttled: Callable[[], str | None] | None,
    supply: LaneSupply,
    trailing: bool,
) -> Checkpoint:
    connections = supply.connections(len(lane_plan.lanes))
    if not trailing:
        connections = [(lane_conn, None) for lane_conn, _ in connections]

    def rows_added(rows: int, seconds: float) -> None:
        report.rows_copied += rows
        report.seconds += seconds

    cp, why, events = parallel.copy(
        conn,
        plan,
        view,
        lane_plan,
        chunker_for(plan, view, pace),
        pace,
        deadline,
        rows_added,
        sleep,
        throttled,
        connections,
    )
    report.throttled = report.throttled or why
    report.events.extend(events)
    return cp


def _copy(
    conn: Connection,
    plan: TablePlan,
    view: RunView,
    pace: Pace,
    deadline: float,
    report: StepReport,
    sleep: Callable[[float], None],
    throttled: Callable[[], str | None] | None,
    trailer: Trailer,
) -> Checkpoint:
    cp = view.checkpoint
    names, cmap = plan.names, view.columns
    chunker = chunker_for(plan, view, pace)
    sizer = chunker.sizer(cp.chunk_size, pace.chunk_seconds, pace.fixed_chunk)
    retries = 0
    last_error: pymysql.MySQLError | None = None
    copied_any = False
    first = True
    started = time.monotonic()
    with conn.cursor() as cur:
        lock_first = copier.needs_lock_first(cur, view.shadow)
    binlog = cp.change_source == "binlog"  # no shared locks (copier.py, binlogsource.py)
    while cp.phase == Phase.COPY and (first or sizer.fits_before(deadline)):
        if not first and throttled is not None:
            report.throttled = throttled()
            if report.throttled:
                break
        first = False
        t0 = time.monotonic()
        low = cp.copy_watermark
        try:
            with conn.cursor() as cur:
                high = chunker.next(cur, cp.copy_watermark, sizer.size)
                if binlog:
                    cur.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
                cur.execute("BEGIN")
                try:
                    inserted = copy_chunk(
                        cur, names, cmap, cp.copy_watermark, high, lock_first=lock_first, binlog=binlog
                    )
                    # The previous chunk's comparison ran meanwhile; it is recorded with this one.
                    cp = trailer.collect(cp)
                    if high is None:
                        rows = inserted
                        after = Phase.INDEX if cp.deferred_keys else Phase.CHECKSUM
                        new = cp.but(phase=after, rows_copied=cp.rows_copied + rows)
                    else:
                        rows = inserted if chunker.by_span else sizer.size
                        new = cp.but(copy_watermark=high, rows_copied=cp.rows_copied + rows)
                    checkpoint.save(cur, new.but(chunk_size=sizer.size))
                    cur.execute("COMMIT")
                except BaseException:
                    cur.execute("ROLLBACK")
                    raise
        except pymysql.MySQLError as error:
            # A lock wait or deadlock against the application's writes: shrink and retry.
            sizer.retry_smaller(error, retries, f"{plan.label}: copying a chunk")
            retries += 1
            last_error = error
            continue
        trailer.submit(low, high)
        seconds = time.monotonic() - t0
        sizer.record(seconds, full=high is not None)
        cp = new.but(chunk_size=sizer.size)
        report.rows_copied += rows
        copied_any = True
        if cp.phase != Phase.COPY:
            then = "index build" if cp.phase == Phase.INDEX else "checksum"
            report.events.append(
                f"{plan.label}: copy finished ({cp.rows_copied} rows); {then} begins"
            )
            break
        pause = pace.pause_ratio * seconds
        if pause > 0 and _time_left(deadline, pause):
            sleep(pause)
    report.seconds += time.monotonic() - started
    if not copied_any and last_error is not None:
        # The whole step went to lock waits: say so, rather than report a step that did nothing.
        raise RetryableEngineError(f"{plan.label}: copying a chunk: {error_text(last_error)}")
    return cp


def build_indexes(
    conn: Connection,
    plan: TablePlan,
    view: RunView,
    report: StepReport,
    sleep: Callable[[float], None] = time.sleep,
) -> Checkpoint:
    """Build the secondary indexes deferred at set-up (deferred.py), then on to the checksum.
    A shadow that already has them (a build whose worker died after the server finished it)
    only moves the phase on."""
    cp = view.checkpoint
    deferred = Deferred.load(cp.deferred_keys)
    names = plan.names
    started = time.monotonic()
    with conn.cursor() as cur:

        def current() -> str | None:
            info = read_table(cur, names.schema, names.shadow)
            return None if info is None else info.fingerprint

        if deferred is not None and (not view.lean or current() == cp.shadow_fingerprint):
            # Built alongside the copy (earlybuild.py), or by a worker that died after the build.
            report.events.append(f"{plan.label}: deferred indexes already built; checksum begins")
        elif deferred is not None and view.lean:
            attempts = build(cur, names, deferred, current, cp.shadow_fingerprint, sleep)
            if current() != cp.shadow_fingerprint:
                raise RetryableEngineError(
                    f"{plan.label}: the shadow's definition after the index build is not the "
                    "one the ALTER gave; the next step decides"
                )
            report.events.append(
                f"{plan.label}: built {len(deferred.keys)} deferred index(es) in "
                f"{time.monotonic() - started:.1f}s (attempt {attempts}); checksum begins"
            )
        cp = cp.but(phase=Phase.CHECKSUM)
        checkpoint.save(cur, cp)
    return cp


def verify(
    conn: Connection,
    plan: TablePlan,
    view: RunView,
    pace: Pace,
    deadline: float,
    report: StepReport,
    peer: Connection | None = None,
    judge: Judge | None = None,
    held: HeldSnapshots | None = None,
) -> Checkpoint:
    """Checksum chunks until the deadline or the end; repair or fail on a difference.
    `held` (binlog source): snapshots in which the shadow had every change; a chunk whose sums
    agree there is proved at once, without the judge (held_snapshots.py).
    `peer`, a second connection, lets the two sides of a chunk be read at the same time.
    `judge` (the binlog change source, binlogsource.Judge): the shadow trails the source by the
    events not applied yet, where triggers leave no gap, so a chunk that differs is judged again
    by it; it answers None when writes kept the chunk moving (inconclusive): the chunk is then
    repaired, never failed; with a judge a repair is trusted (it copies the chunk under shared
    locks, and every later change is replayed) and proved by the second pass."""
    cp = view.checkpoint
    names, cmap = plan.names, view.columns
    chunker = chunker_for(plan, view, pace)
    # With a judge (binlog) the phase usually starts at the copy's first chunk, where the copy's
    # last size (a key span, on a table read in one stretch) could be the whole table: start
    # small and let the chunk time size it, so that a repair's shared locks stay short.
    start = JUDGED_FIRST_CHUNK if judge is not None else max(cp.chunk_size, MIN_CHUNK)
    sizer = chunker.sizer(start, pace.chunk_seconds, pace.fixed_chunk)
    first = True
    # A copy in lanes left each lane's own checksum watermark (what trailed behind it): the first
    # pass finishes every lane's range in turn. A second pass is over the whole table.
    lane_plan = LanePlan.load(cp.copy_lanes)
    if lane_plan is not None and not (lane_plan.parallel and cp.checksum_pass == 1):
        lane_plan = None
    while cp.phase == Phase.CHECKSUM and (first or sizer.fits_before(deadline)):
        first = False
        t0 = time.monotonic()
        lane_index, lane_last = -1, False
        low: Key | None
        high: Key | None
        # In held snapshots the chunks are the snapshot's: rows inserted since are not compared
        # there (the binlog brings them to the shadow), and chasing them would never end.
        with (held.source if held is not None else conn).cursor() as cur:
            if lane_plan is not None:
                lane_index = next(i for i, ln in enumerate(lane_plan.lanes) if not ln.sum_done)
                lane = lane_plan.lanes[lane_index]
                low = lane.sum_low
                high, lane_last = lane.cap(chunker.next(cur, low, sizer.size))
            else:
                low = cp.checksum_watermark
                high = chunker.next(cur, low, sizer.size)
        short = lane_last if lane_plan is not None else high is None
        proved = held.compare(names, cmap, low, high) if held is not None else None
        result = proved or checksum.compare(conn, names, cmap, low, high, peer)
        conclusive = True
        if not result.equal and judge is not None:
            cp, judged = judge(cp, low, high)
            conclusive = judged is not None
            result = judged or result
        if not result.equal:
            if cp.checksum_pass >= 2 and conclusive:
                _fail(conn, plan, view, low, high, "after a repaired first pass")
            try:
                checksum.repair(conn, names, cmap, low, high)
            except pymysql.MySQLError as error:
                if is_transient(error):
                    raise
                _fail(
                    conn,
                    plan,
                    view,
                    low,
                    high,
                    f"and the server refused the repair: {error_text(error)}",
                )
            if judge is None:
                again = checksum.compare_exactly(conn, names, cmap, low, high)
            else:
                # The repair copied the chunk under shared locks, and every later change is
                # replayed: comparing again would only race the writes again (the second pass
                # compares every chunk once more).
                again = ChunkComparison(result.source_rows, result.source_rows, 0)
            if not again.equal:
                _fail(conn, plan, view, low, high, "and repairing it did not help")
            cp = cp.but(repaired_chunks=cp.repaired_chunks + 1)
            report.events.append(
                f"{plan.label}: checksum repaired the chunk after {describe(low)} "
                f"({result.source_rows} source rows, {result.shadow_rows} shadow rows, "
                f"{result.differing} differing)"
            )
        finished = high is None
        if lane_plan is not None:
            lane = lane_plan.lanes[lane_index]
            lane_plan = lane_plan.but_lane(
                lane_index,
                summed=int(high[0]) if high is not None else lane.summed,
                sum_done=lane_last,
            )
            finished = all(ln.sum_done for ln in lane_plan.lanes)
            cp = cp.but(
                copy_lanes=lane_plan.dump(),
                rows_checksummed=cp.rows_checksummed + result.source_rows,
            )
        else:
            cp = cp.but(
                checksum_watermark=high, rows_checksummed=cp.rows_checksummed + result.source_rows
            )
        if finished:
            if cp.repaired_chunks and cp.checksum_pass == 1:
                lane_plan = None
                cp = cp.but(
                    checksum_pass=2, checksum_watermark=None, rows_checksummed=0, repaired_chunks=0
                )
                report.events.append(
                    f"{plan.label}: chunks were repaired; checksum runs a second pass"
                )
            else:
                cp = cp.but(phase=Phase.WAIT_CUTOVER)
                report.events.append(f"{plan.label}: checksum passed; ready for cutover")
        with conn.cursor() as cur:
            checkpoint.save(cur, cp)
        sizer.record(time.monotonic() - t0, full=not short)
    return cp


def _fail(
    conn: Connection, plan: TablePlan, view: RunView, low: object, high: object, how: str
) -> None:
    keys = checksum.differing_keys(conn, plan.names, view.columns, low, high)  # type: ignore[arg-type]
    shown = "; ".join("(" + ", ".join(map(str, k)) + ")" for k in keys) or "none found on re-read"
    raise PermanentEngineError(
        f"{plan.label}: checksum mismatch between the table and its shadow {how}; "
        f"keys: {shown}. The shadow and triggers are kept for inspection; cancel to remove them"
    )
