"""The deferred secondary indexes built alongside the end of the copy (engines/spirit/earlybuild.py):
the result is still the blocking ALTER's (the fidelity oracle), under writes; a build that cannot
run alongside the copy is left to the `index` phase and never fails the run. A worker killed with
this build in flight is in test_deferred_indexes.py (`alongside`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pymysql
import pytest

from engines.base import EngineState, ProgressResult
from engines.spirit import deferred
from tests.integration.spirit.oracle import (
    Writers,
    cut_over_and_compare,
    seed,
)
from tests.integration.spirit.support import engine, request, run_until
from tests.integration.spirit.test_deferred_indexes import ALTER, BIG
from tests.support.mariadb import connect, fresh_schema

pytestmark = pytest.mark.integration


@pytest.fixture
def oracle_schema() -> Iterator[str]:
    with fresh_schema("sbt_oracle") as name:
        yield name


def _run(
    schema: str,
    oracle_schema: str,
    between: Callable[[ProgressResult, list[str]], None] | None = None,
    after_apply: Callable[[], None] | None = None,
    **options: object,
) -> list[str]:
    """BIG (20,000 rows, four deferred keys) to its cutover under writes; the table must then be
    exactly what the blocking ALTER makes of the same rows. Returns the engine's events."""
    seed(schema, BIG)
    writers = Writers(schema, BIG)
    req = request(
        [(schema, "t", ALTER)],
        context="early-build",
        defer_cutover=True,
        step_budget=0.2,
        chunk_rows=500,
        **{"index_build_at": "auto", **options},
    )
    events: list[str] = []

    def collect(result: ProgressResult) -> None:
        events.extend(result.events)
        if between is not None:
            between(result, events)

    eng = engine(schema)
    writers.start()
    try:
        eng.apply(req)
        if after_apply is not None:
            after_apply()
        done = run_until(eng, req, states=(EngineState.WAITING_FOR_CUTOVER,), between=collect)
        events.extend(done.events)
    finally:
        writers.join()
    assert not writers.engine_caused(), writers.messages
    db = connect(schema)
    cur = db.cursor()
    cut_over_and_compare(eng, req, cur, schema, oracle_schema, BIG)
    eng.close()
    cur.close()
    db.close()
    return events


def test_the_indexes_are_built_alongside_the_copy_and_end_as_the_blocking_alter_makes_them(
    schema: str, oracle_schema: str
) -> None:
    events = _run(schema, oracle_schema)
    started = [i for i, e in enumerate(events) if "4 deferred index(es) alongside the copy" in e]
    built = [i for i, e in enumerate(events) if "built 4 deferred index(es) alongside the copy" in e]
    finished = [i for i, e in enumerate(events) if "copy finished" in e]
    assert started and built and finished, events
    # `auto` starts the build once a third of the table is copied (four keys: 1 / (1 + 2)),
    # and it ended before the copy did, so the `index` phase had nothing left to build.
    assert "starts at 33%" in events[started[0]], events[started[0]]
    assert started[0] < finished[0] and started[0] < built[0], events
    assert not any("built 4 deferred index(es) in" in e for e in events), events  # no second build
    assert any("deferred indexes already built; checksum begins" in e for e in events), events


def test_a_build_that_cannot_run_alongside_the_copy_is_left_to_the_index_phase(
    schema: str, oracle_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone holds the shadow's metadata lock (an open transaction that read it): the build's
    ALTER times out, the run goes on copying, and the `index` phase builds once it is free."""
    monkeypatch.setattr(deferred, "BUILD_ATTEMPTS", 1)
    holder = connect(schema)
    held = {"on": False}

    def hold() -> None:  # once the shadow exists, before the first step
        with holder.cursor() as cur:
            cur.execute("START TRANSACTION")
            cur.execute("SELECT COUNT(*) FROM _sb_t_new")  # a shared metadata lock until COMMIT
        held["on"] = True

    def free_after_the_failure(result: ProgressResult, events: list[str]) -> None:
        if held["on"] and any("alongside the copy failed" in e for e in events):
            with holder.cursor() as cur:
                cur.execute("COMMIT")
            held["on"] = False

    try:
        events = _run(schema, oracle_schema, between=free_after_the_failure, after_apply=hold)
    finally:
        with contextlib.suppress(pymysql.MySQLError):
            holder.cursor().execute("COMMIT")
        holder.close()
    failed = [e for e in events if "alongside the copy failed" in e]
    assert failed and "(1205)" in failed[0], events  # the metadata lock wait timed out
    assert any("built 4 deferred index(es) in" in e for e in events), events  # by the index phase


@pytest.mark.parametrize("index_build_at", [1, None], ids=["1", "default"])
def test_index_build_at_1_and_by_default_builds_after_the_copy(
    schema: str, oracle_schema: str, index_build_at: int | None
) -> None:
    events = _run(schema, oracle_schema, index_build_at=index_build_at)
    assert not any("alongside" in e for e in events), events
    assert any("built 4 deferred index(es) in" in e for e in events), events
