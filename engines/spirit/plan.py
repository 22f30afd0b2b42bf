"""The tables of one operation, parsed once per call from the request's changes."""

from __future__ import annotations

from dataclasses import dataclass

from engines.base import OperationRequest, PermanentEngineError
from engines.spirit.naming import TableNames
from engines.spirit.statement import Statement, parse_change


@dataclass(frozen=True)
class TablePlan:
    statement: Statement
    names: TableNames

    @property
    def label(self) -> str:
        return self.names.label


def plan_tables(request: OperationRequest) -> list[TablePlan]:
    plans: list[TablePlan] = []
    seen: set[tuple[str, str]] = set()
    for ns in request.changes:
        for change in ns.tables:
            statement = parse_change(ns.namespace, change)
            key = (statement.schema, statement.table)
            if key in seen:
                raise PermanentEngineError(
                    f"{statement.schema}.{statement.table} is changed twice in one operation; "
                    "combine the changes into one ALTER"
                )
            seen.add(key)
            plans.append(TablePlan(statement, TableNames(statement.schema, statement.table)))
    if not plans:
        raise PermanentEngineError("the operation has no table changes")
    return plans


def group_of(plans: list[TablePlan]) -> tuple[str, ...]:
    return tuple(p.label for p in plans)
