"""`schemabot apply --engine auto` on one MariaDB target whose statements need different engines
(issue 13 §2, docs/architecture.md §5.10): an instant ADD COLUMN (direct) and an INT -> BIGINT
MODIFY (a copy: spirit), through the real CLI, a real Celery worker, Redis and MariaDB."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fake_engine import FakeTarget
from tests.support.mariadb import fresh_schema
from tests.support.mixed_tables import (
    COPY_DDL,
    INSTANT_DDL,
    leftovers,
    make_tables,
    run_blocking,
    snapshot,
)
from tests.support.proc_env import ProcEnv, proc_env

pytestmark = pytest.mark.integration


@pytest.fixture
def env(tmp_path: Path) -> Iterator[ProcEnv]:
    fake = FakeTarget(tmp_path / "unused-fake.db")
    with proc_env(tmp_path, fake.path) as environment:
        yield environment


def test_s28_apply_engine_auto_runs_each_table_on_its_engine_in_one_apply_equal_to_blocking_alters(
    env: ProcEnv,
) -> None:
    make_tables(env.target_schema, 20_000)
    cluster = env.cluster()
    try:
        cluster.worker("a")
        # Statement order as given: the copy first; the apply runs the native change first.
        submitted = env.cli(
            "apply", "--target", "local", "--engine", "auto", "--ddl", COPY_DDL, "--ddl", INSTANT_DDL,
            "--json", "--wait", timeout=180,
        )
        assert submitted.returncode == 0, (submitted.stdout, submitted.stderr, cluster.logs())
        apply_id = json.loads(submitted.stdout)["apply_id"]
    finally:
        cluster.stop()

    status = env.client().get_apply(apply_id)
    assert status.state == "completed" and status.engine == "auto"
    assert [(t.table, t.engine, t.state) for t in status.tasks] == [
        ("accounts", "direct", "completed"),
        ("events", "spirit", "completed"),
    ]
    reasons = {t.table: t.engine_reason or "" for t in status.tasks}
    assert "instantly" in reasons["accounts"] and "copy" in reasons["events"]

    shown = env.cli("status", apply_id)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith(f"{apply_id}  completed  engine=auto")
    [accounts] = [line for line in lines if line.startswith(f"  {env.target_schema}.accounts  alter")]
    [events] = [line for line in lines if line.startswith(f"  {env.target_schema}.events  alter")]
    assert f"engine=direct ({reasons['accounts']})" in accounts
    assert f"engine=spirit ({reasons['events']})" in events
    http_like = env.client().get_apply(apply_id).to_dict()
    assert [(t["engine"], t["engine_reason"]) for t in http_like["tasks"]] == [
        ("direct", reasons["accounts"]),
        ("spirit", reasons["events"]),
    ]

    # The audit log says which engine ran what: direct's statement, spirit's cutover.
    log = " | ".join(e.message or "" for e in env.client().log(apply_id))
    assert "accounts: alter done (ALGORITHM=INSTANT)" in log
    assert "per task: 1 on direct, 1 on spirit" in log

    with fresh_schema("sbt_oracle") as oracle:
        make_tables(oracle, 20_000)
        run_blocking(oracle)
        assert snapshot(env.target_schema) == snapshot(oracle)
    assert leftovers(env.target_schema) == []
