"""The binlog source's checksum reads source and shadow in snapshots opened while writers were
held and the shadow had every change (engines/spirit/held_snapshots.py; issue 12): a chunk that
differs only because the shadow trails is proved at once, a real difference is still found, and
the hold never waits long or stays."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator

import pytest

from engines.base import EngineState, RetryableEngineError
from engines.spirit import binlogsource, checksum, held_snapshots, runner
from engines.spirit.columnmap import map_columns
from engines.spirit.naming import TableNames
from engines.spirit.tableinfo import read_table
from engines.targets import Target
from tests.integration.spirit.oracle import Case, run_case
from tests.integration.spirit.support import checkpoint_row, engine, request, run_until
from tests.support.mariadb import connect, mysql_dsn
from tests.support.servers import BinlogMariaDB

pytestmark = pytest.mark.integration

ROWS = 2000


@pytest.fixture
def pair(schema: str, on_binlog_server: BinlogMariaDB) -> Iterator[TableNames]:
    """`t` and a shadow `_sb_t_new` holding the same rows."""
    server = on_binlog_server
    server.execute(f"CREATE TABLE `{schema}`.t (id INT PRIMARY KEY, v INT)")
    server.execute(
        f"INSERT INTO `{schema}`.t VALUES " + ", ".join(f"({i}, {i})" for i in range(1, ROWS + 1))
    )
    server.execute(f"CREATE TABLE `{schema}`.`_sb_t_new` LIKE `{schema}`.t")
    server.execute(f"INSERT INTO `{schema}`.`_sb_t_new` SELECT * FROM `{schema}`.t")
    yield TableNames(schema, "t")


def _columns(schema: str):  # type: ignore[no-untyped-def]
    conn = connect(schema)
    with conn.cursor() as cur:
        source, shadow = read_table(cur, schema, "t"), read_table(cur, schema, "_sb_t_new")
    conn.close()
    assert source is not None and shadow is not None
    return map_columns(source, shadow, {}, set())


def _sync_shadow(schema: str, where: str = "1=1") -> None:
    conn = connect(schema)
    with conn.cursor() as cur:
        cur.execute(f"REPLACE INTO `_sb_t_new` SELECT * FROM t WHERE {where}")
    conn.close()


def test_a_chunk_the_shadow_trails_is_proved_in_the_held_snapshots_and_a_real_difference_found(
    schema: str, pair: TableNames
) -> None:
    cmap = _columns(schema)
    conn = connect(schema)
    with conn.cursor() as cur:
        cur.execute("DELETE FROM `_sb_t_new` WHERE id = 5")  # a real difference, never replayed
    target = Target("test", mysql_dsn(schema))
    held = held_snapshots.hold(target, pair, lambda deadline: _sync_shadow(schema, "id > 10"))
    assert held is not None
    try:
        with conn.cursor() as cur:  # writes after the hold: the shadow trails them
            cur.execute("UPDATE t SET v = -v WHERE id BETWEEN 500 AND 1500")
        plain = checksum.compare(conn, pair, cmap, (400,), (1600,))
        assert not plain.equal  # a fresh snapshot sees the lag
        proved = held.compare(pair, cmap, (400,), (1600,))
        assert proved is not None and proved.equal and proved.source_rows == 1200
        assert held.compare(pair, cmap, None, (100,)) is None  # id 5 is missing for real
    finally:
        held.close()
    conn.close()


def test_the_hold_gives_up_quickly_when_the_lock_is_taken_and_releases_writers_on_failure(
    schema: str, pair: TableNames
) -> None:
    target = Target("test", mysql_dsn(schema))
    writer = connect(schema)
    with writer.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute("UPDATE t SET v = 0 WHERE id = 1")  # an open transaction keeps t's lock
    started = time.monotonic()
    assert held_snapshots.hold(target, pair, lambda deadline: None, lock_wait_seconds=1) is None
    assert time.monotonic() - started < 3
    with writer.cursor() as cur:
        cur.execute("COMMIT")

    def failing(deadline: float) -> None:
        raise RetryableEngineError("the binlog could not be read up to the end in time")

    assert held_snapshots.hold(target, pair, failing) is None
    with writer.cursor() as cur:  # not held any more: a write goes through at once
        cur.execute("SET SESSION lock_wait_timeout = 2")
        cur.execute("UPDATE t SET v = 1 WHERE id = 1")
    writer.close()
    conn = connect(schema)
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.INNODB_TRX")
        assert cur.fetchone()[0] == 0  # no snapshot left open
    conn.close()


def test_the_checksum_under_writes_proves_chunks_without_judging_them(
    schema: str, on_binlog_server: BinlogMariaDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, under writes nearly every chunk differed for the lag alone and was judged against
    the binlog (windows retried, keys synced one by one). Now the held snapshots prove them, the
    inserts above the last key are not chased, and the run still ends identical to the source.

    A step may go without snapshots, by design: less than MIN_STEP_SECONDS left, or the lock or
    the last replay not in time (a loaded machine: the suite runs in several processes). Its
    differing chunks are judged as before. So the proof is: no chunk of a step that held its
    snapshots is judged, and steps did hold them (most chunks proved that way)."""
    server = on_binlog_server
    server.execute(f"CREATE TABLE `{schema}`.t (id INT PRIMARY KEY, v INT)")
    server.execute(
        f"INSERT INTO `{schema}`.t VALUES " + ", ".join(f"({i}, {i})" for i in range(1, 20001))
    )
    judged_while_held: list[object] = []
    judged_without: list[object] = []
    steps_held: list[bool] = []  # per checksum step: were its snapshots held
    real_judge, real_verify = binlogsource.judge, runner.verify

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        (judged_while_held if steps_held[-1] else judged_without).append(args[7:9])
        return real_judge(*args, **kwargs)

    def verify(*args, **kwargs):  # type: ignore[no-untyped-def]
        held = kwargs["held"] if "held" in kwargs else args[8] if len(args) > 8 else None
        steps_held.append(held is not None)
        return real_verify(*args, **kwargs)

    monkeypatch.setattr(binlogsource, "judge", counting)
    monkeypatch.setattr(runner, "verify", verify)
    stop = threading.Event()

    def write() -> None:
        conn = connect(schema)
        n = 0
        with conn.cursor() as cur:
            while not stop.is_set():
                n += 1
                cur.execute("UPDATE t SET v = v + 1 WHERE id = %s", ((n * 7919) % 20000 + 1,))
                # New rows above the others: the chunks are the snapshot's, so never chased.
                cur.execute("INSERT INTO t VALUES (%s, %s)", (100_000 + n, n))
                time.sleep(0.002)
        conn.close()

    eng = engine(schema)
    req = request(
        [(schema, "t", "ALTER TABLE t MODIFY v BIGINT")],
        step_budget=2.0,  # time to hold even on a loaded machine (as below)
        chunk_rows=1000,
        change_source="binlog",
        defer_cutover=True,
    )
    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        eng.apply(req)
        result = run_until(eng, req, (EngineState.WAITING_FOR_CUTOVER,))
    finally:
        stop.set()
        writer.join(10)
    eng.close()
    row = checkpoint_row(schema, "t")
    assert row is not None and row["phase"] == "wait_cutover", result.message
    assert judged_while_held == [], f"{len(judged_while_held)} chunks judged in held snapshots"
    assert True in steps_held, steps_held  # the snapshots were held
    assert len(judged_without) <= 20 // 4, (judged_without, steps_held)  # 20 chunks; before: nearly all
    expected = _table_sum(schema)  # the writes have stopped: what the new table must hold
    eng = engine(schema)
    final = run_until(eng, request([(schema, "t", "ALTER TABLE t MODIFY v BIGINT")], change_source="binlog"))
    eng.close()
    assert final.state is EngineState.COMPLETED
    assert _table_sum(schema) == expected


def _table_sum(schema: str) -> tuple[int, int, int]:
    conn = connect(schema)
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*), SUM(v), BIT_XOR(CRC32(CONCAT(id, ':', v))) FROM t")
        count, total, crc = cur.fetchone()
    conn.close()
    return int(count), int(total), int(crc)


def test_with_held_snapshots_the_result_equals_the_blocking_alter(
    schema: str, oracle_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The oracle (tests/integration/spirit/oracle.py) with writers running and steps long enough
    to hold (the oracle's usual 30 ms steps are too short, so its other cases never hold): the
    table ends exactly as the same ALTER run as a blocking ALTER gives it."""
    holds: list[bool] = []
    real_hold = held_snapshots.hold

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        held = real_hold(*args, **kwargs)
        holds.append(held is not None)
        return held

    monkeypatch.setattr(held_snapshots, "hold", counting)

    def values(rng: random.Random) -> dict[str, object]:
        return {"v": rng.randint(-1000, 1000), "s": "x" * rng.randint(0, 20)}

    case = Case(
        "held-widen",
        "CREATE TABLE t (id INT NOT NULL PRIMARY KEY, v INT, s VARCHAR(30), KEY (v))",
        "ALTER TABLE t MODIFY v BIGINT, MODIFY s VARCHAR(40)",
        values,
        rows=3000,
    )
    # Steps of 2 s: time to hold even on a loaded machine (MIN_STEP_SECONDS, LAST_REPLAY_SECONDS).
    outcome = run_case(schema, oracle_schema, case, step_budget=2.0, change_source="binlog")
    assert outcome.verdict == "identical"
    assert sum(outcome.writes.values()) > 20
    assert holds and any(holds), holds
