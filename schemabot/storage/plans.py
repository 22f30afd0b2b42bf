"""The plan an apply was submitted with (`apply_plan`, migration 0005): `schemabot plan show`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session, mapped_column

from schemabot.storage.clock import db_now
from schemabot.storage.database import Database
from schemabot.storage.models import Base, JsonDoc, Timestamp


class ApplyPlan(Base):
    __tablename__ = "apply_plan"

    apply_id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    plan: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    requested_by: Mapped[str | None] = mapped_column(sa.String(191))
    created_at: Mapped[datetime] = mapped_column(Timestamp)


def store_plan(db: Database, apply_id: str, plan: dict[str, Any], requested_by: str | None) -> None:
    """Store the plan of a new apply (once: a repeat of an idempotent submit keeps the first)."""

    def work(session: Session) -> None:
        if session.get(ApplyPlan, apply_id) is None:
            session.execute(
                sa.insert(ApplyPlan).values(
                    apply_id=apply_id, plan=plan, requested_by=requested_by, created_at=db_now()
                )
            )

    db.run(work)


def load_plan(db: Database, apply_id: str) -> dict[str, Any] | None:
    def work(session: Session) -> dict[str, Any] | None:
        row = session.get(ApplyPlan, apply_id)
        return dict(row.plan) if row is not None else None

    return db.run(work, write=False)
