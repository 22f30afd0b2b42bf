"""Preflight checks, each fed hand-made facts (no server)."""

from __future__ import annotations

import pytest

from engines.base import PermanentEngineError, TableChange
from engines.spirit import check
from engines.spirit.check import CheckContext, Phase
from engines.spirit.check.grants import privileges_on
from engines.spirit.statement import parse_change
from engines.spirit.tableinfo import Column, TableInfo

SCHEMA_GRANT = (
    "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, TRIGGER ON `s`.* TO `u`@`%`"
)
ROOT = ["GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION"]


def _table(pk: tuple[str, ...] = ("id",), name: str = "t") -> TableInfo:
    return TableInfo(
        "s", name, (Column("id", "int(11)", False), Column("v", "int(11)", False)), pk, ""
    )


def _ctx(ddl: str = "ALTER TABLE t ADD x INT", **facts) -> CheckContext:  # type: ignore[no-untyped-def]
    table = ddl.split()[2]
    statement = parse_change("s", TableChange(table, ddl, ddl.split()[0].lower()))  # type: ignore[arg-type]
    base = {"source": _table(name=table), "grants": ROOT, "variables": {"log_bin": "OFF"}}
    return CheckContext(statement=statement, **{**base, **facts})


def test_every_check_module_registers_itself() -> None:
    assert {
        "binlog_trigger_creation",
        "foreign_keys",
        "old_table",
        "primary_key",
        "primary_key_statement",
        "primary_key_unchanged",
        "privileges",
        "statement",
        "table_name",
        "triggers",
    } <= set(check.registered())


def test_an_unremarkable_table_passes() -> None:
    assert check.problems(Phase.PREFLIGHT, _ctx()) == []


@pytest.mark.parametrize(
    ("facts", "message"),
    [
        ({"source": _table(pk=())}, "no primary key"),
        ({"triggers": ["audit"]}, "has triggers (audit)"),
        ({"foreign_keys": ["fk_a"]}, "foreign keys (fk_a)"),
        ({"old_table_exists": True}, "_sb_t_old exists"),
        ({"source": None}, "does not exist"),
        ({"grants": ["GRANT SELECT, INSERT ON `s`.* TO `u`@`%`"]}, "lacks UPDATE, DELETE, CREATE"),
    ],
)
def test_each_problem_is_named(facts: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(PermanentEngineError, match="preflight failed") as failure:
        check.run(Phase.PREFLIGHT, _ctx(**facts))
    assert message in str(failure.value)


def test_copy_only_checks_do_not_apply_to_direct_changes() -> None:
    ctx = _ctx(source=_table(pk=()), triggers=["audit"], uses_copy=False)
    assert check.problems(Phase.PREFLIGHT, ctx) == []


def test_long_table_names_leave_no_room_for_affixes() -> None:
    name = "x" * 60
    assert any(
        "longer than 56" in p
        for p in check.problems(Phase.PREFLIGHT, _ctx(f"ALTER TABLE {name} ADD y INT"))
    )


def test_binlog_on_without_super_or_trust_refuses_trigger_creation() -> None:
    grants = [SCHEMA_GRANT]
    off = {"log_bin": "ON", "log_bin_trust_function_creators": "OFF"}
    found = check.problems(Phase.PREFLIGHT, _ctx(grants=grants, variables=off))
    assert any("log_bin_trust_function_creators" in p for p in found)


@pytest.mark.parametrize(
    ("grants", "variables"),
    [
        (
            [SCHEMA_GRANT],
            {"log_bin": "ON", "log_bin_trust_function_creators": "ON"},
        ),
        (ROOT, {"log_bin": "ON", "log_bin_trust_function_creators": "OFF"}),
        (
            ["GRANT SUPER ON *.* TO `u`@`%`", "GRANT ALL PRIVILEGES ON `s`.* TO `u`@`%`"],
            {"log_bin": "ON", "log_bin_trust_function_creators": "OFF"},
        ),
        (ROOT, {"log_bin": "OFF"}),
    ],
    ids=["trust_on", "all_privileges", "super", "binlog_off"],
)
def test_binlog_trigger_creation_is_allowed_when_trusted_or_super(
    grants: list[str], variables: dict
) -> None:  # type: ignore[type-arg]
    assert check.problems(Phase.PREFLIGHT, _ctx(grants=grants, variables=variables)) == []


def test_primary_key_of_the_shadow_must_equal_the_source() -> None:
    ctx = _ctx(shadow=_table(pk=("id", "v")))
    assert any("primary key" in p for p in check.problems(Phase.POST_SETUP, ctx))
    assert check.problems(Phase.POST_SETUP, _ctx(shadow=_table())) == []


def test_grants_understand_schema_wildcards_and_table_grants() -> None:
    grants = [
        "GRANT USAGE ON *.* TO `u`@`%`",
        "GRANT SELECT, INSERT ON `app\\_%`.* TO `u`@`%`",
        "GRANT TRIGGER ON `app_1`.`t` TO `u`@`%`",
        "GRANT UPDATE (a, b) ON `app_1`.`u` TO `u`@`%`",
    ]
    assert privileges_on(grants, "app_1", "t") == {"USAGE", "SELECT", "INSERT", "TRIGGER"}
    assert privileges_on(grants, "appx1", "t") == {"USAGE"}
