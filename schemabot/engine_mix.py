"""Engines per task: one apply whose tables run on different engines (issue 13 §2).

`apply --engine auto` chooses the engine per table as the plan does
(`schemabot/planning/engine_choice.py`): direct for what the server does online without copying
(CREATE, DROP, ALGORITHM=INSTANT, INPLACE with LOCK=NONE), spirit for what needs a copy. Each task
stores its engine and the reason (`task.engine`, `task.engine_reason`, migration 0006). When the
tables of one MySQL target need different engines they still run as one apply, whose
`apply.engine` is `auto` (`MIXED`); see docs/architecture.md §5.10 for the whole account.

The rules of a mixed apply, kept here so that submit, first dispatch and every resume read them
from one place:

- **Order.** The tasks of a native engine (direct) run first, then the others (spirit), each set
  in the order given. A native change is live when its statement returns and has nothing to cut
  over; running the copies last means a deferred cutover is the last thing the apply waits for,
  with every other change already done.
- **What a native engine is told.** Never `defer_cutover`, never `atomic`: there is nothing to
  cut over or to rename together. So `cutover` of a mixed apply means the copying engine's
  cutover (spirit's atomic RENAME of its tables); the direct changes were already applied.
- **Grouping.** The one predicate (`grouping.uses_grouped_apply`) is asked per engine, with the
  options that engine is given: spirit's tables are one operation or one each exactly as for
  `--engine spirit` (deferred or atomic: one), direct's are one operation per task.
- **Driving.** Operation by operation, like a sequential apply: the first unfinished task (by
  seq) names the operation, and every task of that operation goes to its engine together.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# `apply.engine` of an apply whose tasks run on different engines (what the user asked for).
MIXED = "auto"

# Engines whose change is live when their statement returns: nothing to copy or cut over.
NATIVE: frozenset[str] = frozenset({"direct"})

def is_mixed(apply_engine: str) -> bool:
    return apply_engine == MIXED


def task_engine(task_engine_name: str | None, apply_engine: str) -> str:
    """The engine that runs a task: its own (0006), else the apply's (rows from before 0006)."""
    return task_engine_name or apply_engine


def options_for(engine: str, options: Mapping[str, Any], *, mixed: bool) -> dict[str, Any]:
    """The apply options as `engine` is given them: in a mixed apply a native engine never defers
    a cutover and is never atomic (it has neither)."""
    given = dict(options)
    if mixed and engine in NATIVE:
        given["defer_cutover"] = False
        given["atomic"] = False
    return given


def run_order(engines: Sequence[str]) -> list[int]:
    """Indexes of the tasks in the order a mixed apply runs them: native engines first, each set
    in the order given (a stable sort)."""
    return sorted(range(len(engines)), key=lambda i: 0 if engines[i] in NATIVE else 1)
