"""Issue 15 §4: `watch` tells the truth: the phase by name, rows/s and one ETA from a smoothed
rate, elapsed time, and the next command (with a newline) when the apply waits for cutover."""

from __future__ import annotations

import io
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest
from rich.console import Console

from schemabot import watch as watch_module
from schemabot.api import ApplyStatus, TaskStatus
from schemabot.progress import RateEstimate, duration, next_command, phase_of
from schemabot.states import State


def test_the_eta_waits_for_a_span_of_progress_then_follows_the_smoothed_rate() -> None:
    est = RateEstimate()
    est.add(0.0, 0)
    est.add(0.5, 5)  # one early poll at low volume: too little to tell
    assert est.eta(1400) is None and est.rate() is None
    # Then a steady 100 rows/s with jittery polls.
    t, rows = 0.5, 5
    for step, jitter in enumerate([0.3, 0.7, 0.4, 0.6, 0.5, 0.5, 0.9, 0.1] * 3):
        t += jitter
        rows += round(100 * jitter)
        est.add(t, rows)
        eta = est.eta(1400)
        truth = (1400 - rows) / 100
        if step == 0:  # 0.8 s of samples: too little to tell
            continue
        assert eta is not None and truth / 1.5 <= eta <= truth * 1.5, (step, eta, truth)  # never 13x off
        if step >= 8:
            assert abs(eta - truth) <= max(1.0, 0.15 * truth), (step, eta, truth)


def test_a_burst_in_one_poll_moves_the_eta_only_a_little() -> None:
    est = RateEstimate()
    for i in range(21):
        est.add(float(i), i * 10)  # 10 rows/s for 20 s
    before = est.eta(1000)
    est.add(20.5, 200 + 50)  # one poll copies a big chunk at once
    after = est.eta(1000)
    assert before is not None and after is not None
    assert abs(after - before) / before < 0.25


def test_a_restarted_copy_forgets_the_old_rate() -> None:
    est = RateEstimate()
    est.add(0.0, 0)
    est.add(5.0, 500)
    est.add(6.0, 10)
    assert est.rate() is None


def test_phase_names() -> None:
    def task(**kw: Any) -> SimpleNamespace:
        base = {"state": "running", "message": "", "rows_total": 100}
        return SimpleNamespace(**{**base, **kw})

    assert phase_of(task()) == "copy"
    assert phase_of(task(message="checksum watermark (id)=(7) (10 rows)")) == "checksum"
    assert phase_of(task(phase="checksum")) == "checksum"  # an engine's own phase field wins
    assert phase_of(task(state="waiting_for_cutover")) == "waiting for cutover"
    assert phase_of(task(state="cutting_over")) == "cutting over"
    assert duration(184) == "3m04s" and duration(14) == "14s"
    assert next_command("apply-1", "waiting_for_cutover") == "schemabot cutover apply-1"


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += 1.0


class _Client:
    def __init__(self, statuses: list[ApplyStatus]) -> None:
        self.statuses = statuses
        self.calls = 0

    def get_apply(self, apply_id: str) -> ApplyStatus:
        status = self.statuses[min(self.calls, len(self.statuses) - 1)]
        self.calls += 1
        return status


def _status(state: str, task_state: str, rows: int) -> ApplyStatus:
    task = TaskStatus("task-1", "app", "orders", "alter", "ALTER TABLE orders ADD c INT", State(task_state),
                      rows, 1000, rows / 10, 184, "copy watermark (id)=(9)")  # fmt: skip
    return ApplyStatus("apply-42", State(state), "spirit", "prod", "app", None, 1, {"defer_cutover": True},
                       None, "2026-01-01T00:00:00+00:00", None, None, [task])  # fmt: skip


def test_watch_shows_phase_rate_one_eta_and_ends_with_the_next_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = _Clock()
    monkeypatch.setattr(watch_module, "time", clock)
    running = [_status("running", "running", r) for r in (0, 100, 200, 300)]
    waiting = replace(_status("waiting_for_cutover", "waiting_for_cutover", 1000))
    out = io.StringIO()
    console = Console(file=out, width=160, force_terminal=True, color_system=None)
    final = watch_module.watch(_Client([running[0], *running, waiting]), "apply-42", console=console)
    text = out.getvalue()
    assert final.state == "waiting_for_cutover"
    assert "copy · 300/1,000 rows · 100 rows/s · eta 7s" in text
    assert "eta 3m04s" not in text and "184" not in text  # the engine's first guess is not shown
    assert "elapsed" in text
    assert text.endswith("waiting for cutover. Next: schemabot cutover apply-42\n")
