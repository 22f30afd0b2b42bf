"""Which engine `--engine auto` picks for one statement (engines: docs/architecture.md §6)."""

from __future__ import annotations

INSTANT = "INSTANT"
INPLACE = "INPLACE"
COPY = "COPY"


def choose_engine(platform: str, action: str, algorithm: str | None) -> tuple[str, str]:
    """(engine, why): planetscale for Vitess; direct when the server does it without copying the
    table (CREATE, DROP, INSTANT, INPLACE without lock); spirit when it must copy."""
    if platform == "vitess":
        return "planetscale", "Vitess target: branch and deploy request"
    if action in ("create", "drop"):
        return "direct", f"{action.upper()} TABLE runs natively"
    if algorithm == INSTANT:
        return "direct", "the server changes it instantly (ALGORITHM=INSTANT)"
    if algorithm == INPLACE:
        return "direct", "in place without blocking writes (ALGORITHM=INPLACE, LOCK=NONE)"
    return "spirit", "the server would copy the table and block writes; spirit copies it online"
