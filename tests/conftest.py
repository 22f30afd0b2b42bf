"""Shared fixtures: state databases on SQLite and on the machine's MariaDB, runtimes, fake targets."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from schemabot.migrate import upgrade
from schemabot.runtime import Runtime
from schemabot.settings import Settings, get_settings
from tests.support.fake_engine import FakeTarget
from tests.support.harness import FaultyDatabase, RecordingDispatcher
from tests.support.mariadb import SHARED_HOST, SHARED_PORT, SHARED_USER, fresh_schema

FAKE_PLUGINS = {
    "fake": "tests.support.fake_engine:FakeEngine",
    "fakevitess": "tests.support.fake_engine:FakeVitessEngine",
    "fakenative": "tests.support.fake_engine:FakeNativeEngine",
    "fakecopy": "tests.support.fake_engine:FakeEngine",  # a second copying engine name
}
# Orchestration timings for in-process tests: leases long enough never to expire by accident.
FAST = {
    "lease_ttl": 30.0,
    "poll_interval": 0.0,
    "sweep_interval": 1.0,
    "step_budget": 1.0,
    "start_grace": 0.0,
    "retry_backoff": 0.0,
    "storage_retry_seconds": 0.5,
}


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tests never read a developer's SCHEMABOT_* environment by accident."""
    for key in list(os.environ):
        if key.startswith("SCHEMABOT_"):
            monkeypatch.delenv(key)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def mariadb_url(schema: str, port: int = SHARED_PORT) -> str:
    return f"mysql+pymysql://{SHARED_USER}@{SHARED_HOST}:{port}/{schema}"


# The storage and orchestration scenario suites run on PostgreSQL too (docs/architecture.md §2);
# engine suites, whose subject is the target and not the state database, stay on two.
POSTGRESQL_MODULES = frozenset(
    {"test_resume_scenarios", "test_control_and_classification_scenarios", "test_http_api"}
)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "state_url" in metafunc.fixturenames:
        kinds = ["sqlite", "mariadb"]
        if metafunc.module.__name__.rsplit(".", 1)[-1] in POSTGRESQL_MODULES:
            kinds.append("postgresql")
        metafunc.parametrize("state_url", kinds, indirect=True)


@pytest.fixture
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty state database: on SQLite, on MariaDB, and for the scenario suites on
    PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'state.db'}"
        upgrade(database_url=url)
        yield url
        return
    if request.param == "postgresql":
        from tests.support.postgres import fresh_database, migrated_template, pg_url

        with fresh_database("sbt_core", template=migrated_template()) as database:
            yield pg_url(database)  # a copy of a database migrated to head
        return
    with fresh_schema("sbt_core") as schema:
        url = mariadb_url(schema)
        upgrade(database_url=url)
        yield url


@pytest.fixture
def fake_target(tmp_path: Path) -> FakeTarget:
    return FakeTarget(tmp_path / "fake-target.db")


@pytest.fixture
def settings(state_url: str, fake_target: FakeTarget) -> Settings:
    return Settings(
        database_url=state_url,
        engine_plugins=FAKE_PLUGINS,
        targets={"fake": f"fake://{fake_target.path}", "fakev": f"fake://{fake_target.path}"},
        **FAST,
    )


@pytest.fixture
def dispatcher() -> RecordingDispatcher:
    return RecordingDispatcher()


@pytest.fixture
def rt(settings: Settings, dispatcher: RecordingDispatcher) -> Iterator[Runtime]:
    db = FaultyDatabase(settings.database_url, settings.storage_retry_seconds)
    yield Runtime(settings=settings, db=db, dispatcher=dispatcher, owner="test-worker")
    db.dispose()
