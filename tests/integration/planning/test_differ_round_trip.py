"""The differ's round trip (issue 13, part 4), on MariaDB: for every pair of definitions in
tests/data/schema_pairs/, the planned statements turn the first into the second (SHOW CREATE TABLE
equal, but for the order of plain index lines, which the server does not let an ALTER set), and
planning again finds nothing left to do."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from schemabot.planning.differ import diff_table
from schemabot.planning.scratch import read_tables
from schemabot.planning.tabledef import UnsupportedTable, quote
from tests.support.mariadb import connect, fresh_schema

pytestmark = pytest.mark.integration

PAIRS = Path(__file__).resolve().parents[2] / "data" / "schema_pairs"


def _statements(text: str) -> list[str]:
    return [s.strip() for s in re.split(r";\s*(?=CREATE|create|$)", text) if s.strip()]


def load_pair(path: Path) -> tuple[list[str], list[str]]:
    text = path.read_text()
    before, after = text.split("-- to\n")
    return _statements(before.replace("-- from\n", "")), _statements(after)


def _run(cur: pymysql.cursors.Cursor, schema: str, statements: list[str]) -> None:
    cur.execute(f"USE {quote(schema)}")
    for statement in statements:
        cur.execute(statement)


def plan_statements(cur: pymysql.cursors.Cursor, live: str, desired: str) -> list[str]:
    live_tables, desired_tables = read_tables(cur, live), read_tables(cur, desired)
    statements = []
    for name in sorted(set(live_tables) | set(desired_tables)):
        change = diff_table(live_tables.get(name), desired_tables.get(name))
        if change is not None:
            statements.append(change.statement)
    return statements


def _definitions(cur: pymysql.cursors.Cursor, schema: str) -> dict[str, tuple[str, list[str]]]:
    """SHOW CREATE TABLE of each table, exact but for the order of the plain (non-unique) index
    lines, which the differ does not plan (schemabot/planning/differ.py `_changed_keys`)."""
    result = {}
    for name, table in read_tables(cur, schema).items():
        lines = table.create_statement().split("\n")
        plain = sorted(line.rstrip(",") for line in lines if line.startswith("  KEY "))
        masked = ["  KEY ..." if line.startswith("  KEY ") else line for line in lines]
        result[name] = ("\n".join(masked), plain)
    return result


@pytest.fixture(scope="module")
def cursor() -> Iterator[pymysql.cursors.Cursor]:
    conn = connect()
    with conn.cursor() as cur:
        yield cur
    conn.close()


def test_corpus_is_large_enough() -> None:
    assert len(list(PAIRS.glob("*.sql"))) >= 40


@pytest.mark.parametrize("pair", sorted(PAIRS.glob("*.sql")), ids=lambda p: p.stem)
def test_round_trip(pair: Path, cursor: pymysql.cursors.Cursor) -> None:
    before, after = load_pair(pair)
    with fresh_schema("sbt_rt_live") as live, fresh_schema("sbt_rt_want") as desired:
        _run(cursor, live, before)
        _run(cursor, desired, after)
        statements = plan_statements(cursor, live, desired)
        if pair.stem.endswith(("no_change", "index_order_changed")):
            assert statements == []
        else:
            assert statements, "the pair differs, so there must be something to do"
        _run(cursor, live, statements)
        assert _definitions(cursor, live) == _definitions(cursor, desired), statements
        assert plan_statements(cursor, live, desired) == []


def test_partition_changes_are_refused_with_a_clear_message(cursor: pymysql.cursors.Cursor) -> None:
    with fresh_schema("sbt_rt_live") as live, fresh_schema("sbt_rt_want") as desired:
        _run(cursor, live, ["CREATE TABLE t (id INT PRIMARY KEY)"])
        _run(cursor, desired, ["CREATE TABLE t (id INT PRIMARY KEY) PARTITION BY HASH (id) PARTITIONS 4"])
        with pytest.raises(UnsupportedTable, match=r"partitioning differs .* not planned"):
            plan_statements(cursor, live, desired)
        _run(cursor, live, ["ALTER TABLE t PARTITION BY HASH (id) PARTITIONS 4"])
        assert plan_statements(cursor, live, desired) == []  # the same partitioning: nothing to do
