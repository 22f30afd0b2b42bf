"""The direct engine on a real MariaDB: it refuses another engine's unfinished work on the table,
takes the table's advisory lock, refuses renames and user-chosen algorithms, runs only the
comment-free statement, and says what a DROP of an absent table did (issue 10 §1, §3)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from engines.base import (
    EngineError,
    EngineState,
    PermanentEngineError,
    ProgressRequest,
    ProgressResult,
)
from engines.direct import DirectEngine
from engines.table_guard import lock_name
from engines.targets import Target
from tests.integration.spirit.support import engine as spirit_engine
from tests.integration.spirit.support import request
from tests.support.mariadb import connect, fresh_schema, mysql_dsn


@pytest.fixture
def schema() -> Iterator[str]:
    with fresh_schema("sbt_direct") as name:
        with connect(name).cursor() as cur:
            cur.execute("CREATE TABLE t (id INT PRIMARY KEY, c INT)")
            cur.execute("INSERT INTO t VALUES (1, 1), (2, 2)")
        yield name


def _direct(schema: str) -> DirectEngine:
    return DirectEngine(Target("test", mysql_dsn(schema)))


def _run(schema: str, table: str, ddl: str, context: str = "task-d") -> ProgressResult:
    eng = _direct(schema)
    req = request([(schema, table, ddl)], context)
    applied = eng.apply(req)
    result = eng.progress(
        ProgressRequest(context=context, changes=req.changes, resume_state=applied.resume_state)
    )
    eng.close()
    return result


def _tables(schema: str) -> set[str]:
    with connect(schema).cursor() as cur:
        cur.execute("SHOW TABLES")
        return {r[0] for r in cur.fetchall()}


def _columns(schema: str, table: str) -> list[str]:
    with connect(schema).cursor() as cur:
        cur.execute(f"SHOW COLUMNS FROM `{table}`")
        return [r[0] for r in cur.fetchall()]


def test_direct_refuses_a_table_with_unfinished_spirit_work(schema: str) -> None:
    spirit = spirit_engine(schema)
    spirit.apply(request([(schema, "t", "ALTER TABLE t MODIFY c BIGINT")], "task-s"))
    spirit.close()
    with pytest.raises(PermanentEngineError, match="spirit"):
        _run(schema, "t", "ALTER TABLE t ADD COLUMN k INT")
    assert "k" not in _columns(schema, "t")


def test_direct_takes_the_tables_advisory_lock(schema: str) -> None:
    holder = connect(schema)
    with holder.cursor() as cur:
        cur.execute("SELECT GET_LOCK(%s, 0)", (lock_name(schema, "t"),))
        assert cur.fetchone()[0] == 1
    try:
        eng = _direct(schema)
        answer = eng.apply(request([(schema, "t", "ALTER TABLE t ADD COLUMN k INT")], "task-d"))
        eng.close()
        assert not answer.accepted and "another process" in (answer.message or "")
    finally:
        holder.close()
    assert _run(schema, "t", "ALTER TABLE t ADD COLUMN k INT").state is EngineState.COMPLETED
    assert "k" in _columns(schema, "t")


@pytest.mark.parametrize(
    "ddl",
    [
        "ALTER TABLE t RENAME TO u",
        "ALTER TABLE t ADD COLUMN k INT, RENAME u",
        "ALTER TABLE t ADD COLUMN k INT, ALGORITHM=COPY",
        "ALTER TABLE t ADD COLUMN k INT, LOCK=SHARED",
    ],
)
def test_direct_refuses_renames_and_user_algorithms_without_touching_anything(schema: str, ddl: str) -> None:
    before = _tables(schema)
    with pytest.raises(PermanentEngineError):
        _run(schema, "t", ddl)
    assert _tables(schema) == before
    assert _columns(schema, "t") == ["id", "c"]


def test_direct_runs_the_statement_without_its_comments(schema: str) -> None:
    result = _run(schema, "t", "-- lead\nALTER TABLE t ADD COLUMN k INT -- trailing note\n")
    assert result.state is EngineState.COMPLETED
    assert "k" in _columns(schema, "t")
    assert any("ALGORITHM=INSTANT" in e for e in result.events), result.events


def test_drop_of_an_absent_table_fails_unless_it_says_if_exists(schema: str) -> None:
    with pytest.raises(EngineError, match="does not exist"):
        _run(schema, "gone", "DROP TABLE gone")
    result = _run(schema, "gone", "DROP TABLE IF EXISTS gone", context="task-e")
    assert result.state is EngineState.COMPLETED
    assert any("already absent" in e for e in result.events), result.events


def test_a_statement_that_keeps_losing_its_connection_ends_the_apply(schema: str) -> None:
    """The server drops the connection while the ALTER runs, every time: after a few tries the
    error is a verdict (permanent), not retried for ever (issue 10 §4)."""
    import contextlib
    import threading
    import time

    import pymysql

    from engines.base import RetryableEngineError

    eng = _direct(schema)
    req = request([(schema, "t", "ALTER TABLE t ADD COLUMN k INT")], "task-k")
    state = eng.apply(req).resume_state  # the rehearsal on the scratch copy, before any killing
    blocker = connect(schema)  # an open transaction on t: the ALTER waits for its metadata lock
    stop = threading.Event()

    def killer() -> None:
        conn = connect(schema)
        with conn.cursor() as cur:
            while not stop.is_set():
                cur.execute(
                    "SELECT ID FROM information_schema.PROCESSLIST "
                    "WHERE DB = %s AND INFO LIKE 'ALTER TABLE t %%'",
                    (schema,),
                )
                for (pid,) in cur.fetchall():
                    with contextlib.suppress(pymysql.MySQLError):  # it may have ended already
                        cur.execute(f"KILL CONNECTION {int(pid)}")
                time.sleep(0.05)
        conn.close()

    thread = threading.Thread(target=killer, daemon=True)
    errors: list[EngineError] = []
    saved: list[dict[str, object]] = []
    try:
        with blocker.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute("SELECT * FROM t")
        thread.start()
        for _ in range(5):
            step = ProgressRequest(
                context="task-k",
                changes=req.changes,
                resume_state=state,
                save_state=saved.append,
                step_budget=3.0,
            )
            try:
                eng.progress(step)
            except EngineError as exc:
                errors.append(exc)
                state = saved[-1] if saved else state
                if isinstance(exc, PermanentEngineError):
                    break
    finally:
        stop.set()
        if thread.is_alive():
            thread.join(5)
        blocker.close()
        eng.close()
    assert errors and isinstance(errors[-1], PermanentEngineError), errors
    assert all(isinstance(e, RetryableEngineError) for e in errors[:-1])
    assert 2 <= len(errors) <= 4
    assert "connection" in str(errors[-1])


def test_direct_refuses_spirit_triggers_left_without_a_checkpoint(schema: str) -> None:
    """Work begun outside this state database (or a checkpoint lost): spirit's triggers on the
    table alone are enough to refuse, and nothing is changed."""
    with connect(schema).cursor() as cur:
        cur.execute("CREATE TABLE _sb_t_new LIKE t")
        cur.execute("CREATE TRIGGER _sb_t_ins AFTER INSERT ON t FOR EACH ROW SET @x = 1")
        cur.execute("DROP TABLE _sb_t_new")
    with pytest.raises(PermanentEngineError, match="spirit's triggers _sb_t_ins"):
        _run(schema, "t", "ALTER TABLE t ADD COLUMN k INT")
    assert "k" not in _columns(schema, "t")


def test_direct_refuses_a_spirit_shadow_table_left_without_a_checkpoint(schema: str) -> None:
    with connect(schema).cursor() as cur:
        cur.execute("CREATE TABLE _sb_t_new LIKE t")
    with pytest.raises(PermanentEngineError, match=r"shadow table .*_sb_t_new"):
        _run(schema, "t", "ALTER TABLE t ADD COLUMN k INT")
    assert "k" not in _columns(schema, "t")


def test_direct_runs_after_a_spirit_run_that_failed_and_cleaned_up(schema: str) -> None:
    """A failed spirit run leaves a tombstone (phase failed) and nothing else: the table is free.
    (Before, the guard read `failed` as unfinished and refused until someone cancelled it.)"""
    with connect(schema).cursor() as cur:
        cur.execute("INSERT INTO t VALUES (3, 300)")
    spirit = spirit_engine(schema)
    req = request([(schema, "t", "ALTER TABLE t MODIFY c TINYINT")], "task-s")
    spirit.apply(req)
    with pytest.raises(PermanentEngineError, match="Out of range"):  # 300 does not fit a TINYINT
        for _ in range(50):
            spirit.progress(req)
    spirit.close()
    assert _tables(schema) == {"t", "_sb_spirit_checkpoint"}
    assert _run(schema, "t", "ALTER TABLE t ADD COLUMN k INT").state is EngineState.COMPLETED
    assert "k" in _columns(schema, "t")


def test_a_statement_bigger_than_max_allowed_packet_fails_for_good(schema: str) -> None:
    """The server refuses a statement over its max_allowed_packet (error 1153) and drops the
    connection: the same statement can never pass, so the apply fails instead of retrying. The
    session value is read-only and the shared server's global one is not ours to lower, so the
    statement is made bigger than the global value (16 MiB by default) rather than the limit
    smaller; the engine is called directly, past submit's own 256 KiB cap."""
    with connect(schema).cursor() as cur:
        cur.execute("SELECT @@global.max_allowed_packet")
        limit = int(cur.fetchone()[0])
    if limit > 64 * 1024 * 1024:
        pytest.skip(f"max_allowed_packet is {limit} bytes: too big to exceed cheaply")
    ddl = "ALTER TABLE t ADD COLUMN big INT COMMENT '" + "x" * (limit + 1024) + "'"
    with pytest.raises(PermanentEngineError, match="1153") as err:
        _run(schema, "t", ddl)
    assert len(str(err.value)) < 1000  # the message quotes the statement, bounded
    assert "big" not in _columns(schema, "t")
