"""The map of phases (engines/spirit/phases/): a phase added to `checkpoint.Phase` must get a
reported state, and the per-table handlers must run in the order a run passes through the
phases, since a step falls through from one to the next while its budget lasts."""

from __future__ import annotations

from engines.base import EngineState
from engines.spirit.checkpoint import FINISHED, Phase
from engines.spirit.phases.reporting import PHASE_STATE, phase_rank
from engines.spirit.phases.table import WORK


def test_every_phase_has_a_reported_state() -> None:
    assert set(PHASE_STATE) == set(Phase)
    assert {PHASE_STATE[p] for p in FINISHED} == {
        EngineState.COMPLETED, EngineState.CANCELLED, EngineState.FAILED,
    }


def test_per_table_handlers_run_in_the_order_of_the_phases() -> None:
    assert list(WORK) == [Phase.COPY, Phase.INDEX, Phase.CHECKSUM]
    ranks = [phase_rank(p) for p in WORK]
    assert ranks == sorted(ranks)
    assert phase_rank(Phase.SETUP) < ranks[0] and ranks[-1] < phase_rank(Phase.WAIT_CUTOVER)
