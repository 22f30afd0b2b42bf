"""Parallel copy lanes (engines/spirit/lanes.py, parallel.py): chosen only where no AUTO-INC lock
serialises them, exact under writers (the blocking ALTER as oracle), and resumable from every
lane's watermark after the worker is SIGKILLed inside a chunk's transaction."""

from __future__ import annotations

import json
import random
from typing import Any

import pymysql
import pytest

from engines.base import EngineState
from engines.options import OptionsError, SpiritOptions, check_options
from tests.integration.spirit.oracle import Case, run_case
from tests.integration.spirit.support import (
    Worker,
    checkpoint_row,
    engine,
    request,
    run_until,
)

pytestmark = pytest.mark.integration

NARROW = (
    "CREATE TABLE t (id BIGINT NOT NULL PRIMARY KEY, a INT NOT NULL, "
    "b VARCHAR(20) NOT NULL, c DATE NULL, KEY a_1 (a)) ENGINE=InnoDB"
)


def _values(rng: random.Random) -> dict[str, Any]:
    return {
        "a": rng.randrange(-(2**31), 2**31),
        "b": f"v{rng.randrange(10**6)}",
        "c": None if rng.random() < 0.2 else f"2024-0{rng.randrange(1, 10)}-1{rng.randrange(10)}",
    }


LANES_CASE = Case(
    name="lanes_narrow_int_to_bigint",
    create=NARROW,
    alter="ALTER TABLE t MODIFY a BIGINT NOT NULL, ADD COLUMN d INT NOT NULL DEFAULT 7",
    values=_values,
    rows=1200,
    # Sparse keys, so that lanes split by key span hold unequal row counts.
    make_key=lambda n: (n * 3 + (n % 7),),
    writers=3,
)


def _lanes(schema: str, context: str) -> dict[str, Any]:
    row = checkpoint_row(schema, "t", context)
    assert row is not None and row["copy_lanes"], row
    return json.loads(row["copy_lanes"])  # type: ignore[no-any-return]


@pytest.mark.parametrize("kill", [False, True], ids=["writers", "writers-and-kill-mid-chunk"])
def test_lanes_give_what_the_blocking_alter_gives(
    schema: str, oracle_schema: str, kill: bool
) -> None:
    outcome = run_case(
        schema, oracle_schema, LANES_CASE, kill_mid_copy=kill, options={"copy_lanes": 3}
    )
    assert outcome.verdict == "identical"
    assert sum(outcome.writes.values()) > 50, outcome.writes
    if kill:
        assert outcome.killed_in == "copy", outcome.killed_in
    plan = _lanes(schema, f"fid-{LANES_CASE.name}")
    assert plan["count"] == 3 and len(plan["lanes"]) == 3, plan


@pytest.fixture
def oracle_schema(other_schema: str) -> str:
    return other_schema


def _in_shadow(db: pymysql.Connection, table: str, low: int | None, high: int | None) -> int:
    where = ["1=1"]
    if low is not None:
        where.append(f"id > {low}")
    if high is not None:
        where.append(f"id <= {high}")
    with db.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM {table} WHERE {' AND '.join(where)}")
        return int(cur.fetchone()[0])  # type: ignore[index]


def test_a_kill_inside_a_lane_chunk_leaves_each_lane_watermark_exact(
    schema: str, db: pymysql.Connection
) -> None:
    """Without writers, the shadow holds exactly the source's rows up to each lane's watermark
    and none after it, whichever lane was mid-chunk when the worker died; the next worker copies
    the rest and the result is complete, each row once."""
    with db.cursor() as cur:
        cur.execute(NARROW)
        cur.execute(
            "INSERT INTO t SELECT seq * 2, seq, CONCAT('r', seq), NULL FROM seq_1_to_20000"
        )
    ddl = "ALTER TABLE t MODIFY a BIGINT NOT NULL"
    req = request([(schema, "t", ddl)], copy_lanes=4, chunk_rows=500, step_budget=0.2)
    worker = Worker(schema, req, pause=0.0, die_mid_copy_after=7)
    assert worker.wait(timeout=60) == -9
    plan = _lanes(schema, "task-1")
    assert plan["count"] == 4
    copied = 0
    for lane in plan["lanes"]:
        upto = lane["copied"]
        inside = _in_shadow(db, "_sb_t_new", lane["start"], upto) if upto is not None else 0
        source = _in_shadow(db, "t", lane["start"], upto) if upto is not None else 0
        assert inside == source, lane
        beyond = _in_shadow(
            db, "_sb_t_new", upto if upto is not None else lane["start"], lane["end"]
        )
        assert beyond == 0, (lane, beyond)
        copied += inside
    row = checkpoint_row(schema, "t")
    assert row is not None and row["rows_copied"] == copied > 0
    assert 0 < copied < 20000

    eng = engine(schema)
    result = run_until(eng, req)
    assert result.state == EngineState.COMPLETED
    with db.cursor() as cur:
        cur.execute("SELECT COUNT(*), COUNT(DISTINCT id), SUM(a = id / 2) FROM t")
        assert cur.fetchone() == (20000, 20000, 20000)
        cur.execute("SHOW CREATE TABLE t")
        assert "`a` bigint(20) NOT NULL" in cur.fetchone()[1]  # type: ignore[index]
    eng.close()


def first_copy_step(schema: str, db: pymysql.Connection, create: str, **extra: Any) -> str:
    with db.cursor() as cur:
        cur.execute(create)
        cur.execute("INSERT INTO t (id, a) SELECT seq, seq FROM seq_1_to_30000")
    req = request([(schema, "t", "ALTER TABLE t MODIFY a BIGINT NOT NULL")], step_budget=0, **extra)
    eng = engine(schema)
    try:
        eng.apply(req)
        result = eng.progress(req)
    finally:
        eng.close()
    return result.tables[0].message


def test_an_auto_increment_column_keeps_one_lane_whatever_is_asked(
    schema: str, db: pymysql.Connection
) -> None:
    with db.cursor() as cur:
        cur.execute("SELECT @@GLOBAL.innodb_autoinc_lock_mode")
        (mode,) = cur.fetchone()  # type: ignore[misc]
    if int(mode) >= 2:
        pytest.skip("this server does not serialise on the AUTO-INC lock")
    message = first_copy_step(
        schema,
        db,
        "CREATE TABLE t (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, a INT NOT NULL)",
        copy_lanes=4,
    )
    plan = _lanes(schema, "task-1")
    assert plan["count"] == 1 and plan["lanes"] == []
    assert f"innodb_autoinc_lock_mode={mode}" in plan["why"]
    assert "1 copy lane" in message, message


def test_without_auto_increment_the_asked_lanes_are_used_and_shown(
    schema: str, db: pymysql.Connection
) -> None:
    message = first_copy_step(
        schema, db, "CREATE TABLE t (id INT NOT NULL PRIMARY KEY, a INT NOT NULL)", copy_lanes=3
    )
    plan = _lanes(schema, "task-1")
    assert plan["count"] == 3 and len(plan["lanes"]) == 3
    assert [ln["start"] for ln in plan["lanes"]] == [None, 10000, 20000]
    assert [ln["end"] for ln in plan["lanes"]] == [10000, 20000, None]
    assert message.startswith("3 copy lanes"), message


def test_auto_gives_a_small_table_one_lane(schema: str, db: pymysql.Connection) -> None:
    message = first_copy_step(
        schema, db, "CREATE TABLE t (id INT NOT NULL PRIMARY KEY, a INT NOT NULL)"
    )
    plan = _lanes(schema, "task-1")
    assert plan["count"] == 1 and "small table" in plan["why"], plan
    assert "1 copy lane (auto: a small table)" in message


def test_a_composite_key_keeps_one_lane(schema: str, db: pymysql.Connection) -> None:
    first_copy_step(
        schema,
        db,
        "CREATE TABLE t (id INT NOT NULL, a INT NOT NULL, PRIMARY KEY (id, a))",
        copy_lanes=2,
    )
    plan = _lanes(schema, "task-1")
    assert plan["count"] == 1 and "not one integer column" in plan["why"], plan


def test_the_option_is_checked_at_submit() -> None:
    assert check_options("spirit", SpiritOptions, {"copy_lanes": 4}) == {"copy_lanes": 4}
    assert check_options("spirit", SpiritOptions, {"copy_lanes": "auto"}) == {"copy_lanes": "auto"}
    for bad in (0, 17, "2", 1.5, True):
        with pytest.raises(OptionsError, match="copy_lanes"):
            check_options("spirit", SpiritOptions, {"copy_lanes": bad})
