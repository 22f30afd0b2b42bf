"""Fresh databases on the machine's PostgreSQL (127.0.0.1:5432, user postgres, trust auth).

Like tests/support/mariadb.py: each test gets its own randomly named database, dropped afterwards
(with any connection a crashed test left behind).
"""

from __future__ import annotations

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


@contextmanager
def fresh_database(prefix: str) -> Iterator[str]:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True)
    try:
        admin.execute(f'CREATE DATABASE "{name}" ENCODING \'UTF8\' TEMPLATE template0')
        yield name
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
