"""Reading statements: kinds, table names, renames and primary key changes."""

from __future__ import annotations

import pytest

from engines.base import PermanentEngineError, TableChange
from engines.spirit.statement import parse_change


def _parse(ddl: str, table: str = "t", action: str = "alter"):  # type: ignore[no-untyped-def]
    return parse_change("s", TableChange(table, ddl, action))  # type: ignore[arg-type]


def test_alter_clauses_are_kept_verbatim_and_retargeted_to_the_shadow() -> None:
    st = _parse("ALTER TABLE `s`.`t` ADD COLUMN x INT, ALGORITHM=INPLACE;")
    assert st.kind == "alter" and st.clauses == "ADD COLUMN x INT, ALGORITHM=INPLACE"
    assert (
        st.alter_on("s", "_t_new") == "ALTER TABLE `s`.`_t_new` ADD COLUMN x INT, ALGORITHM=INPLACE"
    )
    assert st.names_algorithm_or_lock


def test_change_and_rename_column_are_read_as_renames() -> None:
    assert _parse("ALTER TABLE t CHANGE a b INT, RENAME COLUMN c TO d").renames == {
        "a": "b",
        "c": "d",
    }
    assert _parse("ALTER TABLE t CHANGE a a BIGINT").renames == {}


def test_primary_key_changes_and_table_renames_are_flagged() -> None:
    assert _parse("ALTER TABLE t DROP PRIMARY KEY, ADD PRIMARY KEY (a)").changes_primary_key
    assert _parse("ALTER TABLE t ADD COLUMN id2 INT PRIMARY KEY").changes_primary_key
    assert not _parse("ALTER TABLE t ADD UNIQUE KEY u (a)").changes_primary_key


@pytest.mark.parametrize(
    "ddl",
    [
        "ALTER TABLE t RENAME TO u",
        "ALTER TABLE t RENAME AS u",  # issue 9 defect 9: was a parser error about a token
        "ALTER TABLE t RENAME u",
        "ALTER TABLE t ADD COLUMN x INT, RENAME AS u",
    ],
)
def test_table_renames_in_any_form_are_refused_with_one_clear_reason(ddl: str) -> None:
    with pytest.raises(PermanentEngineError, match="renames are not done online"):
        _parse(ddl)


def test_column_and_index_renames_are_not_table_renames() -> None:
    assert _parse("ALTER TABLE t RENAME COLUMN a TO b").renames == {"a": "b"}
    assert _parse("ALTER TABLE t RENAME INDEX a TO b").renames == {}


def test_dropped_columns_are_read_case_insensitively() -> None:
    st = _parse("ALTER TABLE t DROP COLUMN C1, ADD COLUMN c1 INT NOT NULL DEFAULT 47")
    assert st.dropped == frozenset({"c1"})


def test_command_fallback_forms_are_accepted() -> None:
    st = _parse("ALTER TABLE t CONVERT TO CHARACTER SET utf8mb4")
    assert st.clauses == "CONVERT TO CHARACTER SET utf8mb4" and not st.renames


def test_create_and_drop_are_read() -> None:
    create = _parse("CREATE TABLE t (id INT PRIMARY KEY)", action="create")
    assert create.create_as("s", "_t_new") == "CREATE TABLE `s`.`_t_new` (id INT PRIMARY KEY)"
    assert _parse("DROP TABLE IF EXISTS t", action="drop").kind == "drop"


def test_the_digest_identifies_the_exact_statement() -> None:
    assert _parse("ALTER TABLE t ADD x INT").digest != _parse("ALTER TABLE t ADD y INT").digest


@pytest.mark.parametrize(
    ("ddl", "action", "message"),
    [
        ("this is not sql", "alter", "unsupported statement"),
        ("ALTER TABLE u ADD x INT", "alter", "names u, not s.t"),
        ("ALTER TABLE other.t ADD x INT", "alter", "names other.t"),
        ("ALTER TABLE t ADD x INT; DROP TABLE t", "alter", "expected one statement"),
        ("DROP TABLE t", "alter", "says alter but the statement is DROP"),
        ("DROP TABLE t, u", "drop", "exactly one table"),
        ("ALTER TABLE t", "alter", "without a change"),
        ("   ", "alter", "no statement"),
    ],
)
def test_unsupported_or_mismatched_statements_are_permanent_errors(
    ddl: str, action: str, message: str
) -> None:
    with pytest.raises(PermanentEngineError, match=message):
        _parse(ddl, action=action)
