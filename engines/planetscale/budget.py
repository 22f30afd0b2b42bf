"""The step budget: every call an engine step makes is bounded by what is left of it.

`progress` must return within `step_budget`; each HTTP or MySQL call gets a timeout no longer
than the time left, and retries stop before the budget runs out.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

# Leave this much of the budget for the bookkeeping after the last call.
MARGIN = 0.1
MAX_CALL_TIMEOUT = 10.0


class OutOfBudget(Exception):
    """Raised instead of starting a call that could not finish inside the budget."""


@dataclass
class Budget:
    seconds: float
    started: float = field(default_factory=time.monotonic)

    def remaining(self) -> float:
        return self.seconds - (time.monotonic() - self.started)

    def call_timeout(self) -> float:
        """Timeout for the next call; OutOfBudget when too little is left to try."""
        left = self.remaining() - MARGIN
        if left < 0.05:
            raise OutOfBudget(f"step budget of {self.seconds:.1f}s used up")
        return min(left, MAX_CALL_TIMEOUT)
