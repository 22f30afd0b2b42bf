"""Deferred secondary indexes (engines/spirit/deferred.py): the shadow is copied without its
non-unique secondary keys, which are built online after the copy. The result must still be what
a blocking ALTER gives (the fidelity oracle), and a run interrupted around the build must resume
without starting over."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

from engines.base import EngineState, RetryableEngineError
from engines.spirit import runner
from tests.integration.spirit.oracle import (
    Case,
    Writers,
    control,
    cut_over_and_compare,
    run_case,
    seed,
)
from tests.integration.spirit.support import Worker, checkpoint_row, engine, request, run_until
from tests.support.mariadb import connect, fresh_schema

pytestmark = pytest.mark.integration


@pytest.fixture
def oracle_schema() -> Iterator[str]:
    with fresh_schema("sbt_oracle") as name:
        yield name


CREATE = (
    "CREATE TABLE t (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, a INT NOT NULL, "
    "b VARCHAR(40) NULL, c INT NULL, "
    "KEY b_prefix (b(10)) COMMENT 'prefix', UNIQUE KEY a_b (a, b), KEY c_a (c, a), KEY a_desc (a))"
)
ALTER = "ALTER TABLE t MODIFY c BIGINT NULL, ADD INDEX added (c, b), ADD UNIQUE KEY u_c (c, id)"


def _values(rng: random.Random) -> dict[str, Any]:
    return {"a": rng.randrange(10**9), "b": f"b{rng.randrange(10**6)}", "c": rng.randrange(1000)}


CASE = Case("deferred_keys", CREATE, ALTER, _values, rows=400)


def test_deferred_indexes_end_exactly_as_the_blocking_alter_makes_them(
    schema: str, oracle_schema: str
) -> None:
    outcome = run_case(schema, oracle_schema, CASE)
    assert outcome.verdict == "identical"
    assert outcome.writes["insert"] and outcome.writes["pk_change"], outcome.writes


class _Died(BaseException):
    """The worker died here (nothing of the engine's process survives it)."""


def _steps(eng: Any, req: Any, states: tuple[EngineState, ...] = ()) -> None:
    """Step like the orchestrator: a retryable failure (a deadlock with the writers) is retried;
    returns at one of `states`, or when a step raises anything else."""
    retries = 0
    for _ in range(2000):
        try:
            if eng.progress(req).state in states:
                return
        except RetryableEngineError:
            retries += 1
            assert retries < 50, "too many retryable failures"
    raise AssertionError(f"not in {states}")


def test_a_run_interrupted_before_and_after_the_index_build_resumes_without_starting_over(
    schema: str, oracle_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(schema, CASE)
    writers = Writers(schema, CASE)
    req = request(
        [(schema, "t", ALTER)],
        context="deferred",
        defer_cutover=True,
        step_budget=0.05,
        chunk_rows=50,
    )
    db = connect(schema)
    cur = db.cursor()
    original_build = runner.build
    writers.start()
    try:
        first = engine(schema)
        first.apply(req)
        row = checkpoint_row(schema, "t", "deferred")
        assert row is not None and row["deferred_keys"], "non-unique keys are deferred"
        run_id = row["run_id"]
        cur.execute("SHOW CREATE TABLE _sb_t_new")
        lean = str(cur.fetchone()[1])
        assert "KEY `c_a`" not in lean and "KEY `added`" not in lean and "UNIQUE KEY `u_c`" in lean

        # 1. The worker dies as the build is about to start.
        def die_before(*_: Any, **__: Any) -> int:
            raise _Died()

        monkeypatch.setattr(runner, "build", die_before)
        with pytest.raises(_Died):
            _steps(first, req)
        first.close()
        row = checkpoint_row(schema, "t", "deferred")
        assert row is not None and (row["phase"], row["run_id"]) == ("index", run_id)

        # 2. The next worker builds, and dies before recording it.
        def build_then_die(*args: Any, **kwargs: Any) -> int:
            original_build(*args, **kwargs)
            raise _Died()

        monkeypatch.setattr(runner, "build", build_then_die)
        second = engine(schema)
        with pytest.raises(_Died):
            _steps(second, req)
        second.close()
        row = checkpoint_row(schema, "t", "deferred")
        assert row is not None and (row["phase"], row["run_id"]) == ("index", run_id)

        # 3. The third recognises the finished build and carries on, on the same run.
        monkeypatch.setattr(runner, "build", die_before)  # a second build would be a bug
        third = engine(schema)
        third.apply(req)
        _steps(third, req, states=(EngineState.WAITING_FOR_CUTOVER,))
        row = checkpoint_row(schema, "t", "deferred")
        assert row is not None and row["run_id"] == run_id
    finally:
        writers.join()
    assert not writers.engine_caused(), writers.messages
    cut_over_and_compare(third, req, cur, schema, oracle_schema, CASE)
    cur.close()
    db.close()


def test_a_shadow_missing_its_indexes_after_the_build_starts_fresh(
    schema: str, db: pymysql.Connection
) -> None:
    """Past the build, the lean definition is no longer a valid shadow: keys dropped by hand
    after the build must not reach the cutover."""
    with db.cursor() as cur:
        cur.execute(CREATE)
        cur.executemany(
            "INSERT INTO t (a, b, c) VALUES (%s, %s, %s)", [(i, f"b{i}", i % 7) for i in range(300)]
        )
    req = request([(schema, "t", ALTER)], context="lean", defer_cutover=True, chunk_rows=100)
    eng = engine(schema)
    eng.apply(req)
    run_until(eng, req, states=(EngineState.WAITING_FOR_CUTOVER,))
    run_id = checkpoint_row(schema, "t", "lean")["run_id"]  # type: ignore[index]
    with db.cursor() as cur:
        cur.execute(
            "ALTER TABLE _sb_t_new DROP INDEX c_a, DROP INDEX added, DROP INDEX a_desc, DROP INDEX b_prefix"
        )
    events: list[str] = []
    done = run_until(
        eng,
        req,
        states=(EngineState.WAITING_FOR_CUTOVER,),
        between=lambda r: events.extend(r.events),
    )
    events.extend(done.events)
    assert checkpoint_row(schema, "t", "lean")["run_id"] != run_id  # type: ignore[index]
    assert any("starting fresh" in e and "lacks its secondary indexes" in e for e in events), events
    assert eng.cutover(control(req)).accepted
    run_until(eng, req)
    with db.cursor() as cur:
        cur.execute("SHOW CREATE TABLE t")
        final = str(cur.fetchone()[1])
    assert "KEY `c_a`" in final and "KEY `added`" in final
    eng.close()


BIG = Case("deferred_keys_big", CREATE, ALTER, _values, rows=20000)


@pytest.mark.parametrize(
    ("index_build_at", "phases"),
    # Alongside, from the first chunk (0), so the kill surely hits the build started in phase
    # `copy`: the copy goes on meanwhile and may end before the kill (then the checkpoint says
    # `index` while the step waits for that same build).
    [(None, ("index",)), (0, ("copy", "index"))],
    ids=["after-the-copy", "alongside"],
)
def test_a_worker_killed_while_the_indexes_are_built_resumes_to_the_blocking_alters_result(
    schema: str, oracle_schema: str, index_build_at: int | None, phases: tuple[str, ...]
) -> None:
    """A real SIGKILL with the index build's ALTER in flight, after the copy (phase `index`)
    or alongside it (phase `copy`, earlybuild.py): whether the server finished it or rolled it
    back, the next worker continues the same run and the oracle's verdict holds."""
    seed(schema, BIG)
    writers = Writers(schema, BIG)
    build = {} if index_build_at is None else {"index_build_at": index_build_at}
    req = request(
        [(schema, "t", ALTER)],
        context="killed-build",
        defer_cutover=True,
        step_budget=0.5,
        chunk_rows=2000,
        **build,
    )
    db = connect(schema)
    cur = db.cursor()
    writers.start()
    try:
        worker = Worker(schema, req, pause=0.0, die_mid_index_build_after=0.05)
        assert worker.wait(timeout=120) == -9
        row = checkpoint_row(schema, "t", "killed-build")
        assert row is not None and row["phase"] in phases, row and row["phase"]
        run_id = row["run_id"]
        eng = engine(schema)
        for _ in range(200):  # the dead worker's ALTER may still hold the table's lock
            if eng.apply(req).accepted:
                break
            time.sleep(0.05)
        _steps(eng, req, states=(EngineState.WAITING_FOR_CUTOVER,))
        assert checkpoint_row(schema, "t", "killed-build")["run_id"] == run_id  # type: ignore[index]
    finally:
        writers.join()
    assert not writers.engine_caused(), writers.messages
    cut_over_and_compare(eng, req, cur, schema, oracle_schema, BIG)
    eng.close()
    cur.close()
    db.close()
