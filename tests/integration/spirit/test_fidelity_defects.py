"""Issue 9's defects, each through the fidelity oracle (tests/integration/spirit/oracle.py):
spirit gives exactly what a blocking ALTER gives, or fails like it and leaves the table as it was.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import pymysql
import pytest

from engines.base import ControlRequest, EngineState, PermanentEngineError, RetryableEngineError
from engines.spirit import cutover
from tests.integration.spirit.oracle import Case, leftovers, run_case
from tests.integration.spirit.support import checkpoint_row, engine, request, run_until
from tests.support.mariadb import connect, fresh_schema

pytestmark = pytest.mark.integration

SERVER_MODE = "STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_AUTO_CREATE_USER,NO_ENGINE_SUBSTITUTION"


@pytest.fixture
def oracle_schema() -> Iterator[str]:
    with fresh_schema("sbt_oracle") as name:
        yield name


def _v(rng: random.Random) -> dict[str, object]:
    return {"v": rng.randint(-1000, 1000)}


def test_auto_increment_counter_is_carried_over(schema: str, oracle_schema: str) -> None:
    """Defect 1: rows 1..7, 5..7 deleted, ENGINE=InnoDB: the counter stays 8, as a blocking
    ALTER keeps it (CREATE TABLE ... LIKE resets it)."""
    case = Case(
        "auto_increment",
        "CREATE TABLE t (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, v INT)",
        "ALTER TABLE t ENGINE=InnoDB",
        _v,
        rows=7,
        seed_sql=["DELETE FROM t WHERE id >= 5"],
        writers=0,
    )
    run_case(schema, oracle_schema, case)
    conn = connect(schema)
    with conn.cursor() as cur:
        cur.execute("INSERT INTO t (v) VALUES (1)")
        assert cur.lastrowid == 8
    conn.close()


def test_auto_increment_counter_with_writers_deleting_the_top_rows(
    schema: str, oracle_schema: str
) -> None:
    case = Case(
        "auto_increment_writers",
        "CREATE TABLE t (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, v INT)",
        "ALTER TABLE t ADD COLUMN w INT NULL",
        _v,
        auto_key=True,
        seed_sql=["INSERT INTO t (id, v) VALUES (5000, 1)", "DELETE FROM t WHERE id = 5000"],
    )
    run_case(schema, oracle_schema, case)


def test_a_zero_in_an_auto_increment_column_is_kept(schema: str, oracle_schema: str) -> None:
    """Defect 2: a row with id 0 keeps id 0 (NO_AUTO_VALUE_ON_ZERO in the engine's sessions)."""
    case = Case(
        "zero_id",
        "CREATE TABLE t (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, v INT)",
        "ALTER TABLE t ADD COLUMN w INT NOT NULL DEFAULT 3",
        _v,
        seed_sql=["INSERT INTO t (id, v) VALUES (0, 77)"],
        sql_mode=SERVER_MODE + ",NO_AUTO_VALUE_ON_ZERO",
    )
    run_case(schema, oracle_schema, case)


def test_a_column_dropped_and_added_again_is_a_new_column(schema: str, oracle_schema: str) -> None:
    """Defect 3: DROP COLUMN c1, ADD COLUMN c1 ... DEFAULT 47: every row gets 47, and the
    application's INSERTs with c1 NULL never fail during the change."""

    def values(rng: random.Random) -> dict[str, object]:
        return {"c1": None if rng.random() < 0.5 else rng.randint(0, 9), "v": rng.randint(0, 9)}

    case = Case(
        "drop_add_same_name",
        "CREATE TABLE t (id INT NOT NULL PRIMARY KEY, c1 INT NULL, v INT)",
        "ALTER TABLE t DROP COLUMN c1, ADD COLUMN c1 INT NOT NULL DEFAULT 47",
        values,
        writer_values=lambda rng: {"v": rng.randint(0, 9)},
    )
    run_case(schema, oracle_schema, case)


def test_a_column_renamed_only_in_letter_case_keeps_its_values(
    schema: str, oracle_schema: str
) -> None:
    """Defect 4: CHANGE c2 C2 INT: column identity is case-insensitive."""
    case = Case(
        "rename_case",
        "CREATE TABLE t (id INT NOT NULL PRIMARY KEY, c2 INT, v INT)",
        "ALTER TABLE t CHANGE c2 C2 INT",
        lambda rng: {"c2": rng.randint(0, 10**6), "v": rng.randint(0, 9)},
    )
    run_case(schema, oracle_schema, case)


def test_rename_column_written_with_other_letter_case(schema: str, oracle_schema: str) -> None:
    case = Case(
        "rename_other_case",
        "CREATE TABLE t (id INT NOT NULL PRIMARY KEY, c2 INT, v INT)",
        "ALTER TABLE t RENAME COLUMN C2 TO c3",
        lambda rng: {"c2": rng.randint(0, 10**6), "v": rng.randint(0, 9)},
    )
    run_case(schema, oracle_schema, case)


def _email(rng: random.Random) -> dict[str, object]:
    return {"email": f"u{rng.randint(0, 10**12)}@example.com", "v": rng.randint(0, 9)}


def _dup_email(rng: random.Random) -> dict[str, object]:
    return {"email": "dup@example.com" if rng.random() < 0.3 else _email(rng)["email"], "v": 1}


def test_a_write_that_breaks_a_new_unique_key_fails_the_apply_cleanly(
    schema: str, oracle_schema: str
) -> None:
    """Defect 5: writers make duplicates of the new UNIQUE key during the copy. The blocking
    ALTER fails with 1062; spirit must fail too, naming the duplicate, not delete a row."""
    case = Case(
        "unique_dup_by_writer",
        "CREATE TABLE t (id INT NOT NULL PRIMARY KEY, email VARCHAR(100) NOT NULL, v INT)",
        "ALTER TABLE t ADD UNIQUE KEY uk_email (email)",
        _email,
        writer_values=_dup_email,
        expect="fails",
    )
    outcome = run_case(schema, oracle_schema, case)
    assert "dup@example.com" in outcome.message, outcome.message


def test_existing_duplicates_of_a_new_unique_key_fail_like_the_blocking_alter(
    schema: str, oracle_schema: str
) -> None:
    case = Case(
        "unique_dup_in_data",
        "CREATE TABLE t (id INT NOT NULL PRIMARY KEY, email VARCHAR(100) NOT NULL, v INT)",
        "ALTER TABLE t ADD UNIQUE KEY uk_email (email)",
        _email,
        # Keys the writers never touch, so the duplicate stays while spirit and the blocking
        # ALTER look at it.
        seed_sql=[
            "INSERT INTO t VALUES (5000, 'same@example.com', 1), (5001, 'same@example.com', 2)"
        ],
        expect="fails",
    )
    outcome = run_case(schema, oracle_schema, case)
    assert "same@example.com" in outcome.message, outcome.message


def test_datetime_to_timestamp_is_refused_at_preflight(schema: str, oracle_schema: str) -> None:
    """Defect 8: the triggers would convert in each writer's session time zone."""
    case = Case(
        "datetime_to_timestamp",
        "CREATE TABLE t (id INT NOT NULL PRIMARY KEY, d DATETIME NULL)",
        "ALTER TABLE t MODIFY d TIMESTAMP NULL",
        lambda rng: {"d": f"2020-0{rng.randint(1, 9)}-1{rng.randint(0, 9)} 1{rng.randint(0, 9)}:00:00"},
        time_zones=("+05:00", "-03:00"),
        expect="refused",
        refused_with="TIMESTAMP",
    )
    run_case(schema, oracle_schema, case)


def test_a_name_the_engine_needs_that_it_did_not_create_is_refused_and_never_dropped(
    schema: str, db: pymysql.Connection
) -> None:
    """Issue 10 §2: the shadow's name is taken by something the engine did not create (here a
    view; no run of the engine on this table is recorded). Preflight refuses, nothing is
    dropped, no sentinel or checkpoint stays. (Before, set-up dropped what it found, or was
    refused by the server and retried as if transient.)"""
    with db.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v INT)")
        cur.execute("INSERT INTO t VALUES (1, 1), (2, 2)")
        cur.execute("CREATE VIEW _sb_t_new AS SELECT 1 AS one")
        cur.execute("CREATE TABLE _sb_t_err (n INT)")
        cur.execute("INSERT INTO _sb_t_err VALUES (7)")
    req = request([(schema, "t", "ALTER TABLE t ADD COLUMN w INT")], defer_cutover=True)
    with pytest.raises(PermanentEngineError, match=r"preflight failed.*_sb_t_new.*cannot prove"):
        engine(schema).apply(req)
    with db.cursor() as cur:
        assert leftovers(cur, schema) == ["table _sb_t_err", "table _sb_t_new"]
        cur.execute("SELECT * FROM _sb_t_new")
        assert cur.fetchall() == ((1,),)
        cur.execute("SELECT * FROM _sb_t_err")
        assert cur.fetchall() == ((7,),)


def test_a_completed_run_does_not_vouch_for_objects_made_after_it(
    schema: str, db: pymysql.Connection
) -> None:
    """Issue 10 §2: a run that completed removed all it made, so it proves nothing about a
    `_sb_t_new` or `_sb_t_ins` found later (another installation's, a person's). Before, any
    recorded run counted as proof, and the next run dropped them (500 rows lost)."""
    with db.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v INT)")
        cur.executemany("INSERT INTO t VALUES (%s, %s)", [(i, i) for i in range(100)])
    first = request([(schema, "t", "ALTER TABLE t ADD COLUMN w INT")], "task-1", chunk_rows=30)
    eng = engine(schema)
    eng.apply(first)
    assert run_until(eng, first).state == EngineState.COMPLETED
    with db.cursor() as cur:
        cur.execute("CREATE TABLE _sb_t_new (id INT PRIMARY KEY)")
        cur.executemany("INSERT INTO _sb_t_new VALUES (%s)", [(i,) for i in range(500)])
        cur.execute("CREATE TRIGGER _sb_t_ins AFTER INSERT ON t FOR EACH ROW SET @seen = 1")
    second = request([(schema, "t", "ALTER TABLE t ADD COLUMN x INT")], "task-2", chunk_rows=30)
    with pytest.raises(PermanentEngineError, match=r"preflight failed.*_sb_t_new.*_sb_t_ins.*cannot prove"):
        engine(schema).apply(second)
    with db.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM _sb_t_new")
        assert cur.fetchone() == (500,)
        cur.execute(
            "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s", (schema,)
        )
        assert [r[0] for r in cur.fetchall()] == ["_sb_t_ins"]


def test_other_tools_shadow_and_trigger_names_are_left_alone(
    schema: str, db: pymysql.Connection
) -> None:
    """Issue 10 §2: pt-osc's and Spirit's `_<t>_new`, an application's `_<t>_old` are not the
    engine's names: a change runs beside them and leaves them as they were."""
    with db.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v INT)")
        cur.executemany("INSERT INTO t VALUES (%s, %s)", [(i, i) for i in range(100)])
        cur.execute("CREATE TABLE _t_new (id INT PRIMARY KEY)")
        cur.executemany("INSERT INTO _t_new VALUES (%s)", [(i,) for i in range(500)])
        cur.execute("CREATE TABLE _t_old (x INT)")
    req = request([(schema, "t", "ALTER TABLE t ADD COLUMN w INT, ADD INDEX (v)")], chunk_rows=30)
    eng = engine(schema)
    eng.apply(req)
    assert run_until(eng, req).state == EngineState.COMPLETED
    with db.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM _t_new")
        assert cur.fetchone() == (500,)
        cur.execute("SHOW TABLES")
        assert {r[0] for r in cur.fetchall()} == {"t", "_t_new", "_t_old", "_sb_spirit_checkpoint"}


def test_cancel_of_a_failed_apply_removes_what_it_left(schema: str, db: pymysql.Connection) -> None:
    """Defect 6, second half: whatever a failed apply left (here: its clean-up was cut short),
    cancel removes: triggers, shadow, sentinel and the unfinished checkpoint."""
    with db.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v INT)")
        cur.executemany("INSERT INTO t VALUES (%s, %s)", [(i, i) for i in range(300)])
    req = request(
        [(schema, "t", "ALTER TABLE t ADD COLUMN w INT")],
        defer_cutover=True,
        chunk_rows=50,
        step_budget=0,
    )
    eng = engine(schema)
    eng.apply(req)
    eng.progress(req)
    with db.cursor() as cur:
        cur.execute("UPDATE _sb_spirit_checkpoint SET phase = 'failed', message = 'boom'")
        assert leftovers(cur, schema)
    result = eng.cancel(ControlRequest(context=req.context, changes=req.changes, options=req.options))
    assert result.accepted, result.message
    with db.cursor() as cur:
        assert leftovers(cur, schema) == []
    assert checkpoint_row(schema, "t")["phase"] in ("cancelled", "failed")  # type: ignore[index]


def test_a_failed_apply_is_a_tombstone_a_late_apply_does_not_rerun(
    schema: str, db: pymysql.Connection
) -> None:
    """Defect 6, first half: after a permanent failure the engine has cleaned up, and the same
    context applied again learns the failure instead of running the statement again."""
    with db.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, email VARCHAR(50))")
        cur.executemany(
            "INSERT INTO t VALUES (%s, %s)", [(i, "x" if i in (3, 200) else f"e{i}") for i in range(300)]
        )
    req = request([(schema, "t", "ALTER TABLE t ADD UNIQUE KEY (email)")], chunk_rows=50)
    eng = engine(schema)
    with pytest.raises(PermanentEngineError):
        eng.apply(req)
        run_until(eng, req, (EngineState.COMPLETED,))
    with db.cursor() as cur:
        assert leftovers(cur, schema) == []
    with pytest.raises(PermanentEngineError) as again:
        eng.apply(req)
    assert "1062" in str(again.value)
    with db.cursor() as cur:
        assert leftovers(cur, schema) == []


def test_a_grouped_apply_whose_second_table_is_refused_leaves_the_first_as_it_was(
    schema: str, db: pymysql.Connection
) -> None:
    """Defect 6 for a grouped apply: the first table was set up (triggers, shadow) when the
    server refused the second table's ALTER; nothing of either stays."""
    with db.cursor() as cur:
        for table in ("a", "b"):
            cur.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY, v INT)")
            cur.execute(f"INSERT INTO {table} VALUES (1, 1), (2, 2)")
    req = request(
        [
            (schema, "a", "ALTER TABLE a ADD COLUMN w INT"),
            (schema, "b", "ALTER TABLE b ADD COLUMN w INT NOT NULL DEFAULT 'x'"),
        ],
        defer_cutover=True,
    )
    with pytest.raises(PermanentEngineError, match=r"\(1067\)"):
        engine(schema).apply(req)
    with db.cursor() as cur:
        cur.execute("SHOW TABLES")
        assert {r[0] for r in cur.fetchall()} == {"a", "b", "_sb_spirit_checkpoint"}
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s", (schema,)
        )
        assert cur.fetchone() == (0,)
        cur.execute("SELECT table_name, phase FROM _sb_spirit_checkpoint ORDER BY table_name")
        assert cur.fetchall() == (("a", "failed"),)


def test_a_refused_write_just_before_the_rename_is_caught_under_the_cutover_lock(
    schema: str, db: pymysql.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defect 5, last window: an application write that duplicates the new unique key, committed
    after every earlier check and right before the RENAME, still fails the apply cleanly (the
    last checks run while the cutover lock holds the writers), and no row is lost."""
    with db.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, email VARCHAR(50) NOT NULL)")
        cur.executemany("INSERT INTO t VALUES (%s, %s)", [(i, f"e{i}") for i in range(200)])
    original = cutover.rename_with_retries

    def write_then_rename(*args: object, **kwargs: object) -> int:
        app = connect(schema)
        with app.cursor() as cur:
            cur.execute("INSERT INTO t VALUES (1000, 'e7')")  # e7 is taken by id 7
        app.close()
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(cutover, "rename_with_retries", write_then_rename)
    req = request([(schema, "t", "ALTER TABLE t ADD UNIQUE KEY uk (email)")], chunk_rows=50)
    eng = engine(schema)
    eng.apply(req)
    with pytest.raises(PermanentEngineError, match=r"\(1062\) Duplicate entry 'e7'"):
        run_until(eng, req)
    with db.cursor() as cur:
        assert leftovers(cur, schema) == []
        cur.execute("SELECT COUNT(*) FROM t WHERE email = 'e7'")
        assert cur.fetchone() == (2,)
        cur.execute("SHOW CREATE TABLE t")
        assert "uk" not in cur.fetchone()[1]


def test_a_source_altered_right_before_the_rename_is_not_swapped_away(
    schema: str, db: pymysql.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 10 §1, last sentence: the source's definition is checked again under the cutover
    lock; a change made out of band after every earlier check withholds the swap (the column
    added out of band would otherwise vanish), and the run starts fresh from the new source."""
    with db.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v INT)")
        cur.executemany("INSERT INTO t VALUES (%s, %s)", [(i, i) for i in range(200)])
    original = cutover.rename_with_retries
    altered = []

    def alter_then_rename(*args: object, **kwargs: object) -> int:
        if not altered:
            app = connect(schema)
            with app.cursor() as cur:
                cur.execute("ALTER TABLE t ADD COLUMN z INT NOT NULL DEFAULT 5")
            app.close()
            altered.append(True)
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(cutover, "rename_with_retries", alter_then_rename)
    req = request([(schema, "t", "ALTER TABLE t ADD COLUMN w INT, ADD INDEX (v)")], chunk_rows=50)
    eng = engine(schema)
    eng.apply(req)
    with pytest.raises(RetryableEngineError, match=r"cutover withheld.*altered out of band"):
        run_until(eng, req)
    result = run_until(eng, req)
    assert result.state == EngineState.COMPLETED
    with db.cursor() as cur:
        cur.execute("SELECT COUNT(*), SUM(z = 5), SUM(v = id) FROM t")
        assert cur.fetchone() == (200, 200, 200)
        cur.execute("SHOW COLUMNS FROM t")
        assert [r[0] for r in cur.fetchall()] == ["id", "v", "z", "w"]
        assert leftovers(cur, schema) == []
