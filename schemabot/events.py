"""Apply events after they are committed: the one hook behind metrics and webhooks.

`storage.audit.append` is where every transition is recorded (docs/architecture.md §2, the
audit log); it hands each entry to `recorded`, which keeps it on the session and, only once the
transaction commits, puts it on a per-process queue. A daemon thread drains the queue and calls
the observers (`schemabot.metrics`, `schemabot.notifications`). So:

- an entry of a rolled-back or retried transaction is never observed (no webhook for a transition
  that did not happen, and a fenced-out driver notifies nobody: §8 invariant 1);
- the tick never waits for an observer: `recorded` costs an append to a list, the commit hook a
  `put_nowait`; slow receivers and their retries happen on the thread;
- a forked worker process starts its own thread on its first event.

A process that exits (the CLI after a submit) waits for its webhook deliveries for at most
`DRAIN_SECONDS`.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

# Audit events an observer cares about; the rest (engine chatter, notes) is not queued.
OBSERVED = frozenset({"state", "submitted", "claimed", "resume", "control", "attention"})
QUEUE_SIZE = 10_000
DRAIN_SECONDS = 10.0
_KEY = "schemabot_events"


@dataclass(frozen=True)
class Recorded:
    """One committed audit entry, as the observers see it."""

    apply_id: str
    event: str
    message: str | None
    task_id: str | None
    old_state: str | None
    new_state: str | None
    detail: dict[str, Any] | None
    at: float = field(default_factory=time.time)
    bind: Engine | None = field(default=None, compare=False, repr=False)


def recorded(
    session: Session,
    apply_id: str,
    event: str,
    message: str | None,
    *,
    task_id: str | None = None,
    old_state: str | None = None,
    new_state: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Called by `audit.append` inside the transaction; observed after it commits."""
    if event not in OBSERVED:
        return
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else getattr(bind, "engine", None)
    pending: list[Recorded] | None = session.info.get(_KEY)
    if pending is None:
        pending = session.info[_KEY] = []
        sa_event.listen(session, "after_commit", _after_commit)
        sa_event.listen(session, "after_rollback", _after_rollback)
    pending.append(
        Recorded(apply_id, event, message, task_id, old_state, new_state, dict(detail or {}), bind=engine)
    )


def _after_commit(session: Session) -> None:
    entries = session.info.pop(_KEY, None) or []
    if entries:
        session.info[_KEY] = []  # the session may run another transaction
    for entry in entries:
        _dispatcher().put(entry)


def _after_rollback(session: Session) -> None:
    if session.info.get(_KEY):
        session.info[_KEY] = []


# -- the per-process dispatcher ----------------------------------------------------------------


class _Dispatcher:
    def __init__(self) -> None:
        self.pid = os.getpid()
        self.queue: queue.Queue[Recorded] = queue.Queue(QUEUE_SIZE)
        self.busy = 0
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._loop, name="schemabot-events", daemon=True)
        self.thread.start()

    def put(self, entry: Recorded) -> None:
        try:
            self.queue.put_nowait(entry)
        except queue.Full:
            log.warning(
                "event queue full: %s %s of %s not observed", entry.event, entry.new_state, entry.apply_id
            )

    def _loop(self) -> None:
        while True:
            entry = self.queue.get()
            try:
                observe(entry)
            except Exception:  # an observer must never kill the thread
                log.exception("observing %s of %s failed", entry.event, entry.apply_id)
            finally:
                self.queue.task_done()

    def drain(self, timeout: float) -> bool:
        """Wait until every queued entry is observed (or `timeout`); True when drained."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.queue.unfinished_tasks == 0:
                return True
            time.sleep(0.02)
        return self.queue.unfinished_tasks == 0


_current: _Dispatcher | None = None
_lock = threading.Lock()


def _dispatcher() -> _Dispatcher:
    global _current
    with _lock:
        if _current is None or _current.pid != os.getpid():  # first use, or a forked child
            _current = _Dispatcher()
        return _current


def drain(timeout: float = DRAIN_SECONDS) -> bool:
    """Wait for this process's observers to finish (tests, and the CLI before it exits)."""
    current = _current
    if current is None or current.pid != os.getpid():
        return True
    return current.drain(timeout)


def _drain_at_exit() -> None:
    """Give queued webhook deliveries a bounded chance before the process exits (the CLI after a
    submit); with no webhook configured only metrics are pending, and they die with the process."""
    current = _current
    if current is None or current.pid != os.getpid() or current.queue.unfinished_tasks == 0:
        return
    try:
        from schemabot.notifications import webhook_settings

        if not webhook_settings().all():
            return
    except Exception:
        return
    drain(DRAIN_SECONDS)


atexit.register(_drain_at_exit)


class ApplyRow:
    """The apply of an entry as committed, read at most once and only if an observer asks."""

    def __init__(self, entry: Recorded) -> None:
        self.entry = entry
        self._row: dict[str, Any] | None = None
        self._read = False

    def get(self) -> dict[str, Any] | None:
        if not self._read:
            self._read = True
            self._row = _apply_row(self.entry)
        return self._row


def observe(entry: Recorded) -> None:
    """Hand one committed entry to every observer (imported here, on the events thread)."""
    from schemabot import metrics, notifications

    apply_row = ApplyRow(entry)
    metrics.observe(entry, apply_row)
    notifications.observe(entry, apply_row)


def _apply_row(entry: Recorded) -> dict[str, Any] | None:
    """The apply as committed (target, engine, timestamps, error), read on the events thread."""
    if entry.bind is None:
        return None
    import sqlalchemy as sa

    from schemabot.storage.models import Apply

    try:
        with Session(bind=entry.bind) as session:
            row = session.execute(
                sa.select(
                    Apply.apply_id,
                    Apply.target,
                    Apply.database,
                    Apply.engine,
                    Apply.state,
                    Apply.options,
                    Apply.error,
                    Apply.attempt,
                    Apply.submitted_by,
                    Apply.created_at,
                    Apply.started_at,
                    Apply.completed_at,
                ).where(Apply.apply_id == entry.apply_id)
            ).one_or_none()
            return dict(row._mapping) if row is not None else None
    except Exception as exc:
        log.warning("reading %s for its observers failed: %s", entry.apply_id, exc)
        return None
