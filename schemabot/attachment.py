"""Which operation an owner attaches to, with which engine resume state, or why it must not.

This is where the non-terminal exits of docs/architecture.md §7 about resume state are decided. Each
raises `ResumeStateUnavailable` *before* the engine is called, so nothing is written and nothing
is created on the target; the lease expires and a later sweep tries again.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from engines.base import Platform, ResumeState
from schemabot.errors import NeedsAttention, ResumeStateUnavailable, StorageUnavailable
from schemabot.states import VERDICTS, State, rank
from schemabot.storage.database import Database
from schemabot.storage.fenced_writes import tracked
from schemabot.storage.models import ApplyOperation, Task
from schemabot.storage.reads import Snapshot

# Until the branch exists, a Vitess apply may take the fresh path: the engine derives the same
# deterministic branch name from the context, so nothing is duplicated.
VITESS_FRESH_STATES = frozenset({State.PENDING, State.PREPARING_BRANCH})


@dataclass(frozen=True)
class Attachment:
    """The operation to drive now, the tasks it covers and the state to hand the engine."""

    operation_id: str
    context: str
    tasks: list[Task]
    resume_state: ResumeState | None
    resumed: bool  # an earlier owner attached this operation before


def _was_attached_by_other(op: ApplyOperation, token: int) -> bool:
    attached = (op.resume_metadata or {}).get("attached_token")
    return attached is not None and attached != token


def read_resume_state(db: Database, operation_id: str) -> ResumeState | None:
    """The operation's persisted engine state, read fresh; a storage error is a resume exit."""

    def work(session: Session) -> ResumeState | None:
        return session.scalar(
            sa.select(ApplyOperation.resume_context).where(ApplyOperation.operation_id == operation_id)
        )

    try:
        return db.run(work, write=False)
    except StorageUnavailable as exc:
        raise ResumeStateUnavailable(f"cannot read the resume state of {operation_id}: {exc}") from exc


def unfinished_task(snapshot: Snapshot) -> Task | None:
    return next((t for t in snapshot.tasks if not t.state.is_terminal), None)


def resolve(
    db: Database, snapshot: Snapshot, *, grouped: bool, platform: Platform, token: int
) -> Attachment | None:
    """The attachment for the apply's current operation; None when every task is finished."""
    apply = snapshot.apply
    if grouped:
        linked = {t.operation_id for t in snapshot.tasks}
        op = snapshot.operation(next(iter(linked))) if len(linked) == 1 else None
        if op is None:
            if platform == "vitess":
                raise NeedsAttention(
                    f"tasks are not linked to exactly one operation "
                    f"({sorted(str(x) for x in linked)}); refusing to resume a Vitess apply blind"
                )
            # MySQL: the engine can find its work on the target from the context alone.
            fallback = next(
                (o for o in snapshot.operations if o.context == apply.apply_id),
                snapshot.operations[0] if snapshot.operations else None,
            )
            if fallback is None:
                raise ResumeStateUnavailable(f"{apply.apply_id} has no operation to attach to")
            return Attachment(
                fallback.operation_id,
                apply.apply_id,
                list(snapshot.tasks),
                None,
                _was_attached_by_other(fallback, token),
            )
        # An empty state tracks nothing: it is handled exactly like a missing one.
        state = tracked(read_resume_state(db, op.operation_id))
        adopting = bool((op.resume_metadata or {}).get("adopt"))  # an operator's go-ahead
        if platform == "vitess" and state is None and not adopting and not _may_start_fresh(snapshot):
            # Fail closed: past branch preparation a branch or deploy request may exist that
            # only the lost state names. Starting fresh could open a second one
            # (docs/architecture.md §8 invariant 3).
            raise NeedsAttention(
                f"the apply is past branch preparation ({_furthest(snapshot).value}) but its Vitess "
                "resume state is missing; the engine is not called, since a fresh start could open "
                f"a second branch or deploy request for {apply.apply_id}. Look for the deploy "
                f"request tagged 'schemabot-apply: {apply.apply_id}' on the provider; if it is the "
                "only one, `adopt` lets the engine find it again by that tag, else `cancel`"
            )
        return Attachment(
            op.operation_id,
            apply.apply_id,
            list(snapshot.tasks),
            state,
            _was_attached_by_other(op, token),
        )

    task = unfinished_task(snapshot)
    if task is None:
        return None
    op = snapshot.operation(task.operation_id)
    if op is None:
        raise ResumeStateUnavailable(f"task {task.task_id} is not linked to an operation")
    state = tracked(read_resume_state(db, op.operation_id))
    # Every task of that operation: one for a sequential apply; in a mixed apply, all the tasks
    # of an engine whose tables form one operation (schemabot/engine_mix.py).
    tasks = [t for t in snapshot.tasks if t.operation_id == op.operation_id]
    return Attachment(op.operation_id, op.context, tasks, state, _was_attached_by_other(op, token))


def _furthest(snapshot: Snapshot) -> State:
    """How far the apply got, from its tasks (the apply's own state may be a verdict such as
    waiting_for_provider, which says nothing about the branch)."""
    states = [t.state for t in snapshot.tasks]
    unfinished = [s for s in states if not s.is_terminal]
    if not unfinished:
        return snapshot.apply.state
    return max(unfinished, key=rank)


def _may_start_fresh(snapshot: Snapshot) -> bool:
    state = snapshot.apply.state
    if state in VITESS_FRESH_STATES:
        return True
    if state in VERDICTS:
        return _furthest(snapshot) in VITESS_FRESH_STATES
    return False
