"""Live terminal view of an apply: one progress bar per table, until it ends or waits.

Each bar says the phase by name, rows copied, rows/s and one ETA, both from the rate smoothed
over the copy so far (`schemabot.progress`); the headline says the time since submission. When
the apply waits for a person it ends with the command to run next, on its own line.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TaskID, TextColumn
from rich.text import Text

from schemabot.api import ApplyStatus, Client, TaskStatus, asked_to_wait
from schemabot.progress import RateEstimate, duration, next_command, phase_of, rows_per_second

_STYLE = {
    "completed": "green",
    "failed": "red",
    "failed_retryable": "yellow",
    "waiting_for_provider": "yellow",
    "needs_attention": "red",
    "cancelled": "red",
    "stopped": "yellow",
    "recovering": "yellow",
    "waiting_for_cutover": "cyan",
    "revert_window": "cyan",
}


def _label(task: TaskStatus, apply_engine: str | None = None) -> str:
    """The table, and its engine when it is not the apply's (a mixed apply, engine_mix.py)."""
    table = task.table or "(vschema)"
    engine = f" [{task.engine}]" if task.engine and task.engine != apply_engine else ""
    return f"{task.namespace}.{table}{engine}"


def _detail(task: TaskStatus, estimate: RateEstimate) -> str:
    parts = [phase_of(task)]
    if task.rows_total:
        parts.append(f"{task.rows_copied or 0:,}/{task.rows_total:,} rows")
    if task.state == "running" and task.rows_total:
        parts.append(rows_per_second(estimate.rate()))
        parts.append(f"eta {duration(estimate.eta(task.rows_total))}")
    return " · ".join(parts)


def _elapsed(status: ApplyStatus) -> float | None:
    if not status.created_at:
        return None
    started = datetime.fromisoformat(status.created_at)
    if started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    end = datetime.fromisoformat(status.completed_at) if status.completed_at else datetime.now(UTC)
    if end.tzinfo is None:
        end = end.replace(tzinfo=UTC)
    return max(0.0, (end - started).total_seconds())


def _headline(status: ApplyStatus) -> Text:
    text = Text(f"{status.apply_id}  ", style="bold")
    text.append(status.state.replace("_", " "), style=_STYLE.get(status.state, "bold"))
    text.append(f"  engine={status.engine} target={status.target} attempt={status.attempt}")
    text.append(f"  elapsed {duration(_elapsed(status))}")
    if status.error:
        text.append(f"\n{status.error}", style="red")
    return text


def watch(
    client: Client,
    apply_id: str,
    *,
    interval: float = 0.5,
    console: Console | None = None,
    stop_at_waiting: bool = True,
) -> ApplyStatus:
    """Render until the apply is terminal (or waiting where it asked to); return the last status."""
    console = console or Console()
    progress = Progress(
        TextColumn("{task.description}", justify="left"),
        BarColumn(bar_width=40),
        TextColumn("{task.percentage:>5.1f}%"),
        TextColumn("{task.fields[detail]}"),
        console=console,
    )
    bars: dict[str, TaskID] = {}
    estimates: dict[str, RateEstimate] = {}
    status = client.get_apply(apply_id)
    with Live(
        Group(_headline(status), progress), console=console, refresh_per_second=8, transient=False
    ) as live:
        while True:
            status = client.get_apply(apply_id)
            now = time.monotonic()
            for task in status.tasks:
                estimate = estimates.setdefault(task.task_id, RateEstimate())
                estimate.add(now, task.rows_copied)
                percent = (
                    task.percent
                    if task.percent is not None
                    else (100.0 if task.state == "completed" else 0.0)
                )
                if task.task_id not in bars:
                    label = _label(task, status.engine)
                    bars[task.task_id] = progress.add_task(label, total=100.0, detail="")
                progress.update(bars[task.task_id], completed=percent, detail=_detail(task, estimate))
            live.update(Group(_headline(status), progress), refresh=True)
            if status.state.is_terminal or (stop_at_waiting and asked_to_wait(status, status.state)):
                break
            time.sleep(interval)
    command = next_command(status.apply_id, status.state)
    if command and not status.state.is_terminal:
        console.print(f"{status.state.replace('_', ' ')}. Next: {command}", highlight=False, soft_wrap=True)
    return status
