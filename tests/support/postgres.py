"""Fresh databases on the machine's PostgreSQL (127.0.0.1:5432, user postgres, trust auth).

Like tests/support/mariadb.py: each test gets its own randomly named database, dropped afterwards
(with any connection a crashed test left behind).
"""

from __future__ import annotations

import atexit
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

PG_HOST = os.environ.get("SCHEMABOT_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("SCHEMABOT_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("SCHEMABOT_TEST_PG_USER", "postgres")


def pg_url(database: str) -> str:
    return f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"


def _admin() -> psycopg.Connection:
    return psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True)


_template: str | None = None


def migrated_template() -> str:
    """A database migrated to head once per test process, copied for each test (much faster
    than migrating every fresh database); dropped when the process exits."""
    global _template
    if _template is None:
        from schemabot.migrate import upgrade

        name = f"sbt_tpl_{uuid.uuid4().hex[:10]}"
        with _admin() as admin:
            admin.execute(f"CREATE DATABASE \"{name}\" ENCODING 'UTF8' TEMPLATE template0")
        upgrade(database_url=pg_url(name))

        def drop() -> None:
            with _admin() as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        atexit.register(drop)
        _template = name
    return _template


@contextmanager
def fresh_database(prefix: str, template: str = "template0") -> Iterator[str]:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = _admin()
    try:
        admin.execute(
            f"CREATE DATABASE \"{name}\" ENCODING 'UTF8' TEMPLATE \"{template}\" STRATEGY FILE_COPY"
        )
        yield name
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
