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

import threading
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


def _as_mysql_refusing_set_statement(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make the server refuse `SET STATEMENT ... FOR` as MySQL does (1064), so the probe takes its
    MySQL path (a session lock wait of one second) on this MariaDB; returns the refused ones."""
    refused: list[str] = []
    execute = pymysql.cursors.Cursor.execute

    def refusing(self: Any, query: str, args: Any = None) -> int:
        if query.startswith("SET STATEMENT lock_wait_timeout"):
            refused.append(query)
            raise pymysql.err.ProgrammingError(1064, "You have an error in your SQL syntax")
        return execute(self, query, args)

    monkeypatch.setattr(pymysql.cursors.Cursor, "execute", refusing)
    return refused


def _queue_writes(cur: Any, schema: str, statements: Sequence[str]) -> list[QueuedWriter]:
    """One autocommit writer per statement, started while the cutover holds the writers, and
    returned once every one is seen waiting for a metadata lock (PROCESSLIST, on `cur`)."""
    writers = [QueuedWriter(schema, [statement]) for statement in statements]
    for writer in writers:
        writer.conn.autocommit(True)
        writer.thread.start()
    ids = ", ".join(str(w.id) for w in writers)
    until = time.monotonic() + 10
    while time.monotonic() < until:
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE STATE LIKE "
            f"'%%metadata lock%%' AND ID IN ({ids})"
        )
        if cur.fetchone()[0] == len(writers):
            return writers
        time.sleep(0.002)
    raise AssertionError("the writes never queued behind the cutover")


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


@pytest.mark.parametrize("probe", ["set statement", "mysql"])
def test_a_lock_on_the_shadow_as_the_rename_is_sent_does_not_let_writers_into_the_old_table(
    schema: str, db: pymysql.Connection, monkeypatch: pytest.MonkeyPatch, probe: str
) -> None:
    """`mysql`: the probe's path for a server without `SET STATEMENT` (MySQL 8)."""
    _make_tables(db, "t")
    refused = _as_mysql_refusing_set_statement(monkeypatch) if probe == "mysql" else []
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
    assert bool(refused) == (probe == "mysql")
    with db.cursor() as cur:
        cur.execute("SELECT v FROM t WHERE id = 1000")
        assert cur.fetchall() == (("app",),)
        cur.execute("SELECT COUNT(*) FROM t")
        assert cur.fetchone() == (301,)
        cur.execute("SHOW CREATE TABLE t")
        assert "char(40)" in cur.fetchone()[1]


@pytest.mark.parametrize(
    ("tables", "probe"),
    [(("a", "b"), "set statement"), (("B", "a", "c"), "set statement"), (("a", "b"), "mysql")],
)
def test_every_table_of_a_grouped_cutover_keeps_the_writes_held_on_it(
    schema: str,
    db: pymysql.Connection,
    monkeypatch: pytest.MonkeyPatch,
    tables: tuple[str, ...],
    probe: str,
) -> None:
    """Writers queued on each table of a grouped apply; whatever the tables' order in the
    RENAME's locks (an upper-case name sorts before `_sb_`), each write reaches its new table.
    `mysql`: the probe's path for a server without `SET STATEMENT` (MySQL 8)."""
    _make_tables(db, *tables)
    refused = _as_mysql_refusing_set_statement(monkeypatch) if probe == "mysql" else []
    writers: list[QueuedWriter] = []

    def queue_one_write_per_table(cur: Any) -> None:
        writers.extend(_queue_writes(cur, schema, [f"INSERT INTO {t} VALUES (1000, 'app')" for t in tables]))

    done = _during_the_last_checks(monkeypatch, queue_one_write_per_table)
    result = _widen_v(schema, tables)
    assert done, "the cutover never ran its last checks"
    for w in writers:
        w.finish()
        assert w.error is None, w.error
    assert result.state == EngineState.COMPLETED
    assert bool(refused) == (probe == "mysql")
    with db.cursor() as cur:
        for t in tables:
            cur.execute(f"SELECT v FROM {t} WHERE id = 1000")
            assert cur.fetchall() == (("app",),), t
            cur.execute(f"SHOW CREATE TABLE {t}")
            assert "char(40)" in cur.fetchone()[1], t


def test_a_holder_lost_with_the_rename_in_flight_stops_the_rename(
    schema: str, db: pymysql.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Grouped (a, b): holder A's session dies after the RENAME is sent, a writer queued on `a`
    gets in and commits (the last catch-up is behind it), and the RENAME then takes `a` and
    waits for `b`. Seen queued on `a`, A's unlock fails: the engine must kill the RENAME before
    B unlocks, or the swap would leave the write in `_sb_a_old`. The next attempt replays it."""
    _make_tables(db, "a", "b")
    writer: list[QueuedWriter] = []
    holder_ids: list[int] = []
    original_statement = cutover.rename_statement

    def queue_a_write_on_a(cur: Any) -> None:
        writer.extend(_queue_writes(cur, schema, ["INSERT INTO a VALUES (1000, 'app')"]))

    def holder_lost_as_the_rename_is_sent(all_names: Any) -> str:
        """In the thread that sends the RENAME (the step's own thread builds it up front too)."""
        statement = original_statement(all_names)
        if threading.current_thread() is not threading.main_thread() and writer and not writer[0].done:
            with db.cursor() as cur:
                cur.execute(f"KILL CONNECTION {holder_ids[0]}")  # holder of `a`
            writer[0].thread.join(timeout=10)
            assert writer[0].done and writer[0].error is None, writer[0].error
        return statement

    done = _during_the_last_checks(monkeypatch, queue_a_write_on_a)
    checked = cutover.rename_with_retries

    def with_holders(*args: Any, **kwargs: Any) -> int:
        if not holder_ids:
            holder_ids.extend(h.thread_id() for h in kwargs["holders"])
        return checked(*args, **kwargs)

    monkeypatch.setattr(cutover, "rename_with_retries", with_holders)
    monkeypatch.setattr(cutover, "rename_statement", holder_lost_as_the_rename_is_sent)
    result = _widen_v(schema, ["a", "b"])
    assert done, "the cutover never ran its last checks"
    assert writer and writer[0].done, "the holder was never lost with the rename in flight"
    writer[0].finish()
    assert result.state == EngineState.COMPLETED, result
    with db.cursor() as cur:
        cur.execute("SELECT v FROM a WHERE id = 1000")
        assert cur.fetchall() == (("app",),)
        for t in ("a", "b"):
            cur.execute(f"SHOW CREATE TABLE {t}")
            assert "char(40)" in cur.fetchone()[1], t
