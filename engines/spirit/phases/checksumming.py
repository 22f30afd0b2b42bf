"""Phase `checksum`: compare source and shadow chunk by chunk on a second connection, repair
what differs and prove it, then move to `wait_cutover` (runner.verify). With the binlog change
source a differing chunk is first judged against the binary log (binlogsource.judge)."""

from __future__ import annotations

import time

from pymysql.connections import Connection

from engines.spirit import binlogsource, runner
from engines.spirit.checkpoint import Checkpoint
from engines.spirit.checksum import ChunkComparison
from engines.spirit.keyset import Key
from engines.spirit.phases.step import Step, Work
from engines.spirit.plan import TablePlan
from engines.spirit.resume_rules import RunView


def run(work: Work, plan: TablePlan, view: RunView, report: runner.StepReport) -> Checkpoint:
    step = work.step
    peer = step.peer()
    judge = judge_for(step, plan, view, peer)
    return runner.verify(step.conn, plan, view, work.pace, step.deadline, report, peer, judge)


def judge_for(
    step: Step, plan: TablePlan, view: RunView, peer: Connection
) -> runner.Judge | None:
    """With the binlog source, how the checksum judges a chunk that differs (runner.verify,
    binlogsource.judge)."""
    if not binlogsource.uses_binlog(view.checkpoint):
        return None
    conn, deadline = step.conn, step.deadline

    def judge(
        cp: Checkpoint, low: Key | None, high: Key | None
    ) -> tuple[Checkpoint, ChunkComparison | None]:
        until = max(deadline, time.monotonic() + 2.0)
        return binlogsource.judge(
            conn, peer, step.target, plan.names, view.source, view.columns, cp, low, high,
            until, step.readers,
        )

    return judge
