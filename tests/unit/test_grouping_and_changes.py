"""The grouped-apply predicate (docs/architecture.md §8 invariant 4) and rebuilding changes from
tasks (docs/architecture.md §10 S9-S11)."""

from __future__ import annotations

import pytest

from engines.base import NamespaceChange, TableChange
from schemabot.changes import rebuild_changes
from schemabot.engine_mix import options_for, run_order
from schemabot.errors import ResumeStateUnavailable
from schemabot.grouping import OperationLayout, operation_layout, uses_grouped_apply
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


@pytest.mark.parametrize(
    ("options", "layout"),
    [
        # Neither deferred nor atomic: every task its own operation, direct's first.
        ({}, [("t1", (0,)), ("t2", (1,)), ("t3", (2,)), ("t4", (3,))]),
        # Deferred: the predicate groups spirit's tables (context = apply id); direct is never
        # told to defer, so its tasks stay one operation each.
        ({"defer_cutover": True}, [("t1", (0,)), ("t2", (1,)), ("a", (2, 3))]),
        ({"atomic": True}, [("t1", (0,)), ("t2", (1,)), ("a", (2, 3))]),
    ],
)
def test_a_mixed_layout_asks_the_one_predicate_per_engine(
    options: dict[str, bool], layout: list[tuple[str, tuple[int, ...]]]
) -> None:
    engines = ["spirit", "direct", "spirit", "direct"]
    order = run_order(engines)
    assert order == [1, 3, 0, 2]  # native (direct) first, each set in the order given
    ordered = [engines[i] for i in order]
    got = operation_layout("a", ["t1", "t2", "t3", "t4"], ordered, options, mixed=True)
    assert got == [OperationLayout(c, t) for c, t in layout]
    assert options_for("direct", {"defer_cutover": True, "atomic": True}, mixed=True) == {
        "defer_cutover": False,
        "atomic": False,
    }
    assert options_for("direct", {"defer_cutover": True}, mixed=False) == {"defer_cutover": True}
    assert options_for("spirit", {"defer_cutover": True}, mixed=True) == {"defer_cutover": True}


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
