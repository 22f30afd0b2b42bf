"""Which source column feeds which shadow column.

Columns keep their names unless the statement renames them (`CHANGE a b`, `RENAME COLUMN a TO
b`); columns the ALTER drops have no counterpart and are not copied; columns it adds take their
defaults. Generated columns are never written: the shadow computes its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from engines.spirit.tableinfo import TableInfo


@dataclass(frozen=True)
class ColumnMap:
    pairs: tuple[tuple[str, str], ...]
    """(source column, shadow column), in source order."""

    key: tuple[str, ...]
    """The primary key columns (same names on both sides: preflight refuses PK changes)."""

    @property
    def source(self) -> tuple[str, ...]:
        return tuple(s for s, _ in self.pairs)

    @property
    def shadow(self) -> tuple[str, ...]:
        return tuple(n for _, n in self.pairs)


def map_columns(source: TableInfo, shadow: TableInfo, renames: Mapping[str, str]) -> ColumnMap:
    writable = set(shadow.copyable)
    pairs = []
    for name in source.copyable:
        target = renames.get(name, name)
        if target in writable:
            pairs.append((name, target))
    return ColumnMap(tuple(pairs), source.primary_key)
