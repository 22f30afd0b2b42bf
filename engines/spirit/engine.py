"""SpiritEngine: the contract (engines.base) on top of the spirit package's modules.

Every call is short and self-contained: it opens (or reuses) one connection, takes the GET_LOCK
of every table of the operation with timeout 0, re-reads the checkpoints, does its bounded piece
of work, and releases the locks. Nothing lives in the process between calls that the next worker
would need: the checkpoint rows on the target are the truth, keyed by the request's context.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace

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
)
from engines.options import SpiritOptions, read_options
from engines.spirit import binlogsource, checkpoint, resume_rules, runner, sentinel, setup, throttle
from engines.spirit.advisorylock import acquire_all, release_all
from engines.spirit.checkpoint import Checkpoint, Phase
from engines.spirit.connection import close_quietly, connect, error_text, target_errors
from engines.spirit.parallel import LaneConnections, LaneSupply
from engines.spirit.phases import attaching, cutting_over, failing, reporting
from engines.spirit.phases.step import Step, Work, refuse_if_writes_refused
from engines.spirit.phases.table import WORK
from engines.spirit.plan import TablePlan, group_of, plan_tables
from engines.spirit.resume_rules import RunView
from engines.spirit.tableinfo import estimated_rows
from engines.spirit.volume import pace, parse_volume
from engines.targets import Target


class SpiritEngine(Engine):
    """Online schema change by shadow table, triggers, chunked copy, checksum and atomic rename.

    `options.extra` knobs (all optional): `chunk_rows` fixes the chunk size instead of sizing
    chunks to the volume's chunk time; `lock_wait_seconds` sets the row lock wait of the copy;
    `cutover_lock_wait_seconds` the metadata lock wait of each rename attempt;
    `trailing_checksum` (default true) checksums each chunk behind the copy (trailing.py);
    `max_replica_lag_seconds` and `max_threads_running` throttle the copy (throttle.py);
    `copy_lanes` (a number, or "auto", the default) copies key ranges in parallel where no
    AUTO-INC lock serialises them (lanes.py); `index_build_at` (a share of the table copied,
    0 to 1, or "auto"; by default after the copy) when the deferred secondary indexes are built
    alongside the copy (earlybuild.py).
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
        self._early_build_failed: set[str] = set()  # runs whose build alongside the copy failed
        self.sleep: Callable[[float], None] = time.sleep

    # -- connection and ownership -------------------------------------------------------------

    def _reuse_or_connect(self, current: Connection | None) -> Connection:
        """`current` if it still answers, else a new connection (the dead one closed)."""
        if current is not None:
            try:
                current.ping(reconnect=False)
                return current
            except Exception:
                close_quietly(current)
        return connect(self.target)

    def _connection(self) -> Connection:
        self._conn = self._reuse_or_connect(self._conn)
        return self._conn

    def _drop_connection(self) -> None:
        close_quietly(self._conn)
        self._conn = None

    def _peer_connection(self) -> Connection:
        """A second connection, holding no lock, that only reads (checksum)."""
        self._peer = self._reuse_or_connect(self._peer)
        return self._peer

    def _drop_peer(self) -> None:
        close_quietly(self._peer)
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
            close_quietly(conn)
            close_quietly(peer)
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
        return reporting.resume_state(self.name, request, plans, phase)

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
        state = self._resume_state(request, plans, Phase.SETUP)
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
                    attaching.attach_or_start(conn, p, request, group, before_first_change)
                    for p in plans
                ]
            except PermanentEngineError as error:
                # Tables of the operation already set up are cleaned too, and the sentinel goes.
                failing.fail_cleanly(conn, request, plans, str(error))
                raise
        phase = min((a.checkpoint.phase for a in attached), key=reporting.phase_rank)
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
            except cutting_over.AmbiguousCutover:
                raise
            except PermanentEngineError as error:
                failing.fail_cleanly(conn, request, plans, str(error))
                raise

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
        step = Step(
            self.name, conn, self.target, request, plans, cps, events, deadline, self._readers,
            self._rates, self.sleep, self._peer_connection, lambda: connect(self.target),
            self._early_build_failed,
        )

        def save_first(_: None = None) -> None:
            request.save_state(self._resume_state(request, plans, Phase.SETUP))

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
                    vouched = request.resume_state is not None
                    cp = attaching.start_fresh(conn, plan, request, group, save_first, vouched)
                cps[plan.label] = cp

        if any(cp.phase == Phase.CANCELLED for cp in cps.values()):
            return reporting.result(step, "the operation was cancelled")
        failed = [cp for cp in cps.values() if cp.phase == Phase.FAILED]
        if failed:
            raise PermanentEngineError(failed[0].message or "the operation failed")
        if any(cp.phase == Phase.CUTOVER for cp in cps.values()):
            return cutting_over.recover(step)

        for plan in plans:
            cp = cps[plan.label]
            if cp.phase in checkpoint.FINISHED:
                continue
            view = attaching.validated(conn, plan, request, group, cp, events, save_first)
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
        refuse_if_writes_refused(conn, plans)

        if any(cp.stopped for cp in cps.values()):
            return reporting.result(step, reporting.stopped_note(cps.values()), stopped=True)

        volume = next(
            (cp.volume for cp in cps.values() if cp.volume is not None), request.options.volume
        )
        step_pace = pace(volume)
        options = read_options(SpiritOptions, request.options.extra)
        if options.chunk_rows is not None:
            step_pace = replace(step_pace, fixed_chunk=options.chunk_rows)
        limits = throttle.limits_for(self.target, options)
        gate: throttle.Gate | None = None
        if limits.active and any(cp.phase == Phase.COPY for cp in cps.values()):
            with target_errors("reading the database's health"):
                gate = throttle.Gate(self._throttler, conn.cursor(), limits)
                why = gate.closed()
            if why is not None:
                # Nothing is copied while the database is unwell; the next step looks again.
                return reporting.result(step, f"throttled: {why}")
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
        work = Work(
            step, step_pace, None if gate is None else gate.closed, trailing, supply, options.index_build_at
        )
        worked = False  # every step does at least one chunk, whatever its budget
        for plan in plans:
            view = views.get(plan.label)
            if view is None:
                continue
            report = reports.setdefault(plan.label, runner.StepReport())
            cp = view.checkpoint
            for phase, handler in WORK.items():  # copy, index, checksum, in order
                if cp.phase == phase and (not worked or time.monotonic() < deadline):
                    cp = handler(work, plan, view, report)
                    view = replace(view, checkpoint=cp)
                    worked = True
            events.extend(report.events)
            cps[plan.label] = cp

        copying = [cp for cp in cps.values() if cp.kind == "copy"]
        if copying and all(cp.phase == Phase.WAIT_CUTOVER for cp in copying):
            with conn.cursor() as cur:
                held = request.options.defer_cutover and sentinel.holding(
                    cur, {p.names.schema for p in plans}, request.context
                )
            if not held:
                return cutting_over.begin(step)
        why = next((r.throttled for r in reports.values() if r.throttled), None)
        message = f"throttled: {why}" if why else ""
        return reporting.result(step, message, reports=reports)

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
            if cp and cp.phase in (Phase.CUTOVER, *checkpoint.FINISHED)
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
        verb = reporting.stopped_note([cp for cp in cps.values() if cp]) if stopped else "started"
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
                elif cp.kind != "copy" or cp.phase in (Phase.CUTOVER, Phase.DONE):
                    continue
                elif cp.phase != Phase.WAIT_CUTOVER:
                    total = estimated_rows(cur, p.names.schema, p.names.table)
                    extra = f" ({cp.message})" if cp.message else ""
                    not_ready.append(f"{p.label} is at {reporting.point_of(cp, total)}{extra}")
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
                if cp and cp.phase in (Phase.CUTOVER, Phase.DONE)
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
                    finished = (Phase.CANCELLED, Phase.FAILED)
                    if cp is not None and cp.phase not in finished:
                        checkpoint.save(
                            cur, cp.but(phase=Phase.CANCELLED, message="cancelled")
                        )
                for p in plans:
                    cp = cps[p.label]
                    if cp is not None and cp.kind == "copy":
                        setup.discard_run(cur, p)
                sentinel.release(cur, {p.names.schema for p in plans}, request.context)
        return ControlResult(accepted=True, message="cancelled: triggers and shadow tables dropped")
