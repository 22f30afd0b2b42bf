"""Phase `copy`: copy chunks of the source into the shadow until the budget ends (runner.copy:
one watermark, or copy lanes in parallel; each chunk committed with its checkpoint)."""

from __future__ import annotations

from engines.spirit import runner
from engines.spirit.checkpoint import Checkpoint
from engines.spirit.phases.step import Work
from engines.spirit.plan import TablePlan
from engines.spirit.resume_rules import RunView


def run(work: Work, plan: TablePlan, view: RunView, report: runner.StepReport) -> Checkpoint:
    step = work.step
    return runner.copy(
        step.conn,
        plan,
        view,
        work.pace,
        step.deadline,
        report,
        step.sleep,
        throttled=work.throttled,
        peer=step.peer() if work.trailing else None,
        supply=work.supply,
    )
