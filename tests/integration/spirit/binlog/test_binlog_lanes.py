"""Copy lanes with the binlog change source (lanes.py, parallel.py, binlogsource.py).

Every step catches up first and only then copies, so no replay runs while a lane's chunk does,
and the lanes write disjoint keys: the convergence argument of one copy holds for each key. The
blocking ALTER is the oracle, under writers that insert, update (primary keys too) and delete,
and with the driving worker SIGKILLed inside a lane's chunk. Writers swapping the values of
another unique key between rows, where a lane's `REPLACE` can delete a newer row
(binlogsource.py), are test_binlog_unique_swaps.py's."""

from __future__ import annotations

import json
from typing import Any

import pymysql
import pytest

from tests.integration.spirit.oracle import run_case
from tests.integration.spirit.support import checkpoint_row, request, triggers
from tests.integration.spirit.test_copy_lanes import LANES_CASE, first_copy_step
from tests.integration.spirit.test_copy_under_load import ALTER, SHAPES, run_killed_mid_copy

pytestmark = pytest.mark.integration


def _checkpoint(schema: str, context: str) -> dict[str, Any]:
    row = checkpoint_row(schema, "t", context)
    assert row is not None and row["copy_lanes"], row
    return row


@pytest.mark.parametrize("kill", [False, True], ids=["writers", "writers-and-kill-mid-chunk"])
def test_binlog_lanes_give_what_the_blocking_alter_gives(
    schema: str, oracle_schema: str, kill: bool
) -> None:
    outcome = run_case(
        schema,
        oracle_schema,
        LANES_CASE,
        kill_mid_copy=kill,
        options={"copy_lanes": 3, "change_source": "binlog"},
    )
    assert outcome.verdict == "identical"
    assert outcome.writes["insert"] and outcome.writes["pk_change"], outcome.writes
    if kill:
        assert outcome.killed_in == "copy", outcome.killed_in
    row = _checkpoint(schema, f"fid-{LANES_CASE.name}")
    assert row["change_source"] == "binlog"
    plan = json.loads(row["copy_lanes"])
    assert plan["count"] == 3 and len(plan["lanes"]) == 3, plan


def test_binlog_lanes_under_four_writers_with_the_worker_killed_lose_nothing(schema: str) -> None:
    """test_binlog_under_load.py's run, in three lanes: inserts, updates, deletes and primary
    key changes before, during and after the cutover, the worker SIGKILLed mid-copy and writes
    going on with no worker alive; the table ends exactly as the writers wrote it."""
    (shape,) = [s for s in SHAPES if s.name == "int_unsigned"]  # one integer key, no AUTO_INCREMENT
    req = request(
        [(schema, "t", ALTER)], step_budget=0.05, chunk_rows=100, change_source="binlog", copy_lanes=3
    )

    def in_lanes_with_no_trigger(killed_at: dict[str, Any]) -> None:
        assert killed_at["change_source"] == "binlog" and killed_at["binlog_position"]
        plan = json.loads(killed_at["copy_lanes"])
        assert plan["count"] == 3 and any(lane["copied"] for lane in plan["lanes"]), plan
        assert triggers(schema) == set()

    writers = run_killed_mid_copy(schema, shape, req, on_kill=in_lanes_with_no_trigger)
    assert not writers.errors, writers.errors


def test_the_binlog_copy_runs_in_the_asked_lanes_and_says_so(
    schema: str, db: pymysql.Connection
) -> None:
    message = first_copy_step(
        schema,
        db,
        "CREATE TABLE t (id INT NOT NULL PRIMARY KEY, a INT NOT NULL)",
        copy_lanes=3,
        change_source="binlog",
    )
    plan = json.loads(_checkpoint(schema, "task-1")["copy_lanes"])
    assert plan["count"] == 3, plan
    assert message.startswith("3 copy lanes"), message
