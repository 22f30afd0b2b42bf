"""The quote-aware comment stripper, and the engines' intake of user text through it (issue 10 §3):
a trailing `-- ` or `#` comment never swallows a clause an engine adds."""

from __future__ import annotations

import pytest

from engines.base import PermanentEngineError, TableChange
from engines.mysql.ddl_text import HiddenSQL, UnterminatedSQL, mask_quoted, strip_comments
from engines.spirit.statement import parse_change


@pytest.mark.parametrize(
    ("sql", "stripped"),
    [
        ("-- lead\nALTER TABLE t ADD c INT -- trail", "ALTER TABLE t ADD c INT"),
        ("ALTER TABLE t ADD c INT # trail", "ALTER TABLE t ADD c INT"),
        ("/* lead */ ALTER TABLE t /* mid */ ADD c INT", "ALTER TABLE t   ADD c INT"),
        (
            "ALTER TABLE t ADD c INT COMMENT 'a -- b # c /*! d */'",
            "ALTER TABLE t ADD c INT COMMENT 'a -- b # c /*! d */'",
        ),
        (
            "ALTER TABLE t ADD c INT COMMENT 'it''s \\' -- x'",
            "ALTER TABLE t ADD c INT COMMENT 'it''s \\' -- x'",
        ),
        ("ALTER TABLE `a--b` ADD `c#` INT", "ALTER TABLE `a--b` ADD `c#` INT"),
        ("ALTER TABLE t ADD c INT DEFAULT 1--1", "ALTER TABLE t ADD c INT DEFAULT 1--1"),
    ],
)
def test_comments_go_quotes_stay(sql: str, stripped: str) -> None:
    assert strip_comments(sql) == stripped


@pytest.mark.parametrize(
    "sql",
    [
        "DROP TABLE dropme /*!50000 , other.victim */",
        "ALTER TABLE t /*M!100000 ADD c INT */ FORCE",
        "X /*m! y */",
    ],
)
def test_versioned_comments_are_refused(sql: str) -> None:
    with pytest.raises(HiddenSQL, match="versioned comment"):
        strip_comments(sql)


@pytest.mark.parametrize("sql", ["ALTER TABLE t COMMENT 'open", "ALTER TABLE t /* open", "ALTER TABLE `t"])
def test_unterminated_text_is_refused(sql: str) -> None:
    with pytest.raises(UnterminatedSQL):
        strip_comments(sql)


def test_mask_blanks_quoted_text_only() -> None:
    assert (
        mask_quoted("ALTER TABLE `lock` COMMENT 'ALGORITHM=COPY'")
        == "ALTER TABLE `    ` COMMENT '              '"
    )


@pytest.mark.parametrize("comment", ["-- note", "# note"])
def test_spirit_never_appends_its_algorithm_into_a_trailing_comment(comment: str) -> None:
    statement = parse_change("app", TableChange("t", f"ALTER TABLE t ADD COLUMN k INT {comment}", "alter"))
    assert statement.alter_instant() == "ALTER TABLE `app`.`t` ADD COLUMN k INT, ALGORITHM=INSTANT"
    assert "note" not in statement.alter_on("app", "_t_new")


def test_spirit_refuses_a_versioned_comment() -> None:
    with pytest.raises(PermanentEngineError, match="versioned comment"):
        parse_change("app", TableChange("t", "ALTER TABLE t ADD COLUMN k INT /*!50000 , DROP c */", "alter"))
