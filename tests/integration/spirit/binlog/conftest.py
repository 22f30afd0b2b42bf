"""A private `mariadbd` with binary logging (row format, full images) for the binlog change
source's tests: the shared server runs with log_bin=0, so every test of the binlog source points
the test helpers (tests/support/mariadb.py reads SHARED_PORT at each call) at this one instead:
the `schema` and `oracle_schema` fixtures of this folder are on it.

One server per test module (starting one takes a few seconds); each test still gets fresh
schemas on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import mariadb
from tests.support.servers import BinlogMariaDB


@pytest.fixture(scope="module")
def binlog_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BinlogMariaDB]:
    server = BinlogMariaDB(Path(tmp_path_factory.mktemp("binlog-mariadb")), 1).start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def on_binlog_server(
    binlog_server: BinlogMariaDB, monkeypatch: pytest.MonkeyPatch
) -> BinlogMariaDB:
    """Every connection a test helper opens (and every DSN it hands out) goes to the private
    server for this test."""
    monkeypatch.setattr(mariadb, "SHARED_PORT", binlog_server.port)
    return binlog_server


@pytest.fixture
def schema(on_binlog_server: BinlogMariaDB) -> Iterator[str]:
    with mariadb.fresh_schema("sbt_binlog") as name:
        yield name


@pytest.fixture
def oracle_schema(on_binlog_server: BinlogMariaDB) -> Iterator[str]:
    with mariadb.fresh_schema("sbt_oracle") as name:
        yield name
