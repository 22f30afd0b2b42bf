"""The spirit engine under real Celery workers, the machine's Redis and MariaDB: scenarios 14, 20
and 21 of docs/architecture.md §10 with the real online copy, a concurrent writer, and killed workers."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from engines.spirit.naming import TableNames
from schemabot.api import ChangeSet, Client
from schemabot.errors import ControlRejected
from schemabot.storage import reads
from schemabot.storage.database import Database
from tests.support import mariadb
from tests.support.fake_engine import FakeTarget
from tests.support.mariadb import connect, fresh_schema
from tests.support.proc_env import ProcEnv, proc_env, state_url_for
from tests.support.servers import BinlogMariaDB, wait_for

pytestmark = pytest.mark.chaos
ROWS = 200_000
# Small fixed chunks at volume 1 keep a copy of ROWS running for several seconds, long enough to
# kill or stop a worker in the middle of it (by default the copy would take about a second). The
# table has no AUTO_INCREMENT column, so the copy runs in two lanes (engines/spirit/lanes.py):
# chunks of 500 keep it as long as one lane of 1000 did.
SLOW = {"volume": 1, "engine_options": {"chunk_rows": 500}}
# A stop is carried out by the tick after the one running when it is asked, so up to two steps
# of copying can follow the request: on a machine twice as fast as this one, chunks of 500
# finished the whole copy (and the cutover) first, and the stop came too late (CI, 3 runs).
# Chunks of 100 copy about a third as fast, so the copy outlasts those steps several times over.
SLOWER = {"volume": 1, "engine_options": {"chunk_rows": 100}}


@pytest.fixture
def env(tmp_path: Path) -> Iterator[ProcEnv]:
    fake = FakeTarget(tmp_path / "unused-fake.db")
    with proc_env(tmp_path, fake.path) as environment:
        yield environment


def make_table(schema: str, rows: int = ROWS) -> dict[int, tuple[int, str]]:
    conn = connect(schema)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, a INT NOT NULL, b VARCHAR(40))")
        cur.execute(f"INSERT INTO t SELECT seq, seq * 7, CONCAT('row-', seq) FROM seq_1_to_{rows}")
    conn.close()
    return {i: (i * 7, f"row-{i}") for i in range(1, rows + 1)}


class Writer(threading.Thread):
    """Inserts, updates, deletes and primary key changes, mirrored in `expected`."""

    def __init__(self, schema: str, expected: dict[int, tuple[int, str]]) -> None:
        super().__init__(daemon=True)
        self.schema, self.expected = schema, expected
        self.stop = threading.Event()
        self.writes = 0
        self.error: BaseException | None = None
        self.rng = random.Random(7)

    def run(self) -> None:
        try:
            self._write()
        except BaseException as exc:  # surfaced by the test, not lost in the thread
            self.error = exc

    def _write(self) -> None:
        conn = connect(self.schema)
        next_id = max(self.expected) + 1
        while not self.stop.is_set():
            op = self.rng.random()
            key = self.rng.randint(1, next_id)
            try:
                with conn.cursor() as cur:
                    if op < 0.3:
                        cur.execute("INSERT INTO t (id, a, b) VALUES (%s, %s, %s)", (next_id, next_id, "new"))
                        self.expected[next_id] = (next_id, "new")
                        next_id += 1
                    elif op < 0.6 and key in self.expected:
                        cur.execute("UPDATE t SET a = a + 1 WHERE id = %s", (key,))
                        a, b = self.expected[key]
                        self.expected[key] = (a + 1, b)
                    elif op < 0.8 and key in self.expected:
                        cur.execute("DELETE FROM t WHERE id = %s", (key,))
                        del self.expected[key]
                    elif key in self.expected:
                        cur.execute("UPDATE t SET id = %s WHERE id = %s", (next_id, key))
                        self.expected[next_id] = self.expected.pop(key)
                        next_id += 1
                self.writes += 1
            except pymysql.MySQLError as exc:
                # A write refused during the cutover's short lock is retried by the app, not lost.
                if exc.args and exc.args[0] in (1205, 1213, 1146):
                    continue
                raise
            time.sleep(0.002)
        conn.close()


def compare(schema: str, expected: dict[int, tuple[int, str]]) -> tuple[int, int, int]:
    conn = connect(schema)
    with conn.cursor() as cur:
        cur.execute("SELECT id, a, b, c FROM t")
        actual = {r[0]: (r[1], r[2]) for r in cur.fetchall()}
    conn.close()
    missing = len(set(expected) - set(actual))
    extra = len(set(actual) - set(expected))
    differing = sum(1 for k in set(expected) & set(actual) if expected[k] != actual[k])
    return missing, extra, differing


def lock_holder(schema: str) -> int | None:
    conn = connect(schema)
    with conn.cursor() as cur:
        cur.execute("SELECT IS_USED_LOCK(%s)", (TableNames(schema, "t").lock_name,))
        (holder,) = cur.fetchone()  # type: ignore[misc]
    conn.close()
    return holder


def driving(schema: str, db: Database, apply_id: str) -> int | None:
    """The pid of the worker inside a step on the table: the lease owner while the table's lock
    is held (no other process can hold it then), or None."""
    if lock_holder(schema) is None:
        return None
    owner = reads.snapshot(db, apply_id).apply.lease_owner
    if owner is None or owner.startswith("sweep@"):
        return None
    return int(owner.rsplit(":", 1)[1])


def copy_lanes(schema: str) -> dict[str, object]:
    """The lane plan the engine recorded in the table's checkpoint (engines/spirit/lanes.py)."""
    conn = connect(schema)
    with conn.cursor() as cur:
        cur.execute("SELECT copy_lanes FROM _sb_spirit_checkpoint WHERE table_name = 't'")
        (text,) = cur.fetchone()  # type: ignore[misc]
    conn.close()
    return json.loads(text)  # type: ignore[no-any-return]


def submit(client: Client, env: ProcEnv, **options: object) -> str:
    return client.submit_apply(
        "local",
        "spirit",
        [ChangeSet(["ALTER TABLE t ADD COLUMN c INT NULL, MODIFY a BIGINT NOT NULL"], env.target_schema)],
        **options,  # type: ignore[arg-type]
    ).apply_id


@pytest.fixture
def binlog_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ProcEnv]:
    """The workers' target on a private `mariadbd` with binary logging (the shared server has
    none), their state database on the shared server. The test's helpers (connect, fresh_schema,
    mysql_dsn) read mariadb.SHARED_PORT at each call: pointed at the private server, the target
    schema, its DSN in the workers' environment and every check of the table go there."""
    server = BinlogMariaDB(tmp_path / "binlog-mariadb", 1).start()
    try:
        with fresh_schema("sbt_proc") as state_schema:  # before the port moves: the shared server
            state_url = state_url_for(state_schema)
            monkeypatch.setattr(mariadb, "SHARED_PORT", server.port)
            fake = FakeTarget(tmp_path / "unused-fake.db")
            with proc_env(tmp_path, fake.path, state_url=state_url) as environment:
                yield environment
    finally:
        server.kill()


def change_source_in_use(schema: str) -> tuple[str | None, str | None, int]:
    """The table's checkpoint's change source and binlog position, and the triggers on `t`."""
    conn = connect(schema)
    with conn.cursor() as cur:
        cur.execute("SELECT change_source, binlog_position FROM _sb_spirit_checkpoint WHERE table_name = 't'")
        source, position = cur.fetchone()  # type: ignore[misc]
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = %s", (schema,)
        )
        (triggers,) = cur.fetchone()  # type: ignore[misc]
    conn.close()
    return source, position, int(triggers)


@pytest.mark.parametrize("change_source", ["triggers", "binlog"])
def test_s14_spirit_worker_killed_mid_copy_another_resumes_from_the_checkpoint(
    request: pytest.FixtureRequest, change_source: str
) -> None:
    """The worker driving the copy is SIGKILLed under a writer; another continues from the
    checkpoint. With the binlog source (docs/architecture.md §6) the copy's watermark and the
    binlog position are one checkpoint, so the new owner reads the stream from where the killed
    one had applied it, with no trigger on the user's table; its target is a private server with
    binary logging (`binlog_env`)."""
    env: ProcEnv = request.getfixturevalue("binlog_env" if change_source == "binlog" else "env")
    expected = make_table(env.target_schema)
    client, db = env.client(), Database(env.state_url)
    cluster = env.cluster()
    writer = Writer(env.target_schema, expected)
    try:
        cluster.worker("a")
        cluster.worker("b")
        cluster.beat()
        writer.start()
        slow_with_the_source = {"chunk_rows": 500, "change_source": change_source}  # SLOW's pace
        apply_id = submit(client, env, volume=1, engine_options=slow_with_the_source)
        wait_for(lambda: (client.get_apply(apply_id).tasks[0].rows_copied or 0) > ROWS // 5, 90, "20% copied")
        victim = cluster.freeze_the_worker_inside(lambda: driving(env.target_schema, db, apply_id))
        copied_at_kill = client.get_apply(apply_id).tasks[0].rows_copied or 0
        source, position, triggers = change_source_in_use(env.target_schema)
        if change_source == "binlog":
            assert (source, triggers) == ("binlog", 0) and position, (source, position, triggers)
        else:
            assert source == "triggers" and triggers > 0, (source, triggers)
        victim.kill()

        final = client.wait(apply_id, timeout=180)
        writer.stop.set()
        writer.join(10)
        assert final.state == "completed", (final.error, cluster.logs())
        assert writer.error is None, writer.error
        assert compare(env.target_schema, expected) == (0, 0, 0)  # missing, extra, differing
        assert writer.writes > 100
        log = client.log(apply_id)
        assert not any("restarted from the beginning" in (e.message or "") for e in log)
        resumes = [e for e in log if e.event == "resume"]
        assert resumes and all(e.detail["reattached"] for e in resumes), [(e.event, e.message) for e in log]  # type: ignore[index]
        # Continued from the checkpoint: the resumed owner starts at (or after) the stored count.
        assert copied_at_kill > 0
        if change_source == "triggers":
            # The table has no AUTO_INCREMENT column: the copy ran in parallel lanes (lanes.py),
            # and the kill hit a step with both lanes copying.
            assert copy_lanes(env.target_schema)["count"] == 2
    finally:
        writer.stop.set()
        cluster.stop()
        db.dispose()


def test_s20_deferred_cutover_survives_a_restart_of_every_worker(env: ProcEnv) -> None:
    make_table(env.target_schema, 30_000)
    client = env.client()
    cluster = env.cluster()
    try:
        cluster.worker("a")
        cluster.beat()
        apply_id = submit(client, env, defer_cutover=True, **SLOW)
        wait_for(
            lambda: client.get_apply(apply_id).state == "waiting_for_cutover", 120, "waiting_for_cutover"
        )
        cluster.kill_all()  # every worker and beat crash while it waits: its next tick is lost
        before_restart = len(client.log(apply_id))

        cluster = env.cluster()
        cluster.worker("b")
        cluster.beat()
        refused, cut = "", False
        # Long enough for the dead owner's lease (3 s) to expire and a sweep to hand the apply to
        # worker b, or for b to go on with a poll message that survived the crash with a token
        # that is still valid (then there is no restart to recover from).
        settle = time.monotonic() + 10
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            state = client.get_apply(apply_id).state
            if state == "recovering" and not cut:
                try:  # asked while readiness is not yet proved again: refused
                    client.request_control(apply_id, "cutover")
                    cut = True  # it had just become ready: the request raced the transition
                except ControlRejected as exc:
                    refused = str(exc)
            after = client.log(apply_id)[before_restart:]
            rechecked = any(e.new_state == "recovering" for e in after)
            if state == "waiting_for_cutover" and (rechecked or time.monotonic() > settle):
                break
            time.sleep(0.05)
        after = client.log(apply_id)[before_restart:]
        if any(e.event == "claimed" for e in after):  # a new owner resumed it: readiness proved again
            assert any(e.new_state == "recovering" for e in after), cluster.logs()
        # On a loaded machine the sweep may hand the apply to b only after `settle`: then it is
        # back in `recovering` here, and a cutover is refused until readiness is proved again.
        assert client.get_apply(apply_id).state in (
            "waiting_for_cutover",
            "recovering",
            "cutting_over",
            "completed",
        )
        assert not refused or "recovering after a restart" in refused, refused
        ask_until = time.monotonic() + 90
        while not cut:
            try:
                client.request_control(apply_id, "cutover")
                cut = True
            except ControlRejected as exc:
                assert "recovering after a restart" in str(exc), str(exc)
                assert time.monotonic() < ask_until, ("still recovering", cluster.logs())
                time.sleep(0.2)
        final = client.wait(apply_id, timeout=90, stop_at_waiting=False)
        assert final.state == "completed", (final.error, cluster.logs())
    finally:
        cluster.stop()


def test_s21_stop_restart_all_workers_then_start_continues_the_copy(env: ProcEnv) -> None:
    make_table(env.target_schema)
    client = env.client()
    cluster = env.cluster()
    try:
        cluster.worker("a")
        cluster.beat()
        apply_id = submit(client, env, **SLOWER)
        wait_for(
            lambda: (client.get_apply(apply_id).tasks[0].rows_copied or 0) > ROWS // 10, 90, "10% copied"
        )
        client.request_control(apply_id, "stop")
        try:
            wait_for(lambda: client.get_apply(apply_id).state == "stopped", 30, "stopped")
        except TimeoutError:
            journal = [(e.event, e.new_state, e.message) for e in client.log(apply_id)]
            state = client.get_apply(apply_id).state
            raise AssertionError(f"not stopped but {state}: {journal}\n{cluster.stacks()}") from None
        copied_at_stop = client.get_apply(apply_id).tasks[0].rows_copied or 0
        assert 0 < copied_at_stop < ROWS, copied_at_stop  # stopped during the copy
        cluster.stop()

        cluster = env.cluster()
        cluster.worker("b")
        cluster.beat()
        time.sleep(2)  # stopped means stopped: nobody picks it up without a start
        assert client.get_apply(apply_id).state == "stopped"
        client.request_control(apply_id, "start")
        # The rest at full volume (no rest between chunks): the slow pace was for the stop only.
        wait_for(lambda: client.get_apply(apply_id).state != "stopped", 30, "started")
        client.request_control(apply_id, "volume", 11)
        final = client.wait(apply_id, timeout=180)
        assert final.state == "completed", (final.error, cluster.logs())
        resumes = [e for e in client.log(apply_id) if e.event == "resume"]
        assert resumes and resumes[-1].detail["reattached"], resumes  # type: ignore[index]
        assert copied_at_stop > 0 and "copy" in (resumes[-1].message or "")
    finally:
        cluster.stop()


def test_set_up_refused_with_1067_is_permanent_and_leaves_nothing(tmp_path: Path) -> None:
    """Issue 9 defect 7: a server whose sql_mode forbids zero dates refuses `CREATE TABLE ...
    LIKE` of a table made under a permissive mode (1067, invalid default). That is permanent:
    not retried, and no sentinel, shadow or set-up checkpoint is left to block the table. A
    throwaway server, because the global sql_mode of the shared one is not ours to change."""
    from engines.base import (
        ApplyOptions,
        NamespaceChange,
        OperationRequest,
        PermanentEngineError,
        TableChange,
    )
    from engines.spirit import SpiritEngine
    from engines.targets import Target
    from tests.support.servers import MariaDBServer

    server = MariaDBServer(tmp_path / "mariadb").start()
    try:
        server.execute("CREATE DATABASE app")
        server.execute("FLUSH PRIVILEGES")  # grant tables on: the engine reads SHOW GRANTS
        server.execute("SET GLOBAL sql_mode = 'STRICT_TRANS_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE'")
        conn = pymysql.connect(
            host="127.0.0.1", port=server.port, user="root", database="app", autocommit=True
        )
        with conn.cursor() as cur:
            cur.execute("SET SESSION sql_mode = ''")
            cur.execute(
                "CREATE TABLE t (id INT PRIMARY KEY, d DATETIME NOT NULL DEFAULT '0000-00-00 00:00:00')"
            )
            cur.execute("INSERT INTO t (id) VALUES (1), (2)")
        req = OperationRequest(
            context="ctx-1067",
            changes=[NamespaceChange("app", (TableChange("t", "ALTER TABLE t ADD COLUMN w INT", "alter"),))],
            options=ApplyOptions(defer_cutover=True),
        )
        eng = SpiritEngine(Target("throwaway", f"mysql://root@127.0.0.1:{server.port}/app"))
        with pytest.raises(PermanentEngineError, match=r"\(1067\)"):
            eng.apply(req)
        eng.close()
        with conn.cursor() as cur:
            cur.execute("SHOW TABLES")
            assert {r[0] for r in cur.fetchall()} == {"t", "_sb_spirit_checkpoint"}
            cur.execute("SELECT phase FROM _sb_spirit_checkpoint WHERE phase <> 'failed'")
            assert cur.fetchall() == ()  # no set-up checkpoint blocks the table
            cur.execute("SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = 'app'")
            assert cur.fetchone() == (0,)
        conn.close()
    finally:
        server.stop()
