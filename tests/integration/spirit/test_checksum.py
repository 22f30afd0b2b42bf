"""Checksum before cutover: a differing chunk is repaired; what cannot be repaired fails the
step with the keys involved, and nothing is cut over."""

from __future__ import annotations

import pymysql
import pytest

from engines.base import EngineState, PermanentEngineError
from tests.integration.spirit.support import checkpoint_row, engine, request, run_until, tables

pytestmark = pytest.mark.integration


def _create(db: pymysql.Connection, rows: int = 1000) -> None:
    with db.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))")
        cur.executemany("INSERT INTO t VALUES (%s, %s)", [(i, f"value{i}") for i in range(rows)])


def _copy_only(schema: str, ddl: str):  # type: ignore[no-untyped-def]
    # The checksum phase is the subject here: no trailing checksum during the copy, so every
    # chunk is compared after the shadow is tampered with below.
    req = request([(schema, "t", ddl)], chunk_rows=200, step_budget=0, trailing_checksum=False)
    eng = engine(schema)
    eng.apply(req)
    for _ in range(100):
        eng.progress(req)
        if checkpoint_row(schema, "t")["phase"] not in ("copy", "index"):  # type: ignore[index]
            break
    assert checkpoint_row(schema, "t")["phase"] == "checksum"  # type: ignore[index]
    return eng, req


def test_a_corrupted_shadow_chunk_is_repaired_and_verified_by_a_second_pass(
    schema: str, db: pymysql.Connection
) -> None:
    _create(db)
    eng, req = _copy_only(schema, "ALTER TABLE t ADD COLUMN n INT NULL, ADD INDEX (v)")
    with db.cursor() as cur:  # behind the triggers' back
        cur.execute("UPDATE _sb_t_new SET v = 'corrupt' WHERE id = 7")
        cur.execute("DELETE FROM _sb_t_new WHERE id = 450")
        cur.execute("INSERT INTO _sb_t_new (id, v) VALUES (5000, 'ghost')")
    events: list[str] = []
    done = run_until(eng, req, between=lambda r: events.extend(r.events))
    events.extend(done.events)
    assert done.state == EngineState.COMPLETED
    assert sum("checksum repaired the chunk" in e for e in events) >= 2
    assert any("second pass" in e for e in events)
    with db.cursor() as cur:
        cur.execute("SELECT COUNT(*), SUM(v = CONCAT('value', id)) FROM t")
        assert cur.fetchone() == (1000, 1000)


def test_an_alter_that_would_truncate_values_fails_with_the_servers_reason_and_cuts_nothing_over(
    schema: str, db: pymysql.Connection
) -> None:
    """The copy reads the warnings of each chunk: a value the new definition cannot hold fails
    the apply with the server's words (as the blocking ALTER does), and everything is removed."""
    _create(db)
    with db.cursor() as cur:
        cur.execute("UPDATE t SET v = 'short' WHERE id <> 321")
    req = request([(schema, "t", "ALTER TABLE t MODIFY v VARCHAR(6), ADD INDEX (v)")], chunk_rows=200)
    eng = engine(schema)
    eng.apply(req)
    with pytest.raises(PermanentEngineError, match=r"\((1406|1265)\) Data (too long|truncated)"):
        run_until(eng, req)
    assert tables(schema) == {"t", "_sb_spirit_checkpoint"}
    assert checkpoint_row(schema, "t")["phase"] == "failed"  # type: ignore[index]
    with db.cursor() as cur:
        cur.execute("SELECT v FROM t WHERE id = 321")
        assert cur.fetchone() == ("value321",)


def test_a_shadow_row_changed_behind_the_engines_back_that_cannot_be_repaired_fails_cleanly(
    schema: str, db: pymysql.Connection
) -> None:
    """A difference the repair cannot fix (here a shadow row that makes the source's row a
    duplicate of a new unique key) fails naming the server's refusal, and removes everything."""
    _create(db)
    eng, req = _copy_only(schema, "ALTER TABLE t ADD UNIQUE KEY (v)")
    with db.cursor() as cur:  # behind the triggers' back
        cur.execute("DELETE FROM _sb_t_new WHERE id = 7")
        cur.execute("UPDATE _sb_t_new SET v = 'value7' WHERE id = 950")
    with pytest.raises(PermanentEngineError, match=r"\(1062\) Duplicate entry 'value7'"):
        run_until(eng, req)
    assert tables(schema) == {"t", "_sb_spirit_checkpoint"}
