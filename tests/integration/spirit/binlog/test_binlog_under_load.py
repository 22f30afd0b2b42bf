"""The binlog change source under write load (test_copy_under_load.py's writers and shapes): four
threads insert, update, delete and change primary keys, mirroring every write into `expected` in
the same transaction, before, during and after the cutover. The worker process is SIGKILLed
mid-copy; writes go on with no worker alive (the binary log keeps them); a fresh engine continues
from the checkpointed position, cuts over while the writers write, and the table ends exactly
as `expected`."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.spirit.support import request, triggers
from tests.integration.spirit.test_copy_under_load import (
    ALTER,
    SHAPES,
    Shape,
    run_killed_mid_copy,
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
    req = request([(schema, "t", alter)], step_budget=0.05, chunk_rows=100, change_source="binlog")

    def nothing_on_the_users_table(killed_at: dict[str, Any]) -> None:
        assert killed_at["change_source"] == "binlog" and killed_at["binlog_position"]
        assert triggers(schema) == set()

    writers = run_killed_mid_copy(schema, shape, req, on_kill=nothing_on_the_users_table)
    # No write failed because of the engine (lock waits and deadlocks are counted, not failed:
    # the writers retry nothing, so any error would show here).
    assert not writers.errors, writers.errors
