"""Issue 15 §4: `schemabot status APPLY_ID` answers without importing SQLAlchemy, pydantic or
Celery (bench/cli_latency.py measures it), prints exactly what the full CLI prints, and leaves
every case it does not handle to the full CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from schemabot import fast_status
from schemabot.api import ChangeSet, Client
from schemabot.cli import cli
from schemabot.migrate import upgrade
from schemabot.settings import Settings
from tests.support.harness import RecordingDispatcher


@pytest.fixture
def stored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    upgrade(database_url=url)
    settings = Settings(database_url=url, targets={"local": "mysql://root@127.0.0.1:3306/app"})
    client = Client(settings, dispatcher=RecordingDispatcher())
    changes = [ChangeSet(ddl=["ALTER TABLE t ADD COLUMN c INT", "CREATE TABLE u (id INT PRIMARY KEY)"])]
    apply_id = client.submit_apply("local", "direct", changes).apply_id
    monkeypatch.setenv("SCHEMABOT_DATABASE_URL", url)
    return url, apply_id


def test_the_quick_path_prints_what_the_full_cli_prints(stored: tuple[str, str]) -> None:
    _, apply_id = stored
    quick = fast_status.quick_status(apply_id)
    full = CliRunner().invoke(cli, ["status", apply_id])
    assert full.exit_code == 0, full.output
    assert quick is not None and quick == full.output
    assert "app.t  alter  pending" in quick and "app.u  create  pending" in quick


def test_a_queued_apply_and_its_attention_are_shown_as_the_full_cli_shows_them(
    stored: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, first = stored
    settings = Settings(database_url=url, targets={"local": "mysql://root@127.0.0.1:3306/app"})
    client = Client(settings, dispatcher=RecordingDispatcher())
    queued = client.submit_apply("local", "direct", ["ALTER TABLE t ADD COLUMN d INT"], queue=True).apply_id
    assert fast_status.quick_status(queued) is None  # the full CLI says where it waits
    full = CliRunner().invoke(cli, ["status", queued])
    assert f"queued: position 1, waiting for {first}" in full.output, full.output

    import sqlite3

    with sqlite3.connect(url[len("sqlite:///") :]) as conn:
        conn.execute("UPDATE apply SET attention = 'blocked on the provider' WHERE apply_id = ?", (first,))
    quick = fast_status.quick_status(first)
    assert quick is not None and "attention: blocked on the provider" in quick
    assert quick == CliRunner().invoke(cli, ["status", first]).output


def test_a_mixed_apply_shows_each_tasks_engine_and_reason_as_the_full_cli_does(
    stored: tuple[str, str],
) -> None:
    url, _ = stored
    settings = Settings(database_url=url, targets={"local": "mysql://root@127.0.0.1:3306/app"})
    client = Client(settings, dispatcher=RecordingDispatcher())
    choices = [("spirit", "the server would copy the table"), ("direct", "instant")]
    ddl = ["ALTER TABLE big MODIFY id BIGINT", "ALTER TABLE small ADD COLUMN c INT"]
    mixed = client.submit_apply("local", "auto", [ChangeSet(ddl=ddl)], engine_choices=choices).apply_id
    quick = fast_status.quick_status(mixed)
    assert quick is not None and quick == CliRunner().invoke(cli, ["status", mixed]).output
    assert quick.splitlines()[1:] == [
        "  app.small  alter  pending  engine=direct (instant)",
        "  app.big  alter  pending  engine=spirit (the server would copy the table)",
    ]
    assert "engine=auto" in quick.splitlines()[0]


def _quick_in_a_fresh_process(url: str, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """`fast_status.main(argv)` in a new interpreter, which then asserts that none of the heavy
    packages was imported."""
    code = (
        "import sys\n"
        "from schemabot.fast_status import main\n"
        f"assert main({argv!r}) == 0\n"
        "heavy = sorted(m for m in ('sqlalchemy', 'pydantic', 'celery', 'sqlglot') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        env={"SCHEMABOT_DATABASE_URL": url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_it_imports_neither_sqlalchemy_nor_pydantic(stored: tuple[str, str]) -> None:
    url, apply_id = stored
    done = _quick_in_a_fresh_process(url, ["status", apply_id])
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(apply_id)


def test_what_it_does_not_handle_falls_through(
    stored: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert fast_status.quick_status("apply-unknown") is None  # the full CLI says "no apply" and exits 2
    monkeypatch.setenv("SCHEMABOT_DATABASE_URL", "postgresql://localhost/x")
    assert fast_status.quick_status(stored[1]) is None
    monkeypatch.setenv("SCHEMABOT_DATABASE_URL", "sqlite:////nonexistent/state.db")
    assert fast_status.quick_status(stored[1]) is None
    assert not Path("/nonexistent/state.db").exists()


def test_list_and_log_print_what_the_full_cli_prints(stored: tuple[str, str]) -> None:
    url, first = stored
    settings = Settings(database_url=url, targets={"local": "mysql://root@127.0.0.1:3306/app"})
    client = Client(settings, dispatcher=RecordingDispatcher())
    second = client.submit_apply("local", "direct", ["ALTER TABLE v ADD COLUMN d INT"]).apply_id
    client.request_control(second, "stop")
    import sqlite3

    with sqlite3.connect(url[len("sqlite:///") :]) as conn:
        conn.execute("UPDATE apply SET attention = 'blocked on the provider' WHERE apply_id = ?", (first,))
    quick_list = fast_status.quick_list()
    assert quick_list is not None and quick_list == CliRunner().invoke(cli, ["list"]).output
    assert quick_list.splitlines()[0].startswith(second)
    assert "  attention: blocked on the provider" in quick_list
    for apply_id in (first, second):
        quick_log = fast_status.quick_log(apply_id)
        full = CliRunner().invoke(cli, ["log", apply_id])
        assert full.exit_code == 0, full.output
        assert quick_log is not None and quick_log == full.output
    assert fast_status.quick_log("apply-unknown") is None  # the full CLI says "no apply", exit 2


@pytest.mark.parametrize("command", [["list"], ["log", "APPLY"]])
def test_list_and_log_import_neither_sqlalchemy_nor_pydantic(
    stored: tuple[str, str], command: list[str]
) -> None:
    url, apply_id = stored
    argv = [apply_id if word == "APPLY" else word for word in command]
    done = _quick_in_a_fresh_process(url, argv)
    assert done.returncode == 0, done.stderr
    assert (apply_id if command == ["list"] else "submitted") in done.stdout
