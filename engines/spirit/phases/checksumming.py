"""Phase `checksum`: compare source and shadow chunk by chunk on a second connection, repair
what differs and prove it, then move to `wait_cutover` (runner.verify). With the binlog change
source a differing chunk is first judged against the binary log (binlogsource.judge)."""

from __future__ import annotations

import dataclasses
import time

from pymysql.connections import Connection

from engines.spirit import binlogsource, held_snapshots, runner
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
    held = None
    if judge is not None and step.deadline - time.monotonic() >= held_snapshots.MIN_STEP_SECONDS:
        view, held = hold_snapshots(step, plan, view)
        if held is None:
            report.events.append(
                f"{plan.label}: checksum step without held snapshots (the table's lock or the "
                "last replay did not come in time); differing chunks are judged against the binlog"
            )
    try:
        return runner.verify(
            step.conn, plan, view, work.pace, step.deadline, report, peer, judge, held
        )
    finally:
        if held is not None:
            held.close()


def hold_snapshots(
    step: Step, plan: TablePlan, view: RunView
) -> tuple[RunView, held_snapshots.HeldSnapshots | None]:
    """With the binlog source: replay most of the backlog, then open the step's snapshots with
    writers held for the last of it (held_snapshots.hold). The view carries the checkpoint with
    the position replayed to."""
    names, source, cmap = plan.names, view.source, view.columns
    latest = binlogsource.catch_up(
        step.conn, step.target, names, source, cmap, view.checkpoint, step.deadline,
        readers=step.readers,
    )  # fmt: skip

    def replay_all(deadline: float) -> None:
        nonlocal latest
        latest = binlogsource.catch_up(
            step.conn, step.target, names, source, cmap, latest, deadline,
            readers=step.readers, complete=True,
        )  # fmt: skip

    held = held_snapshots.hold(step.target, names, replay_all)
    return dataclasses.replace(view, checkpoint=latest), held


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
