"""In-process orchestration harness: a dispatcher that records messages, and a pump that plays
them like a worker would (without a broker), so orchestration is testable deterministically."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session

from schemabot import driver, recovery
from schemabot.errors import StorageUnavailable
from schemabot.runtime import Runtime
from schemabot.storage import reads
from schemabot.storage.clock import db_now
from schemabot.storage.database import Database
from schemabot.storage.models import Apply

T = TypeVar("T")


@dataclass
class Message:
    name: str
    args: tuple[Any, ...]
    countdown: float = 0.0


@dataclass
class RecordingDispatcher:
    messages: list[Message] = field(default_factory=list)
    sent: list[Message] = field(default_factory=list)
    fail_sends: bool = False

    def _add(self, name: str, *args: Any, countdown: float = 0.0) -> bool:
        if self.fail_sends:
            return False
        message = Message(name, args, countdown)
        self.messages.append(message)
        self.sent.append(message)
        return True

    def start_apply(self, apply_id: str) -> bool:
        return self._add("start_apply", apply_id)

    def poll_progress(self, apply_id: str, token: int, seq: int, countdown: float) -> bool:
        return self._add("poll_progress", apply_id, token, seq, countdown=countdown)

    def resume_apply(self, apply_id: str, token: int, seq: int = 0, countdown: float = 0) -> bool:
        return self._add("resume_apply", apply_id, token, seq, countdown=countdown)

    def recovery_sweep(self) -> bool:
        return self._add("recovery_sweep")

    def take(self) -> Message | None:
        return self.messages.pop(0) if self.messages else None

    def drop_all(self) -> list[Message]:
        lost, self.messages = self.messages, []
        return lost


def deliver(rt: Runtime, message: Message) -> Any:
    if message.name == "start_apply":
        return driver.start_apply(rt, *message.args)
    if message.name in ("poll_progress", "resume_apply"):
        return driver.tick(rt, *message.args)
    if message.name == "recovery_sweep":
        return recovery.recovery_sweep(rt)
    raise AssertionError(message.name)


def pump(
    rt: Runtime,
    dispatcher: RecordingDispatcher,
    *,
    max_messages: int = 500,
    until: Callable[[], bool] | None = None,
) -> int:
    """Deliver queued messages in order until none is left (or `until()` holds)."""
    delivered = 0
    while delivered < max_messages:
        if until is not None and until():
            return delivered
        message = dispatcher.take()
        if message is None:
            return delivered
        deliver(rt, message)
        delivered += 1
    raise AssertionError(f"still busy after {max_messages} messages")


def expire_lease(db: Database, apply_id: str) -> None:
    """Make the apply look abandoned: its lease expired a second ago (the owner died)."""
    db.run(
        lambda s: s.execute(
            sa.update(Apply).where(Apply.apply_id == apply_id).values(lease_expires_at=db_now(-1))
        )
    )


def kill_owner(rt: Runtime, dispatcher: RecordingDispatcher, apply_id: str) -> list[Message]:
    """The worker driving `apply_id` dies: its queued messages vanish and its lease expires."""
    lost = dispatcher.drop_all()
    expire_lease(rt.db, apply_id)
    return lost


def durable_view(db: Database, apply_id: str) -> dict[str, Any]:
    """What 'nothing written' is about: state, error, attempt, completion of the apply, its tasks
    and its operations (lease bookkeeping such as heartbeats is deliberately left out)."""
    snap = reads.snapshot(db, apply_id)
    return {
        "apply": (snap.apply.state, snap.apply.error, snap.apply.attempt, snap.apply.completed_at),
        "tasks": [(t.task_id, t.state, t.rows_copied, t.percent, t.completed_at) for t in snap.tasks],
        "operations": [(o.operation_id, o.resume_context, o.resume_metadata) for o in snap.operations],
        "controls": [(c.id, c.status) for c in snap.pending_controls],
    }


class FaultyDatabase(Database):
    """A state database whose units of work fail on demand, by the name of the function that
    defines them (for example "read_resume_state" or "record_attach")."""

    def __init__(self, url: str, retry_seconds: float = 0.2) -> None:
        super().__init__(url, retry_seconds)
        self.failing: set[str] = set()
        self.failed: list[str] = []

    def run(self, work: Callable[[Session], T], *, write: bool = True) -> T:
        owner = getattr(work, "__qualname__", "").split(".<locals>")[0]
        if owner in self.failing or "*" in self.failing:
            self.failed.append(owner)
            raise StorageUnavailable(f"injected state-database failure in {owner}")
        return super().run(work, write=write)
