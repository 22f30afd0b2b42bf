"""The driver's writes. Each function is one transaction that starts with `leases.fence`, so a
driver whose lease moved on writes nothing at all (docs/architecture.md §8 invariant 1), and none
of them can overwrite a stored terminal apply (the fence refuses terminal rows:
docs/architecture.md §8 invariant 5).

Task states move forward only on engine reports (`states.task_transition_allowed`); controls
move them explicitly (stop, start, cancel). The apply's state is then re-derived from its tasks
by `states.derive_apply_state`, in the same transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from engines.base import ProgressResult, ResumeState, TableProgress
from engines.targets import redact
from schemabot.states import PARKED, VERDICTS, State, derive_apply_state, task_transition_allowed
from schemabot.storage import audit
from schemabot.storage.claims import release_claims
from schemabot.storage.clock import db_now
from schemabot.storage.control_requests import close_pending
from schemabot.storage.database import Database
from schemabot.storage.leases import fence, release_in
from schemabot.storage.models import Apply, ApplyOperation, ControlRequest, Task


def _apply_row(session: Session, apply_id: str) -> Apply:
    return session.scalars(sa.select(Apply).where(Apply.apply_id == apply_id)).one()


def _operation_row(session: Session, operation_id: str) -> ApplyOperation:
    return session.scalars(sa.select(ApplyOperation).where(ApplyOperation.operation_id == operation_id)).one()


def _tasks(session: Session, apply_id: str) -> list[Task]:
    return list(session.scalars(sa.select(Task).where(Task.apply_id == apply_id).order_by(Task.seq)))


def set_task_state(session: Session, task: Task, new: State, token: int | None, why: str) -> bool:
    """Move one task (with its timestamps and audit entry); False when it was already there.
    The one writer of a task's state: the driver's reports and controls, and the sweep when a
    retry budget runs out (token None)."""
    old = task.state
    if old == new.value:
        return False
    task.state = new
    task.updated_at = session.scalar(sa.select(db_now()))
    if new.is_terminal:
        task.completed_at = task.updated_at
    audit.append(
        session,
        task.apply_id,
        "task_state",
        why,
        task_id=task.task_id,
        old_state=old,
        new_state=new.value,
        token=token,
    )
    return True


def set_apply_state(
    session: Session,
    apply: Apply,
    new: State,
    why: str,
    *,
    token: int | None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Write an apply's derived or final state, with its audit entry. Every terminal apply state
    is written here (by the driver, and by the sweep when a retry budget runs out), so whatever
    must happen when an apply ends happens in one place. `detail` goes on the audit entry: what
    an observer needs to tell one way of ending from another (schemabot/metrics.py)."""
    old = apply.state
    if new.value == old:
        return
    now = session.scalar(sa.select(db_now()))
    apply.state = new
    apply.updated_at = now  # also when no fence ran (the sweep)
    if new.is_terminal:
        apply.completed_at = now
        release_claims(session, apply.apply_id)  # its tables are free, in the same transaction
    audit.append(
        session, apply.apply_id, "state", why, old_state=old, new_state=new.value, detail=detail, token=token
    )
    if new.is_terminal:
        close_pending(session, apply.apply_id, new, now, token)


def _rederive(session: Session, apply: Apply, token: int, why: str, *, keep_verdict: bool = False) -> State:
    """Set the apply's state from its tasks; release the lease when nobody should drive it.

    With `keep_verdict`, an apply-only verdict (failed_retryable, waiting_for_provider,
    needs_attention) stays unless the tasks ended: a control that changed nothing (refused,
    a volume) does not make a blocked apply look as if it were moving again."""
    tasks = _tasks(session, apply.apply_id)
    new = derive_apply_state(t.state for t in tasks)
    if keep_verdict and apply.state in _VERDICT_VALUES and not new.is_terminal:
        new = apply.state
    set_apply_state(session, apply, new, why, token=token)
    if new.is_terminal or new in PARKED:
        session.flush()
        release_in(session, apply.apply_id, token)
    return new


def tracked(state: ResumeState | None) -> ResumeState | None:
    """The resume state if it carries anything to track, else None.

    An engine that hands back `{}` has told us nothing about where its work is: storing that over
    a state that names a branch or deploy request would blind the next owner (docs/architecture.md
    §7). So an empty state is handled exactly like a missing one, everywhere it is written or read.
    """
    return state if state else None


def _recovered(apply: Apply) -> None:
    """The engine answered: a verdict on the last attempt (retrying, blocked) no longer holds."""
    if apply.attention is not None:
        apply.attention = None
    if apply.state in _VERDICT_VALUES:
        apply.error = None
        apply.retry_after = None


_VERDICT_VALUES = frozenset(s.value for s in VERDICTS)


def _merge_metadata(op: ApplyOperation, update: Mapping[str, Any]) -> None:
    merged = dict(op.resume_metadata or {})
    merged.update(update)
    op.resume_metadata = merged


def save_resume_state(db: Database, apply_id: str, token: int, operation_id: str, state: ResumeState) -> None:
    """Persist the engine's resume state now (persist-before-act), fenced by the lease."""

    if tracked(state) is None:
        return  # nothing to track: keep what is stored

    def work(session: Session) -> None:
        fence(session, apply_id, token)
        op = _operation_row(session, operation_id)
        op.resume_context = state
        op.updated_at = session.scalar(sa.select(db_now()))
        _merge_metadata(op, {"saved_by_token": token})

    db.run(work)


@dataclass(frozen=True)
class AttachRecord:
    """What happened when an owner attached to an operation (first dispatch or resume)."""

    operation_id: str
    resume_state: ResumeState | None
    reattached: bool
    resume_point: str | None
    restart_reason: str | None
    resumed: bool  # the operation had been attached before, by an earlier owner
    recovering: bool  # a deferred-cutover apply that must re-prove readiness
    message: str


def record_attach(db: Database, apply_id: str, token: int, record: AttachRecord) -> State:
    def work(session: Session) -> State:
        fence(session, apply_id, token)
        apply = _apply_row(session, apply_id)
        op = _operation_row(session, record.operation_id)
        now = session.scalar(sa.select(db_now()))
        if tracked(record.resume_state) is not None:
            op.resume_context = record.resume_state
        _merge_metadata(
            op,
            {
                "attached_token": token,
                "attached_at": now.isoformat() if now else None,
                "reattached": record.reattached,
                "resume_point": record.resume_point,
                "restart_reason": record.restart_reason,
                "adopt": None,  # an operator's adopt is spent by the attach it allowed
            },
        )
        op.updated_at = now
        if apply.started_at is None:
            apply.started_at = now
        if record.recovering:
            for task in _tasks(session, apply_id):
                if task.state == State.WAITING_FOR_CUTOVER.value:
                    set_task_state(
                        session,
                        task,
                        State.RECOVERING,
                        token,
                        "restarted while waiting for cutover; the engine must prove readiness again",
                    )
        blocked = apply.state == State.WAITING_FOR_PROVIDER.value
        if record.resumed or record.reattached or record.restart_reason:
            if record.reattached:
                outcome = "reattached" + (f" at {record.resume_point}" if record.resume_point else "")
            elif record.restart_reason:
                outcome = f"restarted from the beginning: {record.restart_reason}"
            else:
                outcome = "started again (the engine found no work in flight)"
            repeated = blocked and outcome == apply.resume_outcome
            apply.resume_outcome = outcome
            if not repeated:  # one entry per distinct outcome while the provider is flaky
                audit.append(
                    session,
                    apply_id,
                    "resume",
                    outcome,
                    detail={
                        "operation_id": record.operation_id,
                        "reattached": record.reattached,
                        "resume_point": record.resume_point,
                        "restart_reason": record.restart_reason,
                        "attempt": apply.attempt,
                    },
                    token=token,
                )
        else:
            audit.append(session, apply_id, "dispatch", record.message or "engine accepted", token=token)
        if blocked:
            # Reattached, but the provider has not yet shown it moves again: the apply stays
            # waiting_for_provider until a progress report lands (no flip-flop in the log).
            return State.WAITING_FOR_PROVIDER
        _recovered(apply)
        return _rederive(session, apply, token, "attached")

    return db.run(work)


def _progress_for(task: Task, by_table: Mapping[tuple[str, str], TableProgress]) -> TableProgress | None:
    return by_table.get((task.namespace, task.table_name))


def record_progress(
    db: Database, apply_id: str, token: int, operation_id: str, result: ProgressResult
) -> State:
    """Store one engine report: resume state, task progress (forward only), events, apply state.

    A report that moves anything (a task's state or progress, the resume state, an event) proves
    the apply is going on, and clears the count of orphan claims (docs/architecture.md §10 S30);
    a report that repeats what is stored does not, so drivers that keep dying right after it
    still reach the orphan limit."""
    by_table = {(tp.namespace, tp.table): tp for tp in result.tables}
    overall = State.from_engine(result.state)

    def work(session: Session) -> State:
        fence(session, apply_id, token)
        apply = _apply_row(session, apply_id)
        _recovered(apply)
        moved = bool(result.events)
        if tracked(result.resume_state) is not None:
            op = _operation_row(session, operation_id)
            moved = moved or op.resume_context != result.resume_state
            op.resume_context = result.resume_state
            op.updated_at = session.scalar(sa.select(db_now()))
        for task in _tasks(session, apply_id):
            if task.operation_id != operation_id:
                continue
            detail = _progress_for(task, by_table)
            reported = State.from_engine(detail.state) if detail else overall
            current = task.state
            if not task_transition_allowed(current, reported):
                # A stale or backwards report: keep what is stored (docs/architecture.md §8 invariant 5).
                continue
            before = (task.rows_copied, task.percent, task.message)
            if detail is not None:
                task.rows_copied = detail.rows_copied
                task.rows_total = detail.rows_total
                task.percent = detail.percent
                task.eta_seconds = detail.eta_seconds
                task.message = redact(detail.message) if detail.message else None
            elif reported is State.COMPLETED and task.action != "vschema_update":
                task.percent = 100.0
            moved = set_task_state(session, task, reported, token, result.message or "engine report") or moved
            moved = moved or before != (task.rows_copied, task.percent, task.message)
        for event in result.events:
            audit.append(session, apply_id, "engine", event, token=token)
        if moved and apply.orphan_claims:
            apply.orphan_claims = 0
        return _rederive(session, apply, token, result.message or "engine report")

    return db.run(work)


def record_failure(
    db: Database,
    apply_id: str,
    token: int,
    message: str,
    *,
    retryable: bool,
    operation_id: str | None,
    backoff_seconds: float,
    in_flight: str | None = None,
    blocked_on: str = "the provider",
) -> State:
    """A verdict on the current attempt: `failed_retryable` (the sweep re-drives it after a
    backoff), `waiting_for_provider` (retryable while work may be in flight on the provider:
    `in_flight` names it; re-driven for as long as it takes) or `failed` (the current
    operation's tasks fail, the rest are cancelled)."""
    message = redact(message)

    def work(session: Session) -> State:
        fence(session, apply_id, token)
        apply = _apply_row(session, apply_id)
        old = apply.state
        apply.error = message
        if retryable and in_flight is not None:
            reason = redact(
                f"blocked on {blocked_on}: {message}. {in_flight} may be in flight on the "
                "provider, so this apply is retried until it can go on (it is never ended by the "
                "retry budget); cancel it to give up"
            )
            apply.retry_after = session.scalar(sa.select(db_now(backoff_seconds)))
            if old != State.WAITING_FOR_PROVIDER.value:
                # One audit entry per outage, not one per retry: while it lasts, `attention`
                # shows the latest failure (which call failed, and how, varies from retry to
                # retry: a 500 here, a timeout there).
                audit.append(
                    session,
                    apply_id,
                    "state",
                    reason,
                    old_state=old,
                    new_state=State.WAITING_FOR_PROVIDER.value,
                    detail={"attempt": apply.attempt, "retry_in_seconds": backoff_seconds},
                    token=token,
                )
            apply.state = State.WAITING_FOR_PROVIDER
            apply.attention = reason
            session.flush()
            release_in(session, apply_id, token)
            return State.WAITING_FOR_PROVIDER
        if retryable:
            apply.state = State.FAILED_RETRYABLE
            apply.retry_after = session.scalar(sa.select(db_now(backoff_seconds)))
            audit.append(
                session,
                apply_id,
                "state",
                message,
                old_state=old,
                new_state=apply.state,
                detail={"attempt": apply.attempt},
                token=token,
            )
            session.flush()
            release_in(session, apply_id, token)
            return State.FAILED_RETRYABLE
        apply.attention = None
        for task in _tasks(session, apply_id):
            if task.state.is_terminal:
                continue
            target = State.FAILED if task.operation_id == operation_id else State.CANCELLED
            set_task_state(session, task, target, token, message)
        return _rederive(session, apply, token, message)

    return db.run(work)


def record_stuck(db: Database, apply_id: str, token: int, reason: str) -> None:
    """An owner exits without writing anything of the apply's progress (docs/architecture.md §7),
    but says why in `attention`, so a stuck apply is never silent. The state is kept; the next
    owner that gets on clears it. One audit entry per distinct reason."""
    reason = redact(reason)

    def work(session: Session) -> None:
        fence(session, apply_id, token)
        apply = _apply_row(session, apply_id)
        if apply.attention != reason:
            audit.append(session, apply_id, "stuck", reason, token=token)
            apply.attention = reason

    db.run(work)


def record_attention(db: Database, apply_id: str, token: int, reason: str) -> State:
    """Recovery refuses to go on without a person: `needs_attention` with the reason.

    Nothing of the tasks or the operations changes, and the engine was not called. The lease is
    released, so the sweep leaves the apply alone until an operator asks for something (cancel).
    A reason already recorded is not logged again (one audit entry per distinct reason).
    """
    reason = redact(reason)

    def work(session: Session) -> State:
        fence(session, apply_id, token)
        apply = _apply_row(session, apply_id)
        if apply.state != State.NEEDS_ATTENTION.value or apply.attention != reason:
            audit.append(
                session,
                apply_id,
                "state",
                f"needs attention: {reason}",
                old_state=apply.state,
                new_state=State.NEEDS_ATTENTION.value,
                token=token,
            )
        apply.state = State.NEEDS_ATTENTION
        apply.attention = reason
        # A live driver parked it: not the orphan limit's doing (`sweep.parked_by_orphan_limit`).
        apply.orphan_claims = 0
        session.flush()
        release_in(session, apply_id, token)
        return State.NEEDS_ATTENTION

    return db.run(work)


def record_control(
    db: Database,
    apply_id: str,
    token: int,
    control_id: int,
    *,
    status: str,
    message: str,
    task_states: Mapping[str, State] | None = None,
    options_update: Mapping[str, Any] | None = None,
    resume_state: ResumeState | None = None,
    operation_id: str | None = None,
    metadata_update: Mapping[str, Any] | None = None,
) -> State:
    """Close a control request and apply its effect: move tasks to `task_states` (stop, start,
    cancel; terminal tasks never move), update options (volume), store a new resume state, or
    mark the operation (adopt)."""

    def work(session: Session) -> State:
        fence(session, apply_id, token)
        apply = _apply_row(session, apply_id)
        control = session.get(ControlRequest, control_id)
        if control is None or control.status != "pending":
            return apply.state
        control.status = status
        control.pending_kind = None
        control.message = redact(message)
        control.processed_at = session.scalar(sa.select(db_now()))
        audit.append(
            session,
            apply_id,
            "control",
            f"{control.kind}: {status}: {message}",
            detail={"control_id": control_id, "kind": control.kind, "value": control.value},
            token=token,
        )
        if options_update:
            apply.options = {**(apply.options or {}), **options_update}
        if tracked(resume_state) is not None and operation_id is not None:
            _operation_row(session, operation_id).resume_context = resume_state
        if metadata_update and operation_id is not None:
            _merge_metadata(_operation_row(session, operation_id), metadata_update)
        adopted = control.kind == "adopt" and status == "done"
        if adopted:
            apply.attention = None
            apply.orphan_claims = 0  # the operator gives it a fresh run of re-drives
        if task_states:
            for task in _tasks(session, apply_id):
                new = task_states.get(task.task_id)
                if new is not None and not task.state.is_terminal:
                    set_task_state(session, task, new, token, f"{control.kind} requested")
            if apply.state in _VERDICT_VALUES:
                # The verdict gives way to what the tasks now say; _rederive writes that state
                # through set_apply_state, so an apply that ends here frees its tables too.
                apply.error = None
                apply.attention = None
        moved = bool(task_states) or adopted
        return _rederive(session, apply, token, f"{control.kind} requested", keep_verdict=not moved)

    return db.run(work)


def resume_after_retry(db: Database, apply_id: str, token: int) -> State:
    """A re-driven `failed_retryable` apply becomes what its tasks say again.

    A `waiting_for_provider` apply keeps its state (and writes no audit entry) until the engine
    answers: an outage of an hour must not fill the log with one retry entry per attempt.
    """

    def work(session: Session) -> State:
        fence(session, apply_id, token)
        apply = _apply_row(session, apply_id)
        if apply.state == State.WAITING_FOR_PROVIDER.value:
            return State.WAITING_FOR_PROVIDER
        if apply.state != State.FAILED_RETRYABLE.value:
            return apply.state
        audit.append(
            session,
            apply_id,
            "retry",
            f"attempt {apply.attempt} after: {apply.error}",
            detail={"attempt": apply.attempt},
            token=token,
        )
        apply.error = None
        apply.retry_after = None
        tasks = _tasks(session, apply_id)
        new = derive_apply_state(t.state for t in tasks)
        audit.append(
            session, apply_id, "state", "re-driven", old_state=apply.state, new_state=new.value, token=token
        )
        apply.state = new
        return new

    return db.run(work)


def note(
    db: Database,
    apply_id: str,
    token: int,
    event: str,
    message: str,
    detail: dict[str, Any] | None = None,
    *,
    once: bool = False,
) -> None:
    """A fenced audit entry with no state change (a busy engine, a held control). With `once`,
    nothing is added when the apply's last entry already says the same (a busy engine asked
    again every poll is one entry, not one per poll)."""

    def work(session: Session) -> None:
        fence(session, apply_id, token)
        if once and audit.last(session, apply_id) == (event, redact(message)):
            return
        audit.append(session, apply_id, event, message, detail=detail, token=token)

    db.run(work)
