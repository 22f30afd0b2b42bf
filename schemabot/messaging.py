"""How orchestration asks for work to happen: the Dispatcher, and its broker implementation.

Orchestration functions never import the Celery tasks (imports go tasks -> schemabot); they call
a Dispatcher. Workers pass one that sends through their own app; producers (API, CLI) get
`BrokerDispatcher`, which sends the same messages by task name. Tests pass a recording one.

A message is only a hint: every send may fail or be lost, and the recovery sweep covers it. So
`send` never raises; it logs and reports False.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any, Protocol

from engines.targets import redact

log = logging.getLogger(__name__)

START_APPLY = "schemabot.start_apply"
POLL_PROGRESS = "schemabot.poll_progress"
RESUME_APPLY = "schemabot.resume_apply"
RECOVERY_SWEEP = "schemabot.recovery_sweep"


class Dispatcher(Protocol):
    def start_apply(self, apply_id: str) -> bool: ...

    def poll_progress(self, apply_id: str, token: int, seq: int, countdown: float) -> bool: ...

    def resume_apply(self, apply_id: str, token: int, seq: int = 0, countdown: float = 0) -> bool: ...

    def recovery_sweep(self) -> bool: ...


SendTask = Callable[..., Any]


class BrokerDispatcher:
    """Sends task messages by name through anything with Celery's `send_task` signature."""

    def __init__(self, send_task: SendTask, queue: str, broker_url: str | None = None) -> None:
        self._send_task = send_task
        self._queue = queue
        # RabbitMQ's native delayed delivery (quorum queues) counts whole seconds and refuses a
        # countdown that rounds to 0: round up there (a 0.5 s poll pause becomes 1 s).
        self._whole_seconds = bool(broker_url and broker_url.startswith(AMQP_SCHEMES))

    def _send(self, name: str, args: list[Any], countdown: float = 0, argsrepr: str | None = None) -> bool:
        if countdown and self._whole_seconds:
            countdown = float(math.ceil(countdown))
        try:
            self._send_task(
                name,
                args=args,
                queue=self._queue,
                countdown=countdown or None,
                # What Flower shows as the arguments: which apply, which owner and step.
                argsrepr=argsrepr or repr(args),
                retry=True,
                # Bounded: a producer must not hang while the broker is down; the sweep covers.
                retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.3},
            )
            return True
        except Exception as exc:  # any broker failure: the message is lost, the sweep covers it
            log.warning("could not send %s%s: %s", name, args, redact(str(exc)))
            return False

    def start_apply(self, apply_id: str) -> bool:
        return self._send(START_APPLY, [apply_id], argsrepr=f"{apply_id} (first claim)")

    def poll_progress(self, apply_id: str, token: int, seq: int, countdown: float) -> bool:
        return self._send(
            POLL_PROGRESS, [apply_id, token, seq], countdown, argsrepr=f"{apply_id} token={token} tick={seq}"
        )

    def resume_apply(self, apply_id: str, token: int, seq: int = 0, countdown: float = 0) -> bool:
        return self._send(
            RESUME_APPLY, [apply_id, token, seq], countdown, argsrepr=f"{apply_id} resumed, token={token}"
        )

    def recovery_sweep(self) -> bool:
        return self._send(RECOVERY_SWEEP, [], argsrepr="")


AMQP_SCHEMES = ("amqp://", "amqps://", "pyamqp://")


def broker_conf(broker_url: str) -> dict[str, Any]:
    """Celery settings that depend on the broker, shared by workers, beat and producers (the
    queue must be declared alike by all of them, or RabbitMQ refuses the second declaration).

    Redis: a visibility timeout far above every countdown and the task time limit, and socket
    timeouts so a dead server is noticed. RabbitMQ (`amqp://`): quorum queues (replicated, and a
    message survives a broker restart), publisher confirms (a send returns once the broker has
    the message), and topic exchanges, which Celery's native delayed delivery for the poll
    countdowns needs on quorum queues.
    """
    if broker_url.startswith(AMQP_SCHEMES):
        return {
            "task_default_queue_type": "quorum",
            "task_create_missing_queue_type": "quorum",
            "task_default_exchange_type": "topic",
            "task_create_missing_queue_exchange_type": "topic",
            "broker_transport_options": {"confirm_publish": True, "confirm_timeout": 5.0},
        }
    return {
        "broker_transport_options": {
            "visibility_timeout": 3600,
            "socket_connect_timeout": 5,
            "socket_timeout": 15,
            "socket_keepalive": True,
            "retry_on_timeout": True,
            "health_check_interval": 10,
        }
    }


def producer_dispatcher(broker_url: str, queue: str) -> BrokerDispatcher:
    """A dispatcher for processes that are not workers (the CLI, the HTTP API, user code).

    This is the one place schemabot touches Celery: a bare app used only to publish.
    """
    from celery import Celery

    app = Celery("schemabot-producer", broker=broker_url, set_as_current=False)
    conf = broker_conf(broker_url)
    if not broker_url.startswith(AMQP_SCHEMES):  # a producer gives up sooner than a worker
        conf["broker_transport_options"] = {"socket_connect_timeout": 3, "socket_timeout": 5}
    app.conf.update(conf)
    app.conf.broker_connection_timeout = 3
    return BrokerDispatcher(app.send_task, queue, broker_url)


def check_broker(broker_url: str, timeout: float) -> None:
    """Open one connection to the broker and close it; raises when it cannot (for `/readyz`).

    In this module because it is the one place schemabot touches Celery (and through it kombu).
    """
    from celery import Celery

    app = Celery("schemabot-readiness", broker=broker_url, set_as_current=False)
    app.conf.broker_connection_timeout = timeout
    app.conf.broker_transport_options = {"socket_connect_timeout": timeout, "socket_timeout": timeout}
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=timeout)
        if broker_url.startswith(("redis://", "rediss://")):
            conn.default_channel.client.ping()  # the Redis transport connects lazily
