"""Writing a new apply: the apply, its tasks and its operations in one transaction."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from schemabot.errors import ValidationError
from schemabot.states import State
from schemabot.storage import audit
from schemabot.storage.claims import claim_in, claim_keys
from schemabot.storage.clock import db_now
from schemabot.storage.database import Database
from schemabot.storage.models import Apply, ApplyOperation, Task


@dataclass(frozen=True)
class NewTask:
    task_id: str
    namespace: str
    table: str
    ddl: str | None
    action: str
    vschema: dict[str, Any] | None = None
    engine: str | None = None  # the engine that runs it (schemabot/engine_mix.py)
    engine_reason: str | None = None  # why `--engine auto` chose it; None when the user named it


@dataclass(frozen=True)
class NewOperation:
    """One operation: its id, its context and the indexes (into `NewApply.tasks`) of its tasks."""

    operation_id: str
    context: str
    tasks: tuple[int, ...]


@dataclass(frozen=True)
class NewApply:
    apply_id: str
    target: str
    database: str
    engine: str
    options: dict[str, Any]
    grouped: bool
    request_hash: str
    tasks: list[NewTask]  # in run order: a task's seq is its index
    operations: list[NewOperation]  # from grouping.operation_layout, in run order
    idempotency_key: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    submitted_by: str | None = None  # the API token's name, when submitted over HTTP
    queue: bool = False  # wait behind an unfinished apply on the same tables instead of refusing
    after: str | None = None  # wait for this apply to end (and queue behind any on the tables)


def _insert(session: Session, new: NewApply, for_update: bool) -> None:
    session.execute(
        sa.insert(Apply).values(
            apply_id=new.apply_id,
            idempotency_key=new.idempotency_key,
            request_hash=new.request_hash,
            target=new.target,
            database=new.database,
            engine=new.engine,
            state=State.PENDING.value,
            options=new.options,
            attempt=1,
            submitted_by=new.submitted_by,
            lease_token=0,
            poll_seq=0,
            created_at=db_now(),
            updated_at=db_now(),
        )
    )
    # The layout comes from the one grouping predicate (grouping.operation_layout): grouped, one
    # operation for every task (context = apply id); sequential, one per task (context = task
    # id); mixed, per engine. The engine derives everything it creates from the context.
    op_of_task: list[str] = [""] * len(new.tasks)
    for seq, operation in enumerate(new.operations):
        for index in operation.tasks:
            op_of_task[index] = operation.operation_id
        session.execute(
            sa.insert(ApplyOperation).values(
                operation_id=operation.operation_id,
                apply_id=new.apply_id,
                seq=seq,
                context=operation.context,
                resume_context=None,
                resume_metadata=None,
                created_at=db_now(),
                updated_at=db_now(),
            )
        )
    for seq, (task, op_id) in enumerate(zip(new.tasks, op_of_task, strict=True)):
        session.execute(
            sa.insert(Task).values(
                task_id=task.task_id,
                apply_id=new.apply_id,
                operation_id=op_id,
                seq=seq,
                namespace=task.namespace,
                table_name=task.table,
                ddl=task.ddl,
                action=task.action,
                vschema=task.vschema,
                engine=task.engine,
                engine_reason=task.engine_reason[:255] if task.engine_reason else None,
                state=State.PENDING.value,
                created_at=db_now(),
                updated_at=db_now(),
            )
        )
    keys = claim_keys(new.target, [(t.namespace, t.table) for t in new.tasks])
    waiting_for = claim_in(
        session, new.apply_id, keys, queue=new.queue, after=new.after, for_update=for_update
    )
    audit.append(
        session,
        new.apply_id,
        "submitted",
        f"{len(new.tasks)} task(s) on target {new.target} with engine {new.engine}"
        f" ({_mode(new)})" + _engines_note(new),
        new_state=State.PENDING.value,
        detail={**new.detail, "by": new.submitted_by} if new.submitted_by else (new.detail or None),
    )
    if waiting_for:
        audit.append(session, new.apply_id, "queued", f"waits for {', '.join(waiting_for)}")


def _mode(new: NewApply) -> str:
    if _engines_note(new):
        return f"mixed: {len(new.operations)} operation(s)"
    return "grouped" if new.grouped else "sequential"


def _engines_note(new: NewApply) -> str:
    """For a mixed apply (tasks on different engines): how many tasks each engine runs."""
    counts: dict[str, int] = {}
    for task in new.tasks:
        if task.engine:
            counts[task.engine] = counts.get(task.engine, 0) + 1
    if len(counts) < 2:
        return ""
    return "; per task: " + ", ".join(f"{n} on {engine}" for engine, n in counts.items())


def create_apply(db: Database, new: NewApply) -> tuple[str, bool]:
    """Store `new`; return (apply_id, created). A known idempotency key returns the existing
    apply, provided it was asked with the same request; otherwise ValidationError."""
    for_update = db.dialect in ("mysql", "mariadb")
    try:
        db.run(lambda session: _insert(session, new, for_update))
        return new.apply_id, True
    except sa.exc.IntegrityError:
        if new.idempotency_key is None:
            # Another submit claimed one of the tables between our read and our insert: the
            # unique key decided. Run again to report (or queue behind) the winner.
            db.run(lambda session: _insert(session, new, for_update))
            return new.apply_id, True
    existing = db.run(
        lambda session: session.execute(
            sa.select(Apply.apply_id, Apply.request_hash).where(Apply.idempotency_key == new.idempotency_key)
        ).one_or_none(),
        write=False,
    )
    if existing is None:  # the conflict was on a table claim (see above); decide again
        db.run(lambda session: _insert(session, new, for_update))
        return new.apply_id, True
    if existing.request_hash != new.request_hash:
        raise ValidationError(
            f"idempotency key {new.idempotency_key!r} was already used by {existing.apply_id} "
            "for a different request"
        )
    return existing.apply_id, False
