"""The recovery sweep's queries: find applies nobody drives, and claim each exactly once.

Candidates, all read through the (state, lease_expires_at) index so the sweep's cost follows the
number of candidates, not the size of the history:
  orphaned   active state, lease expired (the driver died, its message was lost, a tick gave up)
  unstarted  pending with no lease, older than the start grace (start_apply was never delivered)
  retryable  failed_retryable under the attempt budget whose backoff has passed
  provider   waiting_for_provider whose backoff has passed, whatever the attempt: its work may
             be in flight on the provider, so no budget ends it (docs/architecture.md §8
             invariant 8); a pending cancel is carried out at that retry
  requested  stopped, failed_retryable or needs_attention with a pending start/cancel request
On MySQL/MariaDB candidates are locked `FOR UPDATE SKIP LOCKED`, so concurrent sweeps (several
beats) split the work instead of queueing on each other; on SQLite the write transaction is
already exclusive. Either way each claim is a compare-and-swap on the token, so an apply is
claimed once even if two sweeps read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from schemabot.states import ACTIVE, PARKED, State
from schemabot.storage import audit
from schemabot.storage.claims import not_queued
from schemabot.storage.clock import db_now
from schemabot.storage.database import Database
from schemabot.storage.fenced_writes import set_apply_state
from schemabot.storage.models import Apply, ControlRequest, Task

SWEEP_BATCH = 100
# Row locks that concurrent sweeps skip rather than wait for, so two sweeps never both take the
# same apply (SQLite has one writer at a time and needs none).
_SKIP_LOCKED_DIALECTS = ("mysql", "mariadb", "postgresql")
_ACTIVE = sorted(s.value for s in ACTIVE)
# A waiting_for_provider apply is retried on its (capped) backoff only: claiming it on every
# sweep because a cancel is pending would hammer a provider that does not answer.
_REQUESTABLE = sorted(s.value for s in PARKED - {State.WAITING_FOR_PROVIDER})


@dataclass(frozen=True)
class Claimed:
    apply_id: str
    token: int
    reason: str


def candidates_query(start_grace: float, retry_budget: int) -> sa.Select[str, int, str, int, datetime | None]:
    """The sweep's candidate query (exposed so a test can EXPLAIN it)."""
    now = db_now()
    has_request = sa.exists().where(
        ControlRequest.apply_id == Apply.apply_id,
        ControlRequest.status == "pending",
        ControlRequest.kind.in_(["start", "cancel", "adopt"]),
    )
    return (
        sa.select(Apply.apply_id, Apply.lease_token, Apply.state, Apply.attempt, Apply.lease_expires_at)
        .where(
            sa.or_(
                sa.and_(Apply.state.in_(_ACTIVE), Apply.lease_expires_at < now),
                sa.and_(
                    Apply.state == State.PENDING.value,
                    Apply.lease_expires_at.is_(None),
                    Apply.created_at < db_now(-start_grace),
                    not_queued(Apply.apply_id),  # a queued apply starts when its tables are free
                ),
                sa.and_(
                    Apply.state == State.FAILED_RETRYABLE.value,
                    Apply.lease_expires_at.is_(None),
                    Apply.attempt < retry_budget,
                    Apply.retry_after <= now,
                ),
                sa.and_(
                    Apply.state == State.WAITING_FOR_PROVIDER.value,
                    sa.or_(Apply.lease_expires_at.is_(None), Apply.lease_expires_at < now),
                    Apply.retry_after <= now,
                ),
                sa.and_(
                    Apply.state.in_(_REQUESTABLE),
                    sa.or_(Apply.lease_expires_at.is_(None), Apply.lease_expires_at < now),
                    has_request,
                ),
            )
        )
        .order_by(Apply.id)
        .limit(SWEEP_BATCH)
    )


def claim_orphans(
    db: Database, *, owner: str, ttl: float, start_grace: float, retry_budget: int
) -> list[Claimed]:
    """Claim every candidate (one transaction); the caller enqueues a resume for each."""

    def work(session: Session) -> list[Claimed]:
        query = candidates_query(start_grace, retry_budget)
        if db.dialect in _SKIP_LOCKED_DIALECTS:
            query = query.with_for_update(skip_locked=True, of=Apply)
        claimed: list[Claimed] = []
        for apply_id, token, state, _attempt, lease_expires_at in session.execute(query).all():
            provider = state == State.WAITING_FOR_PROVIDER.value
            bump = state == State.FAILED_RETRYABLE.value or provider
            values: dict[str, object] = {
                "lease_token": token + 1,
                "lease_owner": owner,
                "poll_seq": 0,
                "heartbeat_at": db_now(),
                "lease_expires_at": db_now(ttl),
            }
            if bump:
                values["attempt"] = Apply.attempt + 1
            result = session.execute(
                sa.update(Apply)
                .where(Apply.apply_id == apply_id, Apply.lease_token == token, Apply.state == state)
                .values(**values)
            )
            if result.rowcount == 1:  # type: ignore[attr-defined]
                # A pending apply with an expired lease was started: its first owner died
                # inside its first tick (possibly after creating things on the target), so it
                # is an orphan to reattach, not an apply whose start message was lost.
                unstarted = state == State.PENDING.value and lease_expires_at is None
                reason = "retry" if bump else ("unstarted" if unstarted else "orphaned")
                if not provider:  # a provider retry is no news: its reason is logged once
                    audit.append(
                        session,
                        apply_id,
                        "claimed",
                        f"recovery sweep: {reason}",
                        detail={"reason": reason},
                        token=token + 1,
                    )
                claimed.append(Claimed(apply_id, token + 1, reason))
        return claimed

    return db.run(work)


def expire_retryables(db: Database, *, retry_budget: int, max_age: float) -> list[str]:
    """`failed_retryable` applies past the attempt budget or the age limit become `failed`;
    their unfinished tasks are cancelled."""

    def work(session: Session) -> list[str]:
        query = (
            sa.select(Apply)
            .where(
                Apply.state == State.FAILED_RETRYABLE.value,
                Apply.lease_expires_at.is_(None),
                sa.or_(Apply.attempt >= retry_budget, Apply.created_at < db_now(-max_age)),
            )
            .limit(SWEEP_BATCH)
        )
        if db.dialect in _SKIP_LOCKED_DIALECTS:
            query = query.with_for_update(skip_locked=True, of=Apply)
        expired = []
        for apply in list(session.scalars(query)):
            why = (
                f"gave up after {apply.attempt} attempts"
                if apply.attempt >= retry_budget
                else f"gave up: older than {int(max_age)}s"
            )
            message = f"{why}; last error: {apply.error}"
            for task in session.scalars(sa.select(Task).where(Task.apply_id == apply.apply_id)):
                if not task.state.is_terminal:
                    audit.append(
                        session,
                        apply.apply_id,
                        "task_state",
                        why,
                        task_id=task.task_id,
                        old_state=task.state,
                        new_state=State.CANCELLED.value,
                    )
                    task.state = State.CANCELLED
            apply.error = message
            set_apply_state(session, apply, State.FAILED, message, token=None)
            expired.append(apply.apply_id)
        return expired

    return db.run(work)
