"""Ownership of an apply: compare-and-swap claims, fenced ticks, heartbeats (docs/architecture.md §4).

Whoever holds the current `lease_token` owns the apply. Tokens only grow. Every write a driver
makes runs in a transaction that begins with `fence()`: an UPDATE of the apply row guarded by
`lease_token = :mine` that locks the row until commit. Zero rows means the lease moved on (or the
apply became terminal) and the whole transaction is abandoned: a stale driver cannot write.

Each message that drives an apply carries (token, seq). `begin_tick` moves `poll_seq` from seq to
seq+1 in one CAS, so a redelivered or duplicated message, whose seq is already spent, does
nothing (docs/architecture.md §10 S19).
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.orm import Session

from schemabot.errors import LeaseLost
from schemabot.states import TERMINAL, State
from schemabot.storage.claims import not_queued
from schemabot.storage.clock import db_now
from schemabot.storage.database import Database
from schemabot.storage.models import Apply

_TERMINAL = [s.value for s in TERMINAL]


def fence(session: Session, apply_id: str, token: int) -> None:
    """First statement of every driver transaction; raises LeaseLost when we no longer own it."""
    result = session.execute(
        sa.update(Apply)
        .where(
            Apply.apply_id == apply_id,
            Apply.lease_token == token,
            Apply.state.not_in(_TERMINAL),
        )
        .values(updated_at=db_now())
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise LeaseLost(f"{apply_id}: lease token {token} is no longer current")


def claim_in(
    session: Session,
    apply_id: str,
    *,
    expected_token: int,
    owner: str,
    ttl: float,
    states: Iterable[State],
    bump_attempt: bool = False,
    count_orphan: bool = False,
) -> int | None:
    """The claim's compare-and-swap, in the caller's transaction (the sweep claims many applies
    in one). Returns the new token, or None when someone else got there first.

    `count_orphan`: the claim takes over from a driver that died mid-tick, which the sweep counts
    (`apply.orphan_claims`) so that an apply whose driver dies on every tick is parked instead of
    re-driven forever (docs/architecture.md §4, §10 S30).
    """
    values: dict[str, object] = {
        "lease_token": Apply.lease_token + 1,
        "lease_owner": owner,
        "poll_seq": 0,
        "heartbeat_at": db_now(),
        "lease_expires_at": db_now(ttl),
        "updated_at": db_now(),
    }
    if bump_attempt:
        values["attempt"] = Apply.attempt + 1
    if count_orphan:
        values["orphan_claims"] = Apply.orphan_claims + 1
    result = session.execute(
        sa.update(Apply)
        .where(
            Apply.apply_id == apply_id,
            Apply.lease_token == expected_token,
            Apply.state.in_([s.value for s in states]),
            sa.or_(Apply.lease_expires_at.is_(None), Apply.lease_expires_at < db_now()),
            not_queued(Apply.apply_id),  # waiting for another apply's tables
        )
        .values(**values)
    )
    return expected_token + 1 if result.rowcount == 1 else None  # type: ignore[attr-defined]


def claim(
    db: Database,
    apply_id: str,
    *,
    expected_token: int,
    owner: str,
    ttl: float,
    states: Iterable[State],
    bump_attempt: bool = False,
) -> int | None:
    """Take the apply if its token is still `expected_token` and nobody holds a live lease.

    Returns the new token, or None when someone else got there first. The new token is
    `expected_token + 1`, which is what makes two concurrent claims on one row impossible to
    both win: the second CAS no longer sees the token it expected.
    """
    allowed = list(states)
    return db.run(
        lambda session: claim_in(
            session,
            apply_id,
            expected_token=expected_token,
            owner=owner,
            ttl=ttl,
            states=allowed,
            bump_attempt=bump_attempt,
        )
    )


def begin_tick(db: Database, apply_id: str, token: int, seq: int, owner: str, ttl: float) -> bool:
    """Spend message sequence `seq` and extend the lease; False if the message is stale."""

    def work(session: Session) -> bool:
        result = session.execute(
            sa.update(Apply)
            .where(
                Apply.apply_id == apply_id,
                Apply.lease_token == token,
                Apply.poll_seq == seq,
                Apply.state.not_in(_TERMINAL),
            )
            .values(
                poll_seq=seq + 1,
                lease_owner=owner,
                heartbeat_at=db_now(),
                lease_expires_at=db_now(ttl),
            )
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    return db.run(work)


def heartbeat(db: Database, apply_id: str, token: int, ttl: float) -> bool:
    """Extend the lease; False when it is no longer ours."""

    def work(session: Session) -> bool:
        result = session.execute(
            sa.update(Apply)
            .where(Apply.apply_id == apply_id, Apply.lease_token == token)
            .values(heartbeat_at=db_now(), lease_expires_at=db_now(ttl))
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    return db.run(work)


def note_exit(db: Database, apply_id: str, token: int) -> None:
    """The owner ends its tick on purpose without writing progress (a `DriverExit`): it is alive,
    so the sweep must not count the expired lease as a driver that died (`orphan_claims`). The
    owner's name is cleared; the lease itself runs out as before, so recovery keeps its pace."""
    db.run(
        lambda session: session.execute(
            sa.update(Apply)
            .where(Apply.apply_id == apply_id, Apply.lease_token == token, Apply.state.not_in(_TERMINAL))
            .values(lease_owner=None)
        )
    )


def release_in(session: Session, apply_id: str, token: int) -> None:
    """Give the lease up inside a fenced transaction (terminal or parked apply).

    The token is kept: it only grows, so a later claim still fences out this driver.
    """
    session.execute(
        sa.update(Apply)
        .where(Apply.apply_id == apply_id, Apply.lease_token == token)
        .values(lease_owner=None, lease_expires_at=None)
    )


def release(db: Database, apply_id: str, token: int) -> None:
    db.run(lambda session: release_in(session, apply_id, token))
