"""Engines per task: one apply whose tables run on different engines (issue 13 §2).

`apply --engine auto` chooses the engine per table as the plan does
(`schemabot/planning/engine_choice.py`): direct for what the server does online without copying
(CREATE, DROP, ALGORITHM=INSTANT, INPLACE with LOCK=NONE), spirit for what needs a copy. Each task
stores its engine and the reason (`task.engine`, `task.engine_reason`, migration 0006). When the
tables of one MySQL target need different engines they still run as one apply, whose
`apply.engine` is `auto` (`MIXED`); see docs/architecture.md §5.10 for the whole account.

The rules of a mixed apply, kept here so that submit, first dispatch and every resume read them
from one place:

- **Order.** The tasks of a native engine (`Engine.native`: direct) run first, then the others
  (spirit), each set in the order given. A native change is live when its statement returns and
  has nothing to cut over; running the copies last means a deferred cutover is the last thing
  the apply waits for, with every other change already done.
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
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from engines.registry import UnknownEngine, engine_class
from schemabot.errors import ValidationError

if TYPE_CHECKING:  # a type only: the grouping predicate stays free of the storage layer
    from schemabot.storage.submissions import NewTask

# `apply.engine` of an apply whose tasks run on different engines (what the user asked for).
MIXED = "auto"


def is_mixed(apply_engine: str) -> bool:
    return apply_engine == MIXED


def is_native(engine: str, plugins: Mapping[str, str] | None = None) -> bool:
    """Does the engine declare its change live when its statement returns (`Engine.native`)?"""
    try:
        return engine_class(engine, plugins).native
    except UnknownEngine:
        return False


def task_engine(task_engine_name: str | None, apply_engine: str) -> str:
    """The engine that runs a task: its own (0006), else the apply's (rows from before 0006)."""
    return task_engine_name or apply_engine


def options_for(
    engine: str, options: Mapping[str, Any], *, mixed: bool, plugins: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The apply options as `engine` is given them: in a mixed apply a native engine never defers
    a cutover and is never atomic (it has neither)."""
    given = dict(options)
    if mixed and is_native(engine, plugins):
        given["defer_cutover"] = False
        given["atomic"] = False
    return given


def run_order(engines: Sequence[str], plugins: Mapping[str, str] | None = None) -> list[int]:
    """Indexes of the tasks in the order a mixed apply runs them: native engines first, each set
    in the order given (a stable sort)."""
    native = {e: is_native(e, plugins) for e in set(engines)}
    return sorted(range(len(engines)), key=lambda i: 0 if native[engines[i]] else 1)


def resolve_choices(
    engine: str, engine_choices: Sequence[tuple[str, str]] | None
) -> tuple[str, list[tuple[str, str]]]:
    """(the apply's engine, the per-statement choices) for a submit. `auto` with one engine for
    every statement is an ordinary apply of that engine; with several, a mixed apply."""
    if engine != MIXED:
        if engine_choices is not None:
            raise ValidationError("engine_choices are only taken with engine 'auto'")
        return engine, []
    if not engine_choices:
        raise ValidationError(
            "engine 'auto' chooses per table from a plan: use `schemabot apply --engine auto` or "
            "POST /v1/plans/apply"
        )
    choices = [(str(e), str(why)) for e, why in engine_choices]
    distinct = {e for e, _ in choices}
    return (distinct.pop() if len(distinct) == 1 else MIXED), choices


def assign_engines(
    tasks: list[NewTask],
    engine: str,
    choices: Sequence[tuple[str, str]],
    plugins: Mapping[str, str] | None = None,
) -> list[NewTask]:
    """Each task with its engine (and, from a plan, the reason); a mixed apply's in run order.
    `choices` has one entry per DDL statement in the order given (VSchema tasks take `engine`)."""
    if not choices:
        return [replace(t, engine=engine) for t in tasks]
    tables = [i for i, t in enumerate(tasks) if t.ddl is not None]
    if len(tables) != len(choices):
        raise ValidationError(
            f"engine_choices has {len(choices)} entries for {len(tables)} DDL statements; "
            "give one per statement"
        )
    chosen = dict(zip(tables, choices, strict=True))
    with_engines = [
        replace(t, engine=chosen[i][0], engine_reason=chosen[i][1])
        if i in chosen
        else replace(t, engine=engine)
        for i, t in enumerate(tasks)
    ]
    if not is_mixed(engine):
        return with_engines
    return [with_engines[i] for i in run_order([t.engine or engine for t in with_engines], plugins)]
