"""The grouped-apply predicate (docs/architecture.md §8 invariant 4) and rebuilding changes from
tasks (docs/architecture.md §10 S9-S11)."""

from __future__ import annotations

import pytest

from engines.base import NamespaceChange, TableChange
from schemabot.changes import rebuild_changes
from schemabot.errors import ResumeStateUnavailable
from schemabot.grouping import uses_grouped_apply
from schemabot.storage.models import Task
from tests.conftest import FAKE_PLUGINS


@pytest.mark.parametrize(
    ("engine", "defer", "grouped"),
    [
        ("direct", False, False),
        ("direct", True, True),
        ("spirit", False, False),
        ("spirit", True, True),
        ("planetscale", False, True),  # Vitess: always grouped
        ("planetscale", True, True),
        ("fakevitess", False, True),
    ],
)
def test_grouped_predicate(engine: str, defer: bool, grouped: bool) -> None:
    assert uses_grouped_apply(engine, {"defer_cutover": defer}, FAKE_PLUGINS) is grouped


def _task(seq: int, ns: str, table: str, ddl: str | None, action: str, vschema: dict | None = None) -> Task:
    return Task(
        task_id=f"task-{seq}",
        seq=seq,
        namespace=ns,
        table_name=table,
        ddl=ddl,
        action=action,
        vschema=vschema,
        state="pending",
    )


def test_s9_changes_are_rebuilt_per_namespace_in_first_seen_order() -> None:
    tasks = [
        _task(2, "b", "t3", "ALTER TABLE t3 ADD c INT", "alter"),
        _task(0, "b", "t1", "CREATE TABLE t1 (id INT PRIMARY KEY)", "create"),
        _task(1, "a", "t2", "DROP TABLE t2", "drop"),
    ]
    assert rebuild_changes(tasks) == [
        NamespaceChange(
            "b",
            (
                TableChange("t1", "CREATE TABLE t1 (id INT PRIMARY KEY)", "create"),
                TableChange("t3", "ALTER TABLE t3 ADD c INT", "alter"),
            ),
        ),
        NamespaceChange("a", (TableChange("t2", "DROP TABLE t2", "drop"),)),
    ]


def test_s10_vschema_task_flags_its_namespace_and_adds_no_table_change() -> None:
    vschema = {"sharded": True}
    changes = rebuild_changes(
        [
            _task(0, "ks1", "t", "ALTER TABLE t ADD c INT", "alter"),
            _task(1, "ks1", "", None, "vschema_update", vschema),
        ]
    )
    assert changes == [
        NamespaceChange(
            "ks1",
            (TableChange("t", "ALTER TABLE t ADD c INT", "alter"),),
            vschema_changed=True,
            vschema=vschema,
        )
    ]


def test_s10_vschema_only_apply_rebuilds_one_namespace_with_the_flag() -> None:
    changes = rebuild_changes([_task(0, "ks", "", None, "vschema_update", {"tables": {}})])
    assert changes == [NamespaceChange("ks", (), vschema_changed=True, vschema={"tables": {}})]


def test_s11_a_table_change_with_empty_ddl_is_never_handed_to_an_engine() -> None:
    with pytest.raises(ResumeStateUnavailable, match="has no DDL"):
        rebuild_changes([_task(0, "ns", "t", "  ", "alter")])
