"""Phase -> handler for the phases a step works through table by table, in the order a run passes
through them: a step that finishes one phase goes on to the next while its budget lasts."""

from __future__ import annotations

from collections.abc import Callable

from engines.spirit import runner
from engines.spirit.checkpoint import Checkpoint, Phase
from engines.spirit.phases import checksumming, copying, indexing
from engines.spirit.phases.step import Work
from engines.spirit.plan import TablePlan
from engines.spirit.resume_rules import RunView

Handler = Callable[[Work, TablePlan, RunView, runner.StepReport], Checkpoint]

WORK: dict[Phase, Handler] = {
    Phase.COPY: copying.run,
    Phase.INDEX: indexing.run,
    Phase.CHECKSUM: checksumming.run,
}
