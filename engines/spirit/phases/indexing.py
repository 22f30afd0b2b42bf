"""Phase `index`: build the secondary indexes deferred during the copy (deferred.py), online,
then move to `checksum`."""

from __future__ import annotations

from engines.spirit import runner
from engines.spirit.checkpoint import Checkpoint
from engines.spirit.phases.step import Work
from engines.spirit.plan import TablePlan
from engines.spirit.resume_rules import RunView


def run(work: Work, plan: TablePlan, view: RunView, report: runner.StepReport) -> Checkpoint:
    step = work.step
    return runner.build_indexes(step.conn, plan, view, report, step.sleep)
