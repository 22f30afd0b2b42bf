"""Issue 10 §3: a trailing `-- comment` or `# comment` made spirit append `, ALGORITHM=INSTANT`
inside the comment, so the server ran a blocking table copy on the live table. Submit stores the
statement without comments (tests/integration/test_submit_rules.py); the engine must not depend on
that: given the comment, spirit still tries INSTANT on the statement itself and, when the server
refuses, does the online copy through its shadow table."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from engines.base import EngineState
from tests.integration.spirit.support import checkpoint_row, request, run_until
from tests.integration.spirit.support import engine as spirit_engine
from tests.support.mariadb import connect, fresh_schema


@pytest.fixture
def schema() -> Iterator[str]:
    with fresh_schema("sbt_comment") as name:
        with connect(name).cursor() as cur:
            cur.execute("CREATE TABLE t (id INT PRIMARY KEY, c INT)")
            cur.execute("INSERT INTO t VALUES (1, 1), (2, 2), (3, 3)")
        yield name


def _column_type(schema: str) -> str:
    with connect(schema).cursor() as cur:
        cur.execute("SHOW COLUMNS FROM t LIKE 'c'")
        return str(cur.fetchone()[1])


@pytest.mark.parametrize("comment", ["-- widen it", "# widen it", "/* widen it */"])
def test_spirit_copies_online_when_a_trailing_comment_follows_a_change_instant_cannot_do(
    schema: str, comment: str
) -> None:
    eng = spirit_engine(schema)
    req = request([(schema, "t", f"ALTER TABLE t MODIFY c BIGINT {comment}")], "task-cmt")
    assert eng.apply(req).accepted
    row = checkpoint_row(schema, "t", "task-cmt")
    # The online copy (a shadow table), not the statement run in place as a blocking copy.
    assert row is not None and row["kind"] == "copy", row
    assert "widen" not in row["statement"]
    assert run_until(eng, req).state is EngineState.COMPLETED
    eng.close()
    assert _column_type(schema) == "bigint(20)"


def test_spirit_runs_an_instant_change_instantly_despite_a_trailing_comment(schema: str) -> None:
    eng = spirit_engine(schema)
    req = request([(schema, "t", "ALTER TABLE t ADD COLUMN d INT -- note")], "task-inst")
    assert eng.apply(req).accepted
    row = checkpoint_row(schema, "t", "task-inst")
    assert row is not None and row["kind"] == "direct" and row["phase"] == "done", row
    assert run_until(eng, req).state is EngineState.COMPLETED
    eng.close()
