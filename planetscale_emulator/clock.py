"""The emulated clock: wall time plus an offset that admins can push forward.

Revert windows are measured on this clock, so a test can close a 30-minute window at once by
advancing the clock instead of sleeping. The offset is stored with the metadata so a restart
does not turn time back.
"""

from __future__ import annotations

from planetscale_emulator.store import Store, wall_time


class Clock:
    def __init__(self, store: Store) -> None:
        self.store = store

    def offset(self) -> float:
        return float(self.store.get_setting("clock_offset", "0") or 0)

    def now(self) -> float:
        return wall_time() + self.offset()

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self.store.set_setting("clock_offset", repr(self.offset() + seconds))
        return self.now()
