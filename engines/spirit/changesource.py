"""The change-source interface: what keeps the shadow table current while rows are copied.

Two sources: `triggers.TriggerChangeSource` (the changes are applied inside the database, in the
writer's own transaction, so nothing is lost while no worker is alive) and
`binlogsource.BinlogChangeSource` (no triggers; the engine replays the source's row events from a
position saved in the checkpoint; its `verify` checks the position can still be read). The
checkpoint's `change_source` says which one a run uses.
"""

from __future__ import annotations

from typing import Protocol

from pymysql.cursors import Cursor

from engines.spirit.checkpoint import Checkpoint
from engines.spirit.columnmap import ColumnMap
from engines.spirit.naming import TableNames


class ChangeSource(Protocol):
    """Keeps the shadow table equal to the source for every change made after `install`."""

    def install(self, cur: Cursor) -> None:
        """Start carrying every source change to the shadow. Called once per fresh start."""

    def verify(self, cur: Cursor) -> str | None:
        """None when the source has carried every change since `install`; else why not.

        A non-None answer is a definitive reason to start fresh: changes may have been lost.
        """

    def remove(self, cur: Cursor) -> None:
        """Stop carrying changes. Idempotent: removing what is gone is not an error."""


def change_source_of(cp: Checkpoint, names: TableNames, columns: ColumnMap) -> ChangeSource:
    """The change source a run was set up with (older checkpoints: triggers)."""
    from engines.spirit.binlogpos import Position
    from engines.spirit.binlogsource import BINLOG, BinlogChangeSource
    from engines.spirit.triggers import TriggerChangeSource

    if cp.change_source == BINLOG:
        return BinlogChangeSource(names, Position.load(cp.binlog_position))
    return TriggerChangeSource(names, columns)
