"""Settings: environment variables, defaults, targets file, and the lease sanity rule."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from schemabot.settings import Settings


def test_defaults_are_the_embedded_database_and_local_services() -> None:
    settings = Settings()
    assert settings.database_url == "sqlite:///./schemabot.db"
    assert settings.broker_url == "redis://127.0.0.1:6379/0"
    assert settings.target("local").dsn == "mysql://root@127.0.0.1:3306/test"
    # Recovery latency is about TTL + sweep interval: under ten seconds by default.
    assert settings.lease_ttl + settings.sweep_interval < 10


def test_environment_variables_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCHEMABOT_DATABASE_URL", "mysql://root@db/schemabot")
    monkeypatch.setenv("SCHEMABOT_LEASE_TTL", "9")
    monkeypatch.setenv("SCHEMABOT_POLL_INTERVAL", "0.25")
    monkeypatch.setenv("SCHEMABOT_SWEEP_INTERVAL", "3")
    monkeypatch.setenv("SCHEMABOT_STEP_BUDGET", "1.5")
    monkeypatch.setenv("SCHEMABOT_BROKER_URL", "redis://broker:6379/2")
    settings = Settings()
    assert settings.database_url == "mysql+pymysql://root@db/schemabot"  # our driver, not mysqlclient
    assert (settings.lease_ttl, settings.poll_interval, settings.sweep_interval, settings.step_budget) == (
        9,
        0.25,
        3,
        1.5,
    )
    assert settings.broker_url == "redis://broker:6379/2"


def test_targets_file_then_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "targets.toml"
    path.write_text('[targets]\nstaging = "mysql://u:p@staging/app"\nprod = "mysql://u:p@old/app"\n')
    monkeypatch.setenv("SCHEMABOT_TARGETS_FILE", str(path))
    monkeypatch.setenv("SCHEMABOT_TARGET_PROD", "mysql://u:p@new/app")
    settings = Settings()
    assert settings.target("staging").dsn == "mysql://u:p@staging/app"
    assert settings.target("prod").dsn == "mysql://u:p@new/app"


def test_a_lease_shorter_than_one_step_is_refused() -> None:
    with pytest.raises(ValidationError, match="lease_ttl"):
        Settings(lease_ttl=2, step_budget=2, poll_interval=0.5)


def test_targets_in_dotenv_are_read_and_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 14 §5: SCHEMABOT_TARGET_* in .env were silently ignored."""
    (tmp_path / ".env").write_text(
        "SCHEMABOT_TARGET_SHOP=mysql://app:pw@db1:3306/shop\n"
        "SCHEMABOT_TARGET_BOTH=mysql://from-file@db/x\n"
        "SCHEMABOT_BROKER_URL=redis://from-dotenv:6379/1\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SCHEMABOT_TARGET_BOTH", "mysql://from-env@db/x")
    settings = Settings()
    assert settings.broker_url == "redis://from-dotenv:6379/1"
    assert settings.target("shop").dsn == "mysql://app:pw@db1:3306/shop"
    assert settings.target("both").dsn == "mysql://from-env@db/x"


def test_api_tokens_from_the_environment_and_the_targets_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from schemabot.auth import Scope, authenticate, hash_secret

    digest = hash_secret("sbt_one")
    monkeypatch.setenv(
        "SCHEMABOT_API_TOKENS", f'[{{"name": "ci", "sha256": "{digest}", "scope": "apply"}}]'
    )
    monkeypatch.setenv("SCHEMABOT_HTTP_ALLOWED_HOSTS", "schemabot.internal, localhost")
    toml = tmp_path / "targets.toml"
    toml.write_text(
        f'[targets]\nprod = "mysql://a@b/c"\n\n[[tokens]]\nname = "bot"\n'
        f'sha256 = "{hash_secret("sbt_two")}"\nscope = "read"\ntargets = ["Prod"]\n'
    )
    monkeypatch.setenv("SCHEMABOT_TARGETS_FILE", str(toml))
    settings = Settings()
    assert [t.name for t in settings.api_tokens] == ["ci", "bot"]
    assert settings.http_allowed_hosts == ["schemabot.internal", "localhost"]
    bot = authenticate("Bearer sbt_two", settings.api_tokens)
    assert (bot.name, bot.scope, bot.targets) == ("bot", Scope.READ, frozenset({"prod"}))
    assert authenticate("bearer sbt_one", settings.api_tokens).name == "ci"
    monkeypatch.setenv("SCHEMABOT_API_TOKENS", '[{"name": "x", "sha256": "not-hex", "scope": "apply"}]')
    with pytest.raises(ValidationError):
        Settings()


def test_token_new_prints_a_secret_that_authenticates_against_its_entry() -> None:
    import json

    from click.testing import CliRunner

    from schemabot.auth import ApiToken, Scope, authenticate
    from schemabot.cli import cli

    result = CliRunner().invoke(cli, ["token", "new", "ci", "--scope", "apply", "--target", "Prod"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    secret = lines[1].strip()
    entry = ApiToken(**json.loads(lines[3].strip()))
    assert secret not in result.output.split(secret, 1)[1]  # shown once; the entry holds its hash
    principal = authenticate(f"Bearer {secret}", [entry])
    assert (principal.name, principal.scope, principal.targets) == ("ci", Scope.APPLY, frozenset({"prod"}))
