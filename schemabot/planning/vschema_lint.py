"""Lint of a VSchema change (rule SB007 vschema-removal, registered in planning/lint.py).

A VSchema takes effect the moment it lands: a vindex or a table's routing that disappears, or a
vindex whose type, parameters or owner change, reroutes queries at once (SchemaBot gates these
behind its unsafe opt-in for the same reason). So they are destructive findings: errors that
`--allow-unsafe` lets through (and the apply's audit log records). Additions are not findings.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from schemabot.planning import lint

RULE = "SB007"


def _section(document: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = document.get(key)
    return dict(value) if isinstance(value, Mapping) else {}


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def removals(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """What `after` removes or redefines of `before`, in words."""
    found: list[str] = []
    old_vindexes, new_vindexes = _section(before, "vindexes"), _section(after, "vindexes")
    for name in sorted(old_vindexes):
        if name not in new_vindexes:
            found.append(f"removes vindex {name}")
        elif _canonical(old_vindexes[name]) != _canonical(new_vindexes[name]):
            found.append(f"redefines vindex {name} (type, params or owner)")
    old_tables, new_tables = _section(before, "tables"), _section(after, "tables")
    for table in sorted(old_tables):
        if table not in new_tables:
            found.append(f"removes the routing of table {table}")
            continue
        old_cv = _column_vindexes(old_tables[table])
        new_cv = {_canonical(v) for v in _column_vindexes(new_tables[table])}
        for vindex in old_cv:
            if _canonical(vindex) not in new_cv:
                found.append(f"removes a column vindex of {table}: {_canonical(vindex)}")
    return found


def _column_vindexes(table: Any) -> Sequence[Any]:
    value = table.get("column_vindexes") if isinstance(table, Mapping) else None
    return list(value) if isinstance(value, list) else []


def findings(
    namespace: str,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    *,
    allow_unsafe: bool,
    disabled: Iterable[str] = (),
) -> list[lint.Finding]:
    rule = lint.RULES[RULE]
    if any(lint.lookup(name) is rule for name in disabled):
        return []
    return [
        lint.Finding(
            rule.id,
            rule.name,
            rule.severity,
            f"the VSchema of {namespace} {what}",
            "vschema",
            destructive=True,
            allowed=allow_unsafe,
        )
        for what in removals(before, after)
    ]
