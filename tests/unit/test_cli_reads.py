"""Issue 15 §4: a read command with no state database says where it looked and what to set,
instead of creating a stray ./schemabot.db and then asking to `db upgrade` it."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from schemabot.cli import cli


@pytest.mark.parametrize("command", [["status", "apply-123"], ["list"], ["log", "apply-123"]])
def test_a_read_without_a_state_database_names_it_and_creates_nothing(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, command)
    assert result.exit_code == 1
    assert "no state database at ./schemabot.db" in result.output
    assert "SCHEMABOT_DATABASE_URL" in result.output
    assert "db upgrade" in result.output and "has no schemabot tables" not in result.output
    assert not (tmp_path / "schemabot.db").exists()


def test_the_demo_warns_before_dropping_and_prints_how_to_inspect_its_apply() -> None:
    from schemabot.demo import Services, drop_warning, inspection_hint

    services = Services("redis://127.0.0.1:6379/0", "127.0.0.1", 3306)
    warning = drop_warning(services, ["schemabot_demo_state", "schemabot_demo"])
    assert "dropping" in warning and "schemabot_demo_state, schemabot_demo" in warning
    env = {
        "SCHEMABOT_DATABASE_URL": "mysql+pymysql://root@127.0.0.1:3306/schemabot_demo_state",
        "SCHEMABOT_BROKER_URL": "redis://127.0.0.1:6379/0",
        "SCHEMABOT_QUEUE": "schemabot-demo",
        "SCHEMABOT_TARGET_DEMO": "mysql://root@127.0.0.1:3306/schemabot_demo",
    }
    hint = inspection_hint(env, "apply-1", private=False)
    for key, value in env.items():
        assert f"export {key}='{value}'" in hint
    assert "/schemabot status apply-1" in hint and "/celery -A tasks flower" in hint
    assert "gone" in inspection_hint(env, "apply-1", private=True)
