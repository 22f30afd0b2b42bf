"""Issue 15 §4: what Flower shows. Messages name their apply (argsrepr), the tick that finishes
an apply says its state and tables (phase, progress), and the idle sweep sends no task events (it
filled Flower: 199 of 305 rows)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from schemabot.messaging import BrokerDispatcher


def test_messages_name_their_apply_in_argsrepr() -> None:
    sent: list[tuple[str, dict[str, Any]]] = []
    dispatcher = BrokerDispatcher(lambda name, **kw: sent.append((name, kw)), "q")
    dispatcher.poll_progress("apply-abc", 3, 7, 0.5)
    dispatcher.resume_apply("apply-abc", 4)
    dispatcher.start_apply("apply-abc")
    reprs = [kw["argsrepr"] for _, kw in sent]
    assert reprs == ["apply-abc token=3 tick=7", "apply-abc resumed, token=4", "apply-abc (first claim)"]
    assert sent[0][1]["args"] == ["apply-abc", 3, 7]  # the arguments themselves unchanged


def test_a_tick_result_names_state_table_phase_and_progress() -> None:
    from schemabot.states import State
    from tasks.apply_tasks import describe

    def task(**kw: Any) -> SimpleNamespace:
        # Stored tasks carry their state as a `State` (schemabot/storage/models.py:StateColumn).
        base = {"namespace": "app", "table_name": "orders", "state": State.RUNNING,
                "message": "copy watermark", "percent": 45.2, "rows_copied": 12_000,
                "rows_total": 26_000}  # fmt: skip
        return SimpleNamespace(**{**base, **kw})

    done = task(table_name="users", state=State.COMPLETED, percent=100.0)
    assert describe("running", [done, task()]) == "running · app.orders copy 45% (12,000/26,000 rows)"
    waiting = task(state=State.WAITING_FOR_CUTOVER, percent=100.0, rows_copied=26_000)
    assert describe("waiting_for_cutover", [waiting]) == (
        "waiting_for_cutover · app.orders waiting for cutover (26,000/26,000 rows)"
    )


def test_the_sweep_sends_no_task_events_and_beat_no_sent_events() -> None:
    from tasks import apply_tasks, celery_app

    assert apply_tasks.recovery_sweep.send_events is False
    assert apply_tasks.poll_progress.send_events is True
    before = celery_app.app.conf.task_send_sent_event
    try:
        celery_app._beat_sends_no_sent_events()
        assert celery_app.app.conf.task_send_sent_event is False
    finally:
        celery_app.app.conf.task_send_sent_event = before


def test_a_metrics_exporting_worker_uses_multiprocess_mode_from_its_first_import() -> None:
    """Without PROMETHEUS_MULTIPROC_DIR, SCHEMABOT_METRICS_PORT alone must still give the pool
    processes a shared directory before prometheus_client is imported (by schemabot.driver)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env["SCHEMABOT_METRICS_PORT"] = "9999"
    code = (
        "import os, tasks\n"
        "from prometheus_client import values\n"
        "print(os.environ['PROMETHEUS_MULTIPROC_DIR'])\n"
        "print(values.ValueClass.__name__)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    directory, value_class = done.stdout.split()
    assert os.path.isdir(directory) and "schemabot-metrics-" in directory
    assert value_class == "MmapedValue"


def test_every_tick_that_did_work_says_where_the_apply_is(monkeypatch: Any) -> None:
    """Flower's result column of a tick in the middle of a copy named nothing but "continues";
    now each tick that did work names the state, table, phase and progress, and one that did
    nothing keeps its bare outcome."""
    from schemabot import driver
    from schemabot.states import State
    from tasks import apply_tasks

    task = SimpleNamespace(namespace="app", table_name="orders", state=State.RUNNING, message=None,
                           percent=45.2, rows_copied=12_000, rows_total=26_000)  # fmt: skip
    monkeypatch.setattr(apply_tasks, "runtime", lambda: SimpleNamespace(db=None))
    monkeypatch.setattr(apply_tasks.reads, "tasks_of", lambda db, ids: {ids[0]: [task]})
    assert apply_tasks.summary("apply-abc", driver.TickOutcome.CONTINUES) == (
        "apply-abc: running · app.orders copy 45% (12,000/26,000 rows)"
    )
    assert apply_tasks.summary("apply-abc", driver.TickOutcome.STALE) == "stale"
