"""The binlog change source under write load (test_copy_under_load.py's writers and shapes): four
threads insert, update, delete and change primary keys, mirroring every write into `expected` in
the same transaction, before, during and after the cutover. The worker process is SIGKILLed
mid-copy; writes go on with no worker alive (the binary log keeps them); a fresh engine continues
from the checkpointed position, cuts over while the writers write, and the table ends exactly
as `expected`."""

from __future__ import annotations

import pytest

from engines.base import EngineState
from tests.integration.spirit.support import (
    Worker,
    checkpoint_row,
    engine,
    request,
    run_until,
    triggers,
    wait_for,
)
from tests.integration.spirit.test_copy_under_load import (
    ALTER,
    ROWS,
    SHAPES,
    Shape,
    Writers,
    _create,
    _differences,
)

pytestmark = pytest.mark.integration


# The same change plus a column type change: the checksum then compares converted values
# (checksum._compare_converted), the slow path a binlog judge goes through.
CHANGED_TYPE = f"{ALTER}, MODIFY tx VARCHAR(120) CHARACTER SET utf8mb4 NULL"


@pytest.mark.parametrize("alter", [ALTER, CHANGED_TYPE], ids=["add_column", "type_change"])
@pytest.mark.parametrize("shape", SHAPES, ids=[s.name for s in SHAPES])
def test_binlog_copy_and_cutover_under_writes_with_the_worker_killed(
    schema: str, shape: Shape, alter: str
) -> None:
    writers = Writers(schema, shape, _create(schema, shape))
    writers.start()
    try:
        req = request(
            [(schema, "t", alter)], step_budget=0.05, chunk_rows=100, change_source="binlog"
        )
        worker = Worker(schema, req, pause=0.03)

        def copied_enough() -> bool:
            row = checkpoint_row(schema, "t")
            return bool(row and row["phase"] == "copy" and row["rows_copied"] >= ROWS * 0.4)

        wait_for(copied_enough, 60, "the worker to copy 40% of the rows")
        worker.kill()
        killed_at = checkpoint_row(schema, "t")
        assert killed_at is not None and killed_at["phase"] == "copy"
        assert killed_at["change_source"] == "binlog" and killed_at["binlog_position"]
        assert triggers(schema) == set()  # nothing on the user's table

        before = writers.total()
        wait_for(lambda: writers.total() >= before + 200, 60, "writes while no worker lives")

        eng = engine(schema)
        attached = eng.apply(req)
        assert attached.accepted and attached.reattached and attached.restart_reason is None
        result = run_until(eng, req)
        assert result.state == EngineState.COMPLETED
        eng.close()
        after_cutover = writers.total()
        wait_for(lambda: writers.total() >= after_cutover + 100, 60, "writes after cutover")
    finally:
        writers.join()

    assert _differences(schema, shape) == {
        "missing": 0,
        "extra": 0,
        "differing": 0,
        "added_not_default": 0,
    }
    assert all(writers.counts[op] > 0 for op in ("insert", "update", "delete", "pk_change")), (
        writers.counts
    )
    # No write failed because of the engine (lock waits and deadlocks are counted, not failed:
    # the writers retry nothing, so any error would show here).
    assert not writers.errors, writers.errors
