"""The text of `schemabot status` (shared by the CLI and its quick path, schemabot/fast_status.py)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def render(apply: Any, tasks: Iterable[Any]) -> str:
    """`apply` has apply_id, state, engine, target, attempt, error, and may have queue_position
    and waiting_for (a queued apply), attention (why it is not moving on by itself) and
    resume_outcome; each task has namespace, table, action, state, percent, rows_copied,
    rows_total, and may have engine and engine_reason (shown when `--engine auto` chose it, or
    when it differs from the apply's: a mixed apply, schemabot/engine_mix.py) and message
    (shown for a DROP: what it did)."""
    head = f"{apply.apply_id}  {apply.state}  engine={apply.engine} target={apply.target}"
    lines = [f"{head} attempt={apply.attempt}"]
    if apply.error:
        lines.append(f"  error: {apply.error}")
    if getattr(apply, "queue_position", None) is not None:
        ahead = ", ".join(getattr(apply, "waiting_for", None) or []) or "nothing"
        lines.append(f"  queued: position {apply.queue_position}, waiting for {ahead}")
    if getattr(apply, "attention", None):
        lines.append(f"  attention: {apply.attention}")
    if getattr(apply, "resume_outcome", None):
        lines.append(f"  last resume: {apply.resume_outcome}")
    for t in tasks:
        rows = f" {t.rows_copied or 0}/{t.rows_total} rows" if t.rows_total else ""
        pct = f" {t.percent:.1f}%" if t.percent is not None else ""
        # What a DROP did ("dropped", "already absent") is the outcome a person asks about.
        said = f"  ({t.message})" if t.action == "drop" and getattr(t, "message", None) else ""
        where = f"{t.namespace}.{t.table or '(vschema)'}"
        lines.append(f"  {where}  {t.action}  {t.state}{pct}{rows}{said}{_engine(apply, t)}")
    return "\n".join(lines) + "\n"


def _engine(apply: Any, task: Any) -> str:
    """` engine=E (why)` for a task whose engine was chosen per table; empty otherwise."""
    engine = getattr(task, "engine", None)
    reason = getattr(task, "engine_reason", None)
    if not engine or (not reason and engine == apply.engine):
        return ""
    return f"  engine={engine}" + (f" ({reason})" if reason else "")


def list_lines(apply: Any) -> list[str]:
    """`schemabot list`: one apply's line (apply_id, state, engine, target, created_at as
    `api._iso` writes it) and its attention, if any."""
    lines = [f"{apply.apply_id}  {apply.state:<20} {apply.engine:<12} {apply.target:<12} {apply.created_at}"]
    if apply.attention:
        lines.append(f"  attention: {apply.attention}")
    return lines


def log_line(entry: Any) -> str:
    """`schemabot log`: one audit entry (`at`, event, the state change if any, message)."""
    change = f" {entry.old_state}->{entry.new_state}" if entry.new_state else ""
    return f"{entry.at}  {entry.event:<10}{change}  {entry.message or ''}"
