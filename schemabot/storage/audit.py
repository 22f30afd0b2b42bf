"""The append-only audit log of an apply (`apply_log`): every transition and engine event."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from engines.targets import redact
from schemabot import events
from schemabot.storage.clock import db_now
from schemabot.storage.database import Database
from schemabot.storage.models import ApplyLog


def append(
    session: Session,
    apply_id: str,
    event: str,
    message: str | None = None,
    *,
    task_id: str | None = None,
    old_state: str | None = None,
    new_state: str | None = None,
    detail: dict[str, Any] | None = None,
    token: int | None = None,
) -> None:
    """Add one entry in the caller's transaction (so it lands exactly when the change does)."""
    session.execute(
        sa.insert(ApplyLog).values(
            apply_id=apply_id,
            task_id=task_id,
            event=event,
            old_state=old_state,
            new_state=new_state,
            message=redact(message) if message else message,
            detail=detail,
            lease_token=token,
            created_at=db_now(),
        )
    )
    # Metrics and webhooks see the entry once this transaction commits (docs/architecture.md §2).
    events.recorded(
        session, apply_id, event, message, old_state=old_state, new_state=new_state, detail=detail
    )


def last(session: Session, apply_id: str) -> tuple[str, str | None] | None:
    """(event, message) of the apply's latest entry, in the caller's transaction."""
    row = session.execute(
        sa.select(ApplyLog.event, ApplyLog.message)
        .where(ApplyLog.apply_id == apply_id)
        .order_by(ApplyLog.id.desc())
        .limit(1)
    ).first()
    return (row[0], row[1]) if row is not None else None


def entries(db: Database, apply_id: str, limit: int = 1000) -> list[ApplyLog]:
    def work(session: Session) -> list[ApplyLog]:
        rows = session.scalars(
            sa.select(ApplyLog).where(ApplyLog.apply_id == apply_id).order_by(ApplyLog.id).limit(limit)
        )
        return list(rows)

    return db.run(work, write=False)
