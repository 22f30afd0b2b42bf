"""The parts of a Vitess plan that need no provider: input refused before anything is read, the
plan branch's name, VSchema files, and the deploy request diff's line format. The plan itself
runs against the emulator: tests/integration/planning/test_plan_vitess.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engines.planetscale.naming import branch_name
from engines.planetscale.preview import PLAN_BRANCH_PREFIX, plan_branch_name
from engines.targets import Target
from planetscale_emulator.schema_diff import TablePlan, VSchemaPlan, line_diff
from schemabot.errors import ValidationError
from schemabot.planning.planner import Planner
from schemabot.planning.vschema_files import read_vschemas

PS = Target("ps", "planetscale://id:token@acme/shop")


def test_bad_plan_input_is_refused_before_anything_is_read() -> None:
    with pytest.raises(ValidationError, match="cannot apply to target 'ps'"):
        Planner(PS, engine="spirit")
    with pytest.raises(ValidationError, match="changed twice"):
        Planner(PS).plan_ddl(["ALTER TABLE t ADD a INT", "ALTER TABLE T ADD b INT"], "commerce")
    with pytest.raises(ValidationError, match="unknown lint rule"):
        Planner(PS, disabled_rules=["SB999"])


def test_a_plan_branch_name_is_stable_per_input_and_never_an_apply_branch() -> None:
    one, other = plan_branch_name('{"ddl": ["a"]}'), plan_branch_name('{"ddl": ["b"]}')
    assert one == plan_branch_name('{"ddl": ["a"]}') and one != other
    assert one.startswith(PLAN_BRANCH_PREFIX) and len(one) <= 63
    # Apply branches are "sb-" and hex digits only; "plan" holds letters that are not hex.
    assert branch_name("apply-" + "0" * 16).startswith("sb-0")
    assert all(c in "0123456789abcdef" for c in branch_name("some-task-context")[3:])
    assert not all(c in "0123456789abcdef" for c in one[3:])


def test_vschema_files_one_per_keyspace_and_bad_ones_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "ks1").mkdir()
    (tmp_path / "ks2").mkdir()
    (tmp_path / "ks1" / "vschema.json").write_text(json.dumps({"tables": {"t": {}}}))
    (tmp_path / "ks2" / "t.sql").write_text("CREATE TABLE t (id INT PRIMARY KEY);")
    assert read_vschemas(tmp_path, None) == {"ks1": {"tables": {"t": {}}}}
    (tmp_path / "ks2" / "vschema.json").write_text("{nope")
    with pytest.raises(ValidationError, match=r"ks2/vschema.json: not valid JSON"):
        read_vschemas(tmp_path, None)
    (tmp_path / "ks2" / "vschema.json").write_text("42")
    with pytest.raises(ValidationError, match="must be a JSON object, not int"):
        read_vschemas(tmp_path, None)
    (tmp_path / "ks2" / "vschema.json").unlink()
    (tmp_path / "vschema.json").write_text("{}")
    with pytest.raises(ValidationError, match="in its subdirectory"):
        read_vschemas(tmp_path, None)


def test_a_top_level_vschema_json_needs_its_keyspace(tmp_path: Path) -> None:
    (tmp_path / "vschema.json").write_text('{"sharded": false}')
    with pytest.raises(ValidationError, match="--namespace"):
        read_vschemas(tmp_path, None)
    assert read_vschemas(tmp_path, "commerce") == {"commerce": {"sharded": False}}


def test_a_mysql_plan_refuses_vschema_files(tmp_path: Path) -> None:
    (tmp_path / "vschema.json").write_text("{}")
    (tmp_path / "t.sql").write_text("CREATE TABLE t (id INT PRIMARY KEY);")
    with pytest.raises(ValidationError, match="target my is MySQL"):
        Planner(Target("my", "mysql://root@127.0.0.1:1/shop")).plan_schema_dir(tmp_path)


def test_the_deploy_request_diff_marks_lines_of_main_and_of_the_branch() -> None:
    before = "CREATE TABLE `t` (\n  `id` int NOT NULL,\n  PRIMARY KEY (`id`)\n)"
    after = "CREATE TABLE `t` (\n  `id` int NOT NULL,\n  `a` int,\n  PRIMARY KEY (`id`)\n)"
    assert line_diff(before, after).split("\n") == [
        " CREATE TABLE `t` (",
        "   `id` int NOT NULL,",
        "+  `a` int,",
        "   PRIMARY KEY (`id`)",
        " )",
    ]
    created = TablePlan("ks", "t", "create", None, before).diff_text()
    dropped = TablePlan("ks", "t", "drop", before, None).diff_text()
    assert all(line.startswith("+") for line in created.split("\n"))
    assert all(line.startswith("-") for line in dropped.split("\n"))
    vschema = VSchemaPlan("ks", "{}", '{"tables": {"t": {}}, "sharded": false}').diff_text()
    assert vschema.split("\n") == [
        "-{}",
        "+{",
        '+  "sharded": false,',
        '+  "tables": {',
        '+    "t": {}',
        "+  }",
        "+}",
    ]


def test_vschema_removals_and_redefinitions_are_destructive_findings() -> None:
    from schemabot.planning import vschema_lint

    before = {
        "sharded": True,
        "vindexes": {"hash": {"type": "hash"}, "lookup": {"type": "lookup", "owner": "a"}},
        "tables": {
            "a": {"column_vindexes": [{"column": "id", "name": "hash"}]},
            "b": {"column_vindexes": [{"column": "id", "name": "hash"}]},
        },
    }
    after = {
        "sharded": True,
        "vindexes": {"lookup": {"type": "lookup", "owner": "b"}, "xxhash": {"type": "xxhash"}},
        "tables": {"a": {"column_vindexes": []}, "c": {}},
    }
    assert vschema_lint.removals(before, after) == [
        "removes vindex hash",
        "redefines vindex lookup (type, params or owner)",
        'removes a column vindex of a: {"column": "id", "name": "hash"}',
        "removes the routing of table b",
    ]
    assert vschema_lint.removals(before, {**before, "tables": {**before["tables"], "c": {}}}) == []
    found = vschema_lint.findings("ks", before, after, allow_unsafe=False)
    assert {(f.rule, f.name, f.blocking, f.destructive) for f in found} == {
        ("SB007", "vschema-removal", True, True)
    }
    allowed = vschema_lint.findings("ks", before, after, allow_unsafe=True)
    assert all(f.allowed and not f.blocking for f in allowed)
    assert vschema_lint.findings("ks", before, after, allow_unsafe=False, disabled=["vschema-removal"]) == []
