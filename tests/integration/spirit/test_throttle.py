"""Throttling (engines/spirit/throttle.py): the copy pauses while a replica named on the target's
DSN lags too far behind, or while too many threads run on the primary, and says so; it finishes
once the database is well again."""

from __future__ import annotations

from pathlib import Path

import pymysql
import pytest

from engines.base import EngineState
from engines.spirit import SpiritEngine
from engines.targets import Target
from tests.integration.spirit.support import checkpoint_row, engine, request, run_until, wait_for
from tests.support.servers import replicated_pair

pytestmark = pytest.mark.integration

# Not instant (a type change), so the table is copied.
ALTER = "ALTER TABLE t ADD COLUMN extra INT NOT NULL DEFAULT 3, MODIFY id BIGINT NOT NULL"


@pytest.mark.chaos
def test_the_copy_pauses_while_a_real_replica_lags_and_finishes_when_it_catches_up(
    tmp_path: Path,
) -> None:
    with replicated_pair(tmp_path) as (primary, replica):
        primary.execute("CREATE DATABASE d")
        primary.execute("CREATE TABLE d.t (id INT NOT NULL PRIMARY KEY, v VARCHAR(20))")
        primary.execute("INSERT INTO d.t SELECT seq, CONCAT('v', seq) FROM d.seq_1_to_20000")
        wait_for(
            lambda: bool(replica.query("SELECT COUNT(*) AS n FROM d.t")[0]["n"] == 20000),
            30,
            "the replica to catch up",
        )
        dsn = f"mysql://root@127.0.0.1:{primary.port}/d?replica=127.0.0.1:{replica.port}"
        eng = SpiritEngine(Target("primary", dsn))
        req = request([("d", "t", ALTER)], step_budget=0.01, chunk_rows=100, max_replica_lag_seconds=1)
        try:
            assert eng.apply(req).accepted
            first = eng.progress(req)
            assert not first.message.startswith("throttled"), first.message

            # The replica now applies every event an hour late: its lag grows past 1 s.
            replica.execute("STOP SLAVE")
            replica.execute("CHANGE MASTER TO MASTER_DELAY = 3600")
            replica.execute("START SLAVE")
            primary.execute("CREATE TABLE d.beat (id INT PRIMARY KEY)")
            wait_for(
                lambda: (replica.query("SHOW SLAVE STATUS")[0]["Seconds_Behind_Master"] or 0) > 1,
                30,
                "the replica to lag",
            )
            messages = [eng.progress(req).message]
            assert " lag " in messages[-1] and "> 1 s" in messages[-1], messages[-1]
            paused_at = checkpoint_row_on(primary.port)["rows_copied"]
            for _ in range(3):
                result = eng.progress(req)
                assert result.message.startswith("throttled: replica r1"), result.message
                assert result.state == EngineState.RUNNING
            assert checkpoint_row_on(primary.port)["rows_copied"] == paused_at
            assert paused_at < 20000

            replica.execute("STOP SLAVE")
            replica.execute("CHANGE MASTER TO MASTER_DELAY = 0")
            replica.execute("START SLAVE")
            done = run_until(eng, req)
            assert done.state == EngineState.COMPLETED
        finally:
            eng.close()
        conn = pymysql.connect(host="127.0.0.1", port=primary.port, user="root", database="d")
        with conn.cursor() as cur:
            cur.execute("SELECT COUNT(*), SUM(extra = 3) FROM t")
            assert cur.fetchone() == (20000, 20000)
        conn.close()


def checkpoint_row_on(port: int) -> dict[str, object]:
    conn = pymysql.connect(
        host="127.0.0.1",
        port=port,
        user="root",
        database="d",
        cursorclass=pymysql.cursors.DictCursor,
    )
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT * FROM _sb_spirit_checkpoint WHERE table_name = 't'")
            row = cur.fetchone()
            assert row is not None
            return dict(row)
    finally:
        conn.close()


def test_the_copy_pauses_above_the_threads_running_limit(schema: str, db: pymysql.Connection) -> None:
    with db.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT NOT NULL PRIMARY KEY, v INT)")
        cur.execute("INSERT INTO t SELECT seq, seq FROM seq_1_to_500")
    eng = engine(schema)
    # The engine's own query counts as a running thread: a limit of 0 always throttles.
    strict = request([(schema, "t", ALTER)], chunk_rows=100, max_threads_running=0)
    assert eng.apply(strict).accepted
    for _ in range(3):
        result = eng.progress(strict)
        assert result.message.startswith("throttled: Threads_running "), result.message
        assert "> 0 on the primary" in result.message
    assert checkpoint_row(schema, "t")["rows_copied"] == 0  # type: ignore[index]
    lenient = request([(schema, "t", ALTER)], chunk_rows=100, max_threads_running=1000)
    assert run_until(eng, lenient).state == EngineState.COMPLETED
    eng.close()
