"""Each lint rule (issue 13, part 3) on hand-made definitions, in the server's SHOW CREATE
TABLE format: the rule fires on the risky change and stays quiet on its safe neighbour."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from schemabot.planning import lint
from schemabot.planning.differ import diff_table
from schemabot.planning.tabledef import Charsets, TableDef, parse_show_create

UTF8 = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci"


def table(*lines: str, options: str = UTF8, charsets: Charsets | None = None) -> TableDef:
    body = ",\n".join(f"  {line}" for line in lines)
    return parse_show_create(f"CREATE TABLE `t` (\n{body}\n) {options}", charsets)


def findings(
    live: TableDef | None,
    desired: TableDef | None,
    *,
    rows: int = 100,
    allow_unsafe: bool = False,
    disabled: tuple[str, ...] = (),
    query: Any = None,
) -> list[lint.Finding]:
    diff = diff_table(live, desired)
    assert diff is not None
    subject = lint.LintSubject("db", diff, rows, query=query)
    return lint.run_rules(subject, allow_unsafe=allow_unsafe, disabled=disabled)


def rules(found: list[lint.Finding]) -> list[str]:
    return sorted(f.rule for f in found)


PK = "PRIMARY KEY (`id`)"
ID = "`id` int(11) NOT NULL"


def test_every_rule_has_a_stable_id_a_severity_and_a_one_line_reason() -> None:
    assert set(lint.RULES) == {f"SB00{i}" for i in range(1, 9)} | {f"SB10{i}" for i in range(1, 9)}
    for rule in lint.RULES.values():
        assert rule.severity in (lint.ERROR, lint.WARNING)
        assert rule.reason and "\n" not in rule.reason
        assert rule.destructive == rule.id.startswith("SB00")


def test_sb001_drop_table() -> None:
    found = findings(table(ID, PK), None)
    assert rules(found) == ["SB001"] and found[0].blocking and "100 row" in found[0].message


def test_sb002_drop_column() -> None:
    found = findings(table(ID, "`a` int(11) DEFAULT NULL", PK), table(ID, PK))
    assert rules(found) == ["SB002"] and "t.a" in found[0].message


def test_sb003_narrow_type_and_not_widening() -> None:
    wide = table(ID, "`a` bigint(20) DEFAULT NULL", PK)
    narrow = table(ID, "`a` smallint(6) DEFAULT NULL", PK)
    assert rules(findings(wide, narrow)) == ["SB003"]
    assert rules(findings(narrow, wide)) == []
    money = table(ID, "`m` decimal(10,2) DEFAULT NULL", PK)
    less = table(ID, "`m` decimal(8,2) DEFAULT NULL", PK)
    assert rules(findings(money, less)) == ["SB003"]


@pytest.mark.parametrize(
    ("before", "after", "narrowing"),
    [
        ("int(11) DEFAULT NULL", "varchar(3) DEFAULT NULL", True),  # "-2147483648" needs 11
        ("int(11) DEFAULT NULL", "varchar(10) DEFAULT NULL", True),
        ("int(11) DEFAULT NULL", "varchar(11) DEFAULT NULL", False),
        ("int(10) unsigned DEFAULT NULL", "char(10) DEFAULT NULL", False),  # 4294967295
        ("bigint(20) DEFAULT NULL", "varchar(19) DEFAULT NULL", True),
        ("tinyint(4) DEFAULT NULL", "varchar(4) DEFAULT NULL", False),
        ("decimal(10,2) DEFAULT NULL", "varchar(8) DEFAULT NULL", True),  # "-12345678.90" is 12
        ("decimal(10,2) DEFAULT NULL", "varchar(12) DEFAULT NULL", False),
        ("int(11) DEFAULT NULL", "text DEFAULT NULL", False),
    ],
)
def test_sb003_narrowing_across_families(before: str, after: str, narrowing: bool) -> None:
    cs = {"a": ("utf8mb4", "utf8mb4_general_ci")} if "char" in after or "text" in after else None
    found = findings(table(ID, f"`a` {before}", PK), table(ID, f"`a` {after}", PK, charsets=cs))
    assert ("SB003" in rules(found)) is narrowing, found


def test_sb004_shrink_varchar_and_not_growing() -> None:
    cs = {"s": ("utf8mb4", "utf8mb4_general_ci")}
    long = table(ID, "`s` varchar(200) DEFAULT NULL", PK, charsets=cs)
    short = table(ID, "`s` varchar(20) DEFAULT NULL", PK, charsets=cs)
    assert rules(findings(long, short)) == ["SB004"]
    assert rules(findings(short, long)) == []


def test_sb005_narrow_charset() -> None:
    before = table(ID, "`s` varchar(20) DEFAULT NULL", PK, charsets={"s": ("utf8mb4", "utf8mb4_general_ci")})
    after = table(
        ID,
        "`s` varchar(20) CHARACTER SET latin1 COLLATE latin1_swedish_ci DEFAULT NULL",
        PK,
        charsets={"s": ("latin1", "latin1_swedish_ci")},
    )
    assert rules(findings(before, after)) == ["SB005", "SB107"]  # and latin1 is a legacy charset
    assert rules(findings(after, before)) == []


def column_in(charset: str) -> TableDef:
    return table(
        ID,
        f"`s` varchar(20) CHARACTER SET {charset} DEFAULT NULL",
        PK,
        charsets={"s": (charset, f"{charset}_general_ci")},
    )


@pytest.mark.parametrize(
    ("old", "new", "narrowing"),
    [
        ("latin1", "ascii", True),  # one byte each, but ascii has no 'é'
        ("ascii", "latin1", False),
        ("utf8mb3", "latin1", True),
        ("latin1", "utf8mb3", False),
        ("utf8mb4", "utf8mb3", True),
        ("utf8mb4", "utf16", False),  # both all of Unicode
        ("ucs2", "utf8mb3", False),
        ("cp1251", "latin1", True),  # not in the table: safe only into full Unicode
        ("cp1251", "utf8mb4", False),
    ],
)
def test_sb005_compares_repertoires_not_bytes(old: str, new: str, narrowing: bool) -> None:
    found = findings(column_in(old), column_in(new))
    assert ("SB005" in rules(found)) is narrowing, found


def test_sb006_drop_primary_key() -> None:
    found = findings(table(ID, PK), table(ID))
    assert "SB006" in rules(found) and "SB103" in rules(found)


def test_destructive_findings_are_allowed_by_allow_unsafe_and_recorded_as_such() -> None:
    found = findings(table(ID, "`a` int(11) DEFAULT NULL", PK), table(ID, PK), allow_unsafe=True)
    assert [(f.rule, f.allowed, f.blocking) for f in found] == [("SB002", True, False)]


def test_disabled_rules_do_not_run_by_id_or_name() -> None:
    live, desired = table(ID, "`a` int(11) DEFAULT NULL", PK), table(ID, PK)
    assert findings(live, desired, disabled=("SB002",)) == []
    assert findings(live, desired, disabled=("drop-column",)) == []


def test_sb101_not_null_without_default_on_a_non_empty_table() -> None:
    live = table(ID, PK)
    desired = table(ID, "`n` int(11) NOT NULL", PK)
    assert rules(findings(live, desired)) == ["SB101"]
    assert rules(findings(live, desired, rows=0)) == []
    with_default = table(ID, "`n` int(11) NOT NULL DEFAULT 0", PK)
    assert rules(findings(live, with_default)) == []
    nullable = table(ID, "`n` int(11) DEFAULT NULL", PK)
    assert rules(findings(nullable, desired)) == ["SB101"]


def test_sb102_unique_key_checked_with_a_bounded_query() -> None:
    live = table(ID, "`e` int(11) DEFAULT NULL", PK)
    desired = table(ID, "`e` int(11) DEFAULT NULL", PK, "UNIQUE KEY `ue` (`e`)")
    asked: list[str] = []

    def duplicates(sql: str) -> tuple[Any, ...] | None:
        asked.append(sql)
        return (7, 2)

    found = findings(live, desired, query=duplicates)
    assert rules(found) == ["SB102"] and found[0].blocking and "(7)" in found[0].message
    assert "LIMIT 1" in asked[0] and "HAVING COUNT(*) > 1" in asked[0]
    assert findings(live, desired, query=lambda sql: None) == []
    too_big = findings(live, desired, rows=lint.UNIQUE_CHECK_MAX_ROWS + 1, query=duplicates)
    assert [(f.rule, f.severity) for f in too_big] == [("SB102", lint.WARNING)]

    def interrupted(sql: str) -> tuple[Any, ...] | None:
        raise lint.QueryTimeout("Query execution was interrupted (max_statement_time exceeded)")

    slow = findings(live, desired, query=interrupted)
    assert [(f.rule, f.severity) for f in slow] == [("SB102", lint.WARNING)]
    assert "interrupted" in slow[0].message


def test_sb103_no_primary_key_on_a_new_table() -> None:
    assert rules(findings(None, table(ID))) == ["SB103"]
    assert rules(findings(None, table(ID, PK))) == []


def test_sb104_foreign_key() -> None:
    live = table(ID, "`p` int(11) DEFAULT NULL", PK, "KEY `fk` (`p`)")
    desired = table(
        ID,
        "`p` int(11) DEFAULT NULL",
        PK,
        "KEY `fk` (`p`)",
        "CONSTRAINT `fk` FOREIGN KEY (`p`) REFERENCES `p` (`id`)",
    )
    assert rules(findings(live, desired)) == ["SB104"]


def test_sb105_wide_index_and_not_a_prefix() -> None:
    cs = {"s": ("utf8mb4", "utf8mb4_general_ci")}
    live = table(ID, "`s` varchar(500) DEFAULT NULL", PK, charsets=cs)
    whole = table(ID, "`s` varchar(500) DEFAULT NULL", PK, "KEY `is` (`s`)", charsets=cs)
    prefix = table(ID, "`s` varchar(500) DEFAULT NULL", PK, "KEY `is` (`s`(50))", charsets=cs)
    assert rules(findings(live, whole)) == ["SB105"]
    assert rules(findings(live, prefix)) == []


def test_sb106_redundant_index() -> None:
    live = table(ID, "`a` int(11) DEFAULT NULL", "`b` int(11) DEFAULT NULL", PK, "KEY `ab` (`a`,`b`)")
    desired = table(
        ID, "`a` int(11) DEFAULT NULL", "`b` int(11) DEFAULT NULL", PK, "KEY `ab` (`a`,`b`)", "KEY `a` (`a`)"
    )
    found = findings(live, desired)
    assert rules(found) == ["SB106"] and "covered by ab" in found[0].message
    other = table(
        ID, "`a` int(11) DEFAULT NULL", "`b` int(11) DEFAULT NULL", PK, "KEY `ab` (`a`,`b`)", "KEY `b` (`b`)"
    )
    assert rules(findings(live, other)) == []


def test_sb107_legacy_charset_for_new_tables() -> None:
    latin = table(ID, "`s` varchar(5) DEFAULT NULL", PK, options="ENGINE=InnoDB DEFAULT CHARSET=latin1")
    assert rules(findings(None, latin)) == ["SB107"]
    assert rules(findings(None, table(ID, PK))) == []


def test_sb107_utf8mb3_for_a_new_table_and_an_added_column() -> None:
    mb3 = table(ID, "`s` varchar(5) DEFAULT NULL", PK, options="ENGINE=InnoDB DEFAULT CHARSET=utf8mb3")
    found = findings(None, mb3)
    assert rules(found) == ["SB107"] and "utf8mb3" in found[0].message
    added = table(
        ID,
        "`s` varchar(5) CHARACTER SET utf8mb3 COLLATE utf8mb3_general_ci DEFAULT NULL",
        PK,
        charsets={"s": ("utf8mb3", "utf8mb3_general_ci")},
    )
    found = findings(table(ID, PK), added)
    assert rules(found) == ["SB107"] and "t.s uses utf8mb3" in found[0].message


def test_sb106_an_exact_duplicate_index() -> None:
    cols = (ID, "`a` int(11) DEFAULT NULL", "`b` int(11) DEFAULT NULL", PK)
    live = table(*cols, "KEY `ab` (`a`,`b`)")
    found = findings(live, table(*cols, "KEY `ab` (`a`,`b`)", "KEY `ab2` (`a`,`b`)"))
    assert rules(found) == ["SB106"] and "ab2 (a, b) is covered by ab (a, b)" in found[0].message
    unique = findings(live, table(*cols, "UNIQUE KEY `uab` (`a`,`b`)", "KEY `ab` (`a`,`b`)"))
    [redundant] = [f for f in unique if f.rule == "SB106"]  # (SB102: the new unique key, unchecked)
    assert "ab (a, b) is covered by uab" in redundant.message


def test_rules_disabled_in_the_targets_file_section(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from schemabot.planning.config import disabled_rules
    from schemabot.settings import Settings

    path = tmp_path / "targets.toml"
    path.write_text(
        '[targets]\nshop = "mysql://root@127.0.0.1:3306/shop"\n\n'
        '[lint.Shop]\ndisable = ["SB106", "legacy-charset"]\n\n[lint.other]\ndisable = ["SB003"]\n'
    )
    monkeypatch.setenv("SCHEMABOT_LINT_DISABLE_SHOP", "SB103")
    settings = Settings(targets_file=path)
    off = disabled_rules(settings, "shop")
    assert off == ["SB103", "SB106", "legacy-charset"]
    mb3 = table(ID, "`s` varchar(5) DEFAULT NULL", PK, options="ENGINE=InnoDB DEFAULT CHARSET=utf8mb3")
    assert rules(findings(None, mb3, disabled=tuple(off))) == []
    assert rules(findings(None, mb3, disabled=tuple(disabled_rules(settings, "other")))) == ["SB107"]


def test_sb108_float_for_money_is_a_warning() -> None:
    found = findings(table(ID, PK), table(ID, "`price` float DEFAULT NULL", PK))
    assert [(f.rule, f.severity, f.blocking) for f in found] == [("SB108", lint.WARNING, False)]
    assert rules(findings(table(ID, PK), table(ID, "`ratio` float DEFAULT NULL", PK))) == []


@pytest.mark.parametrize(
    ("ddl", "expected"),
    [
        ("DROP TABLE t", ["drops table t"]),
        ("ALTER TABLE t DROP COLUMN a, ADD b INT", ["drops column a"]),
        ("ALTER TABLE t DROP a", ["drops column a"]),
        ("ALTER TABLE t DROP PRIMARY KEY, ADD PRIMARY KEY (id, v)", ["drops the primary key"]),
        ("ALTER TABLE t DROP INDEX a", []),
        ("ALTER TABLE t ADD COLUMN c INT", []),
        ("CREATE TABLE t (id INT PRIMARY KEY)", []),
    ],
)
def test_destructive_statements_seen_in_the_text(ddl: str, expected: list[str]) -> None:
    from schemabot.planning.destructive import destructive_reasons

    assert destructive_reasons(ddl) == expected
