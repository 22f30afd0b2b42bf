"""What a step reports: each table's state, percentage and position, the operation's state, and
the resume state schemabot stores. Phases map to states here (`PHASE_STATE`); the least advanced
table decides the operation's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from engines.base import EngineState, OperationRequest, ProgressResult, ResumeState, TableProgress
from engines.spirit import binlogsource, checkpoint, lanes, runner
from engines.spirit.checkpoint import Checkpoint, Phase
from engines.spirit.keyset import describe
from engines.spirit.naming import CHECKPOINT_TABLE
from engines.spirit.phases.step import Step
from engines.spirit.plan import TablePlan
from engines.spirit.tableinfo import estimated_rows

RESUME_FORMAT = 1

PHASE_STATE = {
    Phase.SETUP: EngineState.RUNNING,
    Phase.COPY: EngineState.RUNNING,
    Phase.INDEX: EngineState.RUNNING,
    Phase.CHECKSUM: EngineState.RUNNING,
    Phase.WAIT_CUTOVER: EngineState.WAITING_FOR_CUTOVER,
    Phase.CUTOVER: EngineState.CUTTING_OVER,
    Phase.DONE: EngineState.COMPLETED,
    Phase.CANCELLED: EngineState.CANCELLED,
    Phase.FAILED: EngineState.FAILED,
}


def point_of(cp: Checkpoint, total: int) -> str:
    """Where a run stands, for the audit log."""
    if cp.phase == Phase.COPY:
        pct = 100.0 * cp.rows_copied / total if total else 0.0
        plan = lanes.LanePlan.load(cp.copy_lanes)
        where = f"copy watermark {describe(cp.copy_watermark)}"
        if plan is not None:
            where = plan.describe() if plan.parallel else f"{where}, {plan.describe()}"
        return f"{where} ({cp.rows_copied} rows, {min(pct, 99.9):.1f}%)"
    if cp.phase == Phase.INDEX:
        return f"building the deferred secondary indexes ({cp.rows_copied} rows copied)"
    if cp.phase == Phase.CHECKSUM:
        plan = lanes.LanePlan.load(cp.copy_lanes)
        if plan is not None and plan.parallel and cp.checksum_pass == 1:
            done = sum(lane.sum_done for lane in plan.lanes)
            where = f"checksum of {len(plan.lanes)} copy lanes, {done} done"
        else:
            where = f"checksum watermark {describe(cp.checksum_watermark)}"
        return f"{where} ({cp.rows_checksummed} rows)"
    if cp.phase == Phase.DONE and cp.kind == "direct" and cp.message:
        return cp.message  # what a CREATE or DROP did ("already absent"), for status and the log
    return cp.phase


def resume_state(
    engine_name: str, request: OperationRequest, plans: Sequence[TablePlan], phase: str
) -> ResumeState:
    """What schemabot stores for the operation: where the checkpoints are, and the least
    advanced phase (or what a control did)."""
    schemas = sorted({p.names.schema for p in plans})
    return {
        "format": RESUME_FORMAT,
        "engine": engine_name,
        "context": request.context,
        "checkpoint": [f"{s}.{CHECKPOINT_TABLE}" for s in schemas],
        "phase": str(phase),  # a plain string in the stored state, as before the enum
    }


def result(
    step: Step,
    message: str,
    *,
    stopped: bool = False,
    reports: dict[str, runner.StepReport] | None = None,
) -> ProgressResult:
    """The step's answer: each table's state, rows and position (with rows/s and an ETA while
    copying, from `reports`), the least advanced state overall, and the resume state. `stopped`
    reports every unfinished table as stopped."""
    conn, request, plans, cps, events = step.conn, step.request, step.plans, step.cps, step.events
    tables = []
    with conn.cursor() as cur:
        for p in plans:
            cp = cps[p.label]
            state = (
                EngineState.STOPPED
                if stopped and cp.phase not in checkpoint.FINISHED
                else PHASE_STATE[cp.phase]
            )
            if state == EngineState.WAITING_FOR_CUTOVER and not request.options.defer_cutover:
                state = EngineState.RUNNING
            if cp.phase == Phase.CUTOVER:
                state = EngineState.CUTTING_OVER
            total = (
                estimated_rows(cur, p.names.schema, p.names.table)
                if cp.phase not in checkpoint.FINISHED
                else cp.rows_copied
            )
            total = max(total, cp.rows_copied)
            if cp.phase in (Phase.SETUP, Phase.COPY):
                percent = min(99.9, 100.0 * cp.rows_copied / total) if total else 0.0
            else:
                percent = 100.0
            eta = None
            point = point_of(cp, total)
            report = (reports or {}).get(p.label)
            rate = step.rates.observe(p.label, report) if cp.phase == Phase.COPY else None
            if rate:
                eta = int(max(total - cp.rows_copied, 0) / rate)
                point = f"{point}, {rate:,.0f} rows/s"
            if cp.kind == "copy" and cp.phase not in checkpoint.FINISHED:
                point = f"{point}; {source_note(cp)}"
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
    overall = overall_state([t.state for t in tables])
    phase = min((cp.phase for cp in cps.values()), key=phase_rank)
    return ProgressResult(
        state=overall,
        tables=tables,
        resume_state=resume_state(step.engine_name, request, plans, phase),
        message=message or "; ".join(f"{t.namespace}.{t.table}: {t.message}" for t in tables),
        events=events,
    )


_RANK = list(Phase)  # the members are declared in the order a run passes through them


def stopped_note(cps: Iterable[Checkpoint]) -> str:
    """What goes on while an operation is stopped, by its change source."""
    if any(binlogsource.uses_binlog(cp) for cp in cps):
        return (
            "stopped; the binary log keeps the changes, replayed at the next step (as long as "
            "the server keeps its files)"
        )
    return "stopped; triggers keep the shadow current"


def source_note(cp: Checkpoint) -> str:
    """Which change source keeps this table's shadow current, for status."""
    if binlogsource.uses_binlog(cp):
        return f"changes via binlog (applied up to {cp.binlog_position})"
    return "changes via triggers"


def phase_rank(phase: Phase) -> int:
    """How far a phase is along a run; the least advanced table's phase is the operation's."""
    return _RANK.index(phase) if phase in _RANK else 0


def overall_state(states: Sequence[EngineState]) -> EngineState:
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
