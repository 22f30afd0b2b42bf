"""DDL text rewrites the engines rely on."""

from __future__ import annotations

import pytest

from engines.mysql.ddl_text import add_algorithm, retarget


@pytest.mark.parametrize(
    ("ddl", "expected"),
    [
        ("CREATE TABLE t (id INT)", "CREATE TABLE `s` (id INT)"),
        ("create table if not exists db.`t` (id int);", "create table if not exists `s` (id int)"),
        ("ALTER TABLE `a``b` ADD c INT", "ALTER TABLE `s` ADD c INT"),
        ("ALTER ONLINE IGNORE TABLE x.y DROP c", "ALTER ONLINE IGNORE TABLE `s` DROP c"),
    ],
)
def test_retarget_replaces_only_the_table_name(ddl: str, expected: str) -> None:
    assert retarget(ddl, "s") == expected


def test_add_algorithm_puts_the_clause_first_with_a_comma() -> None:
    assert add_algorithm("ALTER TABLE t ADD c INT", "ALGORITHM=INSTANT") == (
        "ALTER TABLE t ALGORITHM=INSTANT, ADD c INT"
    )


def test_add_algorithm_uses_no_comma_before_partition_options() -> None:
    assert add_algorithm("ALTER TABLE t PARTITION BY HASH(id)", "ALGORITHM=INPLACE") == (
        "ALTER TABLE t ALGORITHM=INPLACE PARTITION BY HASH(id)"
    )


def test_add_algorithm_refuses_non_alter() -> None:
    with pytest.raises(ValueError):
        add_algorithm("CREATE TABLE t (id INT)", "ALGORITHM=INSTANT")
