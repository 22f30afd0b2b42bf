"""The one contract between schemabot's orchestration and the engines that change schemas.

An engine knows how to change tables on one kind of target (a MySQL server, a PlanetScale
database). It knows nothing of Celery or of schemabot's storage: everything it needs to continue
after a crash lives either in the opaque *resume state* it returns (which schemabot persists on
the apply's operation) or durably on the target itself (a checkpoint table, a branch, a deploy
request).

Rules every engine follows (tests hold each one):

- **Step-driven.** `apply` sets up idempotently and returns; `progress` advances by at most
  `step_budget` seconds and reports. Any worker process may run the next step.
- **Idempotent by context.** `apply` called again with the same `context` (the apply id for a
  grouped apply, the task id for a sequential one) reattaches to work in flight; it never creates
  a second shadow table, branch or deploy request.
- **Persist before act.** Before a side effect that cannot be found again from the target alone,
  the engine calls `request.save_state(new_state)`; schemabot writes it durably (fenced by the
  lease) before the call returns. Exceptions raised by `save_state` must propagate untouched:
  they mean "you no longer own this apply" or "the state database is down", and the engine must
  stop acting at once.
- **Errors are typed.** `RetryableEngineError` (network blips, lock waits, a busy target),
  `PermanentEngineError` (the target rejected the DDL, an unsupported change; the message says
  why in words a person can act on), `ResumeStateNotFound` (the resume state points at something
  that is gone). Anything else escaping an engine is treated as retryable by the orchestrator.
- **No secrets out.** Messages, resume states and events never carry credentials.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import BaseModel

from engines.options import NoOptions
from engines.targets import Target

ResumeState = dict[str, Any]
"""Opaque, JSON-serialisable engine state. Engines version it themselves (a `format` key)."""

SaveState = Callable[[ResumeState], None]


class EngineState(StrEnum):
    """What an engine reports for one table or for the whole operation.

    The values are shared with schemabot's task states so the mapping is the identity; the
    orchestration adds its own apply-only states (`recovering`, `failed_retryable`).
    """

    PENDING = "pending"
    # Vitess set-up phases, in order.
    PREPARING_BRANCH = "preparing_branch"
    APPLYING_BRANCH_CHANGES = "applying_branch_changes"
    CREATING_DEPLOY_REQUEST = "creating_deploy_request"
    VALIDATING_DEPLOY_REQUEST = "validating_deploy_request"
    WAITING_FOR_DEPLOY = "waiting_for_deploy"
    # Work on the table (copying rows, deploying).
    RUNNING = "running"
    STOPPED = "stopped"
    WAITING_FOR_CUTOVER = "waiting_for_cutover"
    CUTTING_OVER = "cutting_over"
    REVERT_WINDOW = "revert_window"
    # Terminal.
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REVERTED = "reverted"


Action = Literal["create", "alter", "drop"]


@dataclass(frozen=True)
class TableChange:
    """One DDL statement on one table. `ddl` is never empty."""

    table: str
    ddl: str
    action: Action


@dataclass(frozen=True)
class NamespaceChange:
    """The changes of one namespace (a MySQL schema, a Vitess keyspace).

    `vschema_changed` is set when the apply carries a VSchema task for this namespace; `vschema`
    is then the desired VSchema document. A VSchema-only namespace has no table changes.
    """

    namespace: str
    tables: tuple[TableChange, ...] = ()
    vschema_changed: bool = False
    vschema: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class ApplyOptions:
    """User options that engines honour.

    `volume` is 1 (gentlest) to 11 (fastest); engines map it onto chunk time, pauses or a
    throttle ratio. `revert_window_seconds` applies to engines with a revert window.
    """

    defer_cutover: bool = False
    skip_revert: bool = False
    volume: int | None = None
    revert_window_seconds: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


def _discard_state(_: ResumeState) -> None:
    """Default `save_state` for callers (tests, benchmarks) that keep the result themselves."""


@dataclass(frozen=True)
class OperationRequest:
    """Everything an engine needs for one call on one operation.

    `context` is the durable key of the operation: engines derive every name they create on
    the target from it (shadow tables, checkpoint rows, branch names, deploy request notes), which
    is what makes `apply` idempotent across owners.
    """

    context: str
    changes: Sequence[NamespaceChange]
    options: ApplyOptions = field(default_factory=ApplyOptions)
    resume_state: ResumeState | None = None
    save_state: SaveState = _discard_state
    step_budget: float = 2.0


ApplyRequest = OperationRequest
ProgressRequest = OperationRequest


@dataclass(frozen=True)
class ControlRequest(OperationRequest):
    """A user's control (stop, start, cutover, cancel, revert, skip_revert, volume).

    `value` carries the argument of controls that take one (volume: "1".."11").
    """

    value: str | None = None


@dataclass(frozen=True)
class ApplyResult:
    """Outcome of `apply`.

    `accepted=False` means "not now, nothing was changed, ask again later" (for example another
    process still holds the table's migration lock); it is not an error.
    `reattached` says whether work in flight was found and continued; `resume_point` says from
    where (a copy watermark, a deploy request number), for the audit log.
    `restart_reason` is set when the engine found old work but had to start over, and why.
    """

    accepted: bool
    resume_state: ResumeState | None = None
    message: str = ""
    reattached: bool = False
    resume_point: str | None = None
    restart_reason: str | None = None


@dataclass(frozen=True)
class TableProgress:
    """Progress of one table. Counts are None where the engine cannot know them."""

    namespace: str
    table: str
    state: EngineState
    rows_copied: int | None = None
    rows_total: int | None = None
    percent: float | None = None
    eta_seconds: int | None = None
    message: str = ""


@dataclass(frozen=True)
class ProgressResult:
    """Outcome of one `progress` step.

    `state` is the state of the whole operation; `tables` the per-table detail (tables not
    listed take the operation's state). `events` are short human-readable facts worth keeping in
    the audit log (a phase change, a cutover, a repaired checksum chunk).
    """

    state: EngineState
    tables: Sequence[TableProgress] = ()
    resume_state: ResumeState | None = None
    message: str = ""
    events: Sequence[str] = ()


@dataclass(frozen=True)
class ControlResult:
    """Outcome of a control. `accepted=False` means refused, with the reason in `message`.

    `state` is the operation's state right after the control when the engine knows it better
    than the control's name says (a PlanetScale `stop` cancels the deploy for good: CANCELLED).
    """

    accepted: bool
    resume_state: ResumeState | None = None
    message: str = ""
    state: EngineState | None = None


class EngineError(Exception):
    """Base of the errors an engine raises on purpose."""

    retryable: ClassVar[bool] = True


class RetryableEngineError(EngineError):
    """A transient failure: the same step can succeed later (lost connection, lock wait)."""

    retryable = True


class PermanentEngineError(EngineError):
    """The change cannot succeed as asked (the target rejected the DDL, unsupported change)."""

    retryable = False


class ResumeStateNotFound(EngineError):
    """The resume state names work (a branch, a deploy request, a checkpoint) that is gone."""

    retryable = False


class ControlNotApplicable(EngineError):
    """A control that this engine cannot carry out now, or ever; the apply itself is unharmed."""

    retryable = False


Platform = Literal["mysql", "vitess"]


class Engine(abc.ABC):
    """An engine bound to one target. Instances are cheap; the orchestrator makes one per call
    site and calls `close()` when done, so an engine may hold connections between calls."""

    name: ClassVar[str]
    platform: ClassVar[Platform] = "mysql"
    # URL schemes of the target DSNs this engine can drive (checked when an apply is submitted).
    dsn_schemes: ClassVar[tuple[str, ...]] = ("mysql", "mariadb")
    # The `engine_options` it accepts (engines/options.py), checked when an apply is submitted.
    options_model: ClassVar[type[BaseModel]] = NoOptions
    # A native engine's change is live when its statement returns: nothing is copied and nothing
    # waits for a cutover (direct). When one apply runs its tables on several engines
    # (schemabot/engine_mix.py), a native engine's tasks run first and never defer a cutover.
    native: ClassVar[bool] = False

    def __init__(self, target: Target) -> None:
        self.target = target

    @abc.abstractmethod
    def apply(self, request: ApplyRequest) -> ApplyResult:
        """Begin the operation, or reattach to it. Idempotent per `request.context`."""

    @abc.abstractmethod
    def progress(self, request: ProgressRequest) -> ProgressResult:
        """Advance by at most `request.step_budget` seconds and report."""

    def stop(self, request: ControlRequest) -> ControlResult:
        raise ControlNotApplicable(f"the {self.name} engine cannot stop an operation")

    def start(self, request: ControlRequest) -> ControlResult:
        raise ControlNotApplicable(f"the {self.name} engine cannot start a stopped operation")

    def cutover(self, request: ControlRequest) -> ControlResult:
        raise ControlNotApplicable(f"the {self.name} engine has no cutover step")

    def cancel(self, request: ControlRequest) -> ControlResult:
        raise ControlNotApplicable(f"the {self.name} engine cannot cancel an operation")

    def revert(self, request: ControlRequest) -> ControlResult:
        raise ControlNotApplicable(f"the {self.name} engine has no revert window")

    def skip_revert(self, request: ControlRequest) -> ControlResult:
        raise ControlNotApplicable(f"the {self.name} engine has no revert window")

    def volume(self, request: ControlRequest) -> ControlResult:
        raise ControlNotApplicable(f"the {self.name} engine has no volume control")

    def close(self) -> None:  # noqa: B027 - optional hook, most engines hold nothing
        """Release connections held between calls."""


CONTROL_KINDS: tuple[str, ...] = (
    "stop",
    "start",
    "cutover",
    "cancel",
    "revert",
    "skip_revert",
    "volume",
)


def call_control(engine: Engine, kind: str, request: ControlRequest) -> ControlResult:
    """Dispatch a control by name, so callers need no table of bound methods."""
    if kind not in CONTROL_KINDS:
        raise ValueError(f"unknown control {kind!r}; expected one of {', '.join(CONTROL_KINDS)}")
    method: Callable[[ControlRequest], ControlResult] = getattr(engine, kind)
    return method(request)
