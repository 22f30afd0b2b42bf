"""The fidelity matrix (test_fidelity_matrix.py, every case) run again on a private server with
binary logging, with `change_source: auto`: the binlog change source carries the changes
wherever the table allows it (binlogsource.table_refusal; it does for every case here), and the
oracle (a blocking ALTER on a copy) must agree. A representative subset runs once more with
the driving worker process SIGKILLed mid-copy, then resumed from its checkpointed position."""

from __future__ import annotations

import pytest

from tests.integration.spirit.oracle import Case, run_case
from tests.integration.spirit.support import checkpoint_row
from tests.integration.spirit.test_fidelity_matrix import CASES, KILLED

pytestmark = pytest.mark.integration

def _source_used(schema: str, case: Case) -> str | None:
    row = checkpoint_row(schema, "t", f"fid-{case.name}")
    return None if row is None else row["change_source"]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_fidelity_with_the_binlog_source(schema: str, oracle_schema: str, case: Case) -> None:
    outcome = run_case(schema, oracle_schema, case, change_source="auto")
    assert outcome.verdict == case.expect
    used = _source_used(schema, case)
    if case.expect == "identical":
        # No case of the matrix adds a unique key or has a key the events cannot give exactly
        # (test_binlog_source.py has those): the binlog carries every one of them.
        assert used == "binlog", used
        if case.writers:
            assert outcome.writes["insert"] and outcome.writes["pk_change"], outcome.writes


@pytest.mark.parametrize("case", [c for c in CASES if c.name in KILLED], ids=lambda c: c.name)
def test_binlog_fidelity_with_the_worker_killed_mid_copy(
    schema: str, oracle_schema: str, case: Case
) -> None:
    outcome = run_case(schema, oracle_schema, case, kill_mid_copy=True, change_source="auto")
    assert outcome.verdict == case.expect
    if case.expect == "identical":
        assert outcome.killed_in == "copy", outcome.killed_in
