"""Errors a caller of schemabot can catch by name.

The orchestration distinguishes two families on purpose: errors that mean "this process must
stop touching the apply now, without writing anything" (`DriverExit` and its children), and
errors that are a verdict on the apply itself (engine errors, classified in `schemabot.outcomes`).
A `DriverExit` is never turned into a terminal state: docs/architecture.md §8 invariant 2.
"""

from __future__ import annotations


class SchemabotError(Exception):
    """Base of schemabot's own errors."""


class ValidationError(SchemabotError, ValueError):
    """Bad input from a producer: nothing was stored. The message quotes what was wrong."""


class NotFound(SchemabotError, LookupError):
    """No apply (or task) with that id."""


class ControlRejected(SchemabotError):
    """A control request that the apply's current state does not allow; nothing was stored."""


class ProviderError(SchemabotError):
    """A plan could not ask the provider (PlanetScale) what it would deploy: it did not answer in
    time (`transient`), or it refused the request (a bad token, an unknown database). Neither bad
    input nor a finding: the CLI exits 1, HTTP answers 503 (transient) or 502."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


class DriverExit(SchemabotError):
    """The current driver must return at once without side effects; a later sweep re-drives."""


class LeaseLost(DriverExit):
    """Another driver holds the apply (its fencing token moved on), or it became terminal."""


class StorageUnavailable(DriverExit):
    """The state database failed transiently and a short retry did not help."""


class ResumeStateUnavailable(DriverExit):
    """The engine resume state cannot be read, trusted or saved, so resuming is unsafe now.

    Raised for every non-terminal exit of docs/architecture.md §7: reading the persisted state failed,
    Vitess tasks not linked to one operation, the returned state could not be saved, a Vitess engine
    accepted without returning state, a Vitess state missing past branch preparation (fail closed).
    """


class TableConflict(ValidationError):
    """A table of the apply is being changed by another unfinished apply on the same target
    (docs/architecture.md §8 invariant 9); nothing was stored. HTTP 409, CLI exit 2."""


class NeedsAttention(ResumeStateUnavailable):
    """Resuming is unsafe and will stay unsafe without a person (the Vitess resume state is lost
    past branch preparation, or its tasks are not linked to one operation). Nothing is called
    on the target; the apply is shown as `needs_attention` with this reason."""


class InfrastructureUnavailable(DriverExit):
    """The broker or the state database failed inside an engine step. That is no verdict on the
    engine's work: nothing is written and the retry budget is not touched; the lease expires and
    the sweep re-drives (docs/architecture.md §7)."""
