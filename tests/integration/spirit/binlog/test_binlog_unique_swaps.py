"""The binlog change source under writers that swap the values of a unique key between rows, in
multi-statement transactions (`SELECT ... FOR UPDATE`, three UPDATEs), before, during and after
the cutover, each mirrored into `expected` in the same transaction.

A `REPLACE` on a unique key besides the primary key deletes the shadow row holding the value;
in one copy lane that row is always the stale one and its own later event brings it back; in
three lanes it can be the newer row, which then changed after the step's catch-up and is replayed
too (binlogsource.py). The table must end exactly as `expected`, with no chunk left to the
checksum's repair. This workload also found the cutover releasing held writers before the RENAME
was queued on `t` (in about 1 run in 25 to 60 with three lanes on a loaded machine; caught by the
post-rename check, never silently; engines/spirit/cutover.py), which
test_binlog_cutover_lock_order.py now reproduces deterministically."""

from __future__ import annotations

import json
import random
import threading
from collections import Counter

import pymysql
import pytest

from engines.base import EngineState, RetryableEngineError
from tests.integration.spirit.support import checkpoint_row, engine, request
from tests.support.mariadb import connect

pytestmark = pytest.mark.integration

ROWS = 6000


def _swap_unique_values(
    schema: str, stop: threading.Event, seed: int, counts: Counter[str], errors: list[str]
) -> None:
    """Move unique values between rows, mirrored into `expected` in the same transaction."""
    rng = random.Random(seed)
    conn = connect(schema)
    conn.autocommit(False)
    with conn.cursor() as cur:
        while not stop.is_set():
            a, b = rng.sample(range(1, ROWS + 1), 2)
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
                if error.args[0] not in (1205, 1213):  # the writers' own lock waits
                    errors.append(repr(error))
    conn.close()


@pytest.mark.parametrize(("seed", "lanes"), [(1, 1), (2, 3), (3, 3)])
def test_unique_values_swapped_between_rows_during_the_change_end_exact(
    schema: str, seed: int, lanes: int
) -> None:
    conn = connect(schema)
    conn.autocommit(True)
    with conn.cursor() as cur:
        for table in ("t", "expected"):
            cur.execute(
                f"CREATE TABLE {table} (id INT NOT NULL PRIMARY KEY, u INT NULL, v INT NOT NULL, "
                "UNIQUE KEY uu (u)) ENGINE=InnoDB"
            )
            cur.execute(f"INSERT INTO {table} SELECT seq, seq, 0 FROM seq_1_to_{ROWS}")
    stop, counts, errors = threading.Event(), Counter[str](), []
    writers = [
        threading.Thread(target=_swap_unique_values, args=(schema, stop, seed * 10 + n, counts, errors))
        for n in range(3)
    ]
    for thread in writers:
        thread.start()
    events: list[str] = []
    try:
        req = request(
            [(schema, "t", "ALTER TABLE t MODIFY v BIGINT NOT NULL")],
            step_budget=0.05, chunk_rows=100, change_source="binlog", copy_lanes=lanes,
        )  # fmt: skip
        eng = engine(schema)
        assert eng.apply(req).accepted
        while True:
            try:
                result = eng.progress(req)
            except RetryableEngineError as error:
                events.append(str(error))  # a step that failed transiently: the next one goes on
                continue
            events.extend(result.events)
            if result.state == EngineState.COMPLETED:
                break
        eng.close()
    finally:
        stop.set()
        for thread in writers:
            thread.join()
    assert not errors, errors
    assert counts["swaps"] > 500, counts
    row = checkpoint_row(schema, "t")
    assert row is not None and row["change_source"] == "binlog"
    assert json.loads(row["copy_lanes"])["count"] == lanes
    # Converged by copy and replay alone: the checksum's repair was never needed.
    assert not [e for e in events if "repaired" in e], events
    with conn.cursor() as cur:
        cur.execute(
            "SELECT COUNT(*) FROM expected e LEFT JOIN t ON t.id = e.id "
            "WHERE t.id IS NULL OR NOT (t.u <=> e.u) OR t.v <> e.v"
        )
        assert cur.fetchone() == (0,)
        cur.execute("SELECT COUNT(*) FROM t")
        assert cur.fetchone() == (ROWS,)
    conn.close()
