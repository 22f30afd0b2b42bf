"""What a person watching an apply is told: the phase by name, rows/s and one ETA.

Used by `schemabot watch` and the web page. Pure functions and one small estimator: no I/O.

The ETA is the remaining rows over a rate smoothed across the last `WINDOW` seconds of the copy
(the rows copied between the oldest and newest sample in the window, over the time between
them), so one slow or fast poll does not swing it, and it is shown only once the samples span at
least `MIN_SPAN` seconds of progress: a first guess from a single poll at low volume was off by
an order of magnitude (issue 15 §4).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

WINDOW = 30.0
MIN_SPAN = 1.0

# Task states by name, as a person says them.
_PHASE_OF_STATE = {
    "pending": "pending",
    "running": "copy",
    "waiting_for_cutover": "waiting for cutover",
    "cutting_over": "cutting over",
    "recovering": "re-verifying after a restart",
    "revert_window": "revert window",
    "stopped": "stopped",
    "failed_retryable": "retrying",
    "preparing_branch": "preparing branch",
    "applying_branch_changes": "applying branch changes",
    "creating_deploy_request": "creating deploy request",
    "validating_deploy_request": "validating deploy request",
    "waiting_for_deploy": "waiting for deploy",
}
# Words an engine's progress message starts with, for engines that report no phase field.
_PHASE_WORDS = {"checksum": "checksum", "copy": "copy", "setup": "setup", "cutover": "cutting over"}


def phase_of(task: Any) -> str:
    """The task's phase by name: the engine's own phase field when it reports one, else from the
    task state (and, while running, the first word of the engine's message)."""
    explicit = getattr(task, "phase", None)
    if isinstance(explicit, str) and explicit:
        return explicit.replace("_", " ")
    state = str(getattr(task, "state", "") or "")
    if state == "running":
        message = str(getattr(task, "message", "") or "").strip().lower()
        first = message.split(" ", 1)[0] if message else ""
        if first in _PHASE_WORDS:
            return _PHASE_WORDS[first]
        if not getattr(task, "rows_total", None):
            return "running"
    return _PHASE_OF_STATE.get(state, state.replace("_", " "))


@dataclass
class RateEstimate:
    """Samples of (seconds, rows copied) of one task; the smoothed rate and the ETA."""

    window: float = WINDOW
    samples: deque[tuple[float, int]] = field(default_factory=deque)

    def add(self, at: float, rows_copied: int | None) -> None:
        if rows_copied is None:
            return
        if self.samples and rows_copied < self.samples[-1][1]:
            self.samples.clear()  # the copy restarted: forget the old rate
        self.samples.append((at, rows_copied))
        while len(self.samples) > 2 and at - self.samples[1][0] >= self.window:
            self.samples.popleft()

    def rate(self) -> float | None:
        """Rows per second over the window, or None until it can be told."""
        if len(self.samples) < 2:
            return None
        (t0, r0), (t1, r1) = self.samples[0], self.samples[-1]
        span = t1 - t0
        if span < MIN_SPAN or r1 <= r0:
            return None
        return (r1 - r0) / span

    def eta(self, rows_total: int | None) -> float | None:
        rate = self.rate()
        if rate is None or not rows_total or not self.samples:
            return None
        return max(0.0, (rows_total - self.samples[-1][1]) / rate)


def duration(seconds: float | None) -> str:
    """12s, 3m05s, 2h04m."""
    if seconds is None:
        return "—"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def rows_per_second(rate: float | None) -> str:
    if rate is None:
        return "— rows/s"
    if rate >= 100:
        return f"{rate:,.0f} rows/s"
    return f"{rate:,.1f} rows/s"


def next_command(apply_id: str, state: str) -> str | None:
    """What to run next when an apply waits for a person."""
    if state == "waiting_for_cutover":
        return f"schemabot cutover {apply_id}"
    if state == "revert_window":
        return f"schemabot skip-revert {apply_id}   (or: schemabot revert {apply_id})"
    return None
