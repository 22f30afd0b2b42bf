"""The producer API: submit an apply, read it, ask for a control. The public surface of schemabot.

    from schemabot.api import Client, ChangeSet

    client = Client()                                   # settings from SCHEMABOT_* variables
    result = client.submit_apply(
        target="local", engine="spirit",
        changes=[ChangeSet(namespace="shop", ddl=["ALTER TABLE orders ADD COLUMN note TEXT"])],
        defer_cutover=False, idempotency_key="ci-build-4711",
    )
    status = client.get_apply(result.apply_id)           # ApplyStatus; .to_dict() for JSON
    client.request_control(result.apply_id, "stop")

Everything is validated before anything is stored; the apply, its tasks and its operations are
written in one transaction; `start_apply` is enqueued after the commit (if that enqueue is lost,
the recovery sweep starts the apply).
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from engines.base import Engine
from engines.options import OptionsError, check_options
from engines.registry import UnknownEngine, engine_class
from engines.targets import Target, parse_mysql_dsn
from schemabot import control_rules
from schemabot.apply_options import StoredOptions
from schemabot.changes import VSCHEMA_ACTION
from schemabot.engine_mix import assign_engines, is_mixed, is_native, resolve_choices
from schemabot.errors import ValidationError
from schemabot.grouping import default_atomic, operation_layout, uses_grouped_apply
from schemabot.messaging import Dispatcher
from schemabot.runtime import Runtime, producer_runtime
from schemabot.settings import Settings
from schemabot.states import TERMINAL, WAITING_STATES, State
from schemabot.storage import audit, reads
from schemabot.storage.claims import QueuePlace, cancel_queued, queue_place
from schemabot.storage.control_requests import add_control
from schemabot.storage.models import Apply, Task
from schemabot.storage.submissions import NewApply, NewOperation, NewTask, create_apply


@dataclass(frozen=True)
class ChangeSet:
    """The changes for one namespace (MySQL schema or Vitess keyspace).

    `namespace=None` means the schema named in the target's DSN. `vschema` (Vitess only) is the
    desired VSchema document of the keyspace.
    """

    ddl: Sequence[str] = ()
    namespace: str | None = None
    vschema: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class SubmitResult:
    apply_id: str
    created: bool  # False when the idempotency key returned an existing apply


@dataclass(frozen=True)
class TaskStatus:
    task_id: str
    namespace: str
    table: str
    action: str
    ddl: str | None
    state: State
    rows_copied: int | None
    rows_total: int | None
    percent: float | None
    eta_seconds: int | None
    message: str | None
    # The engine that runs the task, and why `--engine auto` chose it (None: the user named it).
    engine: str | None = None
    engine_reason: str | None = None

    @classmethod
    def of(cls, task: Task, apply_engine: str | None = None) -> TaskStatus:
        return cls(
            task_id=task.task_id,
            namespace=task.namespace,
            table=task.table_name,
            action=task.action,
            ddl=task.ddl,
            state=task.state,
            rows_copied=task.rows_copied,
            rows_total=task.rows_total,
            percent=task.percent,
            eta_seconds=task.eta_seconds,
            message=task.message,
            engine=task.engine or apply_engine,
            engine_reason=task.engine_reason,
        )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(sep=" ") if value else None


@dataclass(frozen=True)
class ApplyStatus:
    apply_id: str
    state: State
    engine: str
    target: str
    database: str
    error: str | None
    attempt: int
    options: dict[str, Any]
    submitted_by: str | None
    created_at: str | None
    updated_at: str | None
    completed_at: str | None
    tasks: list[TaskStatus] = field(default_factory=list)
    # A queued apply (`--after` / queue=true) waiting in `pending`: 1 = next in line, and the
    # applies it waits for. None / empty when it is not queued.
    queue_position: int | None = None
    waiting_for: list[str] = field(default_factory=list)
    # Why the apply is not moving on by itself (waiting_for_provider, needs_attention), else None.
    attention: str | None = None
    # The outcome of its last resume: "reattached at X" or "restarted because Y".
    resume_outcome: str | None = None

    @classmethod
    def of(cls, apply: Apply, tasks: Sequence[Task], place: QueuePlace | None = None) -> ApplyStatus:
        return cls(
            apply_id=apply.apply_id,
            state=apply.state,
            engine=apply.engine,
            target=apply.target,
            database=apply.database,
            error=apply.error,
            attempt=apply.attempt,
            options=dict(apply.options or {}),
            submitted_by=apply.submitted_by,
            created_at=_iso(apply.created_at),
            updated_at=_iso(apply.updated_at),
            completed_at=_iso(apply.completed_at),
            tasks=[TaskStatus.of(t, apply.engine) for t in tasks],
            queue_position=place.position if place else None,
            waiting_for=list(place.waiting_for) if place else [],
            attention=apply.attention,
            resume_outcome=apply.resume_outcome,
        )

    @property
    def is_terminal(self) -> bool:
        return self.state.is_terminal

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ControlReceipt:
    apply_id: str
    kind: str
    control_id: int
    created: bool  # False when the same control was already pending


@dataclass(frozen=True)
class LogEntry:
    at: str | None
    event: str
    message: str | None
    task_id: str | None
    old_state: str | None
    new_state: str | None
    detail: dict[str, Any] | None


MAX_LIST_LIMIT = 1000


def _new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


class Client:
    """Producer-side access to schemabot. Cheap to create; shares the process's connections."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        runtime: Runtime | None = None,
        dispatcher: Dispatcher | None = None,
    ) -> None:
        self.runtime = runtime or producer_runtime(settings)
        if dispatcher is not None:
            self.runtime.dispatcher = dispatcher
        self.settings = self.runtime.settings

    # -- submit -------------------------------------------------------------------------------

    def submit_apply(
        self,
        target: str,
        engine: str,
        changes: Sequence[ChangeSet] | Sequence[str],
        *,
        defer_cutover: bool = False,
        skip_revert: bool = False,
        volume: int | None = None,
        revert_window_seconds: int | None = None,
        idempotency_key: str | None = None,
        engine_options: Mapping[str, Any] | None = None,
        allow_unsafe: bool | None = None,
        requested_by: str | None = None,
        queue: bool = False,
        after: str | None = None,
        atomic: bool | None = None,
        engine_choices: Sequence[tuple[str, str]] | None = None,
    ) -> SubmitResult:
        """Validate and store an apply, then ask a worker to start it.

        `changes` is a list of ChangeSet, or plain DDL strings for the target's default namespace.
        `engine_options` are engine-specific knobs handed to the engine as `ApplyOptions.extra`
        (spirit: `chunk_rows`, `lock_wait_seconds`, `cutover_lock_wait_seconds`).
        `atomic`: all tables as one engine operation that cuts them over together; None takes
        the default (`grouping.default_atomic`: spirit with every table on one schema).
        Raises ValidationError (nothing stored) for an unknown engine or target, bad DDL, a table
        named twice, or options the engine cannot honour. `requested_by` (the HTTP API's token
        name, or the CLI's user) is recorded on the apply and in its audit log.
        `allow_unsafe` (the CLI and HTTP pass it; None skips the check): False refuses statements
        that visibly delete data (DROP TABLE, DROP COLUMN, DROP PRIMARY KEY, a partition dropped
        or emptied, ALTER IGNORE) without connecting, then, on a MySQL target, every ALTER the
        plan's destructive rules find destructive against the live table (narrowed types, shorter
        VARCHARs, charsets...: planning/guard.py), failing closed when the target cannot be
        checked; True lets them through and records the override, with `requested_by`, in the
        audit log.
        `queue`/`after`: TableConflict (a ValidationError) when an unfinished apply on the same
        target changes one of its tables, unless `queue` is true or `after` names an apply to wait
        for: then it waits in `pending` and starts when the tables are free
        (docs/architecture.md §8 invariant 9).
        `engine="auto"` takes `engine_choices`: one (engine, reason) per DDL statement, in the
        order given, as a plan chose them (`planning/service.py:submit_planned`). One engine for
        all is an ordinary apply of that engine; different engines on one MySQL target make one
        mixed apply (`schemabot/engine_mix.py`). Each task stores its engine and the reason.
        """
        plugins = self.settings.engine_plugins
        try:
            target_obj = self.settings.target(target)
        except LookupError as exc:
            raise ValidationError(str(exc)) from None
        engine, choices = resolve_choices(engine, engine_choices)
        mixed = is_mixed(engine)
        if mixed and engine_options is not None:
            raise ValidationError("engine_options need one named engine; a mixed apply takes none")
        names = sorted({e for e, _ in choices}) if mixed else [engine]
        classes = {name: _engine_class_for(name, target, target_obj.scheme, plugins) for name in names}
        if mixed and any(cls.platform != "mysql" for cls in classes.values()):
            raise ValidationError(
                f"engines {names} cannot run in one apply: only MySQL engines mix (per table)"
            )
        copying = [name for name, cls in classes.items() if not cls.native]
        if mixed and len(copying) > 1:
            # The apply's cutover is its one copying engine's (engine_mix.py); two could each wait
            # for a cutover the other's pending tasks would never let the apply reach.
            raise ValidationError(f"engines {copying} cannot run in one apply: at most one may copy")
        engine_cls = classes[names[0]]
        if volume is not None:
            control_rules.normalise_value("volume", volume)
        if idempotency_key is not None and not (0 < len(idempotency_key) <= 191):
            raise ValidationError("the idempotency key must be 1 to 191 characters")

        if after is not None and not isinstance(after, str):
            raise ValidationError("after must be an apply id")
        database, default_namespace = _target_database(target_obj.scheme, target_obj.dsn)
        sets = [ChangeSet(ddl=[c]) if isinstance(c, str) else c for c in changes]
        tasks = _validate_changes(sets, default_namespace, engine_cls.platform, self.settings.max_ddl_bytes)
        tasks = assign_engines(tasks, engine, choices, plugins)
        unsafe = _unsafe_statements(tasks) if allow_unsafe is not None else []
        if unsafe and not allow_unsafe:
            _refuse(unsafe)  # what the text shows: refused without connecting to the target
        tables = [t for t in tasks if t.table]
        # A mixed apply's `atomic` concerns its copying engine's tables (engine_mix.options_for).
        atomic_tables = [t for t in tables if not is_native(t.engine or engine, plugins)] if mixed else tables
        atomic_engine = (atomic_tables[0].engine or engine) if atomic_tables else engine
        decided_atomic = (
            default_atomic(atomic_engine, (t.namespace for t in atomic_tables))
            if atomic is None
            else bool(atomic)
        ) and len(atomic_tables) > 1
        extra: dict[str, Any] = {}
        if engine_options is not None:
            try:
                checked = check_options(engine, engine_cls.options_model, engine_options)
                if checked:
                    extra = json.loads(json.dumps(checked))
            except OptionsError as exc:
                raise ValidationError(str(exc)) from None
            except (TypeError, ValueError):
                raise ValidationError("engine_options must be JSON-serialisable") from None
        if allow_unsafe is False:  # after the cheap checks: this one may ask the target
            _refuse(_unsafe_on_target(self.settings, target_obj, tasks))
        options = StoredOptions(
            defer_cutover=defer_cutover,
            skip_revert=skip_revert,
            atomic=decided_atomic,
            volume=volume,
            revert_window_seconds=revert_window_seconds,
            extra=extra,
            queue=bool(queue),
            after=after,
        ).to_stored()
        grouped = not mixed and uses_grouped_apply(engine, options, plugins)
        asked: dict[str, Any] = {
            "target": target.lower(),
            "engine": engine,
            "options": options,
            "tasks": [[t.namespace, t.table, t.ddl, t.action, t.vschema] for t in tasks],
        }
        if choices:
            asked["engines"] = [t.engine for t in tasks]
        request_hash = hashlib.sha256(json.dumps(asked, sort_keys=True).encode()).hexdigest()
        apply_id = _new_id("apply")
        layout = operation_layout(
            apply_id,
            [t.task_id for t in tasks],
            [t.engine or engine for t in tasks],
            options,
            plugins,
            mixed=mixed,
        )
        new = NewApply(
            apply_id=apply_id,
            target=target.lower(),
            database=database,
            engine=engine,
            options=options,
            grouped=grouped,
            request_hash=request_hash,
            tasks=tasks,
            operations=[NewOperation(_new_id("op"), op.context, op.tasks) for op in layout],
            idempotency_key=idempotency_key,
            submitted_by=requested_by,
            detail=(
                {"unsafe_allowed": {"requested_by": requested_by or "unknown", "statements": unsafe}}
                if unsafe
                else {}
            ),
            queue=queue,
            after=after,
        )
        apply_id, created = create_apply(self.runtime.db, new)
        if created and unsafe:
            who, listed = requested_by or "unknown", "; ".join(f"{ddl!r} {why}" for ddl, why in unsafe)
            note = f"--allow-unsafe by {who}: {listed}"
            self.runtime.db.run(lambda session: audit.append(session, apply_id, "unsafe_allowed", note))
        if created:
            self.runtime.dispatcher.start_apply(apply_id)  # never raises; the sweep covers loss
        return SubmitResult(apply_id, created)

    # -- read ---------------------------------------------------------------------------------

    def get_apply(self, apply_id: str) -> ApplyStatus:
        snap = reads.snapshot(self.runtime.db, apply_id)
        place = queue_place(self.runtime.db, apply_id) if snap.apply.state == State.PENDING.value else None
        return ApplyStatus.of(snap.apply, snap.tasks, place)

    def list_applies(
        self, state: str | None = None, limit: int = 100, *, targets: Sequence[str] | None = None
    ) -> list[ApplyStatus]:
        """The most recent applies, newest first; only those on `targets` when given."""
        if state is not None and state not in {s.value for s in State}:
            raise ValidationError(f"unknown state {state!r}; known: {', '.join(s.value for s in State)}")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST_LIMIT:
            raise ValidationError(f"limit must be a whole number from 1 to {MAX_LIST_LIMIT}, not {limit!r}")
        wanted = None if targets is None else [t.lower() for t in targets]
        applies = reads.list_applies(self.runtime.db, state, limit, wanted)
        tasks = reads.tasks_of(self.runtime.db, [a.apply_id for a in applies])
        return [ApplyStatus.of(a, tasks[a.apply_id]) for a in applies]

    def log(self, apply_id: str) -> list[LogEntry]:
        self.get_apply(apply_id)  # NotFound for an unknown id
        return [
            LogEntry(_iso(e.created_at), e.event, e.message, e.task_id, e.old_state, e.new_state, e.detail)
            for e in audit.entries(self.runtime.db, apply_id)
        ]

    def wait(
        self,
        apply_id: str,
        *,
        timeout: float | None = None,
        interval: float = 0.5,
        stop_at_waiting: bool = True,
    ) -> ApplyStatus:
        """Block until the apply is terminal (or in a waiting state it asked for)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self.get_apply(apply_id)
            state = status.state
            if state in TERMINAL:
                return status
            if stop_at_waiting and state in WAITING_STATES and asked_to_wait(status, state):
                return status
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"{apply_id} still {status.state} after {timeout}s")
            time.sleep(interval)

    # -- control ------------------------------------------------------------------------------

    def request_control(
        self, apply_id: str, kind: str, value: str | int | None = None, *, requested_by: str | None = None
    ) -> ControlReceipt:
        """Record a control for the apply's owner to carry out in its next tick.
        `requested_by` (the HTTP API's token name) goes into the audit log.

        Raises ControlRejected when the apply's state does not allow it (nothing stored).
        A stopped or failed apply has no owner: the sweep is woken to claim it.
        """
        name = control_rules.normalise_kind(kind)
        normalised = control_rules.normalise_value(name, value)
        status = self.get_apply(apply_id)
        control_rules.check_request(name, status.state)
        if name == "cancel" and status.queue_position is not None:
            # A queued apply has no driver: cancel it here, and let the line move on.
            cancelled = cancel_queued(self.runtime.db, apply_id)
            if cancelled is not None:
                return ControlReceipt(apply_id, name, cancelled, True)
        control_id, created = add_control(
            self.runtime.db,
            apply_id,
            name,
            normalised,
            requested_by,
            allowed=lambda state: control_rules.check_request(name, state),
        )
        if name in control_rules.WAKING_KINDS and status.state in control_rules.OWNERLESS_REQUEST_STATES:
            self.runtime.dispatcher.recovery_sweep()
        return ControlReceipt(apply_id, name, control_id, created)


def _engine_class_for(name: str, target: str, scheme: str, plugins: Mapping[str, str]) -> type[Engine]:
    try:
        cls = engine_class(name, plugins)
    except UnknownEngine as exc:
        raise ValidationError(str(exc)) from None
    if scheme not in cls.dsn_schemes:
        raise ValidationError(
            f"engine {name!r} cannot apply to target {target!r} ({scheme}:// DSN); "
            f"it takes {', '.join(s + '://' for s in cls.dsn_schemes)} targets"
        )
    return cls


class UnsafeChange(ValidationError):
    """A destructive statement submitted without allow_unsafe; nothing stored."""


def _refuse(unsafe: Sequence[tuple[str, str]]) -> None:
    if unsafe:
        raise UnsafeChange(
            "destructive change refused: "
            + "; ".join(f"{_quote_for_error(ddl)} {why}" for ddl, why in unsafe)
            + "; pass --allow-unsafe (API: allow_unsafe: true) to apply it"
        )


def _unsafe_on_target(settings: Settings, target: Target, tasks: Sequence[NewTask]) -> list[tuple[str, str]]:
    """(ddl, why) of the ALTERs the plan's destructive rules find on the live MySQL table, or that
    cannot be checked (fail closed: planning/guard.py). Elsewhere (Vitess) the text must be read."""
    from schemabot.planning.destructive import read_text

    if target.scheme not in ("mysql", "mariadb"):
        unread = "cannot be read to tell whether it deletes data"
        return [(t.ddl, unread) for t in tasks if t.ddl and not read_text(t.ddl).understood]
    from schemabot.planning.config import disabled_rules
    from schemabot.planning.guard import Alter, GuardUnavailable, live_reasons

    alters = [Alter(t.namespace, t.table, t.ddl) for t in tasks if t.ddl and t.action == "alter"]
    try:
        return live_reasons(target, alters, disabled_rules(settings, target.name))
    except GuardUnavailable as exc:
        why = f"was not checked for destructive changes: {exc}"
        return [(a.ddl, why) for a in alters]


def _unsafe_statements(tasks: Sequence[NewTask]) -> list[tuple[str, str]]:
    from schemabot.planning.destructive import destructive_reasons

    return [
        (t.ddl, ", ".join(reasons))
        for t in tasks
        if t.ddl and (reasons := destructive_reasons(t.ddl))
    ]


def asked_to_wait(status: ApplyStatus, state: State) -> bool:
    if state is State.WAITING_FOR_CUTOVER:
        return StoredOptions.from_stored(status.options).defer_cutover
    return state is State.REVERT_WINDOW and not StoredOptions.from_stored(status.options).skip_revert


def _target_database(scheme: str, dsn: str) -> tuple[str, str | None]:
    """(database name recorded on the apply, default namespace) for a target DSN."""
    if scheme in ("mysql", "mariadb"):
        address = parse_mysql_dsn(dsn)
        return address.schema or f"{address.host}:{address.port}", address.schema
    from urllib.parse import urlsplit

    parts = urlsplit(dsn)
    database = parts.path.strip("/").split("/")[0] or parts.hostname or dsn.split("://")[0]
    return database, None


def _validate_changes(
    sets: Sequence[ChangeSet], default_namespace: str | None, platform: str, max_ddl_bytes: int
) -> list[NewTask]:
    # Imported here: sqlglot is needed to submit, not to read (`schemabot status` starts faster).
    from schemabot.ddl import check_name, check_namespace, check_text, parse_ddl, quote_for_error

    tasks: list[NewTask] = []
    seen: dict[tuple[str, str], str] = {}
    if not sets:
        raise ValidationError("no changes given: pass at least one DDL statement")
    for change in sets:
        namespace = change.namespace or default_namespace
        if not namespace:
            raise ValidationError("no namespace given and the target's DSN names no schema")
        if not isinstance(namespace, str):
            raise ValidationError("a namespace must be a string")
        check_name(namespace, "namespace")
        if isinstance(change.ddl, str):
            raise ValidationError("ChangeSet.ddl must be a list of statements, not one string")
        if not change.ddl and change.vschema is None:
            raise ValidationError(f"namespace {namespace!r} has no DDL and no VSchema change")
        for statement in change.ddl:
            if not isinstance(statement, str):
                raise ValidationError("each DDL must be a string")
            check_text(statement, "the DDL")
            parsed = parse_ddl(statement, max_bytes=max_ddl_bytes)
            check_namespace(parsed, namespace)
            key = (namespace, parsed.table.lower())
            if key in seen:
                raise ValidationError(
                    f"table {namespace}.{parsed.table} is changed twice ({quote_for_error(seen[key])} and "
                    f"{quote_for_error(parsed.statement)}); combine them into one statement"
                )
            seen[key] = parsed.statement
            tasks.append(NewTask(_new_id("task"), namespace, parsed.table, parsed.statement, parsed.action))
        if change.vschema is not None:
            if platform != "vitess":
                raise ValidationError(
                    f"a VSchema change for {namespace!r} needs a Vitess engine (planetscale)"
                )
            if not isinstance(change.vschema, Mapping):
                raise ValidationError("a VSchema must be a JSON object")
            tasks.append(NewTask(_new_id("task"), namespace, "", None, VSCHEMA_ACTION, dict(change.vschema)))
    return tasks


def _quote_for_error(ddl: str) -> str:
    from schemabot.ddl import quote_for_error  # sqlglot loads only when a submit needs it

    return quote_for_error(ddl)
