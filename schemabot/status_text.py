"""The text of `schemabot status` (shared by the CLI and its quick path, schemabot/fast_status.py)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def render(apply: Any, tasks: Iterable[Any]) -> str:
    """`apply` has apply_id, state, engine, target, attempt, error; each task namespace, table,
    action, state, percent, rows_copied, rows_total."""
    head = f"{apply.apply_id}  {apply.state}  engine={apply.engine} target={apply.target}"
    lines = [f"{head} attempt={apply.attempt}"]
    if apply.error:
        lines.append(f"  error: {apply.error}")
    for t in tasks:
        rows = f" {t.rows_copied or 0}/{t.rows_total} rows" if t.rows_total else ""
        pct = f" {t.percent:.1f}%" if t.percent is not None else ""
        lines.append(f"  {t.namespace}.{t.table or '(vschema)'}  {t.action}  {t.state}{pct}{rows}")
    return "\n".join(lines) + "\n"
