"""Driving an apply: one function, `tick`, behind start_apply, resume_apply and poll_progress.

A tick is one short, self-contained step by the current lease holder:

1. spend the message's (token, seq) and extend the lease; a stale or duplicate message stops here;
2. read the apply; a terminal one releases its lease and stops;
3. carry out pending control requests (stop, start, cutover, cancel, revert, skip revert, volume);
4. attach to the current operation if this owner has not yet (`engine.apply`: begin or
   reattach), else advance it (`engine.progress`) and record the report;
5. run the auto-actions (cutover when not deferred, skip revert when asked);
6. enqueue the next tick, unless the apply is terminal or parked.

Whatever happens, the tick either records an outcome under its fencing token or writes nothing.
State-database and broker trouble (also inside an engine step), a lost lease and unsafe resume
states end the tick quietly (`DriverExit`); the lease then expires and the sweep re-drives. Only
the engine's own errors become verdicts (`failed_retryable` or `failed`), per
docs/architecture.md §7, with two exceptions that keep work in flight alive (§8 invariant 8):
a retryable error of a Vitess apply whose deploy request may be running makes it
`waiting_for_provider` (retried for as long as it takes), and a resume that is unsafe for good
(Vitess state lost past branch preparation) makes it `needs_attention` with the reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from engines.base import (
    ApplyOptions,
    ControlNotApplicable,
    ControlRequest,
    Engine,
    EngineError,
    NamespaceChange,
    OperationRequest,
    ResumeState,
    call_control,
)
from engines.targets import redact
from schemabot import control_rules, metrics
from schemabot.apply_options import StoredOptions
from schemabot.attachment import Attachment
from schemabot.attachment import resolve as resolve_attachment
from schemabot.changes import rebuild_changes
from schemabot.engine_mix import is_mixed, options_for, task_engine
from schemabot.errors import (
    DriverExit,
    InfrastructureUnavailable,
    LeaseLost,
    NeedsAttention,
    ResumeStateUnavailable,
    StorageUnavailable,
)
from schemabot.lease_keeper import LeaseKeeper
from schemabot.runtime import Runtime
from schemabot.states import PARKED, State
from schemabot.storage import fenced_writes, leases, reads, sweep
from schemabot.storage.reads import Snapshot

log = logging.getLogger(__name__)


class TickOutcome(Enum):
    NOT_CLAIMED = "not_claimed"  # start_apply found the apply already taken
    STALE = "stale"  # the message's token or sequence was spent: nothing done
    EXITED = "exited"  # a DriverExit: nothing written, the sweep will re-drive
    FINISHED = "finished"  # terminal or parked: lease released, no next tick
    CONTINUES = "continues"  # next tick enqueued


def options_of(apply_options: Mapping[str, Any] | None) -> ApplyOptions:
    """The stored options as an engine is given them (schemabot/apply_options.py reads them)."""
    return StoredOptions.from_stored(apply_options).for_engine()


def start_apply(rt: Runtime, apply_id: str) -> TickOutcome:
    """First claim of a freshly submitted apply (token 0 -> 1), then its first tick.

    A duplicate start_apply, or one that arrives after the sweep already started the apply,
    finds the token moved on and does nothing.
    """
    try:
        token = leases.claim(
            rt.db,
            apply_id,
            expected_token=0,
            owner=rt.owner,
            ttl=rt.settings.lease_ttl,
            states=[State.PENDING],
        )
    except StorageUnavailable as exc:
        log.warning("start_apply %s: %s", apply_id, exc)
        return TickOutcome.EXITED
    if token is None:
        return TickOutcome.NOT_CLAIMED
    return tick(rt, apply_id, token, 0)


def tick(rt: Runtime, apply_id: str, token: int, seq: int) -> TickOutcome:
    driving: _Tick | None = None
    try:
        if not leases.begin_tick(rt.db, apply_id, token, seq, rt.owner, rt.settings.lease_ttl):
            return TickOutcome.STALE
        driving = _Tick(rt, apply_id, token, seq + 1)
        return driving.run()
    except DriverExit as exc:
        log.info("tick of %s (token %s) exits without writing: %s", apply_id, token, exc)
        if not isinstance(exc, LeaseLost):  # fenced out: another driver owns it, nothing failed
            metrics.infrastructure_error(driving.apply_engine if driving else None)
        _note_exit(rt, apply_id, token, exc)
        return TickOutcome.EXITED


def _note_exit(rt: Runtime, apply_id: str, token: int, exc: DriverExit) -> None:
    """Best effort: tell the sweep this owner ended its tick alive, so its expired lease is not
    counted as a driver that died (docs/architecture.md §10 S30). Skipped when the lease is gone
    or the state database is what failed (the write would only wait for it)."""
    if isinstance(exc, (LeaseLost, StorageUnavailable)) or isinstance(exc.__cause__, StorageUnavailable):
        return
    try:
        leases.note_exit(rt.db, apply_id, token)
    except DriverExit as again:
        log.info("%s: could not note the exit: %s", apply_id, again)


@dataclass(frozen=True)
class _Operation:
    """The current operation, as the engine sees it, and the engine that runs it: the engine of
    its tasks (in a mixed apply each operation's own, schemabot/engine_mix.py)."""

    attachment: Attachment
    changes: list[NamespaceChange]
    engine: str
    mixed: bool
    plugins: Mapping[str, str]

    def options(self, apply_options: dict[str, Any] | None) -> ApplyOptions:
        """The apply's options as this operation's engine is given them."""
        given = options_for(self.engine, apply_options or {}, mixed=self.mixed, plugins=self.plugins)
        return options_of(given)


class _Tick:
    def __init__(self, rt: Runtime, apply_id: str, token: int, next_seq: int) -> None:
        self.rt, self.apply_id, self.token, self.next_seq = rt, apply_id, token, next_seq
        self.settings = rt.settings
        self._engines: dict[str, Engine] = {}
        self.apply_engine: str | None = None  # once read: the label of an exit's metric

    # -- plumbing -----------------------------------------------------------------------------

    def engine(self, snap: Snapshot, op: _Operation) -> Engine:
        """The engine instance for the operation's engine (one per engine name per tick)."""
        if op.engine not in self._engines:
            try:
                self._engines[op.engine] = self.rt.engine_for(snap.apply, op.engine)
            except LookupError as exc:  # the target (or the engine) was removed from configuration
                raise _ConfigurationError(str(exc)) from exc
        return self._engines[op.engine]

    def request(
        self, snap: Snapshot, op: _Operation, state: ResumeState | None, **extra: Any
    ) -> dict[str, Any]:
        def save(new_state: ResumeState) -> None:
            fenced_writes.save_resume_state(
                self.rt.db, self.apply_id, self.token, op.attachment.operation_id, new_state
            )

        return {
            "context": op.attachment.context,
            "changes": op.changes,
            "options": op.options(snap.apply.options),
            "resume_state": state,
            "save_state": save,
            "step_budget": self.settings.step_budget,
            **extra,
        }

    def keeper(self) -> LeaseKeeper:
        return LeaseKeeper(self.rt.db, self.apply_id, self.token, self.settings.lease_ttl)

    def schedule(self, countdown: float | None = None) -> TickOutcome:
        delay = self.settings.poll_interval if countdown is None else countdown
        self.rt.dispatcher.poll_progress(self.apply_id, self.token, self.next_seq, delay)
        return TickOutcome.CONTINUES

    def finish(self) -> TickOutcome:
        # Terminal and parked states released the lease in the same transaction that set them.
        return TickOutcome.FINISHED

    # -- the tick -----------------------------------------------------------------------------

    def run(self) -> TickOutcome:
        try:
            return self._run()
        except NeedsAttention as exc:
            log.warning("%s needs attention: %s", self.apply_id, redact(str(exc)))
            fenced_writes.record_attention(self.rt.db, self.apply_id, self.token, str(exc))
            return self.finish()
        except ResumeStateUnavailable as exc:
            if not isinstance(exc.__cause__, StorageUnavailable):
                self._say_why(str(exc))
            raise
        except DriverExit:
            raise
        except _ConfigurationError as exc:
            return self._fail(exc, retryable=True, operation_id=None, from_engine=False)
        except _EngineFailure as failure:
            return self._fail(failure.error, retryable=failure.retryable, operation_id=failure.operation_id)
        finally:
            for engine in self._engines.values():
                engine.close()

    def _run(self) -> TickOutcome:
        snap = reads.snapshot(self.rt.db, self.apply_id)
        self.apply_engine = snap.apply.engine
        if snap.apply.state.is_terminal:
            leases.release(self.rt.db, self.apply_id, self.token)
            return self.finish()
        if snap.pending_controls:
            self._run_controls(snap)
            snap = reads.snapshot(self.rt.db, self.apply_id)
        state = snap.apply.state
        if state.is_terminal:
            return self.finish()
        if state in (State.FAILED_RETRYABLE, State.WAITING_FOR_PROVIDER):  # another attempt
            fenced_writes.resume_after_retry(self.rt.db, self.apply_id, self.token)
            snap = reads.snapshot(self.rt.db, self.apply_id)
        elif state in (State.STOPPED, State.NEEDS_ATTENTION):
            # Nothing asked it to start (or an operator request was refused): give the lease back.
            leases.release(self.rt.db, self.apply_id, self.token)
            return self.finish()

        op = self._current_operation(snap)
        if op is None:
            return self.finish()
        if _attached_token(snap, op) != self.token:
            return self._attach(snap, op)
        return self._progress(snap, op)

    def _current_operation(self, snap: Snapshot) -> _Operation | None:
        attachment = resolve_attachment(
            self.rt.db,
            snap,
            grouped=self.rt.grouped(snap.apply),
            platform=self.rt.platform_of(snap.apply.engine),
            token=self.token,
        )
        if attachment is None:
            return None
        apply_engine = snap.apply.engine
        engines = {task_engine(t.engine, apply_engine) for t in attachment.tasks}
        if len(engines) != 1:  # submit never links one operation to two engines
            raise ResumeStateUnavailable(
                f"{self.apply_id}: operation {attachment.operation_id} has tasks of engines {sorted(engines)}"
            )
        return _Operation(
            attachment,
            rebuild_changes(attachment.tasks),
            engines.pop(),
            is_mixed(apply_engine),
            self.settings.engine_plugins,
        )

    # -- attach: begin or reattach ------------------------------------------------------------

    def _attach(self, snap: Snapshot, op: _Operation) -> TickOutcome:
        engine = self.engine(snap, op)
        att = op.attachment
        with self.keeper() as keeper:
            result = self._engine_call(
                lambda: engine.apply(OperationRequest(**self.request(snap, op, att.resume_state))),
                att.operation_id,
            )
        if keeper.lost:
            raise LeaseLost(f"{self.apply_id}: lease lost during engine.apply")
        if not result.accepted:
            fenced_writes.note(
                self.rt.db,
                self.apply_id,
                self.token,
                "busy",
                result.message or "the engine asked to try again later",
                once=True,
            )
            return self.schedule()
        vitess = self.rt.platform_of(op.engine) == "vitess"
        if vitess and fenced_writes.tracked(result.resume_state) is None:
            # A Vitess engine that accepted without telling us where its branch and deploy
            # request are would leave the next owner blind (docs/architecture.md §10 S6). An empty state is no
            # better than none: it must not overwrite the stored one (docs/architecture.md §7).
            raise ResumeStateUnavailable(f"{self.apply_id}: the engine accepted but returned no resume state")
        recovering = any(t.state == State.WAITING_FOR_CUTOVER.value for t in att.tasks)
        record = fenced_writes.AttachRecord(
            operation_id=att.operation_id,
            resume_state=result.resume_state,
            reattached=result.reattached,
            resume_point=result.resume_point,
            restart_reason=result.restart_reason,
            resumed=att.resumed,
            recovering=recovering,
            message=redact(result.message),
        )
        try:
            fenced_writes.record_attach(self.rt.db, self.apply_id, self.token, record)
        except StorageUnavailable as exc:
            # The engine holds the work; the next owner reattaches to it (docs/architecture.md §10 S5).
            raise ResumeStateUnavailable(f"{self.apply_id}: saving the resume state failed: {exc}") from exc
        return self.schedule(0)

    # -- progress -----------------------------------------------------------------------------

    def _progress(self, snap: Snapshot, op: _Operation) -> TickOutcome:
        engine = self.engine(snap, op)
        att = op.attachment
        started = time.monotonic()
        with self.keeper() as keeper:
            result = self._engine_call(
                lambda: engine.progress(OperationRequest(**self.request(snap, op, att.resume_state))),
                att.operation_id,
            )
        worked = time.monotonic() - started
        if keeper.lost:
            raise LeaseLost(f"{self.apply_id}: lease lost during engine.progress")
        new_state = fenced_writes.record_progress(
            self.rt.db, self.apply_id, self.token, att.operation_id, result
        )
        if new_state.is_terminal or new_state in PARKED:
            return self.finish()
        self._auto_actions(snap, op, new_state, result.resume_state or att.resume_state)
        return self.schedule(0 if busy_step(worked, self.settings.step_budget) else None)

    def _auto_actions(
        self, snap: Snapshot, op: _Operation, state: State, resume_state: ResumeState | None
    ) -> None:
        """Cut over when the user did not defer it; skip the revert window when asked to."""
        options = op.options(snap.apply.options)
        kind = None
        if state is State.WAITING_FOR_CUTOVER and not options.defer_cutover:
            kind = "cutover"
        elif state is State.REVERT_WINDOW and options.skip_revert:
            kind = "skip_revert"
        if kind is None:
            return
        engine = self.engine(snap, op)
        request = ControlRequest(**self.request(snap, op, resume_state))
        try:
            result = call_control(engine, kind, request)
        except EngineError as exc:
            fenced_writes.note(
                self.rt.db, self.apply_id, self.token, "auto_action", f"{kind} not done yet: {exc}"
            )
            return
        fenced_writes.note(
            self.rt.db,
            self.apply_id,
            self.token,
            "auto_action",
            f"{kind}: {'done' if result.accepted else 'refused'}: {redact(result.message)}",
        )

    # -- controls -----------------------------------------------------------------------------

    def _run_controls(self, snap: Snapshot) -> State:
        state = snap.apply.state
        for control in snap.pending_controls:
            verdict = control_rules.decide(control.kind, state)
            if verdict.decision is control_rules.Decision.HOLD:
                continue
            if verdict.decision is control_rules.Decision.REJECT:
                state = fenced_writes.record_control(
                    self.rt.db,
                    self.apply_id,
                    self.token,
                    control.id,
                    status="rejected",
                    message=verdict.reason,
                )
                continue
            state = self._run_control(snap, control.id, control.kind, control.value)
            if state.is_terminal or state in PARKED:
                break
            snap = reads.snapshot(self.rt.db, self.apply_id)
        return state

    def _run_control(self, snap: Snapshot, control_id: int, kind: str, value: str | None) -> State:
        parked_by_limit = sweep.parked_by_orphan_limit(snap.apply)
        # An apply parked by the orphan limit is cancelled through the engine (it cleans up),
        # unless a driver already died carrying that out (the count went past the limit).
        engine_cancel = parked_by_limit and snap.apply.orphan_claims <= self.settings.orphan_claim_limit
        if snap.apply.state is State.NEEDS_ATTENTION and kind == "cancel" and not engine_cancel:
            # Recovery cannot attach (that is why it needs attention), so the engine is not
            # called: the apply ends cancelled and says what may be left on the target.
            message = f"cancelled by the operator while it needed attention ({snap.apply.attention})"
            if parked_by_limit:
                message += "; the engine's own cancel died with its worker too, so it was not called again"
            return fenced_writes.record_control(
                self.rt.db,
                self.apply_id,
                self.token,
                control_id,
                status="done",
                message=redact(message),
                task_states=self._control_task_states(snap, kind, None),
            )
        if kind == "adopt":
            return self._adopt(snap, control_id, parked_by_limit)
        op = self._current_operation(snap)
        attached = op is not None and _attached_token(snap, op) is not None
        message = "done"
        resume_state: ResumeState | None = None
        after: State | None = None
        if op is not None and (attached or kind not in ("stop", "start", "cancel")):
            engine = self.engine(snap, op)
            request = ControlRequest(**self.request(snap, op, op.attachment.resume_state), value=value)
            try:
                with self.keeper():
                    result = call_control(engine, kind, request)
            except DriverExit:
                raise
            except ControlNotApplicable as exc:
                return self._close_control(control_id, "rejected", str(exc))
            except EngineError as exc:
                if exc.retryable:
                    fenced_writes.note(
                        self.rt.db, self.apply_id, self.token, "control", f"{kind} will be retried: {exc}"
                    )
                    return snap.apply.state
                return self._close_control(control_id, "rejected", str(exc))
            if not result.accepted:
                return self._close_control(control_id, "rejected", result.message or "refused by the engine")
            message = result.message or "done"
            resume_state = result.resume_state
            after = State.from_engine(result.state) if result.state is not None else None
        return fenced_writes.record_control(
            self.rt.db,
            self.apply_id,
            self.token,
            control_id,
            status="done",
            message=redact(message),
            task_states=self._control_task_states(snap, kind, op, after),
            options_update={"volume": int(value)} if kind == "volume" and value else None,
            resume_state=resume_state,
            operation_id=op.attachment.operation_id if op else None,
        )

    def _adopt(self, snap: Snapshot, control_id: int, parked_by_limit: bool = False) -> State:
        """The operator allows one attach without a resume state: the engine finds its branch and
        deploy request by name and tag (the planetscale engine refuses if it finds more than one).

        For an apply the sweep parked because its drivers kept dying (`parked_by_limit`), adopt is
        the operator's "drive it again": the count of orphan claims starts over."""
        if parked_by_limit:
            return fenced_writes.record_control(
                self.rt.db,
                self.apply_id,
                self.token,
                control_id,
                status="done",
                message="adopted: driving it again",
            )
        linked = {t.operation_id for t in snap.tasks}
        op = snap.operation(next(iter(linked))) if len(linked) == 1 else None
        if op is None:
            return self._close_control(
                control_id, "rejected", "the tasks are not linked to exactly one operation: nothing to adopt"
            )
        return fenced_writes.record_control(
            self.rt.db,
            self.apply_id,
            self.token,
            control_id,
            status="done",
            message="adopting: the engine looks for this apply's branch and deploy request by name and tag",
            operation_id=op.operation_id,
            metadata_update={"adopt": True},
        )

    def _control_task_states(
        self, snap: Snapshot, kind: str, op: _Operation | None, after: State | None = None
    ) -> dict[str, State] | None:
        """How a carried-out control moves the tasks; the engine's own word (`after`) wins."""
        unfinished = [t for t in snap.tasks if not t.state.is_terminal]
        if after is not None and (after.is_terminal or after is State.STOPPED):
            return {t.task_id: after for t in unfinished}
        if kind == "stop":
            return {t.task_id: State.STOPPED for t in unfinished}
        if kind == "cancel":
            return {t.task_id: State.CANCELLED for t in unfinished}
        if kind == "start":
            current = {t.task_id for t in op.attachment.tasks} if op else set()
            return {t.task_id: State.RUNNING if t.task_id in current else State.PENDING for t in unfinished}
        return None

    def _close_control(self, control_id: int, status: str, message: str) -> State:
        return fenced_writes.record_control(
            self.rt.db, self.apply_id, self.token, control_id, status=status, message=redact(message)
        )

    # -- errors -------------------------------------------------------------------------------

    def _say_why(self, reason: str) -> None:
        """Show why this owner gives up without writing (best effort: the exit stands anyway)."""
        try:
            fenced_writes.record_stuck(self.rt.db, self.apply_id, self.token, reason)
        except DriverExit as exc:
            log.info("%s: could not record why it waits: %s", self.apply_id, exc)

    def _work_in_flight(self, snap: Snapshot) -> str | None:
        """What of this apply may be running on the provider without us, or None.

        A remote (Vitess) engine's work goes on while nobody drives it: once its operation has a
        resume state, a branch or deploy request may exist, and a change may go live on main
        whatever we write. Ending such an apply on a retry budget would be a verdict on work we
        cannot see (docs/architecture.md §8 invariant 8), so it waits for the provider instead.
        """
        if self.rt.platform_of(snap.apply.engine) != "vitess":
            return None
        for op in snap.operations:
            state = fenced_writes.tracked(op.resume_context)
            if state is None:
                continue
            number = state.get("dr_number") or state.get("deploy_request")
            if number:
                return f"deploy request #{number}"
            return f"branch {state.get('branch') or op.context}"
        return None

    def _engine_call(self, call: Any, operation_id: str) -> Any:
        """Run an engine call; classify what escapes it (docs/architecture.md §7)."""
        try:
            return call()
        except DriverExit:
            raise  # from save_state: the lease is gone or storage is down; write nothing
        except EngineError as exc:
            raise _EngineFailure(exc, exc.retryable, operation_id) from exc
        except Exception as exc:  # an engine bug or an unclassified library error
            if is_infrastructure_error(exc):
                # The broker or the state database, not the engine: no verdict, no attempt used.
                raise InfrastructureUnavailable(
                    f"{self.apply_id}: infrastructure error during an engine step: "
                    f"{type(exc).__name__}: {redact(str(exc))}"
                ) from exc
            log.exception("unexpected error from the engine for %s", self.apply_id)
            wrapped = EngineError(f"unexpected {type(exc).__name__}: {exc}")
            raise _EngineFailure(wrapped, True, operation_id) from exc

    def _fail(
        self, error: BaseException, *, retryable: bool, operation_id: str | None, from_engine: bool = True
    ) -> TickOutcome:
        snap = reads.snapshot(self.rt.db, self.apply_id)
        in_flight = self._work_in_flight(snap) if retryable else None
        backoff = retry_backoff(
            snap.apply.attempt, self.settings.retry_backoff, self.settings.retry_backoff_max
        )
        state = fenced_writes.record_failure(
            self.rt.db,
            self.apply_id,
            self.token,
            redact(str(error)) or type(error).__name__,
            retryable=retryable,
            operation_id=operation_id,
            backoff_seconds=backoff,
            in_flight=in_flight,
            blocked_on="the provider" if from_engine else "this worker's configuration",
        )
        log.warning("%s: %s (%s)", self.apply_id, redact(str(error)), state.value)
        return self.finish()


def retry_backoff(attempt: int, base: float, cap: float) -> float:
    """Seconds before the next attempt: doubling from `base`, never more than `cap`."""
    return min(base * (2 ** min(max(0, attempt - 1), 30)), max(cap, base))


# Modules whose exceptions mean the broker or the state database failed, not the engine. Matched
# by name: schemabot imports neither Celery's transport nor a broker client (tasks -> schemabot).
_INFRASTRUCTURE_MODULES = ("kombu", "redis", "amqp", "celery", "sqlalchemy")


def is_infrastructure_error(exc: BaseException) -> bool:
    """Is `exc` (or an error it was raised from) a broker or state-database failure?

    Engines talk to their target with their own clients (pymysql, httpx); an error of the broker
    client or of SQLAlchemy inside an engine step comes from schemabot's infrastructure
    (a save_state that hit the state database, a message sent from within a step).
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, StorageUnavailable):
            return True
        module = type(current).__module__.split(".")[0]
        if module in _INFRASTRUCTURE_MODULES:
            return True
        current = current.__cause__ or current.__context__
    return False


def busy_step(worked: float, budget: float) -> bool:
    """Did the engine stop because its step budget ran out (so more work is waiting now)?

    An engine doing local work (the online copy) spends its whole budget and should be called
    again at once; pausing `poll_interval` between its steps only idles the copy (it cost about a
    third of a 1M-row copy's time). An engine that returned early is observing or waiting, and
    the poll interval paces it. Half the budget is the line: a copy stops short of its budget
    rather than overrun it (seen: 1.4-1.7 s steps of a 2 s budget), while an observing engine
    returns in a fraction of a second.
    """
    return worked >= 0.5 * budget


def _attached_token(snap: Snapshot, op: _Operation) -> int | None:
    """The token of the owner that last attached the engine to this operation."""
    row = snap.operation(op.attachment.operation_id)
    token = (row.resume_metadata or {}).get("attached_token") if row is not None else None
    return int(token) if token is not None else None


class _EngineFailure(Exception):
    def __init__(self, error: BaseException, retryable: bool, operation_id: str | None) -> None:
        super().__init__(str(error))
        self.error, self.retryable, self.operation_id = error, retryable, operation_id


class _ConfigurationError(Exception):
    """The apply's target or engine is not configured in this worker."""
