"""Phases `setup` and the start of every call: attach to a table's run through its checkpoint,
or start it fresh for a definitive reason (resume_rules.py), for `apply` and at the start of each
`progress` step. A run in `wait_cutover` is sent back to `checksum` (`reprove`): after a restart
readiness is proved again, not assumed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pymysql.connections import Connection

from engines.base import (
    ApplyRequest,
    OperationRequest,
    PermanentEngineError,
    ProgressRequest,
    RetryableEngineError,
)
from engines.spirit import checkpoint, lanes, resume_rules, setup
from engines.spirit.checkpoint import Checkpoint, Phase
from engines.spirit.connection import target_errors
from engines.spirit.phases import reporting
from engines.spirit.plan import TablePlan
from engines.spirit.resume_rules import RunView
from engines.spirit.tableinfo import estimated_rows


@dataclass(frozen=True)
class Attached:
    """What `apply` learned about one table: its checkpoint, whether it reattached, where it
    stands (for the audit log), and why it started fresh when it did."""

    checkpoint: Checkpoint
    reattached: bool
    point: str | None = None
    restart_reason: str | None = None


def change_source(request: OperationRequest) -> str:
    """`engine_options.change_source` (auto, triggers, binlog; binlogsource.py)."""
    return str(request.options.extra.get("change_source") or "auto")


def attach_or_start(
    conn: Connection,
    plan: TablePlan,
    request: ApplyRequest,
    group: tuple[str, ...],
    before_first_change: Callable[[], None],
) -> Attached:
    """`apply` for one table: learn a finished outcome, reattach to a run that may continue,
    or set it up from nothing (saying why, when a run was there)."""
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
            if cp.phase == Phase.DONE:
                return Attached(cp, True, "completed")
            if cp.phase == Phase.CANCELLED:
                raise PermanentEngineError(f"{plan.label}: this operation was cancelled")
            if cp.phase == Phase.FAILED:
                if cp.kind == "copy":
                    setup.discard_run(cur, plan)  # whatever a cut-short clean-up left
                raise PermanentEngineError(cp.message or f"{plan.label}: this operation failed")
            if cp.phase == Phase.CUTOVER:
                return Attached(cp, True, "cutover in progress")
            if resume_rules.instant_alter_happened(cur, cp):
                return Attached(mark_instant_done(cur, plan, cp), True, "completed")
            verdict = resume_rules.restart_reason(cur, plan, cp)
            if isinstance(verdict, RunView):
                if cp.phase == Phase.WAIT_CUTOVER:
                    # After a restart, readiness is proved again, not assumed: the
                    # triggers are verified above and the checksum runs once more.
                    cp = reprove(cur, cp)
                total = estimated_rows(cur, names.schema, names.table)
                return Attached(cp, True, reporting.point_of(cp, total))
            reason = verdict
        elif request.resume_state:
            reason = "no checkpoint on the target"
    vouched = request.resume_state is not None
    cp = start_fresh(conn, plan, request, group, before_first_change, vouched)
    return Attached(cp, False, None, reason)


def start_fresh(
    conn: Connection,
    plan: TablePlan,
    request: OperationRequest,
    group: tuple[str, ...],
    before_first_change: Callable[[], None],
    vouched: bool = False,
) -> Checkpoint:
    """A new run of `plan` as the request asks for it (setup.start_fresh): no instant ALTER
    when the cutover is deferred, the change source of its options. `vouched`: the caller holds
    the operation's resume state (setup.py)."""
    return setup.start_fresh(
        conn,
        plan,
        request.context,
        group,
        allow_instant=not request.options.defer_cutover,
        before_first_change=before_first_change,
        vouched=vouched,
        change_source=change_source(request),
    )


def reprove(cur: Any, cp: Checkpoint) -> Checkpoint:
    """Send a `wait_cutover` run back to a first checksum pass (after a restart)."""
    cp = cp.but(
        phase=Phase.CHECKSUM,
        checksum_watermark=None,
        rows_checksummed=0,
        checksum_pass=1,
        repaired_chunks=0,
        message="re-verifying the shadow table after a restart",
        copy_lanes=lanes.forget_checksum(cp.copy_lanes),
    )
    checkpoint.save(cur, cp)
    return cp


def mark_instant_done(cur: Any, plan: TablePlan, cp: Checkpoint) -> Checkpoint:
    """The statement was applied as an instant ALTER: drop the unused shadow, record `done`."""
    cur.execute(f"DROP TABLE IF EXISTS {plan.names.q(plan.names.shadow)}")
    cp = cp.but(kind="direct", phase=Phase.DONE, message="instant ALTER")
    checkpoint.save(cur, cp)
    return cp


def validated(
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
            mark_instant_done(cur, plan, cp)
            return None
        verdict = resume_rules.restart_reason(cur, plan, cp)
    if isinstance(verdict, RunView):
        return verdict
    events.append(f"{plan.label}: starting fresh: {verdict}")
    fresh = start_fresh(conn, plan, request, group, save_first)
    if fresh.phase in checkpoint.FINISHED:
        return None
    with conn.cursor() as cur:
        again = resume_rules.restart_reason(cur, plan, fresh)
    if not isinstance(again, RunView):
        raise RetryableEngineError(f"{plan.label}: set-up did not hold: {again}")
    return again
