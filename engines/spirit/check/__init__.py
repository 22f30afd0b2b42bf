"""Preflight checks: one small module per check, each registered with the phases it runs in.

A check is a plain function of a `CheckContext` (facts gathered once from the target) that returns
None when all is well or a sentence saying what is wrong and what to do. Checks never touch the
server themselves, so each one is tested with hand-made facts. Adding a check is adding a module
to this package: every module in it is imported, and registers itself, on first use.

Phases: `preflight` runs before anything is created; `post_setup` runs once the shadow table
exists and has been altered (facts about the result of the ALTER, such as its primary key).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from engines.base import PermanentEngineError
from engines.spirit.statement import Statement
from engines.spirit.tableinfo import TableInfo


class Phase(StrEnum):
    PREFLIGHT = "preflight"
    POST_SETUP = "post_setup"


@dataclass(frozen=True)
class CheckContext:
    """Everything the checks may look at. Defaults describe an unremarkable situation."""

    statement: Statement
    source: TableInfo | None = None
    shadow: TableInfo | None = None
    uses_copy: bool = True
    triggers: Sequence[str] = ()
    """Names of triggers on the source that are not the engine's own."""
    foreign_keys: Sequence[str] = ()
    """Constraint names of foreign keys on the source or referencing it."""
    grants: Sequence[str] = ()
    variables: Mapping[str, str] = field(default_factory=dict)
    old_table_exists: bool = False
    change_source: str = "auto"
    """What `engine_options.change_source` asks for: auto, triggers or binlog."""
    binlog_refusal: str | None = "not read"
    """Why the server cannot feed the binlog change source (None: it can; binlogpos.py)."""

    @property
    def binlog_possible(self) -> bool:
        """The binlog source will be tried (the table may still turn it down after set-up)."""
        return self.change_source != "triggers" and self.binlog_refusal is None


Check = Callable[[CheckContext], str | None]


@dataclass(frozen=True)
class RegisteredCheck:
    name: str
    phases: frozenset[Phase]
    func: Check


_REGISTRY: dict[str, RegisteredCheck] = {}
_loaded = False


def register(name: str, *phases: Phase) -> Callable[[Check], Check]:
    def decorate(func: Check) -> Check:
        _REGISTRY[name] = RegisteredCheck(name, frozenset(phases), func)
        return func

    return decorate


def _load_all() -> None:
    global _loaded
    if not _loaded:
        for module in pkgutil.iter_modules(__path__):
            importlib.import_module(f"{__name__}.{module.name}")
        _loaded = True


def registered() -> dict[str, RegisteredCheck]:
    _load_all()
    return dict(_REGISTRY)


def problems(phase: Phase, ctx: CheckContext) -> list[str]:
    """What every check of `phase` finds wrong, in check-name order."""
    found = []
    for check in sorted(registered().values(), key=lambda c: c.name):
        if phase in check.phases:
            problem = check.func(ctx)
            if problem:
                found.append(problem)
    return found


def run(phase: Phase, ctx: CheckContext) -> None:
    """Raise PermanentEngineError listing every problem the checks of `phase` find."""
    found = problems(phase, ctx)
    if found:
        label = f"{ctx.statement.schema}.{ctx.statement.table}"
        raise PermanentEngineError(f"{label}: preflight failed: " + "; ".join(found))
