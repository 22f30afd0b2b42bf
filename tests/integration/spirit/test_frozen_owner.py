"""A frozen owner (its process stopped, its connection idle) must not hold a table forever."""

from __future__ import annotations

import pytest

from engines.spirit import connection
from engines.spirit.advisorylock import acquire_all
from engines.spirit.naming import TableNames
from engines.targets import Target
from tests.support.mariadb import connect, mysql_dsn
from tests.support.servers import wait_for


def test_an_idle_engine_connection_is_closed_by_the_server_and_frees_the_table_lock(
    schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connection, "IDLE_SESSION_SECONDS", 2)
    lock = TableNames(schema, "t").lock_name
    frozen = connection.connect(Target("t", mysql_dsn(schema)))
    with frozen.cursor() as cur:
        assert acquire_all(cur, [lock], 0)

    other = connect(schema)

    def lock_is_free() -> bool:
        with other.cursor() as cur:
            cur.execute("SELECT IS_USED_LOCK(%s)", (lock,))
            return cur.fetchone()[0] is None  # type: ignore[index]

    assert not lock_is_free()
    wait_for(lock_is_free, 10, "the server to drop the idle connection and its lock")
    other.close()
