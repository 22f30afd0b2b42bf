"""What one `progress` step hands to the phase handlers: its connection, request, tables and
checkpoints, and the engine's per-process helpers (binlog readers, copy rates, the checksum's
peer connection). The engine builds one `Step` per call; the handlers keep nothing between calls.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pymysql.connections import Connection

from engines.base import PermanentEngineError, ProgressRequest
from engines.spirit import binlogsource, runner
from engines.spirit.checkpoint import Checkpoint
from engines.spirit.connection import target_errors
from engines.spirit.parallel import LaneSupply
from engines.spirit.plan import TablePlan
from engines.spirit.triggers import refused_writes
from engines.spirit.volume import Pace
from engines.targets import Target


@dataclass(frozen=True)
class Step:
    """One `progress` call. `cps` and `events` are the step's own (mutable) records: handlers
    update a table's checkpoint in `cps` and append what happened to `events`."""

    engine_name: str
    conn: Connection
    target: Target
    request: ProgressRequest
    plans: list[TablePlan]
    cps: dict[str, Checkpoint]
    events: list[str]
    deadline: float
    readers: binlogsource.Readers
    rates: runner.CopyRate
    sleep: Callable[[float], None]
    peer: Callable[[], Connection]
    """The second connection, holding no lock, that only reads (checksum, lock holder peer)."""
    builder: Callable[[], Connection]
    """A connection of its own for the deferred indexes' build alongside the copy (earlybuild.py)."""
    early_build_failed: set[str]
    """Runs (run_id) whose build alongside the copy failed in this process: not tried again."""


@dataclass(frozen=True)
class Work:
    """What the per-table phases (copy, index, checksum) need beyond the step: the pace of
    this step, the throttle's question, whether the trailing checksum runs, the copy lanes, and
when the deferred indexes are built."""

    step: Step
    pace: Pace
    throttled: Callable[[], str | None] | None
    trailing: bool
    supply: LaneSupply
    index_build_at: float | str | None = None
    """The `index_build_at` option: the share copied when the deferred indexes' build starts
    (`auto`: when the build and the rest of the copy would end together; None: after the copy)."""


def refuse_if_writes_refused(conn: Connection, plans: Sequence[TablePlan]) -> None:
    """Fail when the triggers could not store an application's write in a shadow: the new
    definition refuses the data (a duplicate of a new unique key, a value that does not
    fit), exactly where the blocking ALTER would fail."""
    with target_errors("reading refused writes"), conn.cursor() as cur:
        for p in plans:
            refused = refused_writes(cur, p.names)
            if refused is not None:
                raise PermanentEngineError(
                    f"{p.label}: a write made during the change cannot be stored in the new "
                    f"table: {refused}; a blocking ALTER would fail the same way"
                )
