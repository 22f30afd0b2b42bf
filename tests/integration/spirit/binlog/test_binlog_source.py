"""The binlog change source (engines/spirit/binlogsource.py) on a private server with binary
logging: choice, replay, exactness, resume from the saved position, purged position, cutover."""

from __future__ import annotations

import random
import time
from typing import Any

import pytest

from engines.base import EngineState, PermanentEngineError
from engines.spirit import SpiritEngine
from engines.spirit.binlogpos import Position
from engines.spirit.binlogreader import KeyColumn, read_changes
from engines.targets import Target
from tests.integration.spirit.oracle import Case, run_case
from tests.integration.spirit.support import (
    checkpoint_row,
    engine,
    request,
    run_until,
    tables,
    triggers,
    wait_for,
)
from tests.support import mariadb
from tests.support.mariadb import connect, fresh_schema, mysql_dsn
from tests.support.servers import BinlogMariaDB

SHARED_SERVER_PORT = mariadb.SHARED_PORT  # read before any fixture points it elsewhere

pytestmark = pytest.mark.integration


def _values(rng: random.Random) -> dict[str, object]:
    return {"v": rng.randint(0, 1000), "s": "x" * rng.randint(0, 20)}


def test_widening_under_writers_is_identical_to_the_blocking_alter(
    schema: str, oracle_schema: str
) -> None:
    case = Case(
        "binlog-widen",
        "CREATE TABLE t (id INT NOT NULL PRIMARY KEY, v INT, s VARCHAR(30), KEY (v))",
        "ALTER TABLE t MODIFY v BIGINT",
        _values,
        rows=600,
    )
    outcome = run_case(schema, oracle_schema, case, change_source="binlog")
    assert outcome.verdict == "identical"
    assert sum(outcome.writes.values()) > 20
    row = checkpoint_row(schema, "t", "fid-binlog-widen")
    assert row is not None and row["change_source"] == "binlog"


# -- the reader on a real stream ------------------------------------------------------------------


def _position(server: BinlogMariaDB) -> Position:
    row = server.query("SHOW MASTER STATUS")[0]
    return Position(str(row["File"]), int(row["Position"]))


def _kwargs(server: BinlogMariaDB) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": server.port, "user": "root", "password": ""}


def test_the_reader_gives_every_changed_key_and_stops_at_the_target(
    schema: str, on_binlog_server: BinlogMariaDB
) -> None:
    server = on_binlog_server
    server.execute(f"CREATE TABLE `{schema}`.t (id BIGINT UNSIGNED PRIMARY KEY, v INT)")
    server.execute(f"CREATE TABLE `{schema}`.other (id INT PRIMARY KEY)")
    start = _position(server)
    server.execute(f"INSERT INTO `{schema}`.t VALUES (1, 1), (2, 2), (18446744073709551615, 3)")
    server.execute(f"INSERT INTO `{schema}`.other VALUES (77)")
    server.execute(f"UPDATE `{schema}`.t SET id = 10 WHERE id = 2")
    server.execute(f"DELETE FROM `{schema}`.t WHERE id = 1")
    target = _position(server)
    server.execute(f"INSERT INTO `{schema}`.t VALUES (500, 5)")  # after the target
    key = [KeyColumn(0, "id", "bigint(20) unsigned")]
    batches = list(
        read_changes(_kwargs(server), schema, "t", key, start, target, time.monotonic() + 10)
    )
    keys = set().union(*(b.keys for b in batches))
    assert keys == {(1,), (2,), (10,), (18446744073709551615,)}
    assert batches[-1].reached_target and batches[-1].position == target


def test_the_reader_returns_at_its_deadline_when_the_target_is_not_reached(
    schema: str, on_binlog_server: BinlogMariaDB
) -> None:
    """Blocking mode never returns by itself: the heartbeat wakes the reader up, and it stops
    at its deadline at the last boundary."""
    start = _position(on_binlog_server)
    beyond = Position(start.file, start.offset + 10_000_000)
    key = [KeyColumn(0, "id", "int(11)")]
    began = time.monotonic()
    batches = list(
        read_changes(_kwargs(on_binlog_server), schema, "t", key, start, beyond, began + 1.5)
    )
    assert 1.4 < time.monotonic() - began < 5
    assert not batches[-1].reached_target and batches[-1].position >= start


# -- choice, refusal, exactness -------------------------------------------------------------------


def test_binlog_asked_for_on_a_server_without_binary_logging_is_refused_at_preflight() -> None:
    """The shared server runs with log_bin=0."""
    with fresh_schema("sbt_spirit", port=SHARED_SERVER_PORT) as name:
        conn = connect(name, port=SHARED_SERVER_PORT)
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v INT)")
        eng = SpiritEngine(Target("test", mysql_dsn(name, port=SHARED_SERVER_PORT)))
        req = request([(name, "t", "ALTER TABLE t MODIFY v BIGINT")], change_source="binlog")
        with pytest.raises(PermanentEngineError, match="log_bin=OFF"):
            eng.apply(req)
        eng.close()
        with conn.cursor() as cur:
            cur.execute("SHOW TABLES")
            assert {r[0] for r in cur.fetchall()} <= {"t", "_sb_spirit_checkpoint"}
        conn.close()


def test_auto_without_replication_grants_uses_triggers_and_binlog_is_refused(
    schema: str, on_binlog_server: BinlogMariaDB
) -> None:
    server = on_binlog_server
    server.execute(f"CREATE TABLE `{schema}`.t (id INT PRIMARY KEY, v INT)")
    server.execute(f"INSERT INTO `{schema}`.t VALUES (1, 1), (2, 2)")
    server.execute("CREATE USER IF NOT EXISTS 'plain'@'%' IDENTIFIED BY 'pw'")
    server.execute(f"GRANT ALL PRIVILEGES ON `{schema}`.* TO 'plain'@'%'")
    server.execute("SET GLOBAL log_bin_trust_function_creators = 1")
    try:
        dsn = f"mysql://plain:pw@127.0.0.1:{server.port}/{schema}"
        eng = SpiritEngine(Target("test", dsn))
        asked = request([(schema, "t", "ALTER TABLE t MODIFY v BIGINT")], change_source="binlog")
        with pytest.raises(PermanentEngineError, match="REPLICATION SLAVE"):
            eng.apply(asked)
        auto = request([(schema, "t", "ALTER TABLE t MODIFY v BIGINT")], context="auto")
        applied = eng.apply(auto)
        assert "changes via triggers" in applied.message
        assert "REPLICATION SLAVE" in applied.message
        run_until(eng, auto)
        eng.close()
        row = checkpoint_row(schema, "t", "auto")
        assert row is not None and row["change_source"] == "triggers"
    finally:
        server.execute("SET GLOBAL log_bin_trust_function_creators = 0")


def test_a_new_unique_key_is_left_to_triggers_and_binlog_for_it_is_refused(
    schema: str, on_binlog_server: BinlogMariaDB
) -> None:
    """Only triggers tell a duplicate the ALTER must refuse from a stale shadow row."""
    server = on_binlog_server
    server.execute(f"CREATE TABLE `{schema}`.t (id INT PRIMARY KEY, v INT, UNIQUE KEY uv (v))")
    server.execute(f"INSERT INTO `{schema}`.t VALUES (1, 1), (2, 2)")
    eng = engine(schema)
    # A unique key the source already enforces on the same columns is fine for the binlog.
    same = request(
        [(schema, "t", "ALTER TABLE t ADD UNIQUE KEY uvi (v, id)")], context="same",
        change_source="binlog",
    )
    eng.apply(same)
    run_until(eng, same)
    row = checkpoint_row(schema, "t", "same")
    assert row is not None and row["change_source"] == "binlog"
    alter = "ALTER TABLE t ADD COLUMN w INT NULL, ADD UNIQUE KEY uw (w)"
    with pytest.raises(PermanentEngineError, match="unique key uw is not already enforced"):
        eng.apply(request([(schema, "t", alter)], context="asked", change_source="binlog"))
    assert tables(schema) == {"t", "_sb_spirit_checkpoint"}
    auto = request([(schema, "t", alter)], context="auto")
    applied = eng.apply(auto)
    assert "changes via triggers" in applied.message and "unique key uw" in applied.message
    run_until(eng, auto)
    eng.close()
    row = checkpoint_row(schema, "t", "auto")
    assert row is not None and row["change_source"] == "triggers"


def test_a_write_the_new_table_refuses_fails_the_apply_with_the_servers_words(
    schema: str, on_binlog_server: BinlogMariaDB
) -> None:
    server = on_binlog_server
    server.execute(f"CREATE TABLE `{schema}`.t (id INT PRIMARY KEY, v VARCHAR(20))")
    server.execute(
        f"INSERT INTO `{schema}`.t VALUES " + ", ".join(f"({i}, 'ok')" for i in range(1, 501))
    )
    eng = engine(schema)
    req = request(
        [(schema, "t", "ALTER TABLE t MODIFY v VARCHAR(5)")],
        step_budget=0.01,
        chunk_rows=50,
        change_source="binlog",
        defer_cutover=True,
    )
    eng.apply(req)
    eng.progress(req)  # one chunk copied
    server.execute(f"UPDATE `{schema}`.t SET v = 'far too long' WHERE id = 3")  # copied already
    with pytest.raises(PermanentEngineError, match=r"\(1406\) Data too long"):
        run_until(eng, req, (EngineState.WAITING_FOR_CUTOVER,))
    eng.close()
    assert tables(schema) == {"t", "_sb_spirit_checkpoint"}
    assert triggers(schema) == set()


# -- resume: killed mid-stream, purged position ---------------------------------------------------


def test_a_worker_killed_mid_replay_continues_from_the_saved_position(
    schema: str, oracle_schema: str
) -> None:
    """The worker process SIGKILLs itself inside the transaction of its 3rd batch of replayed
    events; a fresh engine continues from the checkpointed position; the oracle finds no row
    lost or duplicated."""
    case = Case(
        "binlog-killed-mid-replay",
        "CREATE TABLE t (id INT NOT NULL PRIMARY KEY, v INT, s VARCHAR(30))",
        "ALTER TABLE t ADD COLUMN w INT NOT NULL DEFAULT 7",
        _values,
        rows=1500,
    )
    outcome = run_case(
        schema,
        oracle_schema,
        case,
        kill_mid_copy=True,
        kill_with={"die_mid_binlog_apply_after": 3},
        change_source="binlog",
    )
    assert outcome.verdict == "identical"
    assert outcome.killed_in in ("copy", "checksum"), outcome.killed_in


def test_a_purged_position_starts_the_run_fresh_with_the_reason_on_record(
    schema: str, on_binlog_server: BinlogMariaDB
) -> None:
    server = on_binlog_server
    server.execute(f"CREATE TABLE `{schema}`.t (id INT PRIMARY KEY, v INT)")
    server.execute(
        f"INSERT INTO `{schema}`.t VALUES " + ", ".join(f"({i}, {i})" for i in range(1, 301))
    )
    eng = engine(schema)
    req = request(
        [(schema, "t", "ALTER TABLE t MODIFY v BIGINT")],
        step_budget=0.01,
        chunk_rows=50,
        change_source="binlog",
    )
    applied = eng.apply(req)
    assert "changes via the binlog" in applied.message
    status = eng.progress(req)
    assert "changes via binlog (applied up to binlog." in status.tables[0].message
    first_run = checkpoint_row(schema, "t")
    assert first_run is not None and first_run["binlog_position"]
    # The next step is another worker's: an open stream would keep its file from the purge.
    eng.close()
    eng = engine(schema)
    server.execute(f"UPDATE `{schema}`.t SET v = -v WHERE id > 250")
    server.execute("FLUSH BINARY LOGS")
    newest = _position(server).file
    # A replication stream still reading an old file keeps it from the purge (the server skips
    # it): the streams other tests of this module left behind go first.
    for row in server.query(
        "SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'"
    ):
        server.execute(f"KILL {int(row['ID'])}")

    def purged() -> bool:
        server.execute(f"PURGE BINARY LOGS TO '{newest}'")
        return [r["Log_name"] for r in server.query("SHOW BINARY LOGS")] == [newest]

    wait_for(purged, 20, "the old binary logs to be purged")
    result = eng.progress(req)
    reason = " ".join(result.events)
    assert "starting fresh" in reason and "purged" in reason, result.events
    again = checkpoint_row(schema, "t")
    assert again is not None and again["run_id"] != first_run["run_id"]
    assert str(again["binlog_position"]).startswith(newest)
    result = run_until(eng, req)
    eng.close()
    rows = server.query(f"SELECT COUNT(*) AS n, SUM(v) AS s FROM `{schema}`.t")[0]
    assert int(rows["n"]) == 300
    assert int(rows["s"]) == sum(range(1, 251)) - sum(range(251, 301))
    assert "bigint" in server.query(f"SHOW CREATE TABLE `{schema}`.t")[0]["Create Table"]


# -- cutover: the lock holder lost in the moment before the RENAME --------------------------------


def test_a_write_let_through_when_the_cutover_lock_is_lost_before_the_rename_is_caught(
    schema: str, on_binlog_server: BinlogMariaDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The holder of the cutover's READ lock dies after it was last seen alive and before the
    RENAME queues behind it: a writer gets through to the old table after the last catch-up,
    and the RENAME then runs unguarded. With triggers such a write reaches the shadow anyway; with
    the binlog source it is only in the old table. Before, the next step saw "renamed", dropped
    `_sb_t_old` and completed: the row was lost. Now the binlog between the last catch-up and the
    RENAME is read: a write to the table there fails the apply and keeps `_sb_t_old`."""
    from engines.spirit import cutover

    server = on_binlog_server
    server.execute(f"CREATE TABLE `{schema}`.t (id INT PRIMARY KEY, v INT)")
    server.execute(f"INSERT INTO `{schema}`.t VALUES " + ", ".join(f"({i}, {i})" for i in range(1, 201)))
    still_holding = cutover._still_holding

    def lost_in_the_window(holder: Any) -> bool:
        alive = still_holding(holder)
        holder.execute("SELECT CONNECTION_ID()")
        server.execute(f"KILL {int(holder.fetchone()[0])}")
        server.execute(f"INSERT INTO `{schema}`.t VALUES (9999, 9999)")  # lands in the old table
        monkeypatch.setattr(cutover, "_still_holding", still_holding)  # once
        return alive

    monkeypatch.setattr(cutover, "_still_holding", lost_in_the_window)
    eng = engine(schema)
    req = request([(schema, "t", "ALTER TABLE t MODIFY v BIGINT")], chunk_rows=50, change_source="binlog")
    eng.apply(req)
    with pytest.raises(PermanentEngineError, match=r"after the last catch-up.*_sb_t_old"):
        run_until(eng, req)
    eng.close()
    assert "_sb_t_old" in tables(schema)  # kept: the write is there
    rows = server.query(f"SELECT id FROM `{schema}`.`_sb_t_old` WHERE id = 9999")
    assert rows == [{"id": 9999}]
