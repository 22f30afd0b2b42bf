"""Copy lanes with the binlog change source (lanes.py, parallel.py, binlogsource.py).

Every step catches up first and only then copies, so no replay runs while a lane's chunk does,
and the lanes write disjoint keys: the convergence argument of one copy holds for each key. The
blocking ALTER is the oracle, under writers that insert, update (primary keys too) and delete,
and with the driving worker SIGKILLed inside a lane's chunk; and with writers swapping the
values of another unique key between rows, where a lane's `REPLACE` can delete a newer row
(binlogsource.py)."""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from typing import Any

import pymysql
import pytest

from engines.base import EngineState, RetryableEngineError
from engines.spirit.engine import SpiritEngine
from tests.integration.spirit.oracle import run_case
from tests.integration.spirit.support import checkpoint_row, engine, request, triggers
from tests.integration.spirit.test_copy_lanes import LANES_CASE
from tests.integration.spirit.test_copy_under_load import ALTER, SHAPES, run_killed_mid_copy
from tests.support.mariadb import connect

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


def _first_copy_step(schema: str, db: pymysql.Connection, create: str) -> str:
    with db.cursor() as cur:
        cur.execute(create)
        cur.execute("INSERT INTO t (id, a) SELECT seq, seq FROM seq_1_to_30000")
    req = request(
        [(schema, "t", "ALTER TABLE t MODIFY a BIGINT NOT NULL")],
        step_budget=0,
        copy_lanes=3,
        change_source="binlog",
    )
    eng: SpiritEngine = engine(schema)
    try:
        eng.apply(req)
        result = eng.progress(req)
    finally:
        eng.close()
    return result.tables[0].message


def test_the_binlog_copy_runs_in_the_asked_lanes_and_says_so(
    schema: str, db: pymysql.Connection
) -> None:
    message = _first_copy_step(schema, db, "CREATE TABLE t (id INT NOT NULL PRIMARY KEY, a INT NOT NULL)")
    plan = json.loads(_checkpoint(schema, "task-1")["copy_lanes"])
    assert plan["count"] == 3, plan
    assert message.startswith("3 copy lanes"), message


def _swap_unique_values(
    schema: str, stop: threading.Event, seed: int, counts: Counter[str], errors: list[str]
) -> None:
    """Move unique values between rows, mirrored into `expected` in the same transaction."""
    rng = random.Random(seed)
    conn = connect(schema)
    conn.autocommit(False)
    with conn.cursor() as cur:
        while not stop.is_set():
            a, b = rng.sample(range(1, SWAP_ROWS + 1), 2)
            try:
                cur.execute("SELECT id, u FROM t WHERE id IN (%s, %s) ORDER BY id FOR UPDATE", (a, b))
                held = dict(cur.fetchall())
                for table in ("t", "expected"):
                    cur.execute(f"UPDATE {table} SET u = NULL WHERE id = %s", (a,))
                    cur.execute(f"UPDATE {table} SET u = %s, v = v + 1 WHERE id = %s", (held[a], b))
                    cur.execute(f"UPDATE {table} SET u = %s WHERE id = %s", (held[b], a))
                conn.commit()
                counts["swaps"] += 1
            except pymysql.MySQLError as error:
                conn.rollback()
                counts[str(error.args[0])] += 1
                if error.args[0] not in (1205, 1213):  # the swappers' own lock waits
                    errors.append(repr(error))
    conn.close()


SWAP_ROWS = 6000


@pytest.mark.parametrize("seed", [1, 2])
def test_unique_values_swapped_between_rows_during_a_copy_in_lanes_end_exact(
    schema: str, seed: int
) -> None:
    """A `REPLACE` on a unique key besides the primary key deletes the shadow row holding the
    value, and with lanes that can be the newer row (binlogsource.py): three writers swap unique
    values between random rows, across lanes, while the table is copied in three lanes; the
    table must end exactly as the writers left `expected`."""
    conn = connect(schema)
    conn.autocommit(True)
    with conn.cursor() as cur:
        for table in ("t", "expected"):
            cur.execute(
                f"CREATE TABLE {table} (id INT NOT NULL PRIMARY KEY, u INT NULL, v INT NOT NULL, "
                "UNIQUE KEY uu (u)) ENGINE=InnoDB"
            )
            cur.execute(f"INSERT INTO {table} SELECT seq, seq, 0 FROM seq_1_to_{SWAP_ROWS}")
    stop, counts, errors = threading.Event(), Counter[str](), []
    swappers = [
        threading.Thread(target=_swap_unique_values, args=(schema, stop, seed * 10 + n, counts, errors))
        for n in range(3)
    ]
    for thread in swappers:
        thread.start()
    try:
        req = request(
            [(schema, "t", "ALTER TABLE t MODIFY v BIGINT NOT NULL")],
            step_budget=0.05, chunk_rows=100, change_source="binlog", copy_lanes=3,
        )  # fmt: skip
        eng = engine(schema)
        assert eng.apply(req).accepted
        events: list[str] = []
        while True:
            try:
                result = eng.progress(req)
            except RetryableEngineError:
                continue  # a chunk that deadlocked on every try within a step: the next step
            events.extend(result.events)
            if result.state == EngineState.COMPLETED:
                break
        eng.close()
    finally:
        stop.set()
        for thread in swappers:
            thread.join()
    assert not errors, errors
    assert counts["swaps"] > 500, counts
    # Converged by copy and replay alone: the checksum's repair, which would also end exact, was
    # never needed.
    assert not [e for e in events if "repaired" in e], events
    plan = json.loads(_checkpoint(schema, "task-1")["copy_lanes"])
    assert plan["count"] == 3, plan
    with conn.cursor() as cur:
        cur.execute(
            "SELECT COUNT(*) FROM expected e LEFT JOIN t ON t.id = e.id "
            "WHERE t.id IS NULL OR NOT (t.u <=> e.u) OR t.v <> e.v"
        )
        assert cur.fetchone() == (0,)
        cur.execute("SELECT COUNT(*) FROM t")
        assert cur.fetchone() == (SWAP_ROWS,)
    conn.close()
