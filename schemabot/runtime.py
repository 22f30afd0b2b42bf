"""What orchestration needs from the outside world, gathered in one object.

Tasks build a Runtime from settings in each worker process; tests build one with a recording
dispatcher or a fake engine. Orchestration functions take it as their first argument.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from functools import cached_property

from engines.base import Engine, Platform
from engines.registry import build_engine, engine_platform
from schemabot.engine_mix import is_mixed
from schemabot.grouping import uses_grouped_apply
from schemabot.messaging import Dispatcher, producer_dispatcher
from schemabot.settings import Settings, get_settings
from schemabot.storage.database import Database, get_database
from schemabot.storage.models import Apply


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Runtime:
    settings: Settings
    db: Database
    dispatcher: Dispatcher
    owner: str = field(default_factory=default_owner)

    def engine_for(self, apply: Apply, engine: str | None = None) -> Engine:
        """An engine bound to the apply's target: `engine` (a task's own, in a mixed apply), else
        the apply's."""
        target = self.settings.target(apply.target)
        return build_engine(engine or apply.engine, target, self.settings.engine_plugins)

    def platform_of(self, engine: str) -> Platform:
        if is_mixed(engine):
            return "mysql"  # only MySQL engines mix (schemabot/engine_mix.py)
        return engine_platform(engine, self.settings.engine_plugins)

    def grouped(self, apply: Apply) -> bool:
        """The one predicate on the stored apply. A mixed apply is driven operation by operation
        (its layout was decided per engine at submit, grouping.operation_layout)."""
        if is_mixed(apply.engine):
            return False
        return uses_grouped_apply(apply.engine, apply.options or {}, self.settings.engine_plugins)


class _LazyProducerDispatcher:
    """Connects to the broker only when a message is first sent (reads need no broker)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    @cached_property
    def _inner(self) -> Dispatcher:
        return producer_dispatcher(self._settings.broker_url, self._settings.queue)

    def start_apply(self, apply_id: str) -> bool:
        return self._inner.start_apply(apply_id)

    def poll_progress(self, apply_id: str, token: int, seq: int, countdown: float) -> bool:
        return self._inner.poll_progress(apply_id, token, seq, countdown)

    def resume_apply(self, apply_id: str, token: int, seq: int = 0, countdown: float = 0) -> bool:
        return self._inner.resume_apply(apply_id, token, seq, countdown)

    def recovery_sweep(self) -> bool:
        return self._inner.recovery_sweep()


def producer_runtime(settings: Settings | None = None) -> Runtime:
    settings = settings or get_settings()
    return Runtime(
        settings=settings,
        db=get_database(settings.database_url, settings.storage_retry_seconds),
        dispatcher=_LazyProducerDispatcher(settings),
    )
