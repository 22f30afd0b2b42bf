"""Controls: stop keeps the triggers running, start continues, volume changes the pace, cancel
removes triggers then the shadow; and the direct paths (instant ALTER, CREATE, DROP)."""

from __future__ import annotations

from dataclasses import replace

import pymysql
import pytest

from engines.base import ControlNotApplicable, ControlRequest, EngineState, PermanentEngineError
from tests.integration.spirit.support import (
    checkpoint_row,
    engine,
    request,
    run_until,
    tables,
    triggers,
)

ALTER = "ALTER TABLE t ADD COLUMN added INT NOT NULL DEFAULT 1, ADD INDEX (v)"

pytestmark = pytest.mark.integration


def _create(db: pymysql.Connection, rows: int = 2000) -> None:
    with db.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))")
        cur.executemany("INSERT INTO t VALUES (%s, %s)", [(i, f"v{i}") for i in range(rows)])


def _control(req, value: str | None = None) -> ControlRequest:  # type: ignore[no-untyped-def]
    return ControlRequest(
        context=req.context, changes=req.changes, options=req.options, value=value
    )


def test_stop_halts_copying_while_triggers_carry_writes_then_start_continues(
    schema: str, db: pymysql.Connection
) -> None:
    _create(db)
    req = request([(schema, "t", ALTER)], chunk_rows=200, step_budget=0)
    eng = engine(schema)
    eng.apply(req)
    eng.progress(req)
    assert eng.stop(_control(req)).accepted
    copied = checkpoint_row(schema, "t")["rows_copied"]  # type: ignore[index]
    stopped = eng.progress(req)
    assert stopped.state == EngineState.STOPPED
    assert checkpoint_row(schema, "t")["rows_copied"] == copied  # type: ignore[index]
    with db.cursor() as cur:
        cur.execute("INSERT INTO t VALUES (5000, 'while stopped')")
        cur.execute("SELECT v FROM _sb_t_new WHERE id = 5000")
        assert cur.fetchone() == ("while stopped",)
    assert eng.start(_control(req)).accepted
    assert run_until(eng, req).state == EngineState.COMPLETED
    with db.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM t")
        assert cur.fetchone()[0] == 2001


def test_at_volume_11_with_fixed_chunks_a_step_copies_many_chunks(
    schema: str, db: pymysql.Connection
) -> None:
    """Volume 11 aims at 1.5 s chunks; with `chunk_rows` fixing them at 100 rows and a 1 s step,
    each step copied one chunk (S21 at volume 11 ran for minutes)."""
    _create(db, rows=20_000)
    req = request([(schema, "t", ALTER)], chunk_rows=100, step_budget=1.0, copy_lanes=1)
    req = replace(req, options=replace(req.options, volume=11))
    eng = engine(schema)
    eng.apply(req)
    eng.progress(req)
    assert checkpoint_row(schema, "t")["rows_copied"] > 1000  # type: ignore[index]
    eng.close()


def test_volume_is_stored_and_invalid_values_are_refused(
    schema: str, db: pymysql.Connection
) -> None:
    _create(db, rows=10)
    req = request([(schema, "t", ALTER)])
    eng = engine(schema)
    eng.apply(req)
    assert eng.volume(_control(req, "3")).accepted
    assert checkpoint_row(schema, "t")["volume"] == 3  # type: ignore[index]
    for bad in ("0", "12", "loud", None):
        assert not eng.volume(_control(req, bad)).accepted


def test_cancel_drops_triggers_then_shadow_and_keeps_the_table(
    schema: str, db: pymysql.Connection
) -> None:
    _create(db)
    req = request([(schema, "t", ALTER)], chunk_rows=200, step_budget=0)
    eng = engine(schema)
    eng.apply(req)
    eng.progress(req)
    assert eng.cancel(_control(req)).accepted
    assert triggers(schema) == set()
    assert tables(schema) == {"t", "_sb_spirit_checkpoint"}
    assert checkpoint_row(schema, "t")["phase"] == "cancelled"  # type: ignore[index]
    assert eng.progress(req).state == EngineState.CANCELLED
    with pytest.raises(PermanentEngineError, match="cancelled"):
        eng.apply(req)


def test_revert_is_not_applicable(schema: str, db: pymysql.Connection) -> None:
    _create(db, rows=1)
    with pytest.raises(ControlNotApplicable):
        engine(schema).revert(_control(request([(schema, "t", ALTER)])))


def test_instant_alter_is_done_directly_without_a_shadow(
    schema: str, db: pymysql.Connection
) -> None:
    _create(db, rows=100)
    req = request([(schema, "t", "ALTER TABLE t ADD COLUMN extra INT NULL")])
    eng = engine(schema)
    applied = eng.apply(req)
    assert applied.accepted
    assert checkpoint_row(schema, "t")["message"] == "instant ALTER"  # type: ignore[index]
    assert eng.progress(req).state == EngineState.COMPLETED
    assert tables(schema) == {"t", "_sb_spirit_checkpoint"}
    again = eng.apply(req)  # a late apply with the same context learns it is done
    assert again.reattached and again.resume_point and "completed" in again.resume_point


def test_create_and_drop_table_are_direct_and_idempotent(
    schema: str, db: pymysql.Connection
) -> None:
    _create(db, rows=1)
    create = request([(schema, "u", "CREATE TABLE u (id INT PRIMARY KEY)")], context="task-c")
    drop = request([(schema, "t", "DROP TABLE t")], context="task-d")
    eng = engine(schema)
    eng.apply(create)
    eng.apply(drop)
    assert eng.progress(create).state == EngineState.COMPLETED
    assert eng.progress(drop).state == EngineState.COMPLETED
    assert tables(schema) == {"u", "_sb_spirit_checkpoint"}
    with db.cursor() as cur:
        # As if each worker died right after its statement, before recording it done: the CREATE
        # left no row; the DROP left the intent it records before it runs (phase setup).
        cur.execute("DELETE FROM _sb_spirit_checkpoint WHERE context = 'task-c'")
        cur.execute("UPDATE _sb_spirit_checkpoint SET phase = 'setup' WHERE context = 'task-d'")
    assert eng.apply(create).accepted and eng.apply(drop).accepted
    assert "by an earlier attempt" in eng.progress(drop).tables[0].message
    assert tables(schema) == {"u", "_sb_spirit_checkpoint"}
    clash = request([(schema, "u", "CREATE TABLE u (id BIGINT PRIMARY KEY)")], context="task-e")
    with pytest.raises(PermanentEngineError, match="different definition"):
        eng.apply(clash)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (["CREATE TABLE t (id INT, v VARCHAR(20))"], "no primary key"),
        (
            [
                "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))",
                "CREATE TRIGGER app_audit AFTER INSERT ON t FOR EACH ROW SET @x = 1",
            ],
            "has triggers (app_audit)",
        ),
        (
            [
                "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))",
                "CREATE TABLE child (id INT PRIMARY KEY, t_id INT, CONSTRAINT fk_t "
                "FOREIGN KEY (t_id) REFERENCES t (id))",
            ],
            "foreign keys (fk_t)",
        ),
        (
            ["CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))", "CREATE TABLE _sb_t_old (id INT)"],
            "_sb_t_old exists",
        ),
    ],
    ids=["no_primary_key", "existing_trigger", "foreign_key", "old_table_exists"],
)
def test_preflight_refuses_with_a_clear_message_before_creating_anything(
    schema: str, db: pymysql.Connection, setup: list[str], message: str
) -> None:
    with db.cursor() as cur:
        for statement in setup:
            cur.execute(statement)
    before = tables(schema)
    with pytest.raises(PermanentEngineError, match="preflight failed") as failure:
        engine(schema).apply(request([(schema, "t", ALTER)]))
    assert message in str(failure.value)
    assert tables(schema) - {"_sb_spirit_checkpoint"} == before
    assert checkpoint_row(schema, "t") is None


def test_primary_key_change_is_refused(schema: str, db: pymysql.Connection) -> None:
    _create(db, rows=1)
    with pytest.raises(PermanentEngineError, match="changes the primary key"):
        engine(schema).apply(
            request([(schema, "t", "ALTER TABLE t DROP PRIMARY KEY, ADD PRIMARY KEY (id, v)")])
        )


def test_column_rename_is_copied_into_the_new_name(schema: str, db: pymysql.Connection) -> None:
    _create(db, rows=300)
    req = request([(schema, "t", "ALTER TABLE t CHANGE v w VARCHAR(30), ADD INDEX (w)")])
    eng = engine(schema)
    eng.apply(req)
    run_until(eng, req)
    with db.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM t WHERE w = CONCAT('v', id)")
        assert cur.fetchone()[0] == 300


def test_stop_survives_a_restart_of_every_worker_and_start_continues_from_the_checkpoint(
    schema: str, db: pymysql.Connection
) -> None:
    _create(db)
    req = request([(schema, "t", ALTER)], chunk_rows=200, step_budget=0)
    first = engine(schema)
    first.apply(req)
    first.progress(req)
    assert first.stop(_control(req)).accepted
    first.close()
    stopped_at = checkpoint_row(schema, "t")
    assert stopped_at is not None

    later = engine(schema)  # every worker restarted; nothing persisted but the target
    assert later.apply(request([(schema, "t", ALTER)], chunk_rows=200)).reattached
    assert later.progress(req).state == EngineState.STOPPED
    assert later.start(_control(req)).accepted
    later.progress(req)
    moved = checkpoint_row(schema, "t")
    assert moved is not None and moved["run_id"] == stopped_at["run_id"]
    assert moved["rows_copied"] == stopped_at["rows_copied"] + 200  # one more chunk, none again
    assert run_until(later, req).state == EngineState.COMPLETED
