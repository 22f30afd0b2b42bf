"""Retrying inside the step budget, for calls that are safe to repeat.

Reads and idempotent writes (PATCH of a whole VSchema, a throttle ratio) are retried with short
exponential back-off while the budget lasts; a failure that persists becomes a
`RetryableEngineError` for the orchestrator. Creating calls (branch, deploy request, deploy,
cutover) are *never* retried here: after a lost answer the engine first looks for the effect
(see `setup.py`), which is the only safe retry of a non-idempotent call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, wait_exponential

from engines.base import PermanentEngineError, RetryableEngineError
from engines.planetscale.api import ApiFailure, ApiUnreachable, NotFound
from engines.planetscale.budget import Budget, OutOfBudget
from engines.targets import redact

T = TypeVar("T")


def is_transient_api_error(exc: BaseException) -> bool:
    """Is this PlanetScale API failure worth retrying (unreachable, or a failure it marks
    transient)? MySQL errors of a branch connection are engines/mysql/errors.py's question."""
    return isinstance(exc, ApiUnreachable) or (isinstance(exc, ApiFailure) and exc.transient)


def retrying(budget: Budget, call: Callable[[], T], what: str) -> T:
    def out_of_time(_: RetryCallState) -> bool:
        return budget.remaining() < 0.3

    backoff = wait_exponential(multiplier=0.05, max=0.5)

    def wait(state: RetryCallState) -> float:
        # Never sleep into the margin the next call needs: a wait that overshoots leaves the
        # next attempt no time, and its OutOfBudget would hide the failure that made us retry.
        return max(0.0, min(backoff(state), budget.remaining() - 0.3))

    failures: list[ApiFailure] = []
    try:
        for attempt in Retrying(
            retry=retry_if_exception(is_transient_api_error),
            stop=out_of_time,
            wait=wait,
            reraise=True,
        ):
            with attempt:
                try:
                    return call()
                except ApiFailure as exc:
                    failures.append(exc)
                    raise
    except OutOfBudget:
        if failures and is_transient_api_error(failures[-1]):
            # The call had failed before the budget ran out: that failure is the news.
            raise RetryableEngineError(redact(f"{what} kept failing: {failures[-1]}")) from None
        raise
    except NotFound:
        raise  # the caller decides what a typed 404 means there
    except ApiFailure as exc:
        if is_transient_api_error(exc):
            raise RetryableEngineError(redact(f"{what} kept failing: {exc}")) from None
        raise PermanentEngineError(redact(f"{what} was refused: {exc}")) from None
    raise AssertionError("unreachable")  # pragma: no cover - Retrying either returns or raises
