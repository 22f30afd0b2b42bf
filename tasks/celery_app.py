"""The Celery app and its reliability configuration (docs/architecture.md §4).

Messages are hints; the database is the truth. The settings below make message loss rare and
duplicates harmless, and the recovery sweep covers whatever is still lost:

- acks late + reject on worker lost: a task whose worker dies is redelivered, not dropped;
- prefetch 1: a worker holds no backlog that would die with it;
- visibility timeout of an hour, far above every countdown (seconds) and the task time limit, so
  the Redis transport does not redeliver a healthy message while it waits; on RabbitMQ, quorum
  queues and publisher confirms (`schemabot.messaging.broker_conf`);
- reconnect to the broker forever, also on start-up;
- task and worker events on, for Flower; results ignored (the state database has them).
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, signals

from schemabot.messaging import RECOVERY_SWEEP, broker_conf
from schemabot.settings import get_settings

settings = get_settings()

app = Celery("schemabot")
app.conf.update(
    broker_url=settings.broker_url,
    task_default_queue=settings.queue,
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    # A tick that loses the broker connection is cancelled and redelivered; ticks are fenced and
    # step-bounded, so that is safe, and it avoids running on after the message was requeued.
    worker_cancel_long_running_tasks_on_connection_loss=True,
    # Redis: visibility timeout and socket timeouts; RabbitMQ: quorum queues, publisher confirms.
    **broker_conf(settings.broker_url),
    broker_connection_retry=True,
    broker_connection_retry_on_startup=True,
    broker_connection_max_retries=None,
    worker_send_task_events=True,
    task_send_sent_event=True,
    task_track_started=True,
    task_time_limit=settings.task_time_limit,
    task_soft_time_limit=settings.task_time_limit * 0.8,
    worker_max_tasks_per_child=1000,
    beat_schedule={
        "recovery-sweep": {
            "task": RECOVERY_SWEEP,
            "schedule": settings.sweep_interval,
            # No `expires`: Celery turns it into an absolute time on beat's clock, and a worker
            # whose clock runs ahead would discard every sweep as revoked, turning recovery off.
            # A stale sweep is harmless by design (every claim is a compare-and-swap in database
            # time), so a late one just finds less to do (docs/architecture.md §4).
        }
    },
)


# -- metrics (schemabot/metrics.py) ---------------------------------------------------------------
# With SCHEMABOT_METRICS_PORT the worker's main process serves /metrics for all its pool
# processes, which write their values to PROMETHEUS_MULTIPROC_DIR (tasks/__init__.py makes a
# private one when none is given, before anything imports prometheus_client).
METRICS_PORT = os.environ.get("SCHEMABOT_METRICS_PORT")


@signals.worker_init.connect
def _export_metrics(**_: Any) -> None:
    if not METRICS_PORT:
        return
    from prometheus_client import start_http_server

    from schemabot import metrics

    start_http_server(int(METRICS_PORT), registry=metrics.registry())


@signals.worker_process_shutdown.connect
def _forget_process_metrics(pid: int | None = None, **_: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid())


@signals.beat_init.connect
def _beat_sends_no_sent_events(sender: Any = None, **_: Any) -> None:
    """Beat only sends sweeps: no task-sent event for them (Flower stays quiet when idle)."""
    app.conf.task_send_sent_event = False
