"""Live terminal view of an apply: one progress bar per table, until it ends or waits."""

from __future__ import annotations

import time

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.text import Text

from schemabot.api import ApplyStatus, Client, TaskStatus, asked_to_wait
from schemabot.states import State

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


def _label(task: TaskStatus) -> str:
    table = task.table or "(vschema)"
    return f"{task.namespace}.{table}"


def _detail(task: TaskStatus) -> str:
    parts = [task.state]
    if task.rows_total:
        parts.append(f"{task.rows_copied or 0:,}/{task.rows_total:,} rows")
    if task.eta_seconds:
        parts.append(f"eta {task.eta_seconds}s")
    return " · ".join(parts)


def _headline(status: ApplyStatus) -> Text:
    text = Text(f"{status.apply_id}  ", style="bold")
    text.append(status.state, style=_STYLE.get(status.state, "bold"))
    text.append(f"  engine={status.engine} target={status.target} attempt={status.attempt}")
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
        TimeRemainingColumn(),
        console=console,
    )
    bars: dict[str, TaskID] = {}
    status = client.get_apply(apply_id)
    with Live(
        Group(_headline(status), progress), console=console, refresh_per_second=8, transient=False
    ) as live:
        while True:
            status = client.get_apply(apply_id)
            for task in status.tasks:
                percent = (
                    task.percent
                    if task.percent is not None
                    else (100.0 if task.state == "completed" else 0.0)
                )
                if task.task_id not in bars:
                    bars[task.task_id] = progress.add_task(_label(task), total=100.0, detail="")
                progress.update(bars[task.task_id], completed=percent, detail=_detail(task))
            live.update(Group(_headline(status), progress))
            state = State(status.state)
            if state.is_terminal or (stop_at_waiting and asked_to_wait(status, state)):
                return status
            time.sleep(interval)
