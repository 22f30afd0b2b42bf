"""Shared fixtures: state databases on SQLite and on the machine's MariaDB, runtimes, fake targets."""

from __future__ import annotations

import os
import socket
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


TESTS = Path(__file__).resolve().parent
# The machine's shared services (tests/support/mariadb.py, proc_env.py, serve.py, postgres.py).
SERVICE_PORTS = {3306: "MariaDB", 6379: "Redis", 5432: "PostgreSQL", 5672: "RabbitMQ"}
# What a test module's source mentions -> the services its tests need. Over-marking is the
# safe side: a test marked for a service it does not use is merely skipped by `-m "not ..."`.
_REDIS_HINTS = ("tests.support.processes", "tests.support.serve", "tests.support.servers", "redis")
_POSTGRESQL_HINTS = ("tests.support.postgres",)
_RABBITMQ_HINTS = ("rabbitmq",)


def _module_source(item: pytest.Item, cache: dict[Path, str]) -> str:
    path = Path(str(item.fspath))
    if path not in cache:
        cache[path] = path.read_text().lower()
    return cache[path]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Service markers by directory and by what a module uses (markers in pyproject.toml):

    - tests/unit/: none; `_no_services_in_unit_tests` refuses every connection to a shared
      service there, so a unit test that starts needing one fails instead of going unnoticed;
    - tests/integration/, tests/chaos/: `integration` / `chaos`, `mariadb` (every module uses it
      for targets or state databases), `redis` for a module that starts workers, `schemabot
      serve` or its own servers, `postgresql` for a PostgreSQL state database (the
      `state_url[postgresql]` variants included), `rabbitmq` for a RabbitMQ broker;
    - `slow`: the chaos tests and every test of a module that starts real worker processes.
    """
    sources: dict[Path, str] = {}
    for item in items:
        path = Path(str(item.fspath))
        parts = path.relative_to(TESTS).parts if path.is_relative_to(TESTS) else ()
        if not parts or parts[0] == "unit":
            continue
        source = _module_source(item, sources)
        kind = "chaos" if parts[0] == "chaos" else "integration"
        item.add_marker(getattr(pytest.mark, kind))
        item.add_marker(pytest.mark.mariadb)
        param = getattr(getattr(item, "callspec", None), "params", {}).get("state_url")
        if any(hint in source for hint in _REDIS_HINTS) or kind == "chaos":
            item.add_marker(pytest.mark.redis)
        if param == "postgresql" or any(hint in source for hint in _POSTGRESQL_HINTS):
            item.add_marker(pytest.mark.postgresql)
        if any(hint in source for hint in _RABBITMQ_HINTS):
            item.add_marker(pytest.mark.rabbitmq)
        if kind == "chaos" or "tests.support.processes" in source:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _no_services_in_unit_tests(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit tests run without any server (`make unit`): a connection to a shared service's port
    from one fails loudly, naming the service, instead of passing on a machine that has it."""
    path = Path(str(request.node.fspath))
    if not path.is_relative_to(TESTS / "unit"):
        return
    real_connect = socket.socket.connect

    def connect(sock: socket.socket, address: object) -> None:
        port = address[1] if isinstance(address, tuple) and len(address) >= 2 else None
        if port in SERVICE_PORTS:
            raise AssertionError(
                f"a unit test connected to {SERVICE_PORTS[port]} ({address}): move it to tests/integration"
            )
        real_connect(sock, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", connect)


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
