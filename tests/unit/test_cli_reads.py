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
