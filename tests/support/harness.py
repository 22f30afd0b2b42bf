"""In-process orchestration harness: a dispatcher that records messages, and a pump that plays
them like a worker would (without a broker), so orchestration is testable deterministically."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from schemabot import driver, recovery
from schemabot.runtime import Runtime


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
