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
An orphan (or a provider retry) whose driver died mid-tick `orphan_limit` times in a row without
the apply moving on is parked in needs_attention instead of claimed again (docs/architecture.md
§10 S30): a step that kills its worker (a task time limit, out of memory) must not take every
worker in turn, forever.
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
from schemabot.storage.fenced_writes import set_apply_state, set_task_state
from schemabot.storage.leases import claim_in
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


def candidates_query(
    start_grace: float, retry_budget: int
) -> sa.Select[str, int, str, int, datetime | None, int, int, bool]:
    """The sweep's candidate query (exposed so a test can EXPLAIN it)."""
    now = db_now()
    has_request = sa.exists().where(
        ControlRequest.apply_id == Apply.apply_id,
        ControlRequest.status == "pending",
        ControlRequest.kind.in_(["start", "cancel", "adopt"]),
    )
    return (
        sa.select(
            Apply.apply_id,
            Apply.lease_token,
            Apply.state,
            Apply.attempt,
            Apply.lease_expires_at,
            Apply.poll_seq,
            Apply.orphan_claims,
            Apply.lease_owner.is_not(None),
        )
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


_ORPHAN_LIMIT_REASON = "its driver died mid-tick"


def parked_by_orphan_limit(apply: Apply) -> bool:
    """Did the sweep park this apply because its drivers kept dying (and not resume's own
    needs_attention, whose reason differs and which resets the count)?"""
    return (
        apply.state == State.NEEDS_ATTENTION.value
        and apply.orphan_claims > 0
        and (apply.attention or "").startswith(_ORPHAN_LIMIT_REASON)
    )


def orphan_limit_reason(apply_id: str, claims: int) -> str:
    """What `status` shows for an apply parked by the orphan limit: what happened, the likely
    causes, and the two ways out."""
    return (
        f"{_ORPHAN_LIMIT_REASON} {claims + 1} times in a row without the apply moving on (a "
        "worker killed by the task time limit, out of memory, or a crash inside the engine step); "
        "the recovery sweep stopped handing it to the next worker, which would likely die the "
        f"same way. Check the worker logs, then `schemabot adopt {apply_id}` to drive it again "
        f"or `schemabot cancel {apply_id}` to give up"
    )


def _park(session: Session, apply_id: str, token: int, state: str, claims: int) -> bool:
    """Park an apply whose driver died once more past the orphan limit: `needs_attention`, the
    reason in `attention`, the lease given up and the token moved on (so a driver that was
    only frozen, not dead, is fenced out). One compare-and-swap on the token, like a claim."""
    reason = orphan_limit_reason(apply_id, claims)
    result = session.execute(
        sa.update(Apply)
        .where(Apply.apply_id == apply_id, Apply.lease_token == token, Apply.state == state)
        .values(
            state=State.NEEDS_ATTENTION.value,
            attention=reason,
            lease_token=token + 1,
            lease_owner=None,
            lease_expires_at=None,
            updated_at=db_now(),
        )
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    audit.append(
        session,
        apply_id,
        "state",
        f"needs attention: {reason}",
        old_state=state,
        new_state=State.NEEDS_ATTENTION.value,
        detail={"reason": "orphan_limit", "orphan_claims": claims},
        token=token + 1,
    )
    return True


def claim_orphans(
    db: Database,
    *,
    owner: str,
    ttl: float,
    start_grace: float,
    retry_budget: int,
    orphan_limit: int | None = None,
) -> list[Claimed]:
    """Claim every candidate (one transaction); the caller enqueues a resume for each.

    An orphan whose driver had begun a tick under the expired lease (`poll_seq > 0`: the message
    was not merely lost) counts against `orphan_limit`; once the apply was claimed that many
    times in a row without an engine report moving it on, it is parked in `needs_attention`
    (reason `parked`) instead of claimed. None: no limit.
    """

    def work(session: Session) -> list[Claimed]:
        query = candidates_query(start_grace, retry_budget)
        if db.dialect in _SKIP_LOCKED_DIALECTS:
            query = query.with_for_update(skip_locked=True, of=Apply)
        claimed: list[Claimed] = []
        rows = session.execute(query).all()
        for apply_id, token, state, _attempt, lease_expires_at, poll_seq, orphan_claims, owner_set in rows:
            provider = state == State.WAITING_FOR_PROVIDER.value
            bump = state == State.FAILED_RETRYABLE.value or provider
            # A pending apply with an expired lease was started: its first owner died inside
            # its first tick (possibly after creating things on the target), so it is an orphan
            # to reattach, not an apply whose start message was lost.
            unstarted = state == State.PENDING.value and lease_expires_at is None
            # The driver died mid-tick: a tick began under this lease (`poll_seq > 0`: not a lost
            # message) and did not end on purpose (`driver._note_exit` clears the owner then).
            # Counted in every state (a parked apply's operator request can kill its driver too:
            # `driver._run_control` then cancels without the engine). Parked by the limit: an
            # active apply, and one waiting for the provider, whose retries no budget ends (a
            # retry that kills its worker would take one worker per backoff, forever); the other
            # parked states wait for a person already.
            died = lease_expires_at is not None and poll_seq > 0 and owner_set
            driven = state in _ACTIVE or provider
            if died and driven and orphan_limit is not None and orphan_claims >= orphan_limit:
                if _park(session, apply_id, token, state, orphan_claims):
                    claimed.append(Claimed(apply_id, token + 1, "parked"))
                continue
            new_token = claim_in(
                session,
                apply_id,
                expected_token=token,
                owner=owner,
                ttl=ttl,
                states=[State(state)],
                bump_attempt=bump,
                count_orphan=died,
            )
            if new_token is None:
                continue
            reason = "retry" if bump else ("unstarted" if unstarted else "orphaned")
            if not provider:  # a provider retry is no news: its reason is logged once
                audit.append(
                    session,
                    apply_id,
                    "claimed",
                    f"recovery sweep: {reason}",
                    detail={"reason": reason},
                    token=new_token,
                )
            claimed.append(Claimed(apply_id, new_token, reason))
        return claimed

    return db.run(work)


def expire_retryables(db: Database, *, retry_budget: int, max_age: float) -> list[str]:
    """`failed_retryable` applies past the attempt budget or the age limit become `failed`;
    their unfinished tasks are cancelled. The task and apply writes are the driver's own
    (`fenced_writes.set_task_state`, `fenced_writes.set_apply_state`), so timestamps and claims are kept
    exactly as when a driver ends an apply."""

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
            out_of_attempts = apply.attempt >= retry_budget
            why = (
                f"gave up after {apply.attempt} attempts"
                if out_of_attempts
                else f"gave up: older than {int(max_age)}s"
            )
            # On the audit entry, so an observer can tell "retries ran out" from an engine's
            # permanent verdict (schemabot/metrics.py counts them apart).
            gave_up = {"gave_up": "retry_budget" if out_of_attempts else "max_age", "attempt": apply.attempt}
            message = f"{why}; last error: {apply.error}"
            for task in session.scalars(sa.select(Task).where(Task.apply_id == apply.apply_id)):
                if not task.state.is_terminal:
                    set_task_state(session, task, State.CANCELLED, None, why)
            apply.error = message
            set_apply_state(session, apply, State.FAILED, message, token=None, detail=gave_up)
            expired.append(apply.apply_id)
        return expired

    return db.run(work)
