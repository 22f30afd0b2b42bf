"""Rebuilding the engine's view of an apply (`NamespaceChange`s) from stored tasks.

The first dispatch and every resume build the changes the same way, from the tasks in the state
database, so a resumed engine sees exactly what the first owner saw (docs/architecture.md §10 S9-S11).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

from engines.base import Action, NamespaceChange, TableChange
from schemabot.errors import ResumeStateUnavailable
from schemabot.storage.models import Task

VSCHEMA_ACTION = "vschema_update"


def rebuild_changes(tasks: Iterable[Task]) -> list[NamespaceChange]:
    """One change per namespace in first-seen order (by task sequence), each table with its own
    DDL and action. A VSchema task adds no table change; it flags its namespace."""
    ordered = sorted(tasks, key=lambda t: t.seq)
    namespaces: list[str] = []
    tables: dict[str, list[TableChange]] = {}
    vschemas: dict[str, dict[str, object] | None] = {}
    for task in ordered:
        if task.namespace not in tables:
            namespaces.append(task.namespace)
            tables[task.namespace] = []
        if task.action == VSCHEMA_ACTION:
            vschemas[task.namespace] = task.vschema
            continue
        if not (task.ddl or "").strip():
            # Validation makes this impossible for stored tasks; refuse rather than hand an
            # engine a table change with nothing to do (docs/architecture.md §10 S11).
            raise ResumeStateUnavailable(f"task {task.task_id} on {task.table_name} has no DDL")
        tables[task.namespace].append(
            TableChange(table=task.table_name, ddl=cast(str, task.ddl), action=cast(Action, task.action))
        )
    return [
        NamespaceChange(
            namespace=ns,
            tables=tuple(tables[ns]),
            vschema_changed=ns in vschemas,
            vschema=vschemas.get(ns),
        )
        for ns in namespaces
    ]
