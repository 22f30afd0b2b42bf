"""An apply whose tables run on different engines (direct, then spirit) loses its worker between
the two tasks (docs/architecture.md §10 S29, §5.10): real Celery workers and beat, Redis, MariaDB,
the real engines. The worker is SIGKILLed after direct's task completed and before spirit's
began: the test holds the `events` table's advisory lock (docs/architecture.md §8.1), so spirit's
attach answers "busy" and the apply is held exactly between its two operations."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from engines.spirit.naming import TableNames
from schemabot.planning.service import submit_planned
from schemabot.storage import reads
from schemabot.storage.database import Database
from tests.support.fake_engine import FakeTarget
from tests.support.mariadb import connect, fresh_schema
from tests.support.mixed_tables import (
    COPY_DDL,
    INSTANT_DDL,
    leftovers,
    make_tables,
    run_blocking,
    snapshot,
)
from tests.support.proc_env import ProcEnv, proc_env
from tests.support.servers import TEST_REDIS_DB, wait_for

pytestmark = pytest.mark.chaos
ROWS = 50_000


@pytest.fixture
def env(tmp_path: Path) -> Iterator[ProcEnv]:
    fake = FakeTarget(tmp_path / "unused-fake.db")
    with proc_env(tmp_path, fake.path) as environment:
        yield environment


def test_s29_worker_killed_between_the_direct_and_the_spirit_task_resumes_at_the_spirit_task(
    env: ProcEnv,
) -> None:
    make_tables(env.target_schema, ROWS)
    client, db = env.client(), Database(env.state_url)
    holder = connect(env.target_schema)  # holds spirit's table lock: its attach must wait
    with holder.cursor() as cur:
        cur.execute("SELECT GET_LOCK(%s, 0)", (TableNames(env.target_schema, "events").lock_name,))
        assert cur.fetchone() == (1,)
    cluster = env.cluster()
    try:
        cluster.worker("a")
        cluster.beat()
        apply_id = submit_planned(client, "local", engine="auto", ddl=[COPY_DDL, INSTANT_DDL]).apply_id

        def between() -> bool:
            tasks = client.get_apply(apply_id).tasks
            busy = any(e.event == "busy" for e in client.log(apply_id))
            return [t.state for t in tasks] == ["completed", "pending"] and busy

        wait_for(between, 60, "direct's task completed and spirit's attach refused as busy")
        first_token = reads.snapshot(db, apply_id).apply.lease_token
        cluster.owner_of(reads.snapshot(db, apply_id).apply.lease_owner or "").kill()
        killed = time.monotonic()
        # Its next poll is lost with it (the queue too), so only the sweep can go on: a new owner.
        redis.Redis(db=TEST_REDIS_DB).delete(env.env["SCHEMABOT_QUEUE"])
        killed_at = len(client.log(apply_id))
        with holder.cursor() as cur:
            cur.execute("SELECT RELEASE_LOCK(%s)", (TableNames(env.target_schema, "events").lock_name,))
        cluster.worker("b")
        claimed = lambda: any(e.event == "claimed" for e in client.log(apply_id)[killed_at:])  # noqa: E731
        wait_for(claimed, 60, "the sweep claims the orphan")
        print(f"S29: claimed {time.monotonic() - killed:.1f} s after the kill")  # lease TTL + sweep

        final = client.wait(apply_id, timeout=120)
        print(f"S29: completed {time.monotonic() - killed:.1f} s after the kill")
        assert final.state == "completed", (final.error, cluster.logs())
    finally:
        holder.close()
        cluster.stop()

    assert [(t.table, t.engine, t.state) for t in final.tasks] == [
        ("accounts", "direct", "completed"),
        ("events", "spirit", "completed"),
    ]
    log = client.log(apply_id)
    after = [(e.event, e.message) for e in log[killed_at:]]
    assert any(event == "claimed" for event, _ in after), after
    # The direct statement ran once, by the first owner; the new owner began spirit's operation.
    assert sum(1 for e in log if "accounts: alter done" in (e.message or "")) == 1
    assert not any("already applied" in (e.message or "") for e in log)
    direct_op, spirit_op = reads.snapshot(db, apply_id).operations
    assert (direct_op.resume_metadata or {}).get("attached_token") == first_token
    assert (spirit_op.resume_metadata or {}).get("attached_token", 0) > first_token
    db.dispose()

    with fresh_schema("sbt_oracle") as oracle:
        make_tables(oracle, ROWS)
        run_blocking(oracle)
        assert snapshot(env.target_schema) == snapshot(oracle)
    assert leftovers(env.target_schema) == []
