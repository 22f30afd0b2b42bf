"""One unfinished apply per table of a target, whatever the engines (docs/architecture.md §8
invariant 9; issue 10 §1): refused with the other apply's name, or queued behind it and started
when it ends. Real state storage (SQLite and MariaDB), the real CLI and HTTP layers, the fake
engine for the orchestration."""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from starlette.testclient import TestClient

from schemabot import cli, driver
from schemabot.api import ChangeSet, Client
from schemabot.errors import TableConflict
from schemabot.http_api import build_app
from schemabot.recovery import recovery_sweep
from schemabot.runtime import Runtime
from schemabot.settings import Settings
from schemabot.storage import reads
from schemabot.storage.database import Database
from tests.support.harness import RecordingDispatcher, pump
from tests.support.steps import status


def _changes(*ddl: str, namespace: str = "app") -> list[ChangeSet]:
    return [ChangeSet(namespace=namespace, ddl=list(ddl))]


def _cli(rt: Runtime, monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(cli, "_client", lambda: Client(runtime=rt))
    result = CliRunner().invoke(cli.cli, list(args), standalone_mode=False, catch_exceptions=False)
    code = result.return_value if isinstance(result.return_value, int) else (result.exit_code or 0)
    return code, result.stdout, result.stderr


def _cli_exit(rt: Runtime, monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(cli, "_client", lambda: Client(runtime=rt))
    runner = CliRunner()
    result = runner.invoke(cli.cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_an_overlapping_apply_is_refused_naming_the_other(
    rt: Runtime, dispatcher: RecordingDispatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = Client(runtime=rt)
    first = client.submit_apply("fake", "fake", _changes("ALTER TABLE t1 ADD COLUMN c INT")).apply_id

    with pytest.raises(TableConflict, match=first):
        client.submit_apply("fake", "fakevitess", _changes("ALTER TABLE T1 DROP COLUMN d"))
    # The same table in another namespace or another table is not an overlap.
    client.submit_apply("fake", "fake", _changes("ALTER TABLE t1 ADD COLUMN c INT", namespace="other"))
    client.submit_apply("fake", "fake", _changes("ALTER TABLE t2 ADD COLUMN c INT"))

    code, _, err = _cli_exit(
        rt,
        monkeypatch,
        "apply",
        "--target",
        "fake",
        "--engine",
        "fake",
        "--namespace",
        "app",
        "--ddl",
        "ALTER TABLE t1 DROP COLUMN d",
        "--allow-unsafe",
    )
    assert code == 2 and first in err and "--after" in err, err

    http = TestClient(build_app(lambda: Client(runtime=rt)), base_url="http://localhost")
    body = {
        "target": "fake",
        "engine": "fake",
        "changes": [{"namespace": "app", "ddl": ["DROP TABLE t1"]}],
        "allow_unsafe": True,
    }
    response = http.post("/v1/applies", json=body)
    assert response.status_code == 409 and response.json()["code"] == "conflict"
    assert first in response.json()["error"]
    assert http.post("/v1/applies", json={**body, "queue": "yes"}).status_code == 400
    assert http.post("/v1/applies", json={**body, "after": 5}).status_code == 400
    assert len(client.list_applies()) == 3  # nothing stored for the refused ones

    # When the first apply ends, its table is free again.
    pump(rt, dispatcher)
    assert status(rt, first).state == "completed"
    assert http.post("/v1/applies", json=body).status_code == 201


def test_a_queued_apply_waits_shows_its_place_and_starts_when_the_other_ends(
    rt: Runtime, dispatcher: RecordingDispatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = Client(runtime=rt)
    first = client.submit_apply("fake", "fake", _changes("ALTER TABLE t1 ADD COLUMN c INT")).apply_id
    code, out, err = _cli_exit(
        rt,
        monkeypatch,
        "apply",
        "--target",
        "fake",
        "--engine",
        "fake",
        "--namespace",
        "app",
        "--ddl",
        "ALTER TABLE t1 DROP COLUMN d",
        "--allow-unsafe",
        "--after",
        first,
    )
    assert code == 0, err
    second = out.strip()
    third = client.submit_apply(
        "fake", "fake", _changes("ALTER TABLE t1 ADD COLUMN e INT"), queue=True
    ).apply_id

    st2, st3 = status(rt, second), status(rt, third)
    assert (st2.state, st2.queue_position, st2.waiting_for) == ("pending", 1, [first])
    assert (st3.state, st3.queue_position, st3.waiting_for) == ("pending", 2, [first, second])
    code, out, _ = _cli_exit(rt, monkeypatch, "status", second)
    assert "queued: position 1" in out and first in out

    # Their start messages and the sweep do not start them while the table is taken.
    assert driver.start_apply(rt, second) is driver.TickOutcome.NOT_CLAIMED
    assert {c.apply_id for c in recovery_sweep(rt).claimed} <= {first}
    assert status(rt, second).state == "pending"

    # The first apply runs to its end (start message only: the queued ones' were spent above).
    dispatcher.messages = [m for m in dispatcher.messages if m.args[:1] == (first,)]
    pump(rt, dispatcher)
    assert status(rt, first).state == "completed"
    assert status(rt, second).queue_position is None  # it holds the table now
    assert status(rt, third).queue_position == 1

    claimed = recovery_sweep(rt).claimed
    assert [c.apply_id for c in claimed] == [second]
    pump(rt, dispatcher)
    assert status(rt, second).state == "completed"
    assert [c.apply_id for c in recovery_sweep(rt).claimed] == [third]
    pump(rt, dispatcher)
    assert status(rt, third).state == "completed"
    events = [e.event for e in client.log(third)]
    assert events.index("queued") < events.index("claimed")


def test_a_queued_apply_can_be_cancelled_and_the_line_moves_on(
    rt: Runtime, dispatcher: RecordingDispatcher
) -> None:
    client = Client(runtime=rt)
    first = client.submit_apply("fake", "fake", _changes("ALTER TABLE t1 ADD COLUMN c INT")).apply_id
    second = client.submit_apply("fake", "fake", _changes("DROP TABLE t1"), queue=True).apply_id
    third = client.submit_apply("fake", "fake", _changes("DROP TABLE t1"), after=first).apply_id
    client.request_control(second, "stop")  # stored: a queued apply has no driver to carry it out
    client.request_control(second, "cancel")
    assert status(rt, second).state == "cancelled"
    # The stop is not left pending on an apply that has ended (fenced_writes.set_apply_state's rule).
    assert reads.snapshot(rt.db, second).pending_controls == []
    log = [e.message or "" for e in client.log(second)]
    assert any(m.startswith("stop: rejected: the apply ended (cancelled)") for m in log), log
    assert status(rt, third).queue_position == 1
    dispatcher.messages = [m for m in dispatcher.messages if m.args[:1] == (first,)]
    pump(rt, dispatcher)
    assert [c.apply_id for c in recovery_sweep(rt).claimed] == [third]


def test_a_failed_apply_frees_its_tables(rt: Runtime, dispatcher: RecordingDispatcher) -> None:
    from tests.support.fake_engine import FakeTarget

    client = Client(runtime=rt)
    FakeTarget(rt.settings.targets["fake"].removeprefix("fake://")).inject("apply", "permanent", 1)
    first = client.submit_apply("fake", "fake", _changes("ALTER TABLE t1 ADD COLUMN c INT")).apply_id
    pump(rt, dispatcher)
    assert status(rt, first).state == "failed"
    client.submit_apply("fake", "fake", _changes("ALTER TABLE t1 ADD COLUMN c INT"))


def test_two_submits_racing_on_two_connections_cannot_both_win(settings: Settings) -> None:
    if not settings.database_url.startswith("mysql"):
        pytest.skip("the race is between two connections of a server")
    racers = 4
    barrier = threading.Barrier(racers)
    outcomes: list[str] = []

    def race(i: int) -> None:
        db = Database(settings.database_url, 5.0)
        client = Client(
            runtime=Runtime(settings=settings, db=db, dispatcher=RecordingDispatcher(), owner=f"r{i}")
        )
        barrier.wait()
        try:
            client.submit_apply("fake", "fake", _changes(f"ALTER TABLE race ADD COLUMN c{i} INT"))
            outcomes.append("won")
        except TableConflict:
            outcomes.append("refused")
        finally:
            db.dispose()

    threads = [threading.Thread(target=race, args=(i,)) for i in range(racers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes) == ["refused"] * (racers - 1) + ["won"]


def test_the_upgrade_claims_the_tables_of_applies_already_running(tmp_path: Path, settings: Settings) -> None:
    from contextlib import ExitStack

    from schemabot.migrate import upgrade
    from tests.conftest import mariadb_url
    from tests.support.mariadb import fresh_schema

    with ExitStack() as stack:
        if settings.database_url.startswith("sqlite"):
            url = f"sqlite:///{tmp_path / 'old.db'}"
        else:
            url = mariadb_url(stack.enter_context(fresh_schema("sbt_claims_up")))
        upgrade("0001", database_url=url)
        db = Database(url, 1.0)
        with db.engine.begin() as conn:
            for apply_id, state in (("apply-old-run", "running"), ("apply-old-done", "completed")):
                conn.execute(
                    sa.text(
                        "INSERT INTO apply (apply_id, request_hash, target, `database`, engine, state, "
                        "options, attempt, lease_token, poll_seq, created_at, updated_at) VALUES "
                        "(:a, 'h', 'fake', 'app', 'fake', :s, '{}', 1, 1, 0, :now, :now)"
                    ),
                    {"a": apply_id, "s": state, "now": datetime(2026, 1, 1)},
                )
                conn.execute(
                    sa.text(
                        "INSERT INTO task (task_id, apply_id, seq, namespace, table_name, action, state, "
                        "created_at, updated_at) VALUES (:t, :a, 0, 'app', :tbl, 'alter', :s, :now, :now)"
                    ),
                    {
                        "t": f"task-{apply_id}",
                        "a": apply_id,
                        "s": state,
                        "tbl": "T1" if state == "running" else "t2",
                        "now": datetime(2026, 1, 1),
                    },
                )
        db.dispose()
        upgrade(database_url=url)
        up = settings.model_copy(update={"database_url": url})
        db = Database(url, 1.0)
        client = Client(runtime=Runtime(settings=up, db=db, dispatcher=RecordingDispatcher(), owner="t"))
        with pytest.raises(TableConflict, match="apply-old-run"):
            client.submit_apply("fake", "fake", _changes("ALTER TABLE t1 ADD COLUMN c INT"))
        client.submit_apply("fake", "fake", _changes("ALTER TABLE t2 ADD COLUMN c INT"))
        db.dispose()
