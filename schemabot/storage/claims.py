"""Table claims: one unfinished apply per table of a target, whatever the engines
(docs/architecture.md §8 invariant 9).

- `claim_in` runs inside the submit transaction. Every table an apply changes gets a
  `table_claim` row, unique per (target, namespace, table), so of two submits racing on two hosts
  only one can commit. An overlapping submit is refused (`TableConflict`, naming the apply that
  holds the table), unless the user asked to queue it: then it gets `table_claim_queue` rows
  instead and waits in `pending` (a queued apply is never claimed by a driver: `not_queued`).
- `release_claims` runs inside the transaction that makes an apply terminal (there are exactly
  two: `storage.fenced_writes._rederive` and `storage.sweep.expire_retryables`, plus the cancel of a
  queued apply here). It deletes the apply's claims and hands the freed tables to the applies
  queued for them, first come first served; the sweep then starts them (their start grace is long
  past).

Locking: the submit reads the holders of its tables `FOR UPDATE` and the releasing transaction
deletes them, so a submit and a release serialise on those rows (and on the `--after` apply's row,
which the releasing driver has already fenced); on SQLite every write transaction is exclusive.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from schemabot.errors import TableConflict, ValidationError
from schemabot.states import TERMINAL, State
from schemabot.storage import audit
from schemabot.storage.clock import db_now
from schemabot.storage.control_requests import close_pending
from schemabot.storage.database import Database
from schemabot.storage.models import Apply, ControlRequest, TableClaim, TableClaimQueue, Task

_TERMINAL = [s.value for s in TERMINAL]


@dataclass(frozen=True, order=True)
class ClaimKey:
    target: str
    namespace: str
    table: str

    @property
    def label(self) -> str:
        return f"{self.namespace}.{self.table}"


def claim_keys(target: str, tables: Iterable[tuple[str, str]]) -> list[ClaimKey]:
    """The claims for (namespace, table) pairs; VSchema tasks (no table) claim nothing.

    Names are compared lower-cased: refusing two applies on `T` and `t` is the safe side
    whatever the server's `lower_case_table_names`."""
    keys = {ClaimKey(target.lower(), ns.lower(), table.lower()) for ns, table in tables if table}
    return sorted(keys)


def _key_filter(
    model: type[TableClaim] | type[TableClaimQueue], keys: Sequence[ClaimKey]
) -> sa.ColumnElement[bool]:
    return sa.or_(
        *(
            sa.and_(model.target == k.target, model.namespace == k.namespace, model.table_name == k.table)
            for k in keys
        )
    )


def not_queued(
    apply_id_column: sa.ColumnElement[str] | sa.orm.InstrumentedAttribute[str],
) -> sa.ColumnElement[bool]:
    """SQL predicate: the apply is not waiting in a table queue (drivers may claim it)."""
    return ~sa.exists().where(TableClaimQueue.apply_id == apply_id_column)


def _state_of(session: Session, apply_id: str) -> State | None:
    return session.scalar(sa.select(Apply.state).where(Apply.apply_id == apply_id))


def claim_in(
    session: Session,
    apply_id: str,
    keys: Sequence[ClaimKey],
    *,
    queue: bool,
    after: str | None,
    for_update: bool,
) -> list[str]:
    """Claim `keys` for `apply_id`, or queue it; return the applies it waits for (empty: it
    holds its tables and may start). Raises TableConflict when it may not queue."""
    waiting_for: list[str] = []
    if after is not None:
        query = sa.select(Apply.state).where(Apply.apply_id == after)
        if for_update:
            query = query.with_for_update()
        state = session.scalar(query)
        if state is None:
            raise ValidationError(f"--after {after}: no such apply")
        if state not in _TERMINAL:
            waiting_for.append(after)
    if keys:
        query_h = sa.select(TableClaim).where(_key_filter(TableClaim, keys)).order_by(TableClaim.id)
        if for_update:
            query_h = query_h.with_for_update()
        holders = list(session.scalars(query_h))
        waiters = list(
            session.scalars(
                sa.select(TableClaimQueue)
                .where(_key_filter(TableClaimQueue, keys))
                .order_by(TableClaimQueue.id)
            )
        )
        rows: list[TableClaim | TableClaimQueue] = [*holders, *waiters]
        for row in rows:
            if row.apply_id not in waiting_for:
                waiting_for.append(row.apply_id)
        if waiting_for and not (queue or after):
            first = rows[0]
            state = _state_of(session, first.apply_id)
            raise TableConflict(
                f"table {first.namespace}.{first.table_name} is being changed by {first.apply_id} "
                f"({state or 'unknown'}); wait for it to end, or queue this apply behind it "
                f"(CLI: --after {first.apply_id}; API: queue=true)"
            )
    if not waiting_for:
        _insert_claims(session, keys, apply_id)
        return []
    # Queued: one row per table (a VSchema-only apply queued --after another gets one empty key).
    for k in keys or [ClaimKey("", "", "")]:
        session.execute(
            sa.insert(TableClaimQueue).values(
                target=k.target,
                namespace=k.namespace,
                table_name=k.table,
                apply_id=apply_id,
                after_apply_id=after,
                created_at=db_now(),
            )
        )
    return waiting_for


def _insert_claims(session: Session, keys: Sequence[ClaimKey], apply_id: str) -> None:
    """The apply holds these tables (the unique key refuses a second holder)."""
    for k in keys:
        session.execute(
            sa.insert(TableClaim).values(
                target=k.target,
                namespace=k.namespace,
                table_name=k.table,
                apply_id=apply_id,
                created_at=db_now(),
            )
        )


def _promote_if_ready(session: Session, apply_id: str) -> bool:
    rows = list(session.scalars(sa.select(TableClaimQueue).where(TableClaimQueue.apply_id == apply_id)))
    if not rows:
        return False
    after = {r.after_apply_id for r in rows if r.after_apply_id}
    for other in after:
        if (_state_of(session, other) or State.COMPLETED.value) not in _TERMINAL:
            return False
    keys = [ClaimKey(r.target, r.namespace, r.table_name) for r in rows if r.table_name]
    if keys:
        if session.scalar(
            sa.select(sa.func.count()).select_from(TableClaim).where(_key_filter(TableClaim, keys))
        ):
            return False
        first = min(r.id for r in rows)
        ahead = session.scalar(
            sa.select(sa.func.count())
            .select_from(TableClaimQueue)
            .where(
                _key_filter(TableClaimQueue, keys),
                TableClaimQueue.id < first,
                TableClaimQueue.apply_id != apply_id,
            )
        )
        if ahead:
            return False
    session.execute(sa.delete(TableClaimQueue).where(TableClaimQueue.apply_id == apply_id))
    _insert_claims(session, keys, apply_id)
    audit.append(
        session,
        apply_id,
        "claimed",
        "its tables are free: it starts now" + (f" ({', '.join(k.label for k in keys)})" if keys else ""),
    )
    return True


def release_claims(session: Session, apply_id: str) -> list[str]:
    """Call in the transaction that makes `apply_id` terminal (after the state is flushed).

    Frees its tables and starts the line of applies queued behind it; returns those promoted."""
    session.flush()
    held = list(session.scalars(sa.select(TableClaim).where(TableClaim.apply_id == apply_id)))
    queued = list(session.scalars(sa.select(TableClaimQueue).where(TableClaimQueue.apply_id == apply_id)))
    keys = [ClaimKey(r.target, r.namespace, r.table_name) for r in held if r.table_name]
    keys += [ClaimKey(r.target, r.namespace, r.table_name) for r in queued if r.table_name]
    session.execute(sa.delete(TableClaim).where(TableClaim.apply_id == apply_id))
    session.execute(sa.delete(TableClaimQueue).where(TableClaimQueue.apply_id == apply_id))
    conditions = [TableClaimQueue.after_apply_id == apply_id]
    if keys:
        conditions.append(_key_filter(TableClaimQueue, keys))
    candidates = session.execute(
        sa.select(TableClaimQueue.apply_id, sa.func.min(TableClaimQueue.id))
        .where(sa.or_(*conditions))
        .group_by(TableClaimQueue.apply_id)
        .order_by(sa.func.min(TableClaimQueue.id))
    ).all()
    return [candidate for candidate, _ in candidates if _promote_if_ready(session, candidate)]


@dataclass(frozen=True)
class QueuePlace:
    position: int  # 1: next to start when what it waits for ends
    waiting_for: list[str]


def queue_place(db: Database, apply_id: str) -> QueuePlace | None:
    """Where a queued apply stands, or None when it is not queued."""

    def work(session: Session) -> QueuePlace | None:
        rows = list(session.scalars(sa.select(TableClaimQueue).where(TableClaimQueue.apply_id == apply_id)))
        if not rows:
            return None
        first = min(r.id for r in rows)
        keys = [ClaimKey(r.target, r.namespace, r.table_name) for r in rows if r.table_name]
        waiting: list[str] = [r.after_apply_id for r in rows if r.after_apply_id]
        earlier: list[str] = []
        if keys:
            waiting += list(
                session.scalars(sa.select(TableClaim.apply_id).where(_key_filter(TableClaim, keys)))
            )
            earlier = list(
                session.scalars(
                    sa.select(TableClaimQueue.apply_id)
                    .where(_key_filter(TableClaimQueue, keys), TableClaimQueue.id < first)
                    .order_by(TableClaimQueue.id)
                )
            )
        ahead = list(dict.fromkeys([*waiting, *earlier]))
        return QueuePlace(len(dict.fromkeys(earlier)) + 1, [a for a in ahead if a != apply_id])

    return db.run(work, write=False)


def cancel_queued(db: Database, apply_id: str) -> int | None:
    """Cancel an apply that is still waiting in a queue (it has no driver to do it); returns the
    id of the recorded control, or None when it is not queued (any more)."""

    def work(session: Session) -> int | None:
        apply = session.scalars(
            sa.select(Apply).where(Apply.apply_id == apply_id).with_for_update()
        ).one_or_none()
        if apply is None or apply.state != State.PENDING.value:
            return None
        if not session.scalar(
            sa.select(sa.func.count())
            .select_from(TableClaimQueue)
            .where(TableClaimQueue.apply_id == apply_id)
        ):
            return None
        now = session.scalar(sa.select(db_now()))
        for task in session.scalars(sa.select(Task).where(Task.apply_id == apply_id)):
            task.state = State.CANCELLED
            task.completed_at = now
        audit.append(
            session,
            apply_id,
            "state",
            "cancelled while queued",
            old_state=apply.state,
            new_state=State.CANCELLED.value,
        )
        apply.state = State.CANCELLED
        apply.completed_at = now
        close_pending(session, apply_id, State.CANCELLED, now)  # a stop asked while it queued
        result = session.execute(
            sa.insert(ControlRequest).values(
                apply_id=apply_id,
                kind="cancel",
                pending_kind=None,
                status="done",
                message="cancelled while queued",
                created_at=now,
                processed_at=now,
            )
        )
        release_claims(session, apply_id)
        return int(result.inserted_primary_key[0])  # type: ignore[attr-defined]

    return db.run(work)
