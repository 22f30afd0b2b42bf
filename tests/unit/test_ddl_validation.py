"""DDL validation before anything is stored."""

from __future__ import annotations

import pytest

from schemabot.ddl import parse_ddl
from schemabot.errors import ValidationError


@pytest.mark.parametrize(
    ("ddl", "action", "table", "schema"),
    [
        ("CREATE TABLE t (id INT PRIMARY KEY)", "create", "t", None),
        ("create table if not exists `my t` (id int primary key);", "create", "my t", None),
        ("ALTER TABLE t ADD COLUMN c INT", "alter", "t", None),
        ("ALTER TABLE shop.orders ADD INDEX ix (a), DROP COLUMN b", "alter", "orders", "shop"),
        ("/* why */ ALTER TABLE t ADD COLUMN y INT", "alter", "t", None),
        ("DROP TABLE IF EXISTS t", "drop", "t", None),
        ("DROP TABLE db.t", "drop", "t", "db"),
        # sqlglot falls back to a Command for these valid forms; the table is read from the text.
        ("ALTER TABLE db.t CONVERT TO CHARACTER SET utf8mb4", "alter", "t", "db"),
        ("ALTER TABLE `we``ird` PARTITION BY HASH(id) PARTITIONS 4", "alter", "we`ird", None),
    ],
)
def test_valid_statements_are_accepted_with_their_table(
    ddl: str, action: str, table: str, schema: str | None
) -> None:
    parsed = parse_ddl(ddl)
    assert (parsed.action, parsed.table, parsed.schema) == (action, table, schema)
    assert not parsed.statement.endswith(";")


@pytest.mark.parametrize(
    ("ddl", "fragment"),
    [
        ("", "empty DDL"),
        ("   ;  ", "empty DDL"),
        ("this is not sql", "is not a CREATE TABLE, ALTER TABLE or DROP TABLE"),
        ("SELECT 1", "is not a CREATE TABLE"),
        ("ALTER TABLE t ADD c INT; DROP TABLE x", "holds 2 statements"),
        ("DROP TABLE a, b", "drops 2 tables"),
        ("CREATE INDEX i ON t (a)", "write it as ALTER TABLE"),
        ("CREATE VIEW v AS SELECT 1", "is not a CREATE TABLE"),
        ("RENAME TABLE a TO b", "is not a CREATE TABLE"),
        ("ALTER TABLE t", "no change to make"),
        ("CREATE TEMPORARY TABLE t (id INT)", "temporary table"),
        ("CREATE TABLE t AS SELECT 1", "AS SELECT"),
        ("ALTER TABLE t ADD COLUMN c INT DEFAULT 'unterminated", "cannot parse"),
    ],
)
def test_invalid_statements_are_rejected_quoting_the_statement(ddl: str, fragment: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse_ddl(ddl)
    message = str(err.value)
    assert fragment in message
    if ddl.strip(" ;"):
        assert " ".join(ddl.strip().rstrip(";").split())[:40] in message


def test_long_statements_are_quoted_on_one_bounded_line() -> None:
    ddl = "ALTER TABLE t " + ", ".join(f"ADD COLUMN c{i} INT" for i in range(100)) + "; DROP TABLE x"
    with pytest.raises(ValidationError) as err:
        parse_ddl(ddl)
    assert "\n" not in str(err.value)
    assert len(str(err.value)) < 400
