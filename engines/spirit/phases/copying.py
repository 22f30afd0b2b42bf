"""Phase `copy`: copy chunks of the source into the shadow until the budget ends (runner.copy:
one watermark, or copy lanes in parallel; each chunk committed with its checkpoint). With the
`index_build_at` option, once enough of the table is copied, the deferred secondary indexes are
built alongside the rest of the copy (earlybuild.py): that step copies until the build ends."""

from __future__ import annotations

import time
from dataclasses import replace

from engines.spirit import earlybuild, runner
from engines.spirit.checkpoint import Checkpoint, Phase
from engines.spirit.connection import target_errors
from engines.spirit.deferred import Deferred
from engines.spirit.phases.step import Work
from engines.spirit.plan import TablePlan
from engines.spirit.resume_rules import RunView

SLICE_SECONDS = 1.0
"""The copy's budget per round while the build may become due or runs: whether it is due,
the throttle and the end of the build are looked at between rounds."""


def run(work: Work, plan: TablePlan, view: RunView, report: runner.StepReport) -> Checkpoint:
    step = work.step
    if work.index_build_at is None or Deferred.load(view.checkpoint.deferred_keys) is None or not view.lean:
        return _copy(work, plan, view, report, step.deadline)
    # The build may become due during this step: copy in slices and ask between them.
    cp, first = view.checkpoint, True
    while (builder := _start_build(work, plan, replace(view, checkpoint=cp), report)) is None:
        if not first and (cp.phase != Phase.COPY or report.throttled or time.monotonic() >= step.deadline):
            return cp
        until = min(step.deadline, time.monotonic() + SLICE_SECONDS)
        cp = _copy(work, plan, replace(view, checkpoint=cp), report, until)
        first = False
    try:
        while cp.phase == Phase.COPY and builder.running and not report.throttled:
            cp = _copy(work, plan, replace(view, checkpoint=cp), report, time.monotonic() + SLICE_SECONDS)
    except BaseException:
        builder.wait(step.conn, quiet=True)  # the table stays ours until our ALTER has ended
        raise
    outcome = builder.wait(step.conn)
    if outcome.error is not None:
        step.early_build_failed.add(cp.run_id)  # not again in this process: the `index` phase builds
    report.events.append(builder.event())
    return cp


def _copy(
    work: Work, plan: TablePlan, view: RunView, report: runner.StepReport, deadline: float
) -> Checkpoint:
    step = work.step
    return runner.copy(
        step.conn,
        plan,
        view,
        work.pace,
        deadline,
        report,
        step.sleep,
        throttled=work.throttled,
        peer=step.peer() if work.trailing else None,
        supply=work.supply,
    )


def _start_build(
    work: Work, plan: TablePlan, view: RunView, report: runner.StepReport
) -> earlybuild.Builder | None:
    """A build of the deferred keys started now, or None: none deferred, built already, not
    yet time, or one failed in this process for this run."""
    cp = view.checkpoint
    deferred = Deferred.load(cp.deferred_keys)
    if deferred is None or not view.lean or cp.run_id in work.step.early_build_failed:
        return None
    if cp.phase != Phase.COPY:
        return None  # the copy ended first: phase `index` builds
    with target_errors("reading the table's size"), work.step.conn.cursor() as cur:
        why = earlybuild.due(
            cur, plan.names, deferred, view.shadow.primary_key, cp.rows_copied, work.index_build_at
        )
    if why is None:
        return None
    report.events.append(
        f"{plan.label}: building {len(deferred.keys)} deferred index(es) alongside the copy, {why}"
    )
    return earlybuild.Builder(
        work.step.builder(), plan.names, deferred, cp.shadow_fingerprint, work.step.sleep
    )
