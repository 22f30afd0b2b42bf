from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.mariadb import connect, fresh_schema


@pytest.fixture
def schema() -> Iterator[str]:
    with fresh_schema("sbt_spirit") as name:
        yield name


@pytest.fixture
def other_schema() -> Iterator[str]:
    with fresh_schema("sbt_spirit") as name:
        yield name


@pytest.fixture
def db(schema: str):  # type: ignore[no-untyped-def]
    conn = connect(schema)
    yield conn
    conn.close()
