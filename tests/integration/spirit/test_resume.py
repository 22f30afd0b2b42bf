"""Resume rules: a killed copy continues from its checkpoint; each definitive reason starts the
run fresh (and still ends with every row intact); every other error keeps the state."""

from __future__ import annotations

import pymysql
import pytest

from engines.base import EngineState, PermanentEngineError, RetryableEngineError
from engines.spirit import runner
from tests.integration.spirit.support import (
    Worker,
    checkpoint_row,
    engine,
    request,
    run_until,
    tables,
    triggers,
    wait_for,
)
from tests.support.mariadb import connect

ROWS = 4000
ALTER = "ALTER TABLE t ADD COLUMN added VARCHAR(8) NOT NULL DEFAULT 'x', ADD INDEX (v)"

pytestmark = pytest.mark.integration


def _create(db: pymysql.Connection, rows: int = ROWS) -> None:
    with db.cursor() as cur:
        cur.execute("CREATE TABLE t (id BIGINT NOT NULL PRIMARY KEY, v VARCHAR(40), n INT)")
        cur.executemany(
            "INSERT INTO t VALUES (%s, %s, %s)",
            [(i * 3, f"v{i}", i % 97) for i in range(1, rows + 1)],
        )


def _intact(db: pymysql.Connection, rows: int = ROWS) -> None:
    with db.cursor() as cur:
        cur.execute("SELECT COUNT(*), SUM(id), SUM(n), SUM(added = 'x') FROM t")
        count, ids, ns, added = cur.fetchone()
    assert count == rows
    assert ids == sum(i * 3 for i in range(1, rows + 1))
    assert ns == sum(i % 97 for i in range(1, rows + 1))
    assert added == rows


def _copy_to_half(schema: str, db: pymysql.Connection):  # type: ignore[no-untyped-def]
    """A worker copies about half the rows, then dies. Returns the request used."""
    req = request([(schema, "t", ALTER)], step_budget=0.02, chunk_rows=100)
    worker = Worker(schema, req, pause=0.02)
    wait_for(
        lambda: (
            (row := checkpoint_row(schema, "t")) is not None
            and row["phase"] == "copy"
            and row["rows_copied"] >= ROWS // 2
        ),
        60,
        "half the rows copied",
    )
    worker.kill()
    return req


def test_copy_killed_at_half_resumes_from_checkpoint_without_copying_rows_again(
    schema: str, db: pymysql.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    _create(db)
    req = _copy_to_half(schema, db)
    killed = checkpoint_row(schema, "t")
    assert killed is not None and killed["phase"] == "copy"

    chunks: list[tuple[object, object, int]] = []
    original = runner.copy_chunk

    def recording(cur, names, cmap, low, high, **how):  # type: ignore[no-untyped-def]
        inserted = original(cur, names, cmap, low, high, **how)
        chunks.append((low, high, inserted))
        return inserted

    monkeypatch.setattr(runner, "copy_chunk", recording)
    eng = engine(schema)
    attached = eng.apply(request([(schema, "t", ALTER)], chunk_rows=100))  # no resume state
    assert attached.accepted and attached.reattached and attached.restart_reason is None
    assert f"({killed['rows_copied']} rows" in (attached.resume_point or "")
    run_until(eng, req)

    watermark = eval(killed["copy_watermark"])[0][1]  # [["int", 1503]]
    assert chunks[0][0] == (watermark,), "the resumed copy starts right after the checkpoint"
    copied_after = sum(inserted for _, _, inserted in chunks)
    assert ROWS - killed["rows_copied"] <= copied_after <= ROWS - killed["rows_copied"] + 100
    _intact(db)


def _reattach_and_finish(schema: str, db: pymysql.Connection, reason_part: str) -> None:
    eng = engine(schema)
    req = request([(schema, "t", ALTER)], chunk_rows=500)
    attached = eng.apply(req)
    assert attached.accepted and not attached.reattached
    assert attached.restart_reason is not None and reason_part in attached.restart_reason
    run_until(eng, req)
    _intact(db)
    assert triggers(schema) == set()


def _started(schema: str, db: pymysql.Connection) -> None:
    """A run set up and a few chunks copied, then left (its worker gone)."""
    _create(db)
    eng = engine(schema)
    req = request([(schema, "t", ALTER)], chunk_rows=500, step_budget=0.0)
    eng.apply(req)
    eng.progress(req)
    eng.close()
    row = checkpoint_row(schema, "t")
    assert row is not None and row["phase"] == "copy" and row["rows_copied"] > 0


def _sql(db: pymysql.Connection, *statements: str) -> None:
    with db.cursor() as cur:
        for statement in statements:
            cur.execute(statement)


def test_missing_checkpoint_with_resume_state_starts_fresh(
    schema: str, db: pymysql.Connection
) -> None:
    _started(schema, db)
    _sql(db, "DELETE FROM _sb_spirit_checkpoint")
    eng = engine(schema)
    req = request([(schema, "t", ALTER)], resume_state={"format": 1, "context": "task-1"})
    attached = eng.apply(req)
    assert attached.restart_reason and "no checkpoint" in attached.restart_reason
    run_until(eng, req)
    _intact(db)


def test_other_statement_for_same_context_starts_fresh(schema: str, db: pymysql.Connection) -> None:
    _started(schema, db)
    _sql(db, "UPDATE _sb_spirit_checkpoint SET statement_hash = REPEAT('0', 64)")
    _reattach_and_finish(schema, db, "another statement")


def test_other_checkpoint_format_starts_fresh(schema: str, db: pymysql.Connection) -> None:
    _started(schema, db)
    _sql(db, "UPDATE _sb_spirit_checkpoint SET format = 0")
    _reattach_and_finish(schema, db, "checkpoint format 0")


def test_source_altered_out_of_band_starts_fresh(schema: str, db: pymysql.Connection) -> None:
    _started(schema, db)
    _sql(
        db,
        "DROP TRIGGER _sb_t_ins",
        "DROP TRIGGER _sb_t_upd",
        "DROP TRIGGER _sb_t_del",
        "ALTER TABLE t ADD INDEX n_idx (n)",
    )
    _reattach_and_finish(schema, db, "altered out of band")


def test_missing_trigger_starts_fresh(schema: str, db: pymysql.Connection) -> None:
    _started(schema, db)
    _sql(db, "DROP TRIGGER _sb_t_del")
    _reattach_and_finish(schema, db, "trigger _sb_t_del is missing")


def test_changed_trigger_starts_fresh(schema: str, db: pymysql.Connection) -> None:
    _started(schema, db)
    _sql(
        db,
        "DROP TRIGGER _sb_t_ins",
        "CREATE TRIGGER _sb_t_ins AFTER INSERT ON t FOR EACH ROW SET @x = 1",
    )
    _reattach_and_finish(schema, db, "trigger _sb_t_ins was changed")


def test_missing_shadow_table_starts_fresh(schema: str, db: pymysql.Connection) -> None:
    _started(schema, db)
    _sql(db, "DROP TABLE _sb_t_new")
    _reattach_and_finish(schema, db, "_sb_t_new is missing")


def test_definitive_reason_found_during_a_step_restarts_there(
    schema: str, db: pymysql.Connection
) -> None:
    _started(schema, db)
    _sql(db, "DROP TRIGGER _sb_t_upd")
    eng = engine(schema)
    req = request([(schema, "t", ALTER)], chunk_rows=500)
    first = eng.progress(req)
    assert any("starting fresh: trigger _sb_t_upd is missing" in e for e in first.events)
    run_until(eng, req)
    _intact(db)


def test_lost_connection_mid_step_is_retryable_and_keeps_the_checkpoint(
    schema: str, db: pymysql.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    _started(schema, db)
    before = checkpoint_row(schema, "t")
    eng = engine(schema)
    req = request([(schema, "t", ALTER)], chunk_rows=500)
    original = runner.copy_chunk

    def killed_connection(cur, names, cmap, low, high, **how):  # type: ignore[no-untyped-def]
        with db.cursor() as other:
            other.execute("KILL CONNECTION %s", (cur.connection.thread_id(),))
        return original(cur, names, cmap, low, high, **how)

    monkeypatch.setattr(runner, "copy_chunk", killed_connection)
    with pytest.raises(RetryableEngineError):
        eng.progress(req)
    after = checkpoint_row(schema, "t")
    assert after is not None and before is not None
    assert (after["run_id"], after["copy_watermark"], after["rows_copied"]) == (
        before["run_id"],
        before["copy_watermark"],
        before["rows_copied"],
    )
    monkeypatch.setattr(runner, "copy_chunk", original)
    attached = eng.apply(req)
    assert attached.reattached and attached.restart_reason is None
    run_until(eng, req)
    _intact(db)


def test_row_lock_wait_is_retryable_and_keeps_the_checkpoint(
    schema: str, db: pymysql.Connection
) -> None:
    _started(schema, db)
    before = checkpoint_row(schema, "t")
    assert before is not None
    blocker = connect(schema)
    with blocker.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute("SELECT * FROM t FOR UPDATE")  # every row: the next chunk must wait
    eng = engine(schema)
    req = request([(schema, "t", ALTER)], chunk_rows=500, lock_wait_seconds=1)
    try:
        with pytest.raises(RetryableEngineError, match="Lock wait timeout"):
            eng.progress(req)
    finally:
        blocker.rollback()
        blocker.close()
    after = checkpoint_row(schema, "t")
    assert after is not None and after["copy_watermark"] == before["copy_watermark"]
    run_until(eng, req)
    _intact(db)


def test_table_locked_by_another_process_is_busy_not_an_error(
    schema: str, db: pymysql.Connection
) -> None:
    _started(schema, db)
    holder = connect(schema)
    eng = engine(schema)
    req = request([(schema, "t", ALTER)])
    from engines.spirit.naming import TableNames

    with holder.cursor() as cur:
        cur.execute("SELECT GET_LOCK(%s, 0)", (TableNames(schema, "t").lock_name,))
    try:
        applied = eng.apply(req)
        assert not applied.accepted and "lock held by another process" in applied.message
        progressed = eng.progress(req)
        assert progressed.state == EngineState.RUNNING
        assert "lock held by another process" in progressed.message
    finally:
        holder.close()
    run_until(eng, req)
    _intact(db)


def test_ddl_rejected_by_the_server_is_permanent_and_leaves_nothing(
    schema: str, db: pymysql.Connection
) -> None:
    _create(db, rows=10)
    eng = engine(schema)
    with pytest.raises(PermanentEngineError, match="Key column 'nope' doesn't exist"):
        eng.apply(request([(schema, "t", "ALTER TABLE t ADD INDEX (nope)")]))
    assert tables(schema) == {"t", "_sb_spirit_checkpoint"}
    assert triggers(schema) == set()
    assert checkpoint_row(schema, "t") is None


def test_another_context_in_flight_on_the_table_is_refused(
    schema: str, db: pymysql.Connection
) -> None:
    _started(schema, db)
    with pytest.raises(PermanentEngineError, match="another operation \\(task-1, phase copy\\)"):
        engine(schema).apply(request([(schema, "t", ALTER)], context="task-2"))
