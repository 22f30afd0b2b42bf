"""Prometheus metrics (prometheus_client), from two sources.

Counted where it happens, in the process that does it (worker, serve, CLI), from the committed
audit entries (`schemabot.events`) and a few direct calls:

    schemabot_apply_duration_seconds{engine,outcome}       histogram, submit to terminal state
    schemabot_transitions_total{state}                     applies entering a state
    schemabot_recoveries_total{kind}                       orphaned|unstarted|retry claims by the
                                                           sweep; reattached|restarted on resume
    schemabot_control_requests_total{kind,outcome}         requested|done|rejected
    schemabot_engine_errors_total{engine,class}            retryable|permanent (an engine's
                                                           verdicts), retry_exhausted (the sweep
                                                           gave up: budget or age) and
                                                           infrastructure (a tick that exited;
                                                           not one fenced out by LeaseLost)
    schemabot_sweep_duration_seconds                       histogram
    schemabot_sweep_last_run_timestamp_seconds             gauge (max over processes)
    schemabot_webhook_deliveries_total{outcome}            delivered|rejected|failed
    schemabot_provider_api_calls_total{provider,outcome}   ok|error (planetscale)

Read from the state database at scrape time by `schemabot serve` (the truth, whatever process
wrote it):

    schemabot_applies{state,engine}                        gauge, every apply by state
    schemabot_task_rows_copied{apply_id,table,engine}      gauges per unfinished task
    schemabot_task_rows_total{...}  schemabot_task_percent{...}  schemabot_task_eta_seconds{...}
    schemabot_task_copy_rate_rows_per_second{...}          rows copied / seconds the task spent
                                                           copying (its `running` spells in the
                                                           audit log), so a table copied after
                                                           another, or a copy stopped for a
                                                           while, is not shown slower than it is
    schemabot_recovery_lag_seconds                         oldest expired lease of an active apply

Prefork workers: set `PROMETHEUS_MULTIPROC_DIR` to an empty directory shared by the worker's
processes (and by `serve` on the same host, to show the workers' counters on its /metrics);
`SCHEMABOT_METRICS_PORT` makes the worker's main process export them (tasks/celery_app.py).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

from schemabot.events import ApplyRow, Recorded

log = logging.getLogger(__name__)

DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 3 * 3600, 12 * 3600, 24 * 3600, 7 * 86400)

APPLY_DURATION = Histogram(
    "schemabot_apply_duration_seconds",
    "Seconds from submission to a terminal state",
    ["engine", "outcome"],
    buckets=DURATION_BUCKETS,
)
TRANSITIONS = Counter("schemabot_transitions", "Applies entering a state", ["state"])
RECOVERIES = Counter(
    "schemabot_recoveries", "Sweep claims (orphaned, unstarted, retry) and resumes (reattached, restarted)",
    ["kind"],
)  # fmt: skip
CONTROLS = Counter("schemabot_control_requests", "Control requests by kind and outcome", ["kind", "outcome"])
ENGINE_ERRORS = Counter(
    "schemabot_engine_errors",
    "Errors by class: retryable, permanent, retry_exhausted, infrastructure",
    ["engine", "class"],
)
# The task state in which an engine copies rows (docs/architecture.md §3).
COPYING = "running"
SWEEP_DURATION = Histogram(
    "schemabot_sweep_duration_seconds", "Recovery sweep duration", buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 30)
)
SWEEP_LAST = Gauge(
    "schemabot_sweep_last_run_timestamp_seconds",
    "When a recovery sweep last finished",
    multiprocess_mode="max",
)
WEBHOOKS = Counter("schemabot_webhook_deliveries", "Webhook deliveries by outcome", ["outcome"])
PROVIDER_CALLS = Counter(
    "schemabot_provider_api_calls", "Provider API calls by outcome", ["provider", "outcome"]
)


def _seconds(start: Any, end: Any) -> float | None:
    if not isinstance(start, datetime) or not isinstance(end, datetime):
        return None
    if (start.tzinfo is None) != (end.tzinfo is None):
        start, end = start.replace(tzinfo=None), end.replace(tzinfo=None)
    return max(0.0, (end - start).total_seconds())


def observe(entry: Recorded, row: ApplyRow) -> None:
    """Count one committed audit entry (on the events thread). The apply row (engine, times) is
    read only for verdicts and terminal states."""
    detail = entry.detail or {}
    if entry.event in ("state", "submitted") and entry.new_state:
        TRANSITIONS.labels(entry.new_state).inc()
        if entry.new_state == "failed_retryable":
            apply = row.get()
            ENGINE_ERRORS.labels((apply or {}).get("engine") or "unknown", "retryable").inc()
        if entry.event == "state" and entry.new_state in ("completed", "failed", "cancelled", "reverted"):
            apply = row.get()
            engine = (apply or {}).get("engine") or "unknown"
            if entry.new_state == "failed":
                ENGINE_ERRORS.labels(engine, failure_class(detail)).inc()
            duration = _seconds((apply or {}).get("created_at"), (apply or {}).get("completed_at"))
            if duration is not None:
                APPLY_DURATION.labels(engine, entry.new_state).observe(duration)
    elif entry.event == "claimed":
        RECOVERIES.labels(str(detail.get("reason") or "orphaned")).inc()
    elif entry.event == "resume":
        RECOVERIES.labels("reattached" if detail.get("reattached") else "restarted").inc()
    elif entry.event == "control":
        kind = str(detail.get("kind") or (entry.message or "").split(" ")[0].rstrip(":") or "unknown")
        outcome = "requested"
        parts = (entry.message or "").split(": ")
        if len(parts) >= 2 and parts[1] in ("done", "rejected"):
            outcome = parts[1]
        CONTROLS.labels(kind, outcome).inc()


def failure_class(detail: dict[str, Any]) -> str:
    """How an apply came to `failed`, from its audit entry's detail: the sweep gave up on its
    retries (`gave_up`: the budget or the age limit, storage/sweep.py:expire_retryables), or an
    engine's permanent verdict. The retries themselves were counted as `retryable` already."""
    return "retry_exhausted" if detail.get("gave_up") else "permanent"


def infrastructure_error(engine: str | None = None) -> None:
    """A tick that exited without writing (state database, broker, resume state: §7), under the
    apply's engine when the tick had read it. A LeaseLost is not one: the caller skips it."""
    ENGINE_ERRORS.labels(engine or "unknown", "infrastructure").inc()


def copying_seconds(moves: Iterable[tuple[str | None, Any]], now: Any) -> float | None:
    """Seconds a task spent in its copying state, from its state moves `(new_state, at)` in
    order (the `task_state` audit entries), up to `now` if it is still copying; None if it never
    copied. The copy rate divides by this rather than by the apply's age, which also counts
    the tables before it and the time it was stopped."""
    total, since, copied = 0.0, None, False
    for new_state, at in moves:
        if new_state == COPYING:
            if since is None:
                since, copied = at, True
        elif since is not None:
            total += _seconds(since, at) or 0.0
            since = None
    if since is not None:
        total += _seconds(since, now) or 0.0
    return total if copied else None


def sweep_finished(seconds: float) -> None:
    SWEEP_DURATION.observe(seconds)
    SWEEP_LAST.set(time.time())


def webhook_delivered(outcome: str) -> None:
    WEBHOOKS.labels(outcome).inc()


def provider_call(provider: str, ok: bool) -> None:
    PROVIDER_CALLS.labels(provider, "ok" if ok else "error").inc()


def _watch_providers() -> None:
    from engines.planetscale import api

    if not any(getattr(o, "__name__", "") == "_planetscale_call" for o in api.CALL_OBSERVERS):

        def _planetscale_call(_method: str, ok: bool) -> None:
            provider_call("planetscale", ok)

        api.CALL_OBSERVERS.append(_planetscale_call)


_watch_providers()


# -- scrape-time gauges from the state database --------------------------------------------------


class StateCollector(Collector):
    """Gauges read from the state database at each scrape (`db` is a schemabot Database)."""

    def __init__(self, db: Any) -> None:
        self.db = db

    def describe(self) -> Iterator[Any]:
        return iter(())  # no collection at registration time

    def collect(self) -> Iterator[Any]:
        try:
            rows = self.db.run(_read_state, write=False)
        except Exception as exc:
            log.warning("metrics: state database unreadable: %s", exc)
            up = GaugeMetricFamily("schemabot_state_database_up", "The state database answered the scrape")
            up.add_metric([], 0)
            yield up
            return
        up = GaugeMetricFamily("schemabot_state_database_up", "The state database answered the scrape")
        up.add_metric([], 1)
        yield up
        applies = GaugeMetricFamily(
            "schemabot_applies", "Applies by state and engine", labels=["state", "engine"]
        )
        for state, engine, count in rows["applies"]:
            applies.add_metric([state, engine], count)
        yield applies
        labels = ["apply_id", "table", "engine", "phase"]
        copied = GaugeMetricFamily(
            "schemabot_task_rows_copied", "Rows copied, unfinished tasks", labels=labels
        )
        total = GaugeMetricFamily(
            "schemabot_task_rows_total", "Rows to copy, unfinished tasks", labels=labels
        )
        percent = GaugeMetricFamily("schemabot_task_percent", "Percent done, unfinished tasks", labels=labels)
        eta = GaugeMetricFamily("schemabot_task_eta_seconds", "Engine's ETA, unfinished tasks", labels=labels)
        rate = GaugeMetricFamily(
            "schemabot_task_copy_rate_rows_per_second", "Rows copied per second of copying", labels=labels
        )
        for t in rows["tasks"]:
            key = [t["apply_id"], f"{t['namespace']}.{t['table_name']}", t["engine"], t["state"]]
            copied.add_metric(key, t["rows_copied"] or 0)
            total.add_metric(key, t["rows_total"] or 0)
            percent.add_metric(key, t["percent"] or 0)
            if t["eta_seconds"] is not None:
                eta.add_metric(key, t["eta_seconds"])
            elapsed = t["copy_seconds"]
            if elapsed and t["rows_copied"]:
                rate.add_metric(key, t["rows_copied"] / elapsed)
        yield from (copied, total, percent, eta, rate)
        lag = GaugeMetricFamily(
            "schemabot_recovery_lag_seconds", "Age of the oldest expired lease of an active apply (0: none)"
        )
        lag.add_metric([], rows["lag"])
        yield lag


def _read_state(session: Any) -> dict[str, Any]:
    import sqlalchemy as sa

    from schemabot.states import ACTIVE, PARKED
    from schemabot.storage.clock import db_now
    from schemabot.storage.models import Apply, ApplyLog, Task

    now = session.scalar(sa.select(db_now()))
    applies = session.execute(
        sa.select(Apply.state, Apply.engine, sa.func.count()).group_by(Apply.state, Apply.engine)
    ).all()
    unfinished = [s.value for s in ACTIVE | PARKED]
    tasks = session.execute(
        sa.select(
            Task.apply_id,
            Task.task_id,
            Task.namespace,
            Task.table_name,
            Task.state,
            Task.rows_copied,
            Task.rows_total,
            Task.percent,
            Task.eta_seconds,
            # The task's own engine (a mixed apply, engine_mix.py), else the apply's (before 0006).
            sa.func.coalesce(Task.engine, Apply.engine).label("engine"),
        )
        .join(Apply, Apply.apply_id == Task.apply_id)
        .where(Apply.state.in_(unfinished), Task.state.in_(unfinished))
        .limit(1000)
    ).all()
    found = [dict(t._mapping) for t in tasks]
    moves: dict[str, list[tuple[str | None, Any]]] = {t["task_id"]: [] for t in found}
    if found:
        for task_id, new_state, at in session.execute(
            sa.select(ApplyLog.task_id, ApplyLog.new_state, ApplyLog.created_at)
            .where(
                ApplyLog.apply_id.in_({t["apply_id"] for t in found}),
                ApplyLog.event == "task_state",
            )
            .order_by(ApplyLog.id)
        ):
            if task_id in moves:
                moves[task_id].append((new_state, at))
    for t in found:
        t["copy_seconds"] = copying_seconds(moves[t["task_id"]], now)
    oldest = session.scalar(
        sa.select(sa.func.min(Apply.lease_expires_at)).where(
            Apply.state.in_([s.value for s in ACTIVE]), Apply.lease_expires_at < now
        )
    )
    lag = _seconds(oldest, now) or 0.0
    return {"applies": applies, "tasks": found, "now": now, "lag": lag}


# -- exposition -------------------------------------------------------------------------------------


def registry(db: Any | None = None) -> CollectorRegistry:
    """What to expose: this process's metrics, or with PROMETHEUS_MULTIPROC_DIR every process's
    that shares the directory; plus the state database's gauges when `db` is given."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        reg = CollectorRegistry()
        multiprocess.MultiProcessCollector(reg)
    else:
        reg = CollectorRegistry()
        reg.register(_Forward(REGISTRY))
    if db is not None:
        reg.register(StateCollector(db))
    return reg


class _Forward(Collector):
    """The process-wide registry's metrics inside another registry."""

    def __init__(self, source: CollectorRegistry) -> None:
        self.source = source

    def collect(self) -> Iterator[Any]:
        return iter(list(self.source.collect()))

    def describe(self) -> Iterator[Any]:
        return iter(())


def exposition(reg: CollectorRegistry) -> tuple[bytes, str]:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return generate_latest(reg), CONTENT_TYPE_LATEST
