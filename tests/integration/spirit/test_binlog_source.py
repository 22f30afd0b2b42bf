"""The binlog change source (engines/spirit/binlogsource.py) on a private server with binary
logging: choice, replay, exactness, resume from the saved position, purged position, cutover."""

from __future__ import annotations

import random

import pytest

from tests.integration.spirit.binlog_server import (  # noqa: F401  (fixtures)
    binlog_server,
    on_binlog_server,
    oracle_schema,
    schema,
)
from tests.integration.spirit.oracle import Case, run_case
from tests.integration.spirit.support import checkpoint_row

pytestmark = pytest.mark.integration


def _values(rng: random.Random) -> dict[str, object]:
    return {"v": rng.randint(0, 1000), "s": "x" * rng.randint(0, 20)}


def test_widening_under_writers_is_identical_to_the_blocking_alter(
    schema: str, oracle_schema: str
) -> None:
    case = Case(
        "binlog-widen",
        "CREATE TABLE t (id INT NOT NULL PRIMARY KEY, v INT, s VARCHAR(30), KEY (v))",
        "ALTER TABLE t MODIFY v BIGINT",
        _values,
        rows=600,
    )
    outcome = run_case(schema, oracle_schema, case, change_source="binlog")
    assert outcome.verdict == "identical"
    assert sum(outcome.writes.values()) > 20
    row = checkpoint_row(schema, "t", "fid-binlog-widen")
    assert row is not None and row["change_source"] == "binlog"
