"""Fresh schemas on the machine's shared MariaDB (127.0.0.1:3306, root, empty password).

Tests never stop or reconfigure the shared server; each test gets its own schema, named after a
prefix plus a random suffix, and drops it afterwards. Tests that must crash a server start their
own throwaway one (tests/support/servers.py).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pymysql

SHARED_HOST = os.environ.get("SCHEMABOT_TEST_MYSQL_HOST", "127.0.0.1")
SHARED_PORT = int(os.environ.get("SCHEMABOT_TEST_MYSQL_PORT", "3306"))
SHARED_USER = os.environ.get("SCHEMABOT_TEST_MYSQL_USER", "root")
SHARED_PASSWORD = os.environ.get("SCHEMABOT_TEST_MYSQL_PASSWORD", "")


def _port(port: int | None) -> int:
    """The port asked for, else SHARED_PORT as it is at the call (a fixture may point it at a
    private server for a whole test: tests/integration/spirit/binlog_server.py)."""
    return SHARED_PORT if port is None else port


def connect(schema: str | None = None, port: int | None = None, **kwargs: object) -> pymysql.Connection:
    return pymysql.connect(
        host=SHARED_HOST,
        port=_port(port),
        user=SHARED_USER,
        password=SHARED_PASSWORD,
        database=schema,
        autocommit=True,
        charset="utf8mb4",
        **kwargs,  # type: ignore[arg-type]
    )


def mysql_dsn(schema: str, port: int | None = None) -> str:
    auth = SHARED_USER if not SHARED_PASSWORD else f"{SHARED_USER}:{SHARED_PASSWORD}"
    return f"mysql://{auth}@{SHARED_HOST}:{_port(port)}/{schema}"


@contextmanager
def fresh_schema(prefix: str, port: int | None = None) -> Iterator[str]:
    """Create `<prefix>_<random>` and drop it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    conn = connect(port=port)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        yield name
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


def plan_scratch_schemas() -> set[str]:
    """The plan's scratch schemas (`_sb_plan_*`) on the shared server, in use or not."""
    conn = connect()
    with conn.cursor() as cur:
        cur.execute("SHOW DATABASES LIKE '\\_sb\\_plan\\_%'")
        names = {str(r[0]) for r in cur.fetchall()}
    conn.close()
    return names


def plan_scratch_leftovers() -> set[str]:
    """The scratch schemas that no plan is using (schemabot/planning/scratch.py: a plan holds
    GET_LOCK(<name>) from before it creates its schema until after it drops it): what a plan
    would have left behind. A test checks that this set does not grow, which holds while other
    test processes plan on the same server; `plan_scratch_schemas` would see their schemas."""
    conn = connect()
    left = set()
    try:
        with conn.cursor() as cur:
            for name in plan_scratch_schemas():
                cur.execute("SELECT GET_LOCK(%s, 0)", (name,))
                if cur.fetchone()[0] != 1:
                    continue  # a plan is using it (or dropping it as another's leftover)
                try:
                    cur.execute(
                        "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME=%s", (name,)
                    )
                    if cur.fetchone()[0]:
                        left.add(name)  # still there with nobody holding it: left behind
                finally:
                    cur.execute("SELECT RELEASE_LOCK(%s)", (name,))
    finally:
        conn.close()
    return left
