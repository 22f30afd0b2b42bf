"""Reading applies: one consistent snapshot of an apply with its tasks, operations and controls."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from schemabot.errors import NotFound
from schemabot.storage.database import Database
from schemabot.storage.models import Apply, ApplyOperation, ControlRequest, Task


@dataclass(frozen=True)
class Snapshot:
    """An apply as stored at one instant. ORM rows detached from their session: read-only."""

    apply: Apply
    tasks: list[Task]
    operations: list[ApplyOperation]
    pending_controls: list[ControlRequest]

    def operation(self, operation_id: str | None) -> ApplyOperation | None:
        return next((op for op in self.operations if op.operation_id == operation_id), None)

    def tasks_of(self, operation_id: str) -> list[Task]:
        return [t for t in self.tasks if t.operation_id == operation_id]


def _load(session: Session, apply_id: str) -> Snapshot:
    apply = session.scalars(sa.select(Apply).where(Apply.apply_id == apply_id)).one_or_none()
    if apply is None:
        raise NotFound(f"no apply {apply_id!r}")
    tasks = list(session.scalars(sa.select(Task).where(Task.apply_id == apply_id).order_by(Task.seq)))
    ops = list(
        session.scalars(
            sa.select(ApplyOperation).where(ApplyOperation.apply_id == apply_id).order_by(ApplyOperation.seq)
        )
    )
    controls = list(
        session.scalars(
            sa.select(ControlRequest)
            .where(ControlRequest.apply_id == apply_id, ControlRequest.status == "pending")
            .order_by(ControlRequest.id)
        )
    )
    return Snapshot(apply, tasks, ops, controls)


def snapshot(db: Database, apply_id: str) -> Snapshot:
    return db.run(lambda session: _load(session, apply_id), write=False)


def list_applies(
    db: Database, state: str | None = None, limit: int = 100, targets: list[str] | None = None
) -> list[Apply]:
    def work(session: Session) -> list[Apply]:
        query = sa.select(Apply).order_by(Apply.id.desc()).limit(limit)
        if state:
            query = query.where(Apply.state == state)
        if targets is not None:
            query = query.where(Apply.target.in_(targets))
        return list(session.scalars(query))

    return db.run(work, write=False)


def tasks_of(db: Database, apply_ids: list[str]) -> dict[str, list[Task]]:
    def work(session: Session) -> dict[str, list[Task]]:
        found: dict[str, list[Task]] = {a: [] for a in apply_ids}
        rows = session.scalars(sa.select(Task).where(Task.apply_id.in_(apply_ids)).order_by(Task.seq))
        for task in rows:
            found[task.apply_id].append(task)
        return found

    return db.run(work, write=False) if apply_ids else {}
