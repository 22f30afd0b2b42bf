"""Task wrappers: wiring only. Each receives ids, re-reads the truth and is safe to run twice;
the logic lives in `schemabot.driver` and `schemabot.recovery`."""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import signals

from schemabot import driver, log_redaction, recovery
from schemabot.messaging import POLL_PROGRESS, RECOVERY_SWEEP, RESUME_APPLY, START_APPLY, BrokerDispatcher
from schemabot.runtime import Runtime
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


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def _redact_logs(logger: logging.Logger, **_: Any) -> None:
    log_redaction.install(logger)


@app.task(name=START_APPLY)
def start_apply(apply_id: str) -> str:
    return driver.start_apply(runtime(), apply_id).value


@app.task(name=POLL_PROGRESS)
def poll_progress(apply_id: str, token: int, seq: int) -> str:
    return driver.tick(runtime(), apply_id, token, seq).value


@app.task(name=RESUME_APPLY)
def resume_apply(apply_id: str, token: int, seq: int = 0) -> str:
    return driver.tick(runtime(), apply_id, token, seq).value


# When this process last finished a sweep (its own monotonic clock: no other host's clock is
# read). Sweep messages carry no expiry (a worker whose clock ran ahead of beat's would discard
# every one), so when workers fall behind, sweeps queue up; one that arrives moments after this
# process swept is skipped at once, and the backlog drains instead of delaying resume messages.
_last_sweep_end: float | None = None


@app.task(name=RECOVERY_SWEEP)
def recovery_sweep() -> dict[str, Any]:
    global _last_sweep_end
    if _last_sweep_end is not None and time.monotonic() - _last_sweep_end < settings.sweep_interval / 2:
        return {"skipped": "this process swept moments ago"}
    try:
        report = recovery.recovery_sweep(runtime())
    finally:
        _last_sweep_end = time.monotonic()
    return {
        "claimed": [f"{c.apply_id}:{c.reason}" for c in report.claimed],
        "expired": report.expired,
        "storage_error": report.storage_error,
    }
