"""Cutover: all tables of an apply swap in one RENAME; a crash before or after the rename is
resolved from the tables present; the deferred cutover waits on the sentinel."""

from __future__ import annotations

import pymysql
import pytest

from engines.base import ControlRequest, EngineState, PermanentEngineError
from tests.integration.spirit.support import (
    Worker,
    checkpoint_row,
    engine,
    request,
    run_until,
    tables,
    triggers,
)
from tests.support.mariadb import connect

ALTER = "ALTER TABLE {t} ADD COLUMN added INT NOT NULL DEFAULT 1, ADD INDEX (v)"

pytestmark = pytest.mark.integration


def _create(schema: str, table: str, rows: int = 500) -> None:
    conn = connect(schema)
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY, v VARCHAR(20))")
        cur.executemany(f"INSERT INTO {table} VALUES (%s, %s)", [(i, f"v{i}") for i in range(rows)])
    conn.close()


def _columns(schema: str, table: str) -> list[str]:
    conn = connect(schema)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s "
            "AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
            (schema, table),
        )
        names = [r[0] for r in cur.fetchall()]
    conn.close()
    return names


def _count(schema: str, table: str) -> int:
    conn = connect(schema)
    with conn.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM {table}")
        n = int(cur.fetchone()[0])
    conn.close()
    return n


def _control(req, value: str | None = None) -> ControlRequest:  # type: ignore[no-untyped-def]
    return ControlRequest(
        context=req.context, changes=req.changes, options=req.options, value=value
    )


def _group(schema: str, other_schema: str, **options):  # type: ignore[no-untyped-def]
    for s, t in ((schema, "a"), (schema, "b"), (other_schema, "c")):
        _create(s, t)
    return request(
        [
            (schema, "a", ALTER.format(t="a")),
            (schema, "b", ALTER.format(t="b")),
            (other_schema, "c", ALTER.format(t="c")),
        ],
        context="apply-0123abcd",
        **options,
    )


def test_grouped_apply_over_two_schemas_cuts_over_in_one_rename(
    schema: str, other_schema: str
) -> None:
    req = _group(schema, other_schema)
    eng = engine(schema)
    assert eng.apply(req).accepted
    result = run_until(eng, req)
    assert result.state == EngineState.COMPLETED
    renames = [e for e in result.events if e.startswith("cutover: renamed")]
    assert len(renames) == 1 and all(f".{t}" in renames[0] for t in ("a", "b", "c"))
    for s, t in ((schema, "a"), (schema, "b"), (other_schema, "c")):
        assert _columns(s, t) == ["id", "v", "added"]
        assert _count(s, t) == 500
    assert tables(schema) == {"a", "b", "_sb_spirit_checkpoint"}
    assert tables(other_schema) == {"c", "_sb_spirit_checkpoint"}
    assert triggers(schema) == triggers(other_schema) == set()


def test_crash_after_the_rename_finishes_without_renaming_again(
    schema: str, other_schema: str
) -> None:
    req = _group(schema, other_schema)
    worker = Worker(schema, req, die_after_rename=True)
    assert worker.wait() == -9  # it SIGKILLed itself right after the RENAME
    assert "_sb_a_old" in tables(schema) and "_sb_c_old" in tables(other_schema)
    assert checkpoint_row(schema, "a", "apply-0123abcd")["phase"] == "cutover"  # type: ignore[index]

    eng = engine(schema)
    attached = eng.apply(req)
    assert (
        attached.reattached
        and attached.resume_point
        and "cutover in progress" in attached.resume_point
    )
    result = run_until(eng, req)
    assert any("rename had happened" in e for e in result.events)
    assert tables(schema) == {"a", "b", "_sb_spirit_checkpoint"}
    assert _columns(other_schema, "c") == ["id", "v", "added"] and _count(other_schema, "c") == 500
    assert triggers(schema) == triggers(other_schema) == set()


def test_crash_before_the_rename_retries_it(schema: str, other_schema: str) -> None:
    req = _group(schema, other_schema)
    worker = Worker(schema, req, die_before_rename=True)
    assert worker.wait() == -9
    assert checkpoint_row(schema, "b", "apply-0123abcd")["phase"] == "cutover"  # type: ignore[index]
    assert "_sb_b_new" in tables(schema) and "_sb_b_old" not in tables(schema)

    eng = engine(schema)
    result = run_until(eng, req)
    assert any("rename had not happened" in e for e in result.events)
    assert _columns(schema, "b") == ["id", "v", "added"]
    assert tables(schema) == {"a", "b", "_sb_spirit_checkpoint"}


def test_crash_in_cutover_with_tables_that_tell_no_story_is_ambiguous(
    schema: str, other_schema: str
) -> None:
    req = _group(schema, other_schema)
    assert Worker(schema, req, die_before_rename=True).wait() == -9
    conn = connect(schema)
    with conn.cursor() as cur:  # someone dropped a shadow by hand: renamed or not? unknowable
        cur.execute("DROP TRIGGER _sb_b_ins")
        cur.execute("DROP TRIGGER _sb_b_upd")
        cur.execute("DROP TRIGGER _sb_b_del")
        cur.execute("DROP TABLE _sb_b_new")
    conn.close()
    with pytest.raises(PermanentEngineError, match="ambiguous"):
        engine(schema).progress(req)
    assert "a" in tables(schema) and "_sb_a_new" in tables(schema)  # nothing more was done


def test_deferred_cutover_waits_on_the_sentinel_until_the_cutover_control(
    schema: str, db: pymysql.Connection
) -> None:
    _create(schema, "t")
    req = request([(schema, "t", ALTER.format(t="t"))], defer_cutover=True)
    eng = engine(schema)
    eng.apply(req)
    assert "_sb_sentinel" in tables(schema)
    waiting = run_until(eng, req, states=(EngineState.WAITING_FOR_CUTOVER,))
    assert waiting.tables[0].state == EngineState.WAITING_FOR_CUTOVER
    assert eng.progress(req).state == EngineState.WAITING_FOR_CUTOVER  # it keeps waiting
    assert _columns(schema, "t") == ["id", "v"]

    released = eng.cutover(_control(req))
    assert released.accepted
    assert "_sb_sentinel" not in tables(schema)
    assert run_until(eng, req).state == EngineState.COMPLETED
    assert _columns(schema, "t") == ["id", "v", "added"]


def test_cutover_control_is_refused_while_copying(schema: str) -> None:
    _create(schema, "t", rows=2000)
    req = request(
        [(schema, "t", ALTER.format(t="t"))], defer_cutover=True, chunk_rows=100, step_budget=0
    )
    eng = engine(schema)
    eng.apply(req)
    eng.progress(req)
    refused = eng.cutover(_control(req))
    assert not refused.accepted and "not ready for cutover" in refused.message
    assert "_sb_sentinel" in tables(schema)


def test_deferred_cutover_after_restart_reproves_readiness_before_waiting_again(
    schema: str,
) -> None:
    _create(schema, "t")
    req = request([(schema, "t", ALTER.format(t="t"))], defer_cutover=True)
    worker = Worker(schema, req, stop_when_waiting=True)
    assert worker.wait() == 0
    assert checkpoint_row(schema, "t")["phase"] == "wait_cutover"  # type: ignore[index]

    eng = engine(schema)  # a new owner after a restart; nothing persisted
    attached = eng.apply(req)
    assert attached.reattached
    assert checkpoint_row(schema, "t")["phase"] == "checksum"  # type: ignore[index]
    refused = eng.cutover(_control(req))
    assert not refused.accepted and "re-verifying" in refused.message
    waiting = run_until(eng, req, states=(EngineState.WAITING_FOR_CUTOVER,))
    assert any("checksum passed" in e for e in waiting.events)
    assert eng.cutover(_control(req)).accepted
    assert run_until(eng, req).state == EngineState.COMPLETED


def test_two_deferred_contexts_share_the_sentinel_table_without_releasing_each_other(
    schema: str,
) -> None:
    _create(schema, "t1")
    _create(schema, "t2")
    r1 = request([(schema, "t1", ALTER.format(t="t1"))], context="task-1", defer_cutover=True)
    r2 = request([(schema, "t2", ALTER.format(t="t2"))], context="task-2", defer_cutover=True)
    eng = engine(schema)
    eng.apply(r1)
    eng.apply(r2)
    run_until(eng, r1, states=(EngineState.WAITING_FOR_CUTOVER,))
    run_until(eng, r2, states=(EngineState.WAITING_FOR_CUTOVER,))
    assert eng.cutover(_control(r1)).accepted
    assert "_sb_sentinel" in tables(schema)  # task-2 still waits on it
    assert run_until(eng, r1).state == EngineState.COMPLETED
    assert eng.progress(r2).state == EngineState.WAITING_FOR_CUTOVER


def test_deferred_apply_killed_right_after_set_up_still_waits_for_the_cutover_control(
    schema: str,
) -> None:
    _create(schema, "t")
    req = request([(schema, "t", ALTER.format(t="t"))], defer_cutover=True)
    assert Worker(schema, req, die_after_setup=True).wait() == -9
    eng = engine(schema)
    assert eng.apply(req).reattached
    assert run_until(
        eng, req, states=(EngineState.WAITING_FOR_CUTOVER, EngineState.COMPLETED)
    ).state == (EngineState.WAITING_FOR_CUTOVER)
    assert _columns(schema, "t") == ["id", "v"]


def test_deferred_apply_refused_by_preflight_leaves_no_sentinel(schema: str) -> None:
    conn = connect(schema)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT, v VARCHAR(20))")  # no primary key
    conn.close()
    with pytest.raises(PermanentEngineError, match="no primary key"):
        engine(schema).apply(request([(schema, "t", ALTER.format(t="t"))], defer_cutover=True))
    assert "_sb_sentinel" not in tables(schema)


def test_deferred_operation_set_up_by_a_step_without_apply_still_waits_for_consent(
    schema: str,
) -> None:
    _create(schema, "t")
    req = request([(schema, "t", ALTER.format(t="t"))], defer_cutover=True)
    eng = engine(schema)
    first = eng.progress(req)  # no apply ever ran for this context
    assert any("no checkpoint on the target; setting up" in e for e in first.events)
    waiting = run_until(eng, req, states=(EngineState.WAITING_FOR_CUTOVER, EngineState.COMPLETED))
    assert waiting.state == EngineState.WAITING_FOR_CUTOVER
