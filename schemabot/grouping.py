"""The one predicate that decides grouped vs sequential dispatch (docs/architecture.md §8 invariant 4).

Used when the apply is submitted (to create one operation or one per task), at the first
dispatch and at every resume: a Vitess apply, a MySQL apply with deferred cutover, or a MySQL
apply the user (or the default) made `atomic`, runs as one engine operation for all its tables
(they cut over together, in one RENAME); anything else runs table by table. Taking the stored
apply's own fields means the answer cannot drift between the two.

`atomic` is decided once, at submission, and stored in the options: asked for explicitly
(`--atomic` / `--no-atomic`, the API's `atomic`), or by default for an engine that cuts several
tables over in one statement (spirit) when every table of the apply is on one schema.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engines.registry import engine_platform
from schemabot.engine_mix import options_for

# Engines whose grouped operation cuts every table over in one atomic RENAME on one server.
ATOMIC_BY_DEFAULT: frozenset[str] = frozenset({"spirit"})


def default_atomic(engine: str, namespaces: Iterable[str]) -> bool:
    """Atomic unless asked otherwise: for spirit, when every table is on one schema."""
    return engine in ATOMIC_BY_DEFAULT and len(set(namespaces)) == 1


def uses_grouped_apply(
    engine: str, options: Mapping[str, Any], plugins: Mapping[str, str] | None = None
) -> bool:
    return (
        engine_platform(engine, plugins) == "vitess"
        or bool(options.get("defer_cutover"))
        or bool(options.get("atomic"))
    )


@dataclass(frozen=True)
class OperationLayout:
    """One operation of a new apply: its context and the indexes of its tasks (in run order)."""

    context: str
    tasks: tuple[int, ...]


def operation_layout(
    apply_id: str,
    task_ids: Sequence[str],
    engines: Sequence[str],
    options: Mapping[str, Any],
    plugins: Mapping[str, str] | None = None,
    *,
    mixed: bool = False,
) -> list[OperationLayout]:
    """The operations of a new apply, in the order they run, from the one predicate.

    One engine: grouped -> one operation for every task, context = apply id; sequential -> one
    per task, context = task id. Mixed (`schemabot/engine_mix.py`): the predicate is asked per
    engine with the options that engine is given; an engine's grouped tasks form one operation
    (context = the apply id for the first such engine, `apply_id/engine` for any later one),
    the others one each. `task_ids` and `engines` are already in run order.
    """
    if not mixed:
        engine = engines[0] if engines else ""
        if uses_grouped_apply(engine, options, plugins):
            return [OperationLayout(apply_id, tuple(range(len(task_ids))))]
        return [OperationLayout(task_id, (i,)) for i, task_id in enumerate(task_ids)]
    layout: list[OperationLayout] = []
    grouped_contexts = 0
    i = 0
    while i < len(task_ids):
        engine, end = engines[i], i
        while end < len(task_ids) and engines[end] == engine:  # the engine's consecutive tasks
            end += 1
        run = range(i, end)
        if uses_grouped_apply(engine, options_for(engine, options, mixed=True, plugins=plugins), plugins):
            context = apply_id if grouped_contexts == 0 else f"{apply_id}/{engine}"
            grouped_contexts += 1
            layout.append(OperationLayout(context, tuple(run)))
        else:
            layout.extend(OperationLayout(task_ids[j], (j,)) for j in run)
        i = end
    return layout
