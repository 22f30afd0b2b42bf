"""SpiritEngine: the contract (engines.base) on top of the spirit package's modules.

Every call is short and self-contained: it opens (or reuses) one connection, takes the GET_LOCK
of every table of the operation with timeout 0, re-reads the checkpoints, does its bounded piece
of work, and releases the locks. Nothing lives in the process between calls that the next worker
would need: the checkpoint rows on the target are the truth, keyed by the request's context.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from typing import Any

import pymysql
from pymysql.connections import Connection

from engines.base import (
    ApplyRequest,
    ApplyResult,
    ControlRequest,
    ControlResult,
    Engine,
    EngineState,
    OperationRequest,
    PermanentEngineError,
    ProgressRequest,
    ProgressResult,
    ResumeState,
    RetryableEngineError,
    TableProgress,
)
from engines.options import SpiritOptions, read_options
from engines.spirit import (
    binlogsource,
    checkpoint,
    cutover,
    lanes,
    resume_rules,
    runner,
    sentinel,
    setup,
    throttle,
)
from engines.spirit.advisorylock import acquire_all, release_all
from engines.spirit.checkpoint import Checkpoint
from engines.spirit.checksum import ChunkComparison
from engines.spirit.connection import connect, error_text, is_transient, target_errors
from engines.spirit.keyset import Key, describe
from engines.spirit.naming import CHECKPOINT_TABLE
from engines.spirit.parallel import LaneConnections, LaneSupply
from engines.spirit.plan import TablePlan, group_of, plan_tables
from engines.spirit.resume_rules import RunView
from engines.spirit.tableinfo import auto_increment, estimated_rows
from engines.spirit.triggers import drop_triggers, refused_writes
from engines.spirit.volume import pace, parse_volume
from engines.targets import Target

RESUME_FORMAT = 1
MAX_CUTOVER_ATTEMPTS = 20
CUTOVER_LOCK_WAIT_SECONDS = 2

_PHASE_STATE = {
    checkpoint.SETUP: EngineState.RUNNING,
    checkpoint.COPY: EngineState.RUNNING,
    checkpoint.INDEX: EngineState.RUNNING,
    checkpoint.CHECKSUM: EngineState.RUNNING,
    checkpoint.WAIT_CUTOVER: EngineState.WAITING_FOR_CUTOVER,
    checkpoint.CUTOVER: EngineState.CUTTING_OVER,
    checkpoint.DONE: EngineState.COMPLETED,
    checkpoint.CANCELLED: EngineState.CANCELLED,
    checkpoint.FAILED: EngineState.FAILED,
}


class _AmbiguousCutover(PermanentEngineError):
    """The permanent failures after which nothing is removed, so a person must look: nobody
    knows which table is which, or a write refused by the new table is only in the old one."""


@dataclass(frozen=True)
class _Attached:
    checkpoint: Checkpoint
    reattached: bool
    point: str | None = None
    restart_reason: str | None = None


def _point(cp: Checkpoint, total: int) -> str:
    """Where a run stands, for the audit log."""
    if cp.phase == checkpoint.COPY:
        pct = 100.0 * cp.rows_copied / total if total else 0.0
        plan = lanes.LanePlan.load(cp.copy_lanes)
        where = f"copy watermark {describe(cp.copy_watermark)}"
        if plan is not None:
            where = plan.describe() if plan.parallel else f"{where}, {plan.describe()}"
        return f"{where} ({cp.rows_copied} rows, {min(pct, 99.9):.1f}%)"
    if cp.phase == checkpoint.INDEX:
        return f"building the deferred secondary indexes ({cp.rows_copied} rows copied)"
    if cp.phase == checkpoint.CHECKSUM:
        plan = lanes.LanePlan.load(cp.copy_lanes)
        if plan is not None and plan.parallel and cp.checksum_pass == 1:
            done = sum(lane.sum_done for lane in plan.lanes)
            where = f"checksum of {len(plan.lanes)} copy lanes, {done} done"
        else:
            where = f"checksum watermark {describe(cp.checksum_watermark)}"
        return f"{where} ({cp.rows_checksummed} rows)"
    if cp.phase == checkpoint.DONE and cp.kind == "direct" and cp.message:
        return cp.message  # what a CREATE or DROP did ("already absent"), for status and the log
    return cp.phase


class SpiritEngine(Engine):
    """Online schema change by shadow table, triggers, chunked copy, checksum and atomic rename.

    `options.extra` knobs (all optional): `chunk_rows` fixes the chunk size instead of sizing
    chunks to the volume's chunk time; `lock_wait_seconds` sets the row lock wait of the copy;
    `cutover_lock_wait_seconds` the metadata lock wait of each rename attempt;
    `trailing_checksum` (default true) checksums each chunk behind the copy (trailing.py);
    `max_replica_lag_seconds` and `max_threads_running` throttle the copy (throttle.py);
    `copy_lanes` (a number, or "auto", the default) copies key ranges in parallel where no
    AUTO-INC lock serialises them (lanes.py).
    """

    name = "spirit"
    platform = "mysql"
    options_model = SpiritOptions

    def __init__(self, target: Target) -> None:
        super().__init__(target)
        self._conn: Connection | None = None
        self._peer: Connection | None = None  # second connection for checksum reads
        self._lanes: LaneConnections = []  # per copy lane: its connection and its checksum peer
        self._throttler = throttle.Throttler(target)
        self._rates = runner.CopyRate()
        self._readers = binlogsource.Readers()  # open binlog streams (binlog change source)
        self.sleep: Callable[[float], None] = time.sleep

    # -- connection and ownership -------------------------------------------------------------

    def _reuse_or_connect(self, current: Connection | None) -> Connection:
        """`current` if it still answers, else a new connection (the dead one closed)."""
        if current is not None:
            try:
                current.ping(reconnect=False)
                return current
            except Exception:
                _close_quietly(current)
        return connect(self.target)

    def _connection(self) -> Connection:
        self._conn = self._reuse_or_connect(self._conn)
        return self._conn

    def _drop_connection(self) -> None:
        _close_quietly(self._conn)
        self._conn = None

    def _peer_connection(self) -> Connection:
        """A second connection, holding no lock, that only reads (checksum)."""
        self._peer = self._reuse_or_connect(self._peer)
        return self._peer

    def _drop_peer(self) -> None:
        _close_quietly(self._peer)
        self._peer = None

    def _lane_connections(self, count: int, trailing: bool, lock_wait: int | None) -> LaneConnections:
        """`count` pairs of connections for copy lanes (parallel.py), reused between steps.
        They hold no lock: the step's main connection owns the table while they work."""
        pairs: LaneConnections = []
        for index in range(count):
            conn, peer = self._lanes[index] if index < len(self._lanes) else (None, None)
            conn = self._reuse_or_connect(conn)
            peer = self._reuse_or_connect(peer) if trailing else peer
            if lock_wait is not None:
                with target_errors("session settings"), conn.cursor() as cur:
                    cur.execute(f"SET SESSION innodb_lock_wait_timeout = {int(lock_wait)}")
            pairs.append((conn, peer))
        self._lanes[: len(pairs)] = pairs
        return pairs

    def _drop_lanes(self) -> None:
        for conn, peer in self._lanes:
            _close_quietly(conn)
            _close_quietly(peer)
        self._lanes = []

    def close(self) -> None:
        self._drop_connection()
        self._drop_peer()
        self._drop_lanes()
        self._throttler.close()
        self._readers.close()

    @contextmanager
    def _owning(
        self, plans: Sequence[TablePlan], timeout: float = 0
    ) -> Iterator[Connection | None]:
        """Yield the connection holding every table's GET_LOCK, or None if another process
        holds one. The locks are released at the end; if that fails the connection is closed,
        which releases them on the server."""
        conn = self._connection()
        locks = [p.names.lock_name for p in plans]
        with target_errors("taking the table locks"), conn.cursor() as cur:
            owned = acquire_all(cur, locks, timeout)
        try:
            yield conn if owned else None
        except pymysql.MySQLError as error:
            self._drop_connection()
            raise RetryableEngineError(error_text(error)) from error
        finally:
            if owned and self._conn is conn:
                try:
                    with conn.cursor() as cur:
                        release_all(cur, locks)
                except Exception:
                    self._drop_connection()

    def _resume_state(
        self, request: OperationRequest, plans: Sequence[TablePlan], phase: str
    ) -> ResumeState:
        schemas = sorted({p.names.schema for p in plans})
        return {
            "format": RESUME_FORMAT,
            "engine": self.name,
            "context": request.context,
            "checkpoint": [f"{s}.{CHECKPOINT_TABLE}" for s in schemas],
            "phase": phase,
        }

    @staticmethod
    def _busy(plans: Sequence[TablePlan]) -> str:
        return (
            f"{', '.join(p.label for p in plans)}: migration lock held by another process; "
            "try again later"
        )

    # -- apply ----------------------------------------------------------------------------------

    def apply(self, request: ApplyRequest) -> ApplyResult:
        plans = plan_tables(request)
        group = group_of(plans)
        state = self._resume_state(request, plans, checkpoint.SETUP)
        saved = False

        def before_first_change() -> None:
            # Exceptions from save_state mean "not yours any more" or "state DB down": they
            # propagate untouched, before anything is created on the target.
            nonlocal saved
            if not saved:
                request.save_state(state)
                saved = True

        with self._owning(plans) as conn:
            if conn is None:
                return ApplyResult(accepted=False, message=self._busy(plans))
            schemas = {p.names.schema for p in plans}
            with target_errors("reading the checkpoints"), conn.cursor() as cur:
                first_apply = all(
                    checkpoint.load(cur, p.names.schema, p.names.table, request.context) is None
                    for p in plans
                )
                # The sentinel goes up before anything is set up: a worker that dies between
                # set-up and here must not leave a deferred operation free to cut over. Only
                # the first apply of a context holds it, so a restart after the cutover control
                # does not take the consent back.
                if request.options.defer_cutover and first_apply:
                    before_first_change()
                    sentinel.hold(cur, schemas, request.context)
            try:
                attached = [
                    self._attach_or_start(conn, p, request, group, before_first_change)
                    for p in plans
                ]
            except PermanentEngineError as error:
                # Tables of the operation already set up are cleaned too, and the sentinel goes.
                self._fail_cleanly(conn, request, plans, str(error))
                raise
        phase = min((a.checkpoint.phase for a in attached), key=_phase_rank)
        reasons = [
            f"{p.label}: {a.restart_reason}"
            for p, a in zip(plans, attached, strict=True)
            if a.restart_reason
        ]
        points = [f"{p.label}: {a.point}" for p, a in zip(plans, attached, strict=True) if a.point]
        reattached = all(a.reattached for a in attached)
        message = (
            f"reattached to {request.context}" if reattached else f"set up {len(plans)} table(s)"
        )
        chosen = [
            f"{p.label}: {a.checkpoint.message}"
            for p, a in zip(plans, attached, strict=True)
            if not a.reattached and a.checkpoint.kind == "copy" and a.checkpoint.message
        ]
        if chosen:
            # Which change source each table uses, and why (binlogsource.py).
            message = f"{message}; {'; '.join(chosen)}"
        return ApplyResult(
            accepted=True,
            resume_state=self._resume_state(request, plans, phase),
            message=message,
            reattached=reattached,
            resume_point="; ".join(points) if points else None,
            restart_reason="; ".join(reasons) if reasons else None,
        )

    def _attach_or_start(
        self,
        conn: Connection,
        plan: TablePlan,
        request: ApplyRequest,
        group: tuple[str, ...],
        before_first_change: Callable[[], None],
    ) -> _Attached:
        names = plan.names
        reason: str | None = None
        with target_errors(f"{plan.label}: reading the checkpoint"), conn.cursor() as cur:
            others = checkpoint.others_in_flight(cur, names.schema, names.table, request.context)
            if others:
                ctx, phase = others[0]
                raise PermanentEngineError(
                    f"{plan.label}: another operation ({ctx}, phase {phase}) is changing this "
                    "table; cancel it or let it finish first"
                )
            cp = checkpoint.load(cur, names.schema, names.table, request.context)
            if cp is not None:
                if cp.phase == checkpoint.DONE:
                    return _Attached(cp, True, "completed")
                if cp.phase == checkpoint.CANCELLED:
                    raise PermanentEngineError(f"{plan.label}: this operation was cancelled")
                if cp.phase == checkpoint.FAILED:
                    if cp.kind == "copy":
                        setup.discard_run(cur, plan)  # whatever a cut-short clean-up left
                    raise PermanentEngineError(cp.message or f"{plan.label}: this operation failed")
                if cp.phase == checkpoint.CUTOVER:
                    return _Attached(cp, True, "cutover in progress")
                if resume_rules.instant_alter_happened(cur, cp):
                    return _Attached(self._mark_instant_done(cur, plan, cp), True, "completed")
                verdict = resume_rules.restart_reason(cur, plan, cp)
                if isinstance(verdict, RunView):
                    if cp.phase == checkpoint.WAIT_CUTOVER:
                        # After a restart, readiness is proved again, not assumed: the
                        # triggers are verified above and the checksum runs once more.
                        cp = self._reprove(cur, cp)
                    total = estimated_rows(cur, names.schema, names.table)
                    return _Attached(cp, True, _point(cp, total))
                reason = verdict
            elif request.resume_state:
                reason = "no checkpoint on the target"
        cp = setup.start_fresh(
            conn,
            plan,
            request.context,
            group,
            allow_instant=not request.options.defer_cutover,
            before_first_change=before_first_change,
            vouched=request.resume_state is not None,
            change_source=_change_source(request),
        )
        return _Attached(cp, False, None, reason)

    @staticmethod
    def _reprove(cur: Any, cp: Checkpoint) -> Checkpoint:
        cp = cp.but(
            phase=checkpoint.CHECKSUM,
            checksum_watermark=None,
            rows_checksummed=0,
            checksum_pass=1,
            repaired_chunks=0,
            message="re-verifying the shadow table after a restart",
            copy_lanes=lanes.forget_checksum(cp.copy_lanes),
        )
        checkpoint.save(cur, cp)
        return cp

    @staticmethod
    def _mark_instant_done(cur: Any, plan: TablePlan, cp: Checkpoint) -> Checkpoint:
        cur.execute(f"DROP TABLE IF EXISTS {plan.names.q(plan.names.shadow)}")
        cp = cp.but(kind="direct", phase=checkpoint.DONE, message="instant ALTER")
        checkpoint.save(cur, cp)
        return cp

    # -- progress -------------------------------------------------------------------------------

    def progress(self, request: ProgressRequest) -> ProgressResult:
        started = time.monotonic()
        deadline = started + max(request.step_budget, 0.0)
        plans = plan_tables(request)
        group = group_of(plans)
        with self._owning(plans) as conn:
            if conn is None:
                # Nothing was read, so nothing new to persist: no resume state.
                return ProgressResult(state=EngineState.RUNNING, message=self._busy(plans))
            seconds = read_options(SpiritOptions, request.options.extra).lock_wait_seconds
            if seconds is not None:
                with target_errors("session settings"), conn.cursor() as cur:
                    cur.execute(f"SET SESSION innodb_lock_wait_timeout = {seconds}")
            try:
                return self._step(conn, request, plans, group, deadline, started)
            except _AmbiguousCutover:
                raise
            except PermanentEngineError as error:
                self._fail_cleanly(conn, request, plans, str(error))
                raise

    def _fail_cleanly(
        self, conn: Connection, request: OperationRequest, plans: Sequence[TablePlan], why: str
    ) -> None:
        """After a permanent failure: record it (phase `failed`, a tombstone a late `apply`
        learns from), then remove the triggers, the shadow tables and the sentinel, so the table
        is exactly as before. Never once a rename may have happened (phase `cutover`, `done`).
        A clean-up cut short is finished by the next `apply`, `progress` or `cancel`."""
        with target_errors("cleaning up after a failure"), conn.cursor() as cur:
            cps = {
                p.label: checkpoint.load(cur, p.names.schema, p.names.table, request.context)
                for p in plans
            }
            late = (checkpoint.CUTOVER, checkpoint.DONE)
            if any(cp is not None and cp.phase in late for cp in cps.values()):
                return
            for p in plans:
                cp = cps[p.label]
                if cp is not None and cp.phase not in checkpoint.FINISHED:
                    cur.execute(
                        f"UPDATE {checkpoint.table_sql(p.names.schema)} SET phase = %s, "
                        "message = %s, updated_at = NOW(6) WHERE table_name = %s AND context = %s",
                        (checkpoint.FAILED, why[:60000], p.names.table, request.context),
                    )
            for p in plans:
                cp = cps[p.label]
                if cp is not None and cp.kind == "copy":
                    setup.discard_run(cur, p)
            sentinel.release(cur, {p.names.schema for p in plans}, request.context)

    def _step(
        self,
        conn: Connection,
        request: ProgressRequest,
        plans: list[TablePlan],
        group: tuple[str, ...],
        deadline: float,
        started: float,
    ) -> ProgressResult:
        events: list[str] = []
        cps: dict[str, Checkpoint] = {}
        views: dict[str, RunView] = {}

        def save_first(_: None = None) -> None:
            request.save_state(self._resume_state(request, plans, checkpoint.SETUP))

        with conn.cursor() as cur:
            loaded = {
                p.label: checkpoint.load(cur, p.names.schema, p.names.table, request.context)
                for p in plans
            }
            if request.options.defer_cutover and all(cp is None for cp in loaded.values()):
                # Set up by a step rather than by apply: consent to cut over is still needed.
                save_first()
                sentinel.hold(cur, {p.names.schema for p in plans}, request.context)
            for plan in plans:
                cp = loaded[plan.label]
                if cp is None:
                    events.append(f"{plan.label}: no checkpoint on the target; setting up")
                    cp = setup.start_fresh(
                        conn,
                        plan,
                        request.context,
                        group,
                        allow_instant=not request.options.defer_cutover,
                        before_first_change=save_first,
                        vouched=request.resume_state is not None,
                        change_source=_change_source(request),
                    )
                cps[plan.label] = cp

        if any(cp.phase == checkpoint.CANCELLED for cp in cps.values()):
            return self._result(conn, request, plans, cps, events, "the operation was cancelled")
        failed = [cp for cp in cps.values() if cp.phase == checkpoint.FAILED]
        if failed:
            raise PermanentEngineError(failed[0].message or "the operation failed")
        if any(cp.phase == checkpoint.CUTOVER for cp in cps.values()):
            return self._recover_cutover(conn, request, plans, cps, events, deadline)

        for plan in plans:
            cp = cps[plan.label]
            if cp.phase in checkpoint.FINISHED:
                continue
            view = self._validated(conn, plan, request, group, cp, events, save_first)
            if view is None:
                with conn.cursor() as cur:
                    reloaded = checkpoint.load(
                        cur, plan.names.schema, plan.names.table, request.context
                    )
                if reloaded is None:
                    raise RetryableEngineError(
                        f"{plan.label}: the checkpoint vanished during the step"
                    )
                cps[plan.label] = reloaded
                continue
            cps[plan.label] = view.checkpoint
            views[plan.label] = view
        self._refuse_if_writes_refused(conn, plans)

        if any(cp.stopped for cp in cps.values()):
            return self._result(
                conn,
                request,
                plans,
                cps,
                events,
                _stopped_note(cps.values()),
                stopped=True,
            )

        volume = next(
            (cp.volume for cp in cps.values() if cp.volume is not None), request.options.volume
        )
        step_pace = pace(volume)
        options = read_options(SpiritOptions, request.options.extra)
        if options.chunk_rows is not None:
            step_pace = replace(step_pace, fixed_chunk=options.chunk_rows)
        limits = throttle.limits_for(self.target, options)
        gate: throttle.Gate | None = None
        if limits.active and any(cp.phase == checkpoint.COPY for cp in cps.values()):
            with target_errors("reading the database's health"):
                gate = throttle.Gate(self._throttler, conn.cursor(), limits)
                why = gate.closed()
            if why is not None:
                # Nothing is copied while the database is unwell; the next step looks again.
                return self._result(conn, request, plans, cps, events, f"throttled: {why}")
        for plan in plans:
            view = views.get(plan.label)
            if view is not None and binlogsource.uses_binlog(view.checkpoint):
                # The shadow first catches up with the source's changes (binlogsource.py).
                cp = binlogsource.catch_up(
                    conn, self.target, plan.names, view.source, view.columns,
                    view.checkpoint, deadline, readers=self._readers,
                )
                views[plan.label] = replace(view, checkpoint=cp)
                cps[plan.label] = cp
        reports: dict[str, runner.StepReport] = {}
        trailing = options.trailing_checksum is not False  # on unless turned off
        lock_wait = options.lock_wait_seconds
        supply = LaneSupply(options.copy_lanes, lambda n: self._lane_connections(n, trailing, lock_wait))
        worked = False  # every step does at least one chunk, whatever its budget
        for plan in plans:
            view = views.get(plan.label)
            if view is None:
                continue
            report = reports.setdefault(plan.label, runner.StepReport())
            cp = view.checkpoint
            if cp.phase == checkpoint.COPY and (not worked or time.monotonic() < deadline):
                cp = runner.copy(
                    conn,
                    plan,
                    view,
                    step_pace,
                    deadline,
                    report,
                    self.sleep,
                    throttled=None if gate is None else gate.closed,
                    peer=self._peer_connection() if trailing else None,
                    supply=supply,
                )
                view = replace(view, checkpoint=cp)
                worked = True
            if cp.phase == checkpoint.INDEX and (not worked or time.monotonic() < deadline):
                cp = runner.build_indexes(conn, plan, view, report, self.sleep)
                view = replace(view, checkpoint=cp)
                worked = True
            if cp.phase == checkpoint.CHECKSUM and (not worked or time.monotonic() < deadline):
                peer = self._peer_connection()
                judge = self._judge(conn, plan, view, peer, deadline)
                cp = runner.verify(conn, plan, view, step_pace, deadline, report, peer, judge)
                worked = True
            events.extend(report.events)
            cps[plan.label] = cp

        copying = [cp for cp in cps.values() if cp.kind == "copy"]
        if copying and all(cp.phase == checkpoint.WAIT_CUTOVER for cp in copying):
            with conn.cursor() as cur:
                held = request.options.defer_cutover and sentinel.holding(
                    cur, {p.names.schema for p in plans}, request.context
                )
            if not held:
                return self._cutover(conn, request, plans, cps, events, deadline)
        why = next((r.throttled for r in reports.values() if r.throttled), None)
        message = f"throttled: {why}" if why else ""
        return self._result(conn, request, plans, cps, events, message, reports=reports)

    def _validated(
        self,
        conn: Connection,
        plan: TablePlan,
        request: ProgressRequest,
        group: tuple[str, ...],
        cp: Checkpoint,
        events: list[str],
        save_first: Callable[[], None],
    ) -> RunView | None:
        """The run's view if it may continue; else start it fresh (a definitive reason was
        found) and return its new view, or None when the fresh start finished it directly."""
        with conn.cursor() as cur:
            if resume_rules.instant_alter_happened(cur, cp):
                self._mark_instant_done(cur, plan, cp)
                return None
            verdict = resume_rules.restart_reason(cur, plan, cp)
        if isinstance(verdict, RunView):
            return verdict
        events.append(f"{plan.label}: starting fresh: {verdict}")
        fresh = setup.start_fresh(
            conn,
            plan,
            request.context,
            group,
            allow_instant=not request.options.defer_cutover,
            before_first_change=save_first,
            change_source=_change_source(request),
        )
        if fresh.phase in checkpoint.FINISHED:
            return None
        with conn.cursor() as cur:
            again = resume_rules.restart_reason(cur, plan, fresh)
        if not isinstance(again, RunView):
            raise RetryableEngineError(f"{plan.label}: set-up did not hold: {again}")
        return again

    def _judge(
        self, conn: Connection, plan: TablePlan, view: RunView, peer: Connection, deadline: float
    ) -> runner.Judge | None:
        """With the binlog source, how the checksum judges a chunk that differs (runner.verify,
        binlogsource.judge)."""
        if not binlogsource.uses_binlog(view.checkpoint):
            return None

        def judge(
            cp: Checkpoint, low: Key | None, high: Key | None
        ) -> tuple[Checkpoint, ChunkComparison | None]:
            until = max(deadline, time.monotonic() + 2.0)
            return binlogsource.judge(
                conn, peer, self.target, plan.names, view.source, view.columns, cp, low, high,
                until, self._readers,
            )

        return judge

    @staticmethod
    def _refuse_if_writes_refused(conn: Connection, plans: Sequence[TablePlan]) -> None:
        """Fail when the triggers could not store an application's write in a shadow: the new
        definition refuses the data (a duplicate of a new unique key, a value that does not
        fit), exactly where the blocking ALTER would fail."""
        with target_errors("reading refused writes"), conn.cursor() as cur:
            for p in plans:
                refused = refused_writes(cur, p.names)
                if refused is not None:
                    raise PermanentEngineError(
                        f"{p.label}: a write made during the change cannot be stored in the new "
                        f"table: {refused}; a blocking ALTER would fail the same way"
                    )

    # -- cutover --------------------------------------------------------------------------------

    def _cutover(
        self,
        conn: Connection,
        request: ProgressRequest,
        plans: list[TablePlan],
        cps: dict[str, Checkpoint],
        events: list[str],
        deadline: float,
    ) -> ProgressResult:
        copy_plans = [p for p in plans if cps[p.label].kind == "copy"]
        with conn.cursor() as cur:
            cur.execute("BEGIN")
            for p in copy_plans:
                cps[p.label] = cps[p.label].but(phase=checkpoint.CUTOVER)
                checkpoint.save(cur, cps[p.label])
            cur.execute("COMMIT")
        return self._rename(conn, request, plans, cps, events, deadline)

    def _rename(
        self,
        conn: Connection,
        request: ProgressRequest,
        plans: list[TablePlan],
        cps: dict[str, Checkpoint],
        events: list[str],
        deadline: float,
    ) -> ProgressResult:
        copy_plans = [p for p in plans if cps[p.label].kind == "copy"]
        lock_wait = (
            read_options(SpiritOptions, request.options.extra).cutover_lock_wait_seconds
            or CUTOVER_LOCK_WAIT_SECONDS
        )
        self._refuse_if_writes_refused(conn, copy_plans)
        with target_errors("carrying the AUTO_INCREMENT counter over"), conn.cursor() as cur:
            for p in copy_plans:
                # The shadow was made LIKE the source, which resets the counter; the blocking
                # ALTER keeps it. Every later insert on the source reaches the shadow through
                # the triggers with its explicit value, which moves the shadow's counter on.
                counter = auto_increment(cur, p.names.schema, p.names.table)
                if counter is not None:
                    cur.execute(
                        f"ALTER TABLE {p.names.q(p.names.shadow)} AUTO_INCREMENT = {int(counter)}"
                    )
        by_binlog = [p for p in copy_plans if binlogsource.uses_binlog(cps[p.label])]
        for p in by_binlog:
            # Most of the changes are applied before the lock, so that little is left under it.
            cps[p.label] = binlogsource.catch_up_plan(
                conn, self.target, p, cps[p.label], max(deadline, time.monotonic() + 1.0),
                readers=self._readers,
            )

        def verify(cur: Any) -> tuple[str, bool] | None:
            """The last checks, made while the cutover lock holds every writer."""
            try:
                for p in by_binlog:
                    # Nothing can be written now: the shadow gets the last changes.
                    cps[p.label] = binlogsource.catch_up_plan(
                        conn, self.target, p, cps[p.label], time.monotonic() + 30,
                        readers=self._readers, complete=True,
                    )
                    binlogsource.carry_counter(cur, p.names)
            except PermanentEngineError as error:
                return str(error), True
            except RetryableEngineError as error:
                return f"the last catch-up from the binlog failed: {error}", False
            for p in copy_plans:
                refused = refused_writes(cur, p.names)
                if refused is not None:
                    return (
                        f"{p.label}: a write made during the change cannot be stored in the "
                        f"new table: {refused}; a blocking ALTER would fail the same way",
                        True,
                    )
                check = resume_rules.restart_reason(
                    cur, p, cps[p.label].but(phase=checkpoint.WAIT_CUTOVER)
                )
                if not isinstance(check, RunView):
                    return f"{p.label}: {check}", False
            return None

        # The cutover's lock holder (cutover.read_locked_rename), for both change sources.
        holder = connect(self.target)
        try:
            with conn.cursor() as cur:
                attempts = cutover.rename_with_retries(
                    cur,
                    [p.names for p in copy_plans],
                    lock_wait_seconds=lock_wait,
                    deadline=deadline,
                    sleep=self.sleep,
                    min_attempts=1,
                    peer=self._peer_connection(),
                    verify=verify,
                    holder=holder,
                )
        except cutover.CutoverRefused as refused:
            # Nothing was renamed: back to waiting, so that a failure cleans up and a restart
            # can start the table fresh.
            with target_errors("withholding the cutover"), conn.cursor() as cur:
                for p in copy_plans:
                    cps[p.label] = cps[p.label].but(phase=checkpoint.WAIT_CUTOVER)
                    checkpoint.save(cur, cps[p.label])
            if refused.permanent:
                raise PermanentEngineError(str(refused)) from None
            raise RetryableEngineError(f"cutover withheld: {refused}") from None
        except pymysql.MySQLError as error:
            if not is_transient(error):
                raise RetryableEngineError(
                    f"cutover: the rename failed: {error_text(error)}; the next step decides "
                    "from the tables present"
                ) from error
            with conn.cursor() as cur:
                for p in copy_plans:
                    cps[p.label] = cps[p.label].but(
                        cutover_attempts=cps[p.label].cutover_attempts + 1
                    )
                    checkpoint.save(cur, cps[p.label])
            tries = max(cp.cutover_attempts for cp in cps.values())
            if tries >= MAX_CUTOVER_ATTEMPTS:
                raise RetryableEngineError(
                    f"cutover: could not take the metadata locks in {tries} attempts "
                    f"({error_text(error)}); tables are intact and the rename is retried"
                ) from error
            events.append(f"cutover attempt {tries} waited too long for locks; retrying")
            return self._result(
                conn, request, plans, cps, events, "cutting over: waiting for locks"
            )
        finally:
            _close_quietly(holder)
        labels = ", ".join(p.label for p in copy_plans)
        events.append(f"cutover: renamed {labels} atomically (attempt {attempts})")
        return self._finish(conn, request, plans, cps, events)

    def _finish(
        self,
        conn: Connection,
        request: ProgressRequest,
        plans: list[TablePlan],
        cps: dict[str, Checkpoint],
        events: list[str],
    ) -> ProgressResult:
        """After the rename: drop the triggers (now on `_<t>_old`), then the old tables. First
        `_<t>_err` once more: the last checks found it empty, so a row there now is a write that
        reached the old table after them (only possible if the cutover's lock holder died just
        as the RENAME was sent) and is missing from the new table; then nothing is dropped."""
        with target_errors("reading refused writes"), conn.cursor() as cur:
            for p in plans:
                refused = refused_writes(cur, p.names) if cps[p.label].kind == "copy" else None
                if refused is not None:
                    raise _AmbiguousCutover(
                        f"{p.label}: the tables were swapped, but a write made during the cutover "
                        f"could not be stored in the new table: {refused}; it is only in "
                        f"{p.names.old}, which is kept with its triggers and {p.names.errors}; "
                        "nothing more is done"
                    )
        with conn.cursor() as cur:
            for p in plans:
                if cps[p.label].kind != "copy":
                    continue
                drop_triggers(cur, p.names)
                cur.execute(f"DROP TABLE IF EXISTS {p.names.q(p.names.old)}")
                cps[p.label] = cps[p.label].but(phase=checkpoint.DONE, message="cut over")
                checkpoint.save(cur, cps[p.label])
            sentinel.release(cur, {p.names.schema for p in plans}, request.context)
        return self._result(conn, request, plans, cps, events, "completed")

    def _recover_cutover(
        self,
        conn: Connection,
        request: ProgressRequest,
        plans: list[TablePlan],
        cps: dict[str, Checkpoint],
        events: list[str],
        deadline: float,
    ) -> ProgressResult:
        copy_plans = [p for p in plans if cps[p.label].kind == "copy"]
        details = []
        outcomes: list[cutover.Outcome] = []
        with conn.cursor() as cur:
            for p in copy_plans:
                cp = cps[p.label]
                presence = cutover.read_presence(cur, p.names)
                outcome = cutover.decide_one(presence, cp.source_fingerprint, cp.shadow_fingerprint)
                outcomes.append(outcome)
                details.append(f"{p.label}: {outcome} ({presence})")
        verdict = cutover.decide(outcomes)
        if verdict == "ambiguous":
            raise _AmbiguousCutover(
                "cutover outcome is ambiguous; the tables present do not show whether the rename "
                f"happened, so nothing more is done: {'; '.join(details)}"
            )
        if verdict == "renamed":
            events.append("cutover: the rename had happened before the interruption; finishing")
            return self._finish(conn, request, plans, cps, events)
        with conn.cursor() as cur:
            for p in copy_plans:
                check = resume_rules.restart_reason(
                    cur, p, cps[p.label].but(phase=checkpoint.WAIT_CUTOVER)
                )
                if not isinstance(check, RunView):
                    # Writes may have escaped the shadow: no cutover on this run. The next step
                    # starts the table fresh.
                    for q in copy_plans:
                        cps[q.label] = cps[q.label].but(phase=checkpoint.WAIT_CUTOVER)
                        checkpoint.save(cur, cps[q.label])
                    raise RetryableEngineError(f"cutover withheld: {p.label}: {check}")
        events.append("cutover: the rename had not happened; retrying it")
        return self._rename(conn, request, plans, cps, events, deadline)

    # -- reporting ------------------------------------------------------------------------------

    def _result(
        self,
        conn: Connection,
        request: OperationRequest,
        plans: list[TablePlan],
        cps: dict[str, Checkpoint],
        events: list[str],
        message: str,
        *,
        stopped: bool = False,
        reports: dict[str, runner.StepReport] | None = None,
    ) -> ProgressResult:
        tables = []
        with conn.cursor() as cur:
            for p in plans:
                cp = cps[p.label]
                state = (
                    EngineState.STOPPED
                    if stopped and cp.phase not in checkpoint.FINISHED
                    else _PHASE_STATE[cp.phase]
                )
                if state == EngineState.WAITING_FOR_CUTOVER and not request.options.defer_cutover:
                    state = EngineState.RUNNING
                if cp.phase == checkpoint.CUTOVER:
                    state = EngineState.CUTTING_OVER
                total = (
                    estimated_rows(cur, p.names.schema, p.names.table)
                    if cp.phase not in checkpoint.FINISHED
                    else cp.rows_copied
                )
                total = max(total, cp.rows_copied)
                if cp.phase in (checkpoint.SETUP, checkpoint.COPY):
                    percent = min(99.9, 100.0 * cp.rows_copied / total) if total else 0.0
                else:
                    percent = 100.0
                eta = None
                point = _point(cp, total)
                report = (reports or {}).get(p.label)
                rate = self._rates.observe(p.label, report) if cp.phase == checkpoint.COPY else None
                if rate:
                    eta = int(max(total - cp.rows_copied, 0) / rate)
                    point = f"{point}, {rate:,.0f} rows/s"
                if cp.kind == "copy" and cp.phase not in checkpoint.FINISHED:
                    point = f"{point}; {_source_note(cp)}"
                tables.append(
                    TableProgress(
                        namespace=p.names.schema,
                        table=p.names.table,
                        state=state,
                        rows_copied=cp.rows_copied,
                        rows_total=total,
                        percent=round(percent, 1),
                        eta_seconds=eta,
                        message=point,
                    )
                )
        overall = _overall([t.state for t in tables])
        phase = min((cp.phase for cp in cps.values()), key=_phase_rank)
        return ProgressResult(
            state=overall,
            tables=tables,
            resume_state=self._resume_state(request, plans, phase),
            message=message or "; ".join(f"{t.namespace}.{t.table}: {t.message}" for t in tables),
            events=events,
        )

    # -- controls -------------------------------------------------------------------------------

    def _checkpoints(
        self, conn: Connection, request: OperationRequest, plans: Sequence[TablePlan]
    ) -> dict[str, Checkpoint | None]:
        with target_errors("reading the checkpoints"), conn.cursor() as cur:
            return {
                p.label: checkpoint.load(cur, p.names.schema, p.names.table, request.context)
                for p in plans
            }

    def _set_stopped(self, request: ControlRequest, stopped: bool) -> ControlResult:
        plans = plan_tables(request)
        conn = self._connection()
        cps = self._checkpoints(conn, request, plans)
        if any(cp is None for cp in cps.values()):
            return ControlResult(accepted=False, message="nothing in flight for this context")
        late = [
            label
            for label, cp in cps.items()
            if cp and cp.phase in (checkpoint.CUTOVER, *checkpoint.FINISHED)
        ]
        if late:
            return ControlResult(
                accepted=False,
                message=f"too late: {', '.join(late)} already cutting over or finished",
            )
        with target_errors("writing the control"), conn.cursor() as cur:
            for p in plans:
                checkpoint.set_controls(
                    cur, p.names.schema, p.names.table, request.context, stopped=stopped
                )
        verb = _stopped_note([cp for cp in cps.values() if cp]) if stopped else "started"
        return ControlResult(
            accepted=True, message=verb, resume_state=self._resume_state(request, plans, "controls")
        )

    def stop(self, request: ControlRequest) -> ControlResult:
        return self._set_stopped(request, True)

    def start(self, request: ControlRequest) -> ControlResult:
        return self._set_stopped(request, False)

    def volume(self, request: ControlRequest) -> ControlResult:
        try:
            volume = parse_volume(request.value)
        except ValueError as error:
            return ControlResult(accepted=False, message=str(error))
        plans = plan_tables(request)
        conn = self._connection()
        with target_errors("writing the control"), conn.cursor() as cur:
            matched = sum(
                checkpoint.set_controls(
                    cur, p.names.schema, p.names.table, request.context, volume=volume
                )
                for p in plans
            )
        if not matched:
            return ControlResult(accepted=False, message="nothing in flight for this context")
        return ControlResult(accepted=True, message=f"volume set to {volume}")

    def cutover(self, request: ControlRequest) -> ControlResult:
        plans = plan_tables(request)
        conn = self._connection()
        cps = self._checkpoints(conn, request, plans)
        not_ready = []
        with target_errors("checking readiness"), conn.cursor() as cur:
            for p in plans:
                cp = cps[p.label]
                if cp is None:
                    not_ready.append(f"{p.label} has no checkpoint")
                elif cp.kind != "copy" or cp.phase in (checkpoint.CUTOVER, checkpoint.DONE):
                    continue
                elif cp.phase != checkpoint.WAIT_CUTOVER:
                    total = estimated_rows(cur, p.names.schema, p.names.table)
                    extra = f" ({cp.message})" if cp.message else ""
                    not_ready.append(f"{p.label} is at {_point(cp, total)}{extra}")
                else:
                    verdict = resume_rules.restart_reason(cur, p, cp)
                    if not isinstance(verdict, RunView):
                        not_ready.append(f"{p.label}: {verdict}")
            if not_ready:
                return ControlResult(
                    accepted=False, message="not ready for cutover: " + "; ".join(not_ready)
                )
            sentinel.release(cur, {p.names.schema for p in plans}, request.context)
        return ControlResult(
            accepted=True, message="cutover released; the next step renames the tables"
        )

    def cancel(self, request: ControlRequest) -> ControlResult:
        plans = plan_tables(request)
        with self._owning(plans, timeout=max(request.step_budget, 0.0)) as conn:
            if conn is None:
                raise RetryableEngineError(self._busy(plans))
            cps = self._checkpoints(conn, request, plans)
            late = [
                label
                for label, cp in cps.items()
                if cp and cp.phase in (checkpoint.CUTOVER, checkpoint.DONE)
            ]
            if late:
                return ControlResult(
                    accepted=False,
                    message=f"too late to cancel: {', '.join(late)} cutting over or done",
                )
            with conn.cursor() as cur:
                # Intent first: a crash half-way must not look like "trigger missing, restart".
                for p in plans:
                    cp = cps[p.label]
                    finished = (checkpoint.CANCELLED, checkpoint.FAILED)
                    if cp is not None and cp.phase not in finished:
                        checkpoint.save(
                            cur, cp.but(phase=checkpoint.CANCELLED, message="cancelled")
                        )
                for p in plans:
                    cp = cps[p.label]
                    if cp is not None and cp.kind == "copy":
                        setup.discard_run(cur, p)
                sentinel.release(cur, {p.names.schema for p in plans}, request.context)
        return ControlResult(accepted=True, message="cancelled: triggers and shadow tables dropped")


_RANK = [
    checkpoint.SETUP,
    checkpoint.COPY,
    checkpoint.INDEX,
    checkpoint.CHECKSUM,
    checkpoint.WAIT_CUTOVER,
    checkpoint.CUTOVER,
    checkpoint.DONE,
    checkpoint.CANCELLED,
    checkpoint.FAILED,
]


def _change_source(request: OperationRequest) -> str:
    """`engine_options.change_source` (auto, triggers, binlog; binlogsource.py)."""
    return str(request.options.extra.get("change_source") or "auto")


def _stopped_note(cps: Iterable[Checkpoint]) -> str:
    """What goes on while an operation is stopped, by its change source."""
    if any(binlogsource.uses_binlog(cp) for cp in cps):
        return (
            "stopped; the binary log keeps the changes, replayed at the next step (as long as "
            "the server keeps its files)"
        )
    return "stopped; triggers keep the shadow current"


def _source_note(cp: Checkpoint) -> str:
    """Which change source keeps this table's shadow current, for status."""
    if binlogsource.uses_binlog(cp):
        return f"changes via binlog (applied up to {cp.binlog_position})"
    return "changes via triggers"


def _phase_rank(phase: str) -> int:
    return _RANK.index(phase) if phase in _RANK else 0


def _overall(states: Sequence[EngineState]) -> EngineState:
    """The operation's state from its tables': the least advanced wins."""
    for state in (
        EngineState.FAILED,
        EngineState.CANCELLED,
        EngineState.STOPPED,
        EngineState.RUNNING,
        EngineState.CUTTING_OVER,
        EngineState.WAITING_FOR_CUTOVER,
    ):
        if state in states:
            return state
    return EngineState.COMPLETED


def _close_quietly(conn: Connection | None) -> None:
    if conn is not None:
        with suppress(Exception):
            conn.close()
