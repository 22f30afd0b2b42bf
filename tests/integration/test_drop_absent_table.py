"""DROP TABLE of an absent table: one rule for every engine (docs/architecture.md §5.1; issue 10
§3). A plain `DROP TABLE t` whose table is absent at the first attempt fails with a permanent
error that says how to accept it; `DROP TABLE IF EXISTS t` completes and says "already absent".
The rule holds across a crash: a DROP that ran before its worker died is "dropped by an earlier
attempt", never "does not exist". The planetscale engine's twin is in
tests/integration/planetscale/test_engine_scenarios.py (through the emulator), and the whole rule
through the CLI and a real worker in tests/integration/test_worker_end_to_end.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from engines.base import EngineState, PermanentEngineError, ProgressRequest
from engines.direct import DirectEngine
from engines.spirit import setup as spirit_setup
from engines.targets import Target
from tests.integration.spirit.support import checkpoint_row, request, run_until, tables
from tests.integration.spirit.support import engine as spirit_engine
from tests.support.mariadb import connect, fresh_schema, mysql_dsn

ABSENT = "does not exist; use DROP TABLE IF EXISTS to accept that"


@pytest.fixture
def schema() -> Iterator[str]:
    with fresh_schema("sbt_drop") as name:
        with connect(name).cursor() as cur:
            cur.execute("CREATE TABLE present (id INT PRIMARY KEY)")
        yield name


# -- direct ------------------------------------------------------------------------------------


def _direct(schema: str) -> DirectEngine:
    return DirectEngine(Target("test", mysql_dsn(schema)))


def test_direct_drop_of_an_absent_table_fails_and_if_exists_completes_saying_so(schema: str) -> None:
    eng = _direct(schema)
    with pytest.raises(PermanentEngineError, match=ABSENT):
        eng.apply(request([(schema, "gone", "DROP TABLE gone")], "task-a"))
    req = request([(schema, "gone", "DROP TABLE IF EXISTS gone")], "task-b")
    applied = eng.apply(req)
    result = eng.progress(
        ProgressRequest(context="task-b", changes=req.changes, resume_state=applied.resume_state)
    )
    eng.close()
    assert result.state is EngineState.COMPLETED
    assert f"{schema}.gone was already absent" in " ".join(result.events), result.events


def test_direct_drop_that_ran_before_its_worker_died_is_reported_dropped(schema: str) -> None:
    """The first attempt checked the table (present) and saved that; the DROP ran and the worker
    died before recording it. The next attempt finds the table gone: done, not "absent"."""
    eng = _direct(schema)
    req = request([(schema, "present", "DROP TABLE present")], "task-c")
    applied = eng.apply(req)
    with connect(schema).cursor() as cur:
        cur.execute("DROP TABLE present")  # what the dead worker's statement did
    result = _direct(schema).progress(
        ProgressRequest(context="task-c", changes=req.changes, resume_state=applied.resume_state)
    )
    assert result.state is EngineState.COMPLETED
    assert any("dropped (by an earlier attempt" in e for e in result.events), result.events


# -- spirit ------------------------------------------------------------------------------------


def test_spirit_drop_of_an_absent_table_fails_and_if_exists_completes_saying_so(schema: str) -> None:
    eng = spirit_engine(schema)
    with pytest.raises(PermanentEngineError, match=ABSENT):
        eng.apply(request([(schema, "gone", "DROP TABLE gone")], "task-a"))
    req = request([(schema, "gone", "DROP TABLE IF EXISTS gone")], "task-b")
    assert eng.apply(req).accepted
    result = run_until(eng, req)
    eng.close()
    expected = f"DROP TABLE: {schema}.gone was already absent (DROP TABLE IF EXISTS did nothing)"
    assert result.tables[0].message == expected
    assert "already absent" in result.message


def test_spirit_drop_that_ran_before_its_worker_died_is_reported_dropped(
    schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker dies between its DROP and recording it done (here: the write of `done`
    fails). The intent it recorded before the DROP tells the next attempt the DROP was its own."""
    real_save = spirit_setup.checkpoint.save

    def die(*_: Any) -> None:
        raise SystemExit("worker killed right after the DROP")

    monkeypatch.setattr(spirit_setup.checkpoint, "save", die)
    req = request([(schema, "present", "DROP TABLE present")], "task-c")
    first = spirit_engine(schema)
    with pytest.raises(SystemExit):
        first.apply(req)
    first.close()
    assert "present" not in tables(schema)  # the DROP ran
    row = checkpoint_row(schema, "present", "task-c")
    assert row is not None and row["phase"] == "setup"  # the intent, recorded before it

    monkeypatch.setattr(spirit_setup.checkpoint, "save", real_save)
    second = spirit_engine(schema)
    assert second.apply(req).accepted
    result = run_until(second, req)
    second.close()
    assert result.state is EngineState.COMPLETED
    assert result.tables[0].message == "DROP TABLE: dropped (by an earlier attempt of this operation)"
