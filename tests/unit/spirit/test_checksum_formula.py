"""The checksum's row formula: a NULL marker only for columns that may hold NULL."""

from __future__ import annotations

from engines.spirit.checksum import _row_crc
from engines.spirit.columnmap import map_columns
from engines.spirit.tableinfo import Column, TableInfo


def _table(name: str, *columns: Column) -> TableInfo:
    return TableInfo("s", name, columns, ("id",), "")


def test_not_null_columns_need_no_null_marker() -> None:
    assert _row_crc(("id", "a"), (False, False)) == "CRC32(CONCAT_WS('#', `id`, `a`))"


def test_a_column_nullable_on_either_side_keeps_its_marker() -> None:
    source = _table("t", Column("id", "int", False, False), Column("a", "int", False, True))
    shadow = _table("_t_new", Column("id", "int", False, False), Column("a", "int", False, False))
    cmap = map_columns(source, shadow, {})
    assert cmap.nullable == (False, True)
    formula = _row_crc(cmap.source, cmap.nullable)
    assert "ISNULL(`a`)" in formula and "ISNULL(`id`)" not in formula


def test_without_nullability_every_column_is_marked() -> None:
    assert _row_crc(("id", "a")).count("ISNULL") == 2
