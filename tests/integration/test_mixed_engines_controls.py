"""Controls on a mixed apply with the real engines (docs/architecture.md §5.10): `stop` while
direct's statement waits for a metadata lock parks every unfinished task and `start` finishes the
apply equal to the blocking ALTERs; `cancel` during spirit's copy keeps direct's change and
leaves spirit's table as it was, with nothing of spirit's left behind. In-process ticks (the
harness), a SQLite state database, the machine's MariaDB as the target."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from schemabot.api import Client
from schemabot.migrate import upgrade
from schemabot.planning.service import submit_planned
from schemabot.runtime import Runtime
from schemabot.settings import Settings
from schemabot.storage.database import Database
from tests.conftest import FAST
from tests.support.harness import RecordingDispatcher, pump
from tests.support.mariadb import connect, fresh_schema, mysql_dsn
from tests.support.mixed_tables import COPY_DDL, INSTANT_DDL, leftovers, make_tables, run_blocking, snapshot


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[tuple[Runtime, RecordingDispatcher, str]]:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    upgrade(database_url=url)
    with fresh_schema("sbt_mixctl") as schema:
        settings = Settings(database_url=url, targets={"shop": mysql_dsn(schema)}, **FAST)
        dispatcher = RecordingDispatcher()
        db = Database(url, settings.storage_retry_seconds)
        rt = Runtime(settings=settings, db=db, dispatcher=dispatcher, owner="test-worker")
        yield rt, dispatcher, schema
        db.dispose()


def _columns(schema: str, table: str) -> list[str]:
    conn = connect(schema)
    with conn.cursor() as cur:
        cur.execute(f"SHOW COLUMNS FROM `{table}`")
        names = [r[0] for r in cur.fetchall()]
    conn.close()
    return names


def test_stop_while_direct_waits_parks_every_task_and_start_finishes_equal_to_blocking_alters(
    shop: tuple[Runtime, RecordingDispatcher, str],
) -> None:
    rt, dispatcher, schema = shop
    make_tables(schema, 5_000)
    client = Client(runtime=rt)
    reader = connect(schema)  # an open transaction that read `accounts` holds its metadata lock
    with reader.cursor() as cur:
        cur.execute("START TRANSACTION")
        cur.execute("SELECT COUNT(*) FROM accounts")
    apply_id = submit_planned(client, "shop", engine="auto", ddl=[COPY_DDL, INSTANT_DDL]).apply_id

    def direct_waits() -> bool:
        return any("waiting for a metadata lock" in (e.message or "") for e in client.log(apply_id))

    pump(rt, dispatcher, until=direct_waits)
    client.request_control(apply_id, "stop")
    pump(rt, dispatcher, until=lambda: client.get_apply(apply_id).state == "stopped")
    stopped = client.get_apply(apply_id)
    assert [(t.table, t.engine, t.state) for t in stopped.tasks] == [
        ("accounts", "direct", "stopped"),
        ("events", "spirit", "stopped"),
    ]
    assert "note" not in _columns(schema, "accounts")  # nothing ran while it waited
    reader.rollback()
    reader.close()

    client.request_control(apply_id, "start")
    pump(rt, dispatcher, max_messages=2000, until=lambda: client.get_apply(apply_id).state == "completed")
    assert [t.state for t in client.get_apply(apply_id).tasks] == ["completed", "completed"]
    with fresh_schema("sbt_oracle") as oracle:
        make_tables(oracle, 5_000)
        run_blocking(oracle)
        assert snapshot(schema) == snapshot(oracle)
    assert leftovers(schema) == []


def test_cancel_during_spirits_copy_keeps_directs_change_and_leaves_the_copied_table_as_it_was(
    shop: tuple[Runtime, RecordingDispatcher, str],
) -> None:
    rt, dispatcher, schema = shop
    make_tables(schema, 300_000)
    before = snapshot(schema)["events"]
    client = Client(runtime=rt)
    apply_id = submit_planned(client, "shop", engine="auto", ddl=[COPY_DDL, INSTANT_DDL], volume=1).apply_id

    def copying() -> bool:
        events = client.get_apply(apply_id).tasks[1]
        return events.state == "running" and (events.rows_copied or 0) > 0

    pump(rt, dispatcher, until=copying)
    client.request_control(apply_id, "cancel")
    pump(rt, dispatcher, max_messages=2000)
    final = client.get_apply(apply_id)
    assert final.state == "cancelled", final
    assert [(t.table, t.state) for t in final.tasks] == [("accounts", "completed"), ("events", "cancelled")]
    assert "note" in _columns(schema, "accounts")  # direct's change was made and is kept
    assert snapshot(schema)["events"] == before  # spirit's table is as it was
    assert leftovers(schema) == []  # no shadow table, no triggers
