"""The trigger path's cutover window: an application write queued on `t` while the cutover holds
the writers must not reach the old table after the last refused-writes check.

A write the new definition refuses (here a duplicate of the UNIQUE key the ALTER adds) is only
noticed through `_<t>_err`, which the last checks read under the cutover lock. If the write runs
on the old table after that check and before the RENAME, its trigger records it too late: the
apply completes and the row is silently missing from the new table. Exact outcomes are either
"the apply fails with the server's words" (the write ran before the rename and was refused) or
"the write fails for the application" (it ran against the new table, after the rename).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pymysql
import pytest

from engines.base import ControlRequest, EngineState, PermanentEngineError, RetryableEngineError
from engines.spirit import cutover
from tests.integration.spirit.oracle import leftovers
from tests.integration.spirit.support import engine, request, run_until
from tests.support.mariadb import connect

pytestmark = pytest.mark.integration

# (statements of the application's transaction, the row the new table must then hold or refuse)
WRITES = {
    "insert": ["INSERT INTO t VALUES (1000, 'e7')"],
    "update": ["UPDATE t SET email = 'e7' WHERE id = 8"],
    "insert_in_a_transaction_that_touched_another_table": [
        "BEGIN",
        "INSERT INTO other VALUES (1)",
        "INSERT INTO t VALUES (1000, 'e7')",
        "COMMIT",
    ],
}


class QueuedWriter:
    """An application connection whose write is started while the cutover holds the writers,
    and is seen waiting for `t`'s metadata lock before the cutover goes on."""

    def __init__(self, schema: str, statements: list[str]) -> None:
        self.conn = connect(schema)
        with self.conn.cursor() as cur:
            cur.execute("SET SESSION lock_wait_timeout = 60")
            cur.execute("SELECT CONNECTION_ID()")
            self.id = int(cur.fetchone()[0])
        self.statements = statements
        self.error: pymysql.MySQLError | None = None
        self.done = False
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            with self.conn.cursor() as cur:
                for statement in self.statements:
                    cur.execute(statement)
        except pymysql.MySQLError as error:
            self.error = error
            self.conn.rollback()
        self.done = True

    def start_and_see_it_queued(self, watcher: Any) -> None:
        self.thread.start()
        until = time.monotonic() + 10
        while time.monotonic() < until:
            watcher.execute(
                "SELECT COALESCE(STATE, ''), COALESCE(INFO, '') FROM information_schema.PROCESSLIST "
                "WHERE ID = %s",
                (self.id,),
            )
            state, info = watcher.fetchone()
            if "metadata lock" in str(state).lower() and " t " in str(info):
                return
            if self.done:
                raise AssertionError(f"the write was not held by the cutover: {self.error}")
            time.sleep(0.002)
        raise AssertionError("the write never queued behind the cutover")

    def finish(self) -> None:
        self.thread.join(timeout=90)
        assert not self.thread.is_alive(), "the application's write never returned"
        self.conn.close()


class ShadowReader:
    """A session that reads the shadow in an open transaction, so holding a shared metadata lock
    on it, and commits `hold_seconds` later on its own thread: a RENAME sent meanwhile waits on
    the shadow (whose name sorts before `t`'s in the RENAME's lock order), not yet on `t`. InnoDB's
    purge and statistics threads take such a lock for a moment on their own."""

    def __init__(self, schema: str, table: str, hold_seconds: float) -> None:
        self.conn = connect(schema)
        with self.conn.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute(f"SELECT COUNT(*) FROM `_sb_{table}_new`")
        self.thread = threading.Thread(target=self._release, args=(hold_seconds,), daemon=True)
        self.thread.start()

    def _release(self, hold_seconds: float) -> None:
        time.sleep(hold_seconds)
        self.conn.commit()
        self.conn.close()


def _queue_during_last_checks(
    schema: str,
    statements: list[str],
    monkeypatch: pytest.MonkeyPatch,
    *,
    shadow_read_seconds: float = 0.0,
) -> list[QueuedWriter]:
    """Wrap the cutover's last checks: on the first attempt, queue the application's write on
    `t` (seen waiting for the lock), then run the real checks, which find nothing refused yet.
    With `shadow_read_seconds`, a reader also holds the shadow that long from then on."""
    original = cutover.rename_with_retries
    writers: list[QueuedWriter] = []

    def rename_with_a_queued_write(*args: Any, **kwargs: Any) -> int:
        verify: Callable[[Any], Any] = kwargs["verify"]

        def verify_with_a_queued_write(cur: Any) -> Any:
            if not writers:
                writers.append(QueuedWriter(schema, statements))
                writers[0].start_and_see_it_queued(cur)
                if shadow_read_seconds:
                    ShadowReader(schema, "t", shadow_read_seconds)
            return verify(cur)

        kwargs["verify"] = verify_with_a_queued_write
        return original(*args, **kwargs)

    monkeypatch.setattr(cutover, "rename_with_retries", rename_with_a_queued_write)
    return writers


@pytest.mark.parametrize("kind", sorted(WRITES))
def test_a_refused_write_queued_during_the_cutover_is_never_silently_lost(
    schema: str, db: pymysql.Connection, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    with db.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, email VARCHAR(50) NOT NULL)")
        cur.executemany("INSERT INTO t VALUES (%s, %s)", [(i, f"e{i}") for i in range(200)])
        cur.execute("CREATE TABLE other (n INT)")
    writers = _queue_during_last_checks(schema, WRITES[kind], monkeypatch)
    req = request([(schema, "t", "ALTER TABLE t ADD UNIQUE KEY uk (email)")], chunk_rows=50)
    eng = engine(schema)
    eng.apply(req)
    failure: PermanentEngineError | None = None
    try:
        result = run_until(eng, req)
        assert result.state == EngineState.COMPLETED
    except PermanentEngineError as error:
        failure = error
    assert writers, "the cutover's last checks never ran"
    writer = writers[0]
    writer.finish()
    with db.cursor() as cur:
        cur.execute("SHOW CREATE TABLE t")
        has_uk = "UNIQUE KEY `uk`" in cur.fetchone()[1]
        cur.execute("SELECT id FROM t WHERE email = 'e7' ORDER BY id")
        e7 = [r[0] for r in cur.fetchall()]
        cur.execute("SELECT COUNT(*) FROM t")
        count = cur.fetchone()[0]
        left = leftovers(cur, schema)
    assert left == [] or left == ["table other"], left
    if failure is not None:
        # The write ran on the old table before the rename, was refused, and failed the apply
        # with the server's words; the table is as it was, the application's row in it.
        assert writer.error is None, writer.error
        assert "(1062) Duplicate entry 'e7'" in str(failure), failure
        assert not has_uk
        assert len(e7) == 2, e7
    else:
        # The write ran against the new table, after the rename, and failed for the application.
        assert has_uk
        assert writer.error is not None, (
            f"the apply completed and the application's write succeeded, but t holds e7 only "
            f"for ids {e7} ({count} rows): the row was lost"
        )
        assert writer.error.args[0] in (1062, 1213), writer.error
        assert e7 == [7] and count == 200, (e7, count)


@pytest.mark.parametrize("shadow_read_seconds", [0.0, 0.5], ids=["", "shadow_read_meanwhile"])
def test_a_valid_write_queued_in_a_transaction_is_not_failed_by_the_cutover(
    schema: str, db: pymysql.Connection, monkeypatch: pytest.MonkeyPatch, shadow_read_seconds: float
) -> None:
    """The application's write must not fail because of the engine. A transaction that touched
    another table and then writes `t` while the cutover holds the writers cannot back off and
    retry its statement: if the RENAME and it each hold a metadata lock the other needs (the
    shadow, which the trigger on `t` writes, and `t`), the server picks it as the deadlock's
    victim and the application gets 1213. It must instead wait and run on the new table."""
    with db.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, email VARCHAR(50) NOT NULL)")
        cur.executemany("INSERT INTO t VALUES (%s, %s)", [(i, f"e{i}") for i in range(200)])
        cur.execute("CREATE TABLE other (n INT)")
    statements = ["BEGIN", "INSERT INTO other VALUES (1)", "INSERT INTO t VALUES (1000, 'e7new')", "COMMIT"]
    writers = _queue_during_last_checks(
        schema, statements, monkeypatch, shadow_read_seconds=shadow_read_seconds
    )
    req = request([(schema, "t", "ALTER TABLE t ADD UNIQUE KEY uk (email)")], chunk_rows=50)
    eng = engine(schema)
    eng.apply(req)
    assert run_until(eng, req).state == EngineState.COMPLETED
    assert writers, "the cutover's last checks never ran"
    writers[0].finish()
    assert writers[0].error is None, writers[0].error
    with db.cursor() as cur:
        cur.execute("SHOW CREATE TABLE t")
        assert "UNIQUE KEY `uk`" in cur.fetchone()[1]
        cur.execute("SELECT email FROM t WHERE id = 1000")
        assert cur.fetchall() == (("e7new",),)
        cur.execute("SELECT COUNT(*) FROM other")
        assert cur.fetchone() == (1,)


def test_the_lock_holder_lost_after_the_checks_means_no_rename(
    schema: str, db: pymysql.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The holder's connection dies after the last checks passed and before the RENAME is sent:
    its lock goes with it, and a refused write reaches the old table after the check. The RENAME
    must not be sent; the next step finds the refused write and fails the apply with the
    server's words, the table as it was and the application's row in it."""
    with db.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, email VARCHAR(50) NOT NULL)")
        cur.executemany("INSERT INTO t VALUES (%s, %s)", [(i, f"e{i}") for i in range(200)])
    original = cutover.read_locked_rename
    killed: list[int] = []

    def holder_killed_after_the_checks(holders: Any, *args: Any, **kwargs: Any) -> None:
        verify: Callable[[], Any] = kwargs["verify"]

        def checks_then_holder_lost() -> Any:
            problem = verify()
            if not killed:
                killed.append(holders[0].connection.thread_id())
                app = connect(schema)
                with app.cursor() as cur:
                    cur.execute(f"KILL {killed[0]}")
                    cur.execute("SET SESSION lock_wait_timeout = 10")
                    cur.execute("INSERT INTO t VALUES (1000, 'e7')")  # e7 is taken by id 7
                app.close()
            return problem

        kwargs["verify"] = checks_then_holder_lost
        original(holders, *args, **kwargs)

    monkeypatch.setattr(cutover, "read_locked_rename", holder_killed_after_the_checks)
    req = request([(schema, "t", "ALTER TABLE t ADD UNIQUE KEY uk (email)")], chunk_rows=50)
    eng = engine(schema)
    eng.apply(req)
    with pytest.raises(RetryableEngineError, match="holding the cutover lock was lost"):
        run_until(eng, req)
    with pytest.raises(PermanentEngineError, match=r"\(1062\) Duplicate entry 'e7'"):
        run_until(eng, req)
    assert killed, "the cutover never ran its last checks"
    with db.cursor() as cur:
        assert leftovers(cur, schema) == []
        cur.execute("SELECT id FROM t WHERE email = 'e7' ORDER BY id")
        assert cur.fetchall() == ((7,), (1000,))
        cur.execute("SHOW CREATE TABLE t")
        assert "uk" not in cur.fetchone()[1]


def test_a_refused_write_that_reached_the_old_table_after_the_rename_was_sent_is_reported(
    schema: str, db: pymysql.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The window left open: the holder dies right after it was last seen alive, as the RENAME is
    sent; a refused write reaches the old table before the RENAME waits on `t`, and the rename
    then happens. The apply must not complete: it fails naming the write, and keeps `_sb_t_old`
    (where the row is) with the refused-writes table, dropping nothing.

    When the engine finds the holder gone while the RENAME is still in flight, it kills the
    RENAME; here that kill is made to come too late (a no-op), which is the case this test is
    about: whether it lands is a race the test would otherwise not control."""
    with db.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, email VARCHAR(50) NOT NULL)")
        cur.executemany("INSERT INTO t VALUES (%s, %s)", [(i, f"e{i}") for i in range(200)])
    monkeypatch.setattr(cutover, "_kill_quietly", lambda *args: None)
    original = cutover._still_holding
    killed: list[int] = []

    def seen_alive_then_lost(holder: Any) -> bool:
        alive = original(holder)
        if not killed:
            killed.append(holder.connection.thread_id())
            app = connect(schema)
            with app.cursor() as cur:
                cur.execute(f"KILL {killed[0]}")
                cur.execute("SET SESSION lock_wait_timeout = 10")
                cur.execute("INSERT INTO t VALUES (1000, 'e7')")  # e7 is taken by id 7
            app.close()
        return alive

    monkeypatch.setattr(cutover, "_still_holding", seen_alive_then_lost)
    req = request([(schema, "t", "ALTER TABLE t ADD UNIQUE KEY uk (email)")], chunk_rows=50)
    eng = engine(schema)
    eng.apply(req)
    with pytest.raises(PermanentEngineError) as failed:
        for _ in range(20):
            try:
                run_until(eng, req)
            except RetryableEngineError:
                continue
    assert killed, "the cutover never sent its RENAME"
    assert "(1062) Duplicate entry 'e7'" in str(failed.value), failed.value
    assert "tables were swapped" in str(failed.value), failed.value
    with db.cursor() as cur:
        cur.execute("SHOW CREATE TABLE t")
        assert "UNIQUE KEY `uk`" in cur.fetchone()[1]
        cur.execute("SELECT COUNT(*) FROM _sb_t_old WHERE email = 'e7'")
        assert cur.fetchone() == (2,)
        cur.execute("SELECT COUNT(*) FROM _sb_t_err")
        assert cur.fetchone() == (1,)
    with pytest.raises(PermanentEngineError, match="tables were swapped"):
        eng.progress(req)  # a later step says the same and still drops nothing


def test_an_open_write_transaction_makes_the_cutover_wait_and_retry_not_fail(
    schema: str, db: pymysql.Connection
) -> None:
    """The holder's READ lock waits for a transaction that wrote `t` at most the cutover's lock
    wait; the step then reports it waited and the table is intact; once the transaction commits,
    the next steps cut over and its write is in `t`."""
    with db.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, email VARCHAR(50) NOT NULL)")
        cur.executemany("INSERT INTO t VALUES (%s, %s)", [(i, f"e{i}") for i in range(200)])
    req = request(
        [(schema, "t", "ALTER TABLE t ADD UNIQUE KEY uk (email)")],
        chunk_rows=50,
        defer_cutover=True,
        cutover_lock_wait_seconds=1,
    )
    eng = engine(schema)
    eng.apply(req)
    run_until(eng, req, states=(EngineState.WAITING_FOR_CUTOVER,))
    app = connect(schema)
    try:
        with app.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute("UPDATE t SET email = 'changed' WHERE id = 3")
        control = ControlRequest(context=req.context, changes=req.changes, options=req.options)
        assert eng.cutover(control).accepted
        waited = None
        for _ in range(200):
            result = eng.progress(req)
            assert result.state != EngineState.COMPLETED, "cut over past an open write"
            if "waiting for locks" in result.message:
                waited = result
                break
        assert waited is not None, "the cutover never waited for the open transaction"
        assert any("waited too long for locks" in e for e in waited.events), waited.events
        with db.cursor() as cur:
            cur.execute("SHOW CREATE TABLE t")
            assert "uk" not in cur.fetchone()[1]
        with app.cursor() as cur:
            cur.execute("COMMIT")
    finally:
        app.close()
    assert run_until(eng, req).state == EngineState.COMPLETED
    with db.cursor() as cur:
        cur.execute("SHOW CREATE TABLE t")
        assert "UNIQUE KEY `uk`" in cur.fetchone()[1]
        cur.execute("SELECT email FROM t WHERE id = 3")
        assert cur.fetchall() == (("changed",),)
        assert leftovers(cur, schema) == []


def test_a_schema_change_that_runs_on_the_table_during_the_cutover_is_not_silently_lost(
    schema: str, db: pymysql.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A person's ALTER on `t` queued while the cutover holds the writers is also a pending
    exclusive request on `t`, so it can run ahead of the RENAME, on the table that becomes
    `_sb_t_old`: its change is then not in the new `t`. The apply must not complete as if
    nothing happened; it stops, the new definition in place and `_sb_t_old` kept."""
    with db.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, email VARCHAR(50) NOT NULL)")
        cur.executemany("INSERT INTO t VALUES (%s, %s)", [(i, f"e{i}") for i in range(200)])
    writers = _queue_during_last_checks(
        schema, ["ALTER TABLE t ADD COLUMN note INT NULL"], monkeypatch
    )
    req = request([(schema, "t", "ALTER TABLE t ADD UNIQUE KEY uk (email)")], chunk_rows=50)
    eng = engine(schema)
    eng.apply(req)
    with pytest.raises(PermanentEngineError, match="a schema change ran on the table") as failed:
        run_until(eng, req)
    assert writers, "the cutover's last checks never ran"
    writers[0].finish()
    assert writers[0].error is None, writers[0].error
    assert "_sb_t_old is kept" in str(failed.value), failed.value
    with db.cursor() as cur:
        cur.execute("SHOW CREATE TABLE _sb_t_old")
        assert "`note`" in cur.fetchone()[1]
        cur.execute("SHOW CREATE TABLE t")
        assert "UNIQUE KEY `uk`" in cur.fetchone()[1]
    with pytest.raises(PermanentEngineError, match="a schema change ran on the table"):
        eng.progress(req)  # a later step says the same and still drops nothing
