"""Task wrappers: wiring only. Each receives ids, re-reads the truth and is safe to run twice;
the logic lives in `schemabot.driver` and `schemabot.recovery`."""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import signal
import sys
import time
from typing import Any

from celery import signals

from schemabot import driver, log_redaction, progress, recovery
from schemabot.messaging import POLL_PROGRESS, RECOVERY_SWEEP, RESUME_APPLY, START_APPLY, BrokerDispatcher
from schemabot.runtime import Runtime
from schemabot.storage import reads
from schemabot.storage.database import get_database, reset_after_fork
from tasks.celery_app import app, settings

log = logging.getLogger(__name__)
_runtime: Runtime | None = None


def runtime() -> Runtime:
    """One Runtime per worker process, built on first use (after the fork)."""
    global _runtime
    if _runtime is None:
        _runtime = Runtime(
            settings=settings,
            db=get_database(settings.database_url, settings.storage_retry_seconds),
            dispatcher=BrokerDispatcher(app.send_task, settings.queue, settings.broker_url),
        )
    return _runtime


@signals.worker_process_init.connect
def _after_fork(**_: Any) -> None:
    global _runtime
    _runtime = None
    reset_after_fork()
    # `kill -USR2 <pool process>` writes every thread's stack to the worker's stderr: how to see
    # where a step that seems stuck is waiting, without stopping it (README.md, Watching it).
    # A stderr without a file descriptor (an embedding host) goes without: a debugging aid never
    # stops a worker from starting.
    with contextlib.suppress(AttributeError, OSError, ValueError):
        if sys.__stderr__ is not None:
            faulthandler.register(signal.SIGUSR2, file=sys.__stderr__, all_threads=True)


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def _redact_logs(logger: logging.Logger, **_: Any) -> None:
    log_redaction.install(logger)


# Flower: the messages' argsrepr name the apply (schemabot/messaging.py); a tick that did work
# says where the apply is, as its result: `apply-…: running · app.orders copy 45% (12,000/26,000
# rows)`, or where it ended: `apply-…: completed · app.orders completed (26,000/26,000 rows)`.
# A tick that did nothing returns its bare outcome (stale, exited, not_claimed).
@app.task(name=START_APPLY)
def start_apply(apply_id: str) -> str:
    return summary(apply_id, driver.start_apply(runtime(), apply_id))


@app.task(name=POLL_PROGRESS)
def poll_progress(apply_id: str, token: int, seq: int) -> str:
    return summary(apply_id, driver.tick(runtime(), apply_id, token, seq))


@app.task(name=RESUME_APPLY)
def resume_apply(apply_id: str, token: int, seq: int = 0) -> str:
    return summary(apply_id, driver.tick(runtime(), apply_id, token, seq))


def summary(apply_id: str, outcome: driver.TickOutcome) -> str:
    """The outcome; for a tick that did work (the apply continues, or it finished or parked),
    also the apply's state, its current table and phase (read after a tick that just wrote, so
    the state database answers): what Flower's result column and the worker log show."""
    if outcome is driver.TickOutcome.CONTINUES:
        # Every tick of every apply passes here: one query of the tasks, not a whole snapshot;
        # an apply that continues is where its current task is.
        try:
            tasks = reads.tasks_of(runtime().db, [apply_id])[apply_id]
        except Exception:
            return outcome.value
        current = next((t for t in tasks if not t.state.is_terminal), None)
        return f"{apply_id}: {describe(current.state, tasks)}" if current else outcome.value
    if outcome is not driver.TickOutcome.FINISHED:
        return outcome.value
    try:
        snap = reads.snapshot(runtime().db, apply_id)
    except Exception:
        return outcome.value
    return f"{apply_id}: {describe(snap.apply.state, snap.tasks)}"


def describe(state: str, tasks: list[Any]) -> str:
    current = next((t for t in tasks if not t.state.is_terminal), tasks[-1] if tasks else None)
    if current is None:
        return state
    where = f"{current.namespace}.{current.table_name or '(vschema)'} {progress.phase_of(current)}"
    if current.percent is not None and current.state == "running":
        where += f" {current.percent:.0f}%"
    if current.rows_total:
        where += f" ({current.rows_copied or 0:,}/{current.rows_total:,} rows)"
    return f"{state} · {where}"


# When this process last finished a sweep (its own monotonic clock: no other host's clock is
# read). Sweep messages carry no expiry (a worker whose clock ran ahead of beat's would discard
# every one), so when workers fall behind, sweeps queue up; one that arrives moments after this
# process swept is skipped at once, and the backlog drains instead of delaying resume messages.
_last_sweep_end: float | None = None


# The sweep runs every few seconds and almost always finds nothing: it sends no task events, so
# Flower lists the applies' tasks, not hundreds of idle sweeps (what it claims shows up there as
# resume_apply tasks). Its duration and last run are metrics (schemabot/metrics.py).
@app.task(name=RECOVERY_SWEEP, send_events=False)
def recovery_sweep() -> dict[str, Any]:
    global _last_sweep_end
    if _last_sweep_end is not None and time.monotonic() - _last_sweep_end < settings.sweep_interval / 2:
        return {"skipped": "this process swept moments ago"}
    started = time.monotonic()
    try:
        report = recovery.recovery_sweep(runtime())
    finally:
        _last_sweep_end = time.monotonic()
    _sweep_finished(_last_sweep_end - started)
    return {
        "claimed": [f"{c.apply_id}:{c.reason}" for c in report.claimed],
        "expired": report.expired,
        "storage_error": report.storage_error,
    }


def _sweep_finished(seconds: float) -> None:
    from schemabot import metrics

    metrics.sweep_finished(seconds)
