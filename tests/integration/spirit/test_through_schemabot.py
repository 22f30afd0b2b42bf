"""The spirit engine driven by schemabot's orchestration (real storage on SQLite and MariaDB, real
MariaDB target, messages played in-process): docs/architecture.md §10 S2 and a grouped two-table apply."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from schemabot.api import ChangeSet
from schemabot.recovery import recovery_sweep
from schemabot.runtime import Runtime
from schemabot.settings import Settings
from tests.conftest import FAST
from tests.support.harness import FaultyDatabase, RecordingDispatcher, deliver, kill_owner
from tests.support.mariadb import connect, mysql_dsn
from tests.support.steps import clear_resume_state, client, run_until, status


def make_table(schema: str, table: str, rows: int) -> None:
    conn = connect(schema)
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE `{table}` (id INT PRIMARY KEY, a INT NOT NULL, b VARCHAR(40))")
        cur.execute(f"INSERT INTO `{table}` SELECT seq, seq * 7, CONCAT('row-', seq) FROM seq_1_to_{rows}")
    conn.close()


def rows_of(schema: str, table: str) -> list[tuple[object, ...]]:
    conn = connect(schema)
    with conn.cursor() as cur:
        cur.execute(f"SELECT id, a, b FROM `{table}` ORDER BY id")
        rows = list(cur.fetchall())
    conn.close()
    return rows


def tables_of(schema: str) -> set[str]:
    conn = connect(schema)
    with conn.cursor() as cur:
        cur.execute("SHOW TABLES")
        names = {r[0] for r in cur.fetchall()}
    conn.close()
    return names


@pytest.fixture
def spirit_rt(state_url: str, schema: str, dispatcher: RecordingDispatcher) -> Iterator[Runtime]:
    settings = Settings(
        database_url=state_url, targets={"db": mysql_dsn(schema)}, **{**FAST, "step_budget": 0.3}
    )
    db = FaultyDatabase(settings.database_url, settings.storage_retry_seconds)
    yield Runtime(settings=settings, db=db, dispatcher=dispatcher, owner="test-worker")
    db.dispose()


@pytest.fixture
def renames(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every RENAME TABLE statement sent to the target server, as sent."""
    import pymysql.cursors

    sent: list[str] = []
    original = pymysql.cursors.Cursor.execute

    def execute(self: pymysql.cursors.Cursor, query: str, args: object = None) -> int:
        if query.lstrip().upper().startswith("RENAME TABLE"):
            sent.append(query)
        return original(self, query, args)

    monkeypatch.setattr(pymysql.cursors.Cursor, "execute", execute)
    return sent


def test_s2_grouped_spirit_resume_without_state_reattaches_through_the_checkpoint(
    spirit_rt: Runtime, dispatcher: RecordingDispatcher, schema: str
) -> None:
    rt = spirit_rt
    make_table(schema, "t", 60_000)
    before = rows_of(schema, "t")
    apply_id = (
        client(rt)
        .submit_apply(
            "db",
            "spirit",
            [ChangeSet(["ALTER TABLE t ADD COLUMN c INT NULL"], schema)],
            defer_cutover=True,
            volume=2,
            # Small fixed chunks: a 0.3 s step copies a part of the table, however fast the
            # machine (auto-sized chunks once copied all 60,000 rows in the first step).
            engine_options={"chunk_rows": 100},
        )
        .apply_id
    )
    for _ in range(200):  # drive until part of the table is copied
        if (status(rt, apply_id).tasks[0].rows_copied or 0) > 0:
            break
        deliver(rt, dispatcher.take())  # type: ignore[arg-type]
    copied_before = status(rt, apply_id).tasks[0].rows_copied or 0
    assert 0 < copied_before < 60_000

    kill_owner(rt, dispatcher, apply_id)
    clear_resume_state(rt, apply_id)  # the next owner has only the context (the apply id)
    assert [c.reason for c in recovery_sweep(rt).claimed] == ["orphaned"]
    deliver(rt, dispatcher.take())  # type: ignore[arg-type]

    resume = [e for e in client(rt).log(apply_id) if e.event == "resume"]
    assert len(resume) == 1 and resume[0].detail["reattached"] is True, resume  # type: ignore[index]
    assert "copy" in (resume[0].message or "")
    shadows = [t for t in tables_of(schema) if t.startswith("_sb_t_") and t != "_sb_t_err"]
    assert shadows == ["_sb_t_new"]  # one shadow

    run_until(rt, dispatcher, apply_id, "waiting_for_cutover", max_messages=2000)
    client(rt).request_control(apply_id, "cutover")
    final = run_until(rt, dispatcher, apply_id, "completed", "failed", max_messages=2000)
    assert final.state == "completed", final.error
    assert rows_of(schema, "t") == before  # every row, unchanged
    assert not [t for t in tables_of(schema) if t.startswith("_sb_t_")]


def test_grouped_spirit_apply_cuts_two_tables_over_together(
    spirit_rt: Runtime, dispatcher: RecordingDispatcher, schema: str, renames: list[str]
) -> None:
    rt = spirit_rt
    make_table(schema, "t1", 5_000)
    make_table(schema, "t2", 5_000)
    apply_id = (
        client(rt)
        .submit_apply(
            "db",
            "spirit",
            [ChangeSet(["ALTER TABLE t1 MODIFY b VARCHAR(80)", "ALTER TABLE t2 ADD COLUMN d INT"], schema)],
            defer_cutover=True,
        )
        .apply_id
    )
    st = run_until(rt, dispatcher, apply_id, "waiting_for_cutover", max_messages=2000)
    assert [t.state for t in st.tasks] == ["waiting_for_cutover", "waiting_for_cutover"]
    client(rt).request_control(apply_id, "cutover")
    final = run_until(rt, dispatcher, apply_id, "completed", "failed", max_messages=2000)
    assert final.state == "completed", final.error
    assert [t.state for t in final.tasks] == ["completed", "completed"]
    assert [t.percent for t in final.tasks] == [100.0, 100.0]
    renamed = [r for r in renames if "`t1`" in r or "`t2`" in r]
    assert len(renamed) == 1 and "`t1`" in renamed[0] and "`t2`" in renamed[0], renames  # one RENAME


# -- issue 11, defect 8: atomic multi-table cutover without deferring it ----------------------

TWO_ALTERS = ["ALTER TABLE t1 MODIFY b VARCHAR(80)", "ALTER TABLE t2 MODIFY b VARCHAR(90)"]


def test_two_table_spirit_apply_is_atomic_by_default_and_cuts_over_in_one_rename(
    spirit_rt: Runtime, dispatcher: RecordingDispatcher, schema: str, renames: list[str]
) -> None:
    rt = spirit_rt
    make_table(schema, "t1", 3_000)
    make_table(schema, "t2", 3_000)
    changes = [ChangeSet(TWO_ALTERS, schema)]
    apply_id = client(rt).submit_apply("db", "spirit", changes).apply_id  # no --defer-cutover

    seen: list[list[str]] = []
    for _ in range(2000):
        st = status(rt, apply_id)
        seen.append([t.state for t in st.tasks])
        if st.is_terminal:
            break
        deliver(rt, dispatcher.take())  # type: ignore[arg-type]
    assert st.state == "completed", st.error
    assert ["completed", "pending"] not in seen and ["completed", "running"] not in seen, seen
    renamed = [r for r in renames if "`t1`" in r or "`t2`" in r]
    assert len(renamed) == 1, renames  # both tables moved by one statement
    assert "`t1`" in renamed[0] and "`t2`" in renamed[0]
    assert st.options["atomic"] is True


def test_no_atomic_runs_a_spirit_apply_table_by_table(
    spirit_rt: Runtime, dispatcher: RecordingDispatcher, schema: str, renames: list[str]
) -> None:
    rt = spirit_rt
    make_table(schema, "t1", 500)
    make_table(schema, "t2", 500)
    changes = [ChangeSet(TWO_ALTERS, schema)]
    apply_id = client(rt).submit_apply("db", "spirit", changes, atomic=False).apply_id
    final = run_until(rt, dispatcher, apply_id, "completed", "failed", max_messages=2000)
    assert final.state == "completed", final.error
    renamed = [r for r in renames if "`t1`" in r or "`t2`" in r]
    assert len(renamed) == 2 and all(("`t1`" in r) != ("`t2`" in r) for r in renamed), renames
