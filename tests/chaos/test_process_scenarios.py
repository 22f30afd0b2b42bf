"""Ownership scenarios with real worker processes, a real Redis and a real MariaDB
(docs/architecture.md §10: S13-S18): processes are SIGKILLed and frozen, the broker loses every
message, the state database disappears. The fake engine stands in for engine work; the spirit and
planetscale twins of the scenarios that are about engines live with those engines' tests."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from schemabot.api import ChangeSet, Client
from schemabot.settings import Settings
from schemabot.storage import audit, reads
from schemabot.storage.database import Database
from tests.support.fake_engine import FakeTarget
from tests.support.mariadb import SHARED_PORT
from tests.support.proc_env import ProcEnv, proc_env, state_url_for
from tests.support.proxy import CuttableProxy
from tests.support.servers import MariaDBServer, RedisServer, free_port, wait_for

pytestmark = pytest.mark.chaos
TTL, SWEEP = 3.0, 0.5


@pytest.fixture
def fake(tmp_path: Path) -> FakeTarget:
    target = FakeTarget(tmp_path / "fake.db")
    target.set_knob("rows_per_step", 2)
    return target


@pytest.fixture
def env(tmp_path: Path, fake: FakeTarget) -> Iterator[ProcEnv]:
    with proc_env(tmp_path, fake.path) as environment:
        yield environment


def submit(client: Client, table: str = "t", **options: object) -> str:
    return client.submit_apply(
        "fake", "fake", [ChangeSet([f"ALTER TABLE {table} ADD c INT"], "app")], **options
    ).apply_id  # type: ignore[arg-type]


def lease_of(db: Database, apply_id: str) -> tuple[str | None, int]:
    row = reads.snapshot(db, apply_id).apply
    return row.lease_owner, row.lease_token


def test_s13_apply_whose_start_message_was_lost_is_started_by_the_sweep(
    env: ProcEnv, fake: FakeTarget
) -> None:
    settings = env.settings()
    dead_broker = Settings(
        **{**settings.model_dump(exclude={"targets"}), "broker_url": f"redis://127.0.0.1:{free_port()}/0"},
        targets=settings.targets,
    )
    started = time.monotonic()
    apply_id = submit(Client(dead_broker))  # stored; start_apply cannot be sent
    assert time.monotonic() - started < 10  # the producer does not hang on a dead broker
    assert env.client().get_apply(apply_id).state == "pending"

    cluster = env.cluster()
    try:
        cluster.worker()
        cluster.beat()
        final = env.client().wait(apply_id, timeout=60)
        assert final.state == "completed", cluster.logs()
        claims = [e for e in env.client().log(apply_id) if e.event == "claimed"]
        assert [e.detail["reason"] for e in claims] == ["unstarted"]  # type: ignore[index]
    finally:
        cluster.stop()


def test_s14_killed_worker_is_resumed_by_another_from_where_it_was(env: ProcEnv, fake: FakeTarget) -> None:
    fake.set_knob("rows_total", 60)
    fake.set_knob("step_sleep", 0.25)
    client, db = env.client(), Database(env.state_url)
    cluster = env.cluster()
    try:
        cluster.worker("a")
        cluster.worker("b")
        cluster.beat()
        apply_id = submit(client)
        task_id = client.get_apply(apply_id).tasks[0].task_id
        wait_for(
            lambda: (fake.work(task_id) or {"rows_done": 0})["rows_done"] >= 16, 60, "copy to pass row 16"
        )
        # Kill the worker in the middle of an engine step, so its tick never finishes: the next
        # tick is never enqueued and only the sweep can bring the apply back.
        victim = cluster.freeze_the_worker_inside(lambda: fake.pid_inside(task_id))
        dead = victim.pids()
        victim.kill()
        killed_at = time.time()
        rows_at_kill = fake.work(task_id)["rows_done"]

        def resumed() -> bool:
            return any(c["pid"] not in dead and c["at"] > killed_at for c in fake.calls("progress"))

        wait_for(resumed, 30, "another worker to record progress")
        latency = min(c["at"] for c in fake.calls("progress") if c["at"] > killed_at) - killed_at
        assert latency < TTL + SWEEP + 3, latency  # within lease TTL + sweep interval (+ start-up slack)

        final = client.wait(apply_id, timeout=60)
        assert final.state == "completed", cluster.logs()
        work = fake.work(task_id)
        assert (work["created"], work["rows_done"]) == (1, 60)  # no second shadow, every row
        after = [c for c in fake.calls("progress") if c["at"] > killed_at]
        assert len(after) <= (60 - rows_at_kill) // 2 + 4  # continued; not restarted from row 0
        resumes = [e.message for e in client.log(apply_id) if e.event == "resume"]
        assert resumes and resumes[0].startswith("reattached at row")  # type: ignore[union-attr]
    finally:
        cluster.stop()
        db.dispose()


def test_s15_frozen_worker_loses_its_lease_and_is_fenced_when_thawed(env: ProcEnv, fake: FakeTarget) -> None:
    fake.set_knob("rows_total", 40)
    fake.set_knob("step_sleep", 0.5)
    client, db = env.client(), Database(env.state_url)
    cluster = env.cluster()
    try:
        cluster.worker("a")
        cluster.worker("b")
        cluster.beat()
        apply_id = submit(client)
        task_id = client.get_apply(apply_id).tasks[0].task_id
        wait_for(lambda: (fake.work(task_id) or {"rows_done": 0})["rows_done"] >= 6, 60, "the copy to start")
        frozen = cluster.freeze_the_worker_inside(lambda: fake.pid_inside(task_id))
        _, old_token = lease_of(db, apply_id)  # frozen inside its step, it still holds this lease
        wait_for(lambda: lease_of(db, apply_id)[1] > old_token, 30, "another worker to take the lease")
        taken_over = max(e.id for e in audit.entries(db, apply_id))
        time.sleep(1.0)
        frozen.signal(__import__("signal").SIGCONT)  # thawed while the new owner drives

        final = client.wait(apply_id, timeout=60)
        assert final.state == "completed", cluster.logs()
        entries = audit.entries(db, apply_id)
        late = [e for e in entries if e.id > taken_over and e.lease_token == old_token]
        assert late == []  # the thawed worker's writes were all refused
        completions = [e for e in entries if e.event == "state" and e.new_state == "completed"]
        assert len(completions) == 1
        assert fake.work(task_id)["created"] == 1
        assert "lease" in frozen.log() or "stale" in frozen.log()
    finally:
        cluster.stop()
        db.dispose()


def test_s16_redis_restarted_without_persistence_every_apply_still_completes_once(
    tmp_path: Path, fake: FakeTarget
) -> None:
    broker = RedisServer(tmp_path / "redis").start()
    fake.set_knob("rows_total", 30)
    fake.set_knob("step_sleep", 0.2)
    try:
        with proc_env(tmp_path, fake.path, broker_url=broker.url) as env:
            client = env.client()
            cluster = env.cluster()
            try:
                cluster.worker("a", concurrency=2)
                cluster.worker("b", concurrency=2)
                cluster.beat()
                ids = [submit(client, f"t{i}") for i in range(3)]
                wait_for(lambda: all(client.get_apply(i).state == "running" for i in ids), 60, "all running")
                broker.restart()  # every queued and unacked message is gone
                finals = [client.wait(i, timeout=90) for i in ids]
                assert [f.state for f in finals] == ["completed"] * 3, cluster.logs()
                assert fake.query("SELECT * FROM violations") == []  # never two drivers at once
                for f in finals:
                    assert fake.work(f.tasks[0].task_id)["created"] == 1
                # An apply whose tick was running during the restart sends its next message to the
                # new broker and needs no sweep; the others lost theirs and were claimed by it.
                assert any(any(e.event == "claimed" for e in client.log(f.apply_id)) for f in finals)
            finally:
                cluster.stop()
    finally:
        broker.kill()


def _no_apply_failed(db: Database, ids: list[str]) -> bool:
    states = {reads.snapshot(db, i).apply.state for i in ids}
    return not states & {"failed", "failed_retryable"}


def test_s17_state_database_unreachable_for_30s_fails_nothing(tmp_path: Path, fake: FakeTarget) -> None:
    fake.set_knob("rows_total", 40)
    fake.set_knob("step_sleep", 0.2)
    proxy = CuttableProxy("127.0.0.1", SHARED_PORT).start()
    try:
        with proc_env(tmp_path, fake.path) as env:
            direct = Database(env.state_url)
            proxied_url = env.state_url.replace(f":{SHARED_PORT}/", f":{proxy.port}/")
            env.env["SCHEMABOT_DATABASE_URL"] = proxied_url
            client = Client(env.settings().model_copy(update={"database_url": env.state_url}))
            cluster = env.cluster()
            try:
                cluster.worker("a", concurrency=2)
                cluster.beat()
                ids = [submit(client, f"t{i}") for i in range(3)]
                wait_for(lambda: all(client.get_apply(i).state == "running" for i in ids), 60, "all running")
                proxy.cut()
                outage_end = time.monotonic() + 30
                while time.monotonic() < outage_end:
                    assert _no_apply_failed(direct, ids)
                    time.sleep(1)
                proxy.restore()
                finals = [client.wait(i, timeout=90) for i in ids]
                assert [f.state for f in finals] == ["completed"] * 3, cluster.logs()
                assert all(f.attempt == 1 for f in finals)  # an outage is not a failed attempt
            finally:
                cluster.stop()
                direct.dispose()
    finally:
        proxy.close()


def test_s17_state_database_server_killed_and_restarted_fails_nothing(
    tmp_path: Path, fake: FakeTarget
) -> None:
    server = MariaDBServer(tmp_path / "mariadb").start()
    server.execute("CREATE DATABASE state")
    fake.set_knob("rows_total", 40)
    fake.set_knob("step_sleep", 0.2)
    try:
        with proc_env(tmp_path, fake.path, state_url=server.url("state")) as env:
            client = env.client()
            cluster = env.cluster()
            try:
                cluster.worker("a", concurrency=2)
                cluster.beat()
                ids = [submit(client, f"t{i}") for i in range(2)]
                wait_for(lambda: all(client.get_apply(i).state == "running" for i in ids), 60, "all running")
                server.kill()  # a crash: no clean shutdown
                time.sleep(5)
                server.start()  # InnoDB crash recovery; same data directory
                finals = [client.wait(i, timeout=90) for i in ids]
                assert [f.state for f in finals] == ["completed"] * 2, cluster.logs()
            finally:
                cluster.stop()
    finally:
        server.kill()


def test_s18_two_beats_at_once_claim_each_orphan_once(env: ProcEnv, fake: FakeTarget) -> None:
    settings = env.settings()
    dead_broker = Settings(
        **{**settings.model_dump(exclude={"targets"}), "broker_url": f"redis://127.0.0.1:{free_port()}/0"},
        targets=settings.targets,
    )
    ids = [submit(Client(dead_broker), f"t{i}") for i in range(8)]  # all orphans: no start message
    cluster = env.cluster()
    try:
        cluster.beat("beat-1")
        cluster.beat("beat-2")
        cluster.worker("a", concurrency=2)
        finals = [env.client().wait(i, timeout=90) for i in ids]
        assert [f.state for f in finals] == ["completed"] * 8, cluster.logs()
        db = Database(env.state_url)
        for apply_id in ids:
            claims = [e for e in audit.entries(db, apply_id) if e.event == "claimed"]
            assert len(claims) == 1, (apply_id, [(e.message, e.lease_token) for e in claims])
        db.dispose()
    finally:
        cluster.stop()


def test_sweep_query_uses_the_state_index_on_a_long_history(tmp_path: Path) -> None:
    """The sweep's cost follows the number of candidates, not the history: 100k finished applies."""
    from schemabot.migrate import upgrade
    from schemabot.storage.sweep import candidates_query
    from tests.support.mariadb import fresh_schema

    with fresh_schema("sbt_explain") as schema:
        url = state_url_for(schema)
        upgrade(database_url=url)
        db = Database(url)
        with db.engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO apply (apply_id, request_hash, target, `database`, engine, state, options, "
                "attempt, lease_token, poll_seq, created_at, updated_at) "
                "SELECT CONCAT('apply-', seq), 'h', 'local', 'db', 'direct', 'completed', '{}', 1, 1, 0, "
                "UTC_TIMESTAMP(6), UTC_TIMESTAMP(6) FROM seq_1_to_100000"
            )
            conn.exec_driver_sql("ANALYZE TABLE apply")
        query = candidates_query(start_grace=5, retry_budget=5)
        compiled = query.compile(db.engine, compile_kwargs={"literal_binds": True})
        with db.engine.connect() as conn:
            plan = conn.execute(sa.text(f"EXPLAIN {compiled}")).mappings().all()
        apply_rows = [p for p in plan if p["table"] == "apply"]
        assert apply_rows and all(p["key"] == "ix_apply_state_lease" for p in apply_rows), plan
        # MariaDB reports `rows` as text in some versions and as a number in others.
        assert all(int(p["rows"] or 0) < 1000 for p in apply_rows), plan  # not a scan of 100k rows
        db.dispose()
