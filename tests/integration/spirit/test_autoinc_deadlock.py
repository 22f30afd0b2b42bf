"""The copy and an application's transaction must not deadlock on the shadow's AUTO-INC lock
(issue 12: under 200 writes/s, 1213 failed 11-13 application writes per run; the deadlocks,
profiled with `bench/online_copy.py --private-server`, were all the chunk's `INSERT ... SELECT` holding
the shadow's AUTO-INC lock against a trigger's `INSERT` waiting for it).

Under `innodb_autoinc_lock_mode=1` the chunk's `INSERT ... SELECT` holds the shadow's AUTO-INC
lock from its first row to its end. The two cycles, each made deterministic here:
- the chunk waits for a gap of the shadow that a trigger's `DELETE` of a key the copy has not
  reached locked (engines/spirit/triggers.py now inserts first and deletes only on a duplicate);
- the chunk waits for a source row an application's transaction holds (engines/spirit/copier.py
  takes the chunk's shared locks first, before it holds the AUTO-INC lock).
In both, the same transaction's next write inserts into the shadow and waits for the AUTO-INC
lock; the server used to fail that write with 1213."""

from __future__ import annotations

import threading
import time

import pymysql
import pytest

from engines.base import EngineState, RetryableEngineError
from tests.integration.spirit.support import engine, request, run_until
from tests.support.mariadb import connect

pytestmark = pytest.mark.integration

ROWS = 2000


def _lock_waits(db: pymysql.Connection) -> int:
    with db.cursor() as cur:
        cur.execute("SELECT trx_state FROM information_schema.INNODB_TRX")
        return sum(1 for (state,) in cur.fetchall() if state == "LOCK WAIT")


def _copy_waits_or_ends(db: pymysql.Connection, copier: threading.Thread) -> None:
    for _ in range(40):  # the server's lock list is a cache refreshed every 0.1 s
        time.sleep(0.1)
        if _lock_waits(db) or not copier.is_alive():
            return
    raise AssertionError("the chunk neither waited nor finished")


@pytest.mark.parametrize(
    "held",
    [1200, 900],
    ids=["trigger-gap-lock-ahead-of-the-chunk", "source-row-inside-the-chunk"],
)
def test_an_application_write_does_not_deadlock_with_the_copy(
    schema: str, db: pymysql.Connection, held: int
) -> None:
    with db.cursor() as cur:
        cur.execute("SELECT @@GLOBAL.innodb_autoinc_lock_mode")
        if int(cur.fetchone()[0]) >= 2:  # type: ignore[index]
            pytest.skip("no table-level AUTO-INC lock for INSERT ... SELECT on this server")
        cur.execute("CREATE TABLE t (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, v INT NOT NULL)")
        cur.execute(f"INSERT INTO t (v) SELECT seq FROM seq_1_to_{ROWS}")
    req = request(
        [(schema, "t", "ALTER TABLE t MODIFY v BIGINT NOT NULL")], chunk_rows=500, step_budget=0
    )
    eng = engine(schema)
    eng.apply(req)
    eng.progress(req)  # the first chunk: keys 1..500
    with db.cursor() as cur:
        # A row of the next chunk written through the triggers: the shadow holds it before the
        # copy gets there, so the chunk inserts rows (and takes the AUTO-INC lock) before it
        # meets anything the application holds.
        cur.execute("UPDATE t SET v = -7 WHERE id = 700")

    app = connect(schema)
    app_cur = app.cursor()
    app_cur.execute("SET SESSION innodb_lock_wait_timeout = 20")
    app_cur.execute("BEGIN")
    # 1200: beyond the next chunk (501..1000), not copied yet. 900: inside it.
    app_cur.execute("UPDATE t SET v = -1 WHERE id = %s", (held,))

    outcome: list[object] = []

    def step() -> None:
        try:
            outcome.append(eng.progress(req))  # the chunk 501..1000
        except RetryableEngineError as error:
            outcome.append(error)

    copier = threading.Thread(target=step)
    copier.start()
    error: pymysql.MySQLError | None = None
    try:
        _copy_waits_or_ends(db, copier)
        try:
            app_cur.execute("INSERT INTO t (v) VALUES (7)")
            app_cur.execute("COMMIT")
        except pymysql.MySQLError as failed:
            error = failed
            app_cur.execute("ROLLBACK")
    finally:
        copier.join(30)
        app.close()
    assert error is None, f"the application's write failed: {error}"
    assert outcome and not isinstance(outcome[0], Exception), outcome

    assert run_until(eng, req).state == EngineState.COMPLETED
    eng.close()
    with db.cursor() as cur:
        cur.execute("SELECT COUNT(*), SUM(v) FROM t")
        expected = sum(range(1, ROWS + 1)) - 700 - 7 - held - 1 + 7
        assert cur.fetchone() == (ROWS + 1, expected)
