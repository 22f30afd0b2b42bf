"""Which source column feeds which shadow column.

Columns keep their names unless the statement renames them (`CHANGE a b`, `RENAME COLUMN a TO
b`); columns the ALTER drops have no counterpart and are not copied; columns it adds take their
defaults, exactly as the server's own ALTER does. Column names are compared case-insensitively,
as MySQL does (`CHANGE c2 C2` keeps the values, `RENAME COLUMN C2 TO c3` renames `c2`), and a
column the statement drops is never the same column as one it adds under that name. Generated
columns are never written: the shadow computes its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from engines.spirit.tableinfo import TableInfo


@dataclass(frozen=True)
class ColumnMap:
    pairs: tuple[tuple[str, str], ...]
    """(source column, shadow column), in source order."""

    key: tuple[str, ...]
    """The primary key columns (same names on both sides: preflight refuses PK changes)."""

    changed: tuple[str, ...] = ()
    """Shadow columns whose type the ALTER changed: their values compare only after the same
    conversion (checksum.py)."""

    nullable: tuple[bool, ...] = ()
    """Per pair: may either side hold NULL (empty: assume every column may). The checksum's row
    formula needs a NULL marker only for these (checksum.py)."""

    @property
    def source(self) -> tuple[str, ...]:
        return tuple(s for s, _ in self.pairs)

    @property
    def shadow(self) -> tuple[str, ...]:
        return tuple(n for _, n in self.pairs)


def map_columns(
    source: TableInfo,
    shadow: TableInfo,
    renames: Mapping[str, str],
    dropped: AbstractSet[str] = frozenset(),
) -> ColumnMap:
    writable = {name.lower(): name for name in shadow.copyable}
    renamed = {old.lower(): new for old, new in renames.items()}
    gone = {name.lower() for name in dropped}
    pairs = []
    changed = []
    nullable = []
    for name in source.copyable:
        key = name.lower()
        if key in renamed:
            target = renamed[key]
        elif key in gone:
            continue
        else:
            target = name
        if target.lower() in writable:
            new = writable[target.lower()]
            pairs.append((name, new))
            before, after = source.column(name), shadow.column(new)
            if before is None or after is None or before.column_type != after.column_type:
                changed.append(new)
            nullable.append(
                before is None or after is None or before.nullable or after.nullable
            )
    return ColumnMap(tuple(pairs), source.primary_key, tuple(changed), tuple(nullable))
