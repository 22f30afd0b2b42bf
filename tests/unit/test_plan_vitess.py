"""A plan for a Vitess target (no server to rehearse on): engine planetscale, and what the text
shows as destructive is linted and blocks without allow_unsafe."""

from __future__ import annotations

from engines.targets import Target
from schemabot.planning.planner import Planner

PS = Target("ps", "planetscale://id:token@acme/shop")


def test_vitess_statements_go_to_planetscale_and_text_lint_applies() -> None:
    plan = Planner(PS).plan_ddl(["ALTER TABLE t DROP COLUMN a", "ALTER TABLE u ADD COLUMN b INT"], "commerce")
    assert [(s.table, s.engine, s.algorithm) for s in plan.statements] == [
        ("t", "planetscale", None),
        ("u", "planetscale", None),
    ]
    assert [f.rule for f in plan.statements[0].findings] == ["SB002"] and plan.blocking
    allowed = Planner(PS, allow_unsafe=True).plan_ddl(["DROP TABLE t"], "commerce")
    assert [(f.rule, f.allowed) for f in allowed.statements[0].findings] == [("SB001", True)]
    assert not allowed.blocking
    quiet = Planner(PS, disabled_rules=["drop-table"]).plan_ddl(["DROP TABLE t"], "commerce")
    assert quiet.statements[0].findings == []


def test_bad_plan_input_is_refused_before_anything_is_read() -> None:
    import pytest

    from schemabot.errors import ValidationError

    with pytest.raises(ValidationError, match="cannot apply to target 'ps'"):
        Planner(PS, engine="spirit")
    with pytest.raises(ValidationError, match="changed twice"):
        Planner(PS).plan_ddl(["ALTER TABLE t ADD a INT", "ALTER TABLE T ADD b INT"], "commerce")
    with pytest.raises(ValidationError, match="unknown lint rule"):
        Planner(PS, disabled_rules=["SB999"])
