"""Storing a producer's control request (durable intent, carried out by the lease holder)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from schemabot.states import State
from schemabot.storage import audit
from schemabot.storage.clock import db_now
from schemabot.storage.database import Database
from schemabot.storage.models import Apply, ControlRequest


def add_control(
    db: Database,
    apply_id: str,
    kind: str,
    value: str | None,
    requested_by: str | None = None,
    allowed: Callable[[State], None] | None = None,
) -> tuple[int, bool]:
    """Store a pending control; return (id, created). A pending request of the same kind on the
    same apply is returned instead of a second one (the unique key on pending_kind).
    `requested_by` (the API token's name) is kept on the request and in the audit entry.

    `allowed(state)` raises when the apply's state refuses the request; it is asked under the
    apply row's lock, the lock its final state is written under, so a request is either stored
    before the apply ends (and then closed with it, fenced_writes.set_apply_state) or refused:
    never left pending on an apply that nobody drives any more."""

    def insert(session: Session) -> int:
        if allowed is not None:
            state = session.scalar(sa.select(Apply.state).where(Apply.apply_id == apply_id).with_for_update())
            if state is not None:
                allowed(State(state))
        result = session.execute(
            sa.insert(ControlRequest).values(
                apply_id=apply_id,
                kind=kind,
                pending_kind=kind,
                value=value,
                status="pending",
                requested_by=requested_by,
                created_at=db_now(),
            )
        )
        detail: dict[str, Any] = {"kind": kind, "value": value}
        if requested_by is not None:
            detail["by"] = requested_by
        by = f" by {requested_by}" if requested_by else ""
        audit.append(session, apply_id, "control", f"{kind} requested{by}", detail=detail)
        key = cast(sa.CursorResult[Any], result).inserted_primary_key
        assert key is not None
        return int(key[0])

    try:
        return db.run(insert), True
    except sa.exc.IntegrityError:
        existing = db.run(
            lambda session: session.scalar(
                sa.select(ControlRequest.id).where(
                    ControlRequest.apply_id == apply_id, ControlRequest.pending_kind == kind
                )
            ),
            write=False,
        )
        if existing is None:
            raise
        return int(existing), False


def close_pending(session: Session, apply_id: str, ended: State, now: Any, token: int | None = None) -> None:
    """Refuse, with why, the requests still pending when an apply ends: nobody will carry them
    out (a stop asked while the tick that completes the apply ran, say), and pending forever
    would read as "about to happen" in `status` and the log. Called in the transaction that
    writes the final state (fenced_writes.set_apply_state, claims.cancel_queued)."""
    pending = session.scalars(
        sa.select(ControlRequest).where(
            ControlRequest.apply_id == apply_id, ControlRequest.status == "pending"
        )
    ).all()
    for control in pending:
        control.status = "rejected"
        control.pending_kind = None
        control.message = f"the apply ended ({ended.value}) before this request was carried out"
        control.processed_at = now
        audit.append(
            session,
            apply_id,
            "control",
            f"{control.kind}: rejected: {control.message}",
            detail={"control_id": control.id, "kind": control.kind, "value": control.value},
            token=token,
        )
