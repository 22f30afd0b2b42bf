"""A plain apply (`--engine direct|spirit`, POST /v1/applies) refuses a destructive change without
--allow-unsafe by the plan's own destructive rules against the live MariaDB table, not only by its
text (issue 13 §3; schemabot/planning/guard.py); it fails closed when it cannot check."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from schemabot.api import Client
from schemabot.cli import main
from schemabot.http_api import build_app
from schemabot.migrate import upgrade
from schemabot.runtime import Runtime
from schemabot.settings import Settings, get_settings
from schemabot.storage.database import Database
from tests.conftest import FAST
from tests.support.harness import RecordingDispatcher
from tests.support.mariadb import connect, fresh_schema, mysql_dsn, plan_scratch_leftovers

pytestmark = pytest.mark.integration

LIVE = [
    "CREATE TABLE nums (id INT PRIMARY KEY, big BIGINT, note VARCHAR(100), txt VARCHAR(50) "
    "CHARACTER SET utf8mb4)",
    "INSERT INTO nums VALUES (1, 5000000000, 'a long enough note', 'é')",
    "CREATE TABLE logs (id INT NOT NULL, day INT NOT NULL, PRIMARY KEY (id, day)) "
    "PARTITION BY RANGE (day) (PARTITION p0 VALUES LESS THAN (10), PARTITION p1 VALUES LESS THAN MAXVALUE)",
    "INSERT INTO logs VALUES (1, 1), (2, 20)",
]


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    with fresh_schema("sbt_guard") as name:
        conn = connect(name)
        with conn.cursor() as cur:
            for statement in LIVE:
                cur.execute(statement)
        conn.close()
        url = f"sqlite:///{tmp_path / 'state.db'}"
        upgrade(database_url=url)
        targets = {"shop": mysql_dsn(name), "gone": "mysql://root@127.0.0.1:1/nowhere"}
        settings = Settings(database_url=url, targets=targets, **FAST)
        db = Database(url, settings.storage_retry_seconds)
        made = Client(runtime=Runtime(settings=settings, db=db, dispatcher=RecordingDispatcher(), owner="t"))
        import schemabot.cli as cli_module

        monkeypatch.setattr(cli_module, "_client", lambda: made)
        yield made
        db.dispose()
        get_settings.cache_clear()


def apply_cli(capsys: pytest.CaptureFixture[str], engine: str, ddl: str, *extra: str) -> tuple[int, str]:
    code = main(["apply", "--target", "shop", "--engine", engine, "--ddl", ddl, *extra])
    out, err = capsys.readouterr()
    return code, out + err


@pytest.mark.parametrize(
    ("engine", "ddl", "rule"),
    [
        ("direct", "ALTER TABLE nums MODIFY big INT", "SB003 narrow-type"),
        ("spirit", "ALTER TABLE nums MODIFY note VARCHAR(10)", "SB004 shrink-varchar"),
        ("spirit", "ALTER TABLE nums MODIFY txt VARCHAR(50) CHARACTER SET latin1", "SB005 narrow-charset"),
    ],
)
def test_the_cli_refuses_what_only_the_live_table_shows_unless_allowed(
    client: Client, capsys: pytest.CaptureFixture[str], engine: str, ddl: str, rule: str
) -> None:
    before = plan_scratch_leftovers()
    code, text = apply_cli(capsys, engine, ddl)
    assert code == 2 and rule in text and "--allow-unsafe" in text, text
    assert client.list_applies() == []  # nothing stored
    assert plan_scratch_leftovers() <= before
    code, text = apply_cli(capsys, engine, ddl, "--allow-unsafe")
    assert code == 0, text
    [stored] = client.list_applies()
    assert [e.event for e in client.log(stored.apply_id)].count("unsafe_allowed") == 0  # text shows none


def test_a_safe_alter_is_accepted_without_the_flag(
    client: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    before = plan_scratch_leftovers()
    started = time.monotonic()
    code, text = apply_cli(capsys, "direct", "ALTER TABLE nums ADD COLUMN extra INT")
    elapsed = time.monotonic() - started
    assert code == 0, text
    assert len(client.list_applies()) == 1 and plan_scratch_leftovers() <= before
    assert elapsed < 5, elapsed


def test_http_refuses_online_drop_column_and_partition_drops(client: Client) -> None:
    http = TestClient(build_app(lambda: client), base_url="http://localhost")

    def submit(ddl: str, **extra: object) -> tuple[int, str]:
        body = {"target": "shop", "engine": "spirit", "changes": [{"ddl": [ddl]}], **extra}
        response = http.post("/v1/applies", json=body)
        return response.status_code, response.text

    status, text = submit("ALTER ONLINE TABLE nums DROP COLUMN note")
    assert status == 400 and "drops column note" in text and "allow_unsafe" in text, text
    status, text = submit("ALTER TABLE logs TRUNCATE PARTITION p0")
    assert status == 400 and "TRUNCATE PARTITION" in text, text
    status, text = submit("ALTER TABLE logs DROP PARTITION p0")
    assert status == 400 and "DROP PARTITION" in text, text
    assert client.list_applies() == []
    status, text = submit("ALTER TABLE logs DROP PARTITION p0", allow_unsafe=True)
    assert status == 201, text


def test_an_unreachable_target_is_refused_not_let_through(client: Client) -> None:
    from schemabot.api import UnsafeChange

    with pytest.raises(UnsafeChange, match=r"was not checked for destructive changes.*--allow-unsafe"):
        client.submit_apply("gone", "direct", ["ALTER TABLE t MODIFY c BIGINT"], allow_unsafe=False)
    assert client.list_applies() == []
    accepted = client.submit_apply("gone", "direct", ["ALTER TABLE t MODIFY c BIGINT"], allow_unsafe=True)
    assert accepted.created
    # Only ADD clauses: no destructive rule can fire, so nothing needs the server.
    added = client.submit_apply("gone", "direct", ["ALTER TABLE u ADD COLUMN c INT"], allow_unsafe=False)
    assert added.created


def test_the_plan_finds_the_partition_drop_the_guard_refuses(client: Client) -> None:
    from schemabot.planning.planner import Planner

    plan = Planner(client.settings.target("shop")).plan_ddl(["ALTER TABLE logs DROP PARTITION p0"])
    [finding] = [f for f in plan.statements[0].findings if f.rule == "SB008"]
    assert finding.destructive and finding.blocking and "DROP PARTITION" in finding.message
    allowed = Planner(client.settings.target("shop"), allow_unsafe=True).plan_ddl(
        ["ALTER TABLE logs TRUNCATE PARTITION p0"]
    )
    assert [(f.rule, f.allowed) for f in allowed.unsafe] == [("SB008", True)]


def test_the_guard_honours_the_targets_disabled_rules_as_the_plan_does(
    client: Client, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCHEMABOT_LINT_DISABLE_SHOP", "shrink-varchar")
    code, text = apply_cli(capsys, "spirit", "ALTER TABLE nums MODIFY note VARCHAR(10)")
    assert code == 0, text
