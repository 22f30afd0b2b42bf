"""The cutover must release the held writers only once the RENAME waits on their table.

The RENAME takes its metadata locks in key order, and `_sb_<t>_new` / `_sb_<t>_old` sort before
a lower-case `t`. When anything holds a lock on the shadow as the RENAME is sent (InnoDB's purge
or statistics threads take one for a moment; so does any reader), the RENAME waits there first,
not on `t`, and "the RENAME is waiting for a metadata lock" does not mean it is queued behind the
writers. Unlocking then hands `t` to the writers, and with the binlog source their writes land in
the old table after the last catch-up. The same holds for every table after the first in a
grouped apply: the RENAME reaches their locks only after the unlock. See docs/architecture.md
(cutover) and engines/spirit/cutover.py.

Each test holds the writers' statements queued on `t` during the last checks (seen waiting in
PROCESSLIST), so the outcome does not depend on timing: either the rows are in the new tables
or the apply failed (it must not).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import pymysql
import pytest

from engines.base import EngineState, ProgressResult
from engines.spirit import cutover
from tests.integration.spirit.support import engine, request, run_until
from tests.integration.spirit.test_cutover_window import QueuedWriter, ShadowReader

pytestmark = pytest.mark.integration


def _during_the_last_checks(
    monkeypatch: pytest.MonkeyPatch, act: Callable[[Any], None]
) -> list[bool]:
    """Run `act(cur)` once, inside the first attempt's last checks (the writers are held)."""
    original = cutover.rename_with_retries
    done: list[bool] = []

    def wrapped(*args: Any, **kwargs: Any) -> int:
        verify: Callable[[Any], Any] = kwargs["verify"]

        def verify_then_act(cur: Any) -> Any:
            problem = verify(cur)
            if not done:
                done.append(True)
                act(cur)
            return problem

        kwargs["verify"] = verify_then_act
        return original(*args, **kwargs)

    monkeypatch.setattr(cutover, "rename_with_retries", wrapped)
    return done


def _make_tables(db: pymysql.Connection, *tables: str) -> None:
    with db.cursor() as cur:
        for t in tables:
            cur.execute(f"CREATE TABLE {t} (id INT PRIMARY KEY, v VARCHAR(20) NOT NULL)")
            cur.executemany(f"INSERT INTO {t} VALUES (%s, %s)", [(i, f"v{i}") for i in range(300)])


def _widen_v(schema: str, tables: Sequence[str]) -> ProgressResult:
    """One apply changing every table (a copy, not an instant ALTER), binlog source, to the end."""
    req = request(
        [(schema, t, f"ALTER TABLE {t} MODIFY v CHAR(40) NOT NULL") for t in tables],
        chunk_rows=100,
        change_source="binlog",
    )
    eng = engine(schema)
    eng.apply(req)
    return run_until(eng, req)


def test_a_lock_on_the_shadow_as_the_rename_is_sent_does_not_let_writers_into_the_old_table(
    schema: str, db: pymysql.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    _make_tables(db, "t")
    held: list[Any] = []

    def queue_a_write_and_read_the_shadow(cur: Any) -> None:
        writer = QueuedWriter(schema, ["INSERT INTO t VALUES (1000, 'app')"])
        writer.start_and_see_it_queued(cur)
        held.extend([writer, ShadowReader(schema, "t", hold_seconds=0.5)])

    done = _during_the_last_checks(monkeypatch, queue_a_write_and_read_the_shadow)
    result = _widen_v(schema, ["t"])
    assert done, "the cutover never ran its last checks"
    held[0].finish()
    assert held[0].error is None, held[0].error
    assert result.state == EngineState.COMPLETED
    with db.cursor() as cur:
        cur.execute("SELECT v FROM t WHERE id = 1000")
        assert cur.fetchall() == (("app",),)
        cur.execute("SELECT COUNT(*) FROM t")
        assert cur.fetchone() == (301,)
        cur.execute("SHOW CREATE TABLE t")
        assert "char(40)" in cur.fetchone()[1]


@pytest.mark.parametrize("tables", [("a", "b"), ("B", "a", "c")])
def test_every_table_of_a_grouped_cutover_keeps_the_writes_held_on_it(
    schema: str, db: pymysql.Connection, monkeypatch: pytest.MonkeyPatch, tables: tuple[str, ...]
) -> None:
    """Writers queued on each table of a grouped apply; whatever the tables' order in the
    RENAME's locks (an upper-case name sorts before `_sb_`), each write reaches its new table."""
    _make_tables(db, *tables)
    writers: list[QueuedWriter] = []

    def queue_one_write_per_table(cur: Any) -> None:
        for t in tables:
            writer = QueuedWriter(schema, [f"INSERT INTO {t} VALUES (1000, 'app')"])
            writer.conn.autocommit(True)
            writers.append(writer)
            writer.thread.start()
        until = time.monotonic() + 10
        ids = [w.id for w in writers]
        while time.monotonic() < until:
            cur.execute(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE STATE LIKE "
                f"'%%metadata lock%%' AND ID IN ({', '.join(map(str, ids))})"
            )
            if cur.fetchone()[0] == len(ids):
                return
            time.sleep(0.002)
        raise AssertionError("the writes never queued behind the cutover")

    done = _during_the_last_checks(monkeypatch, queue_one_write_per_table)
    result = _widen_v(schema, tables)
    assert done, "the cutover never ran its last checks"
    for w in writers:
        w.finish()
        assert w.error is None, w.error
    assert result.state == EngineState.COMPLETED
    with db.cursor() as cur:
        for t in tables:
            cur.execute(f"SELECT v FROM {t} WHERE id = 1000")
            assert cur.fetchall() == (("app",),), t
            cur.execute(f"SHOW CREATE TABLE {t}")
            assert "char(40)" in cur.fetchone()[1], t
