"""The change-source interface: what keeps the shadow table current while rows are copied.

Today the only source is `triggers.TriggerChangeSource` (the changes are applied inside the
database, in the writer's own transaction, so nothing is lost while no worker is alive). A binlog
source would implement the same three operations; its `verify` would check its stored position
is still readable, and `remove` would stop following.
"""

from __future__ import annotations

from typing import Protocol

from pymysql.cursors import Cursor


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
