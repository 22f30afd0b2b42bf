"""Issue 2, end to end: the CLI, a real Celery worker process, the machine's Redis and MariaDB."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from schemabot.api import ApplyStatus, ChangeSet
from schemabot.errors import LeaseLost
from schemabot.messaging import producer_dispatcher
from schemabot.states import State
from schemabot.storage import fenced_writes, reads
from schemabot.storage.database import Database
from tests.support.fake_engine import FakeTarget
from tests.support.mariadb import connect
from tests.support.proc_env import ProcEnv, proc_env
from tests.support.processes import Cluster
from tests.support.servers import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcEnv]:
    workdir = tmp_path_factory.mktemp("e2e")
    fake = FakeTarget(workdir / "fake.db")
    with proc_env(workdir, fake.path) as environment:
        yield environment


@pytest.fixture(scope="module")
def worker(env: ProcEnv) -> Iterator[Cluster]:
    cluster = env.cluster()
    cluster.worker(concurrency=2)
    try:
        yield cluster
    finally:
        cluster.stop()


def _json(result: object) -> dict:  # type: ignore[type-arg]
    return json.loads(result.stdout)  # type: ignore[attr-defined]


def _columns(schema: str, table: str) -> list[str]:
    conn = connect(schema)
    with conn.cursor() as cur:
        cur.execute(f"SHOW COLUMNS FROM `{table}`")
        return [r[0] for r in cur.fetchall()]


def test_create_table_and_instant_add_column_complete_through_the_cli(env: ProcEnv, worker: Cluster) -> None:
    create = env.cli(
        "apply",
        "--target",
        "local",
        "--engine",
        "direct",
        "--ddl",
        "CREATE TABLE orders (id BIGINT PRIMARY KEY, total INT)",
        "--wait",
        "--json",
    )
    assert create.returncode == 0, create.stderr + worker.logs()
    apply_id = _json(create)["apply_id"]
    assert _columns(env.target_schema, "orders") == ["id", "total"]

    alter = env.cli(
        "apply",
        "--target",
        "local",
        "--engine",
        "direct",
        "--ddl",
        "ALTER TABLE orders ADD COLUMN note VARCHAR(20)",
        "--wait",
        "--json",
    )
    assert alter.returncode == 0, alter.stderr + worker.logs()
    assert _columns(env.target_schema, "orders") == ["id", "total", "note"]

    status = _json(env.cli("status", _json(alter)["apply_id"], "--json"))
    assert {k: status[k] for k in ("state", "engine", "target", "error", "attempt")} == {
        "state": "completed",
        "engine": "direct",
        "target": "local",
        "error": None,
        "attempt": 1,
    }
    (task,) = status["tasks"]
    assert {k: task[k] for k in ("namespace", "table", "action", "ddl", "state", "percent")} == {
        "namespace": env.target_schema,
        "table": "orders",
        "action": "alter",
        "ddl": "ALTER TABLE orders ADD COLUMN note VARCHAR(20)",
        "state": "completed",
        "percent": 100.0,
    }
    assert {"rows_copied", "rows_total", "eta_seconds"} <= set(task)
    log = [e["message"] for e in json.loads(env.cli("log", apply_id, "--json").stdout)]
    assert any("create done" in (m or "") for m in log)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--target", "local", "--engine", "direct", "--ddl", "this is not sql"], "is not a CREATE TABLE"),
        (
            ["--target", "local", "--engine", "direct", "--ddl", "ALTER TABLE a ADD c INT; DROP TABLE b"],
            "holds 2 statements",
        ),
        (["--target", "nowhere", "--engine", "direct", "--ddl", "DROP TABLE x"], "unknown target 'nowhere'"),
        (["--target", "local", "--engine", "warp", "--ddl", "DROP TABLE x"], "unknown engine 'warp'"),
        (["--target", "local", "--engine", "direct"], "Missing option '--ddl'"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_stores_nothing(
    env: ProcEnv, args: list[str], fragment: str
) -> None:
    before = json.loads(env.cli("list", "--json").stdout)
    result = env.cli("apply", *args)
    assert result.returncode == 2
    assert fragment in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert json.loads(env.cli("list", "--json").stdout) == before


def test_unknown_apply_id_exits_2(env: ProcEnv) -> None:
    result = env.cli("status", "apply-doesnotexist")
    assert (result.returncode, result.stderr.strip()) == (2, "error: no apply 'apply-doesnotexist'")


def test_one_idempotency_key_gives_one_apply(env: ProcEnv, worker: Cluster) -> None:
    args = [
        "apply",
        "--target",
        "local",
        "--engine",
        "direct",
        "--idempotency-key",
        "ci-4711",
        "--ddl",
        "CREATE TABLE idem (id INT PRIMARY KEY)",
        "--json",
    ]
    first, second = env.cli(*args), env.cli(*args)
    assert first.returncode == second.returncode == 0
    assert _json(first)["apply_id"] == _json(second)["apply_id"]
    other = env.cli(
        "apply",
        "--target",
        "local",
        "--engine",
        "direct",
        "--idempotency-key",
        "ci-4711",
        "--ddl",
        "CREATE TABLE idem2 (id INT PRIMARY KEY)",
    )
    assert other.returncode == 2 and "already used" in other.stderr
    ids = [a["apply_id"] for a in json.loads(env.cli("list", "--json").stdout)]
    assert ids.count(_json(first)["apply_id"]) == 1


def _direct_apply_that_fails(env: ProcEnv, create_table: str, ddl: str) -> ApplyStatus:
    """Create a table on the target, apply `ddl` with the direct engine and --wait: exit 1.
    (--allow-unsafe: a DROP COLUMN is destructive, and here the target must be the one to refuse.)"""
    conn = connect(env.target_schema)
    with conn.cursor() as cur:
        cur.execute(create_table)
    result = env.cli(
        "apply", "--target", "local", "--engine", "direct", "--ddl", ddl, "--wait", "--allow-unsafe"
    )
    assert result.returncode == 1, result.stderr
    status = env.client().get_apply(result.stdout.split()[0])
    assert status.state == "failed"
    return status


def test_an_alter_that_would_copy_the_table_is_refused_naming_spirit(env: ProcEnv, worker: Cluster) -> None:
    status = _direct_apply_that_fails(
        env, "CREATE TABLE widen (id INT PRIMARY KEY, qty INT)", "ALTER TABLE widen MODIFY qty BIGINT"
    )
    assert "spirit" in (status.error or "") and "Cannot change column type" in (status.error or "")


def test_s25_ddl_rejected_by_the_target_fails_with_its_message(env: ProcEnv, worker: Cluster) -> None:
    status = _direct_apply_that_fails(
        env, "CREATE TABLE rejected (id INT PRIMARY KEY)", "ALTER TABLE rejected DROP COLUMN nope"
    )
    assert "Can't DROP COLUMN `nope`; check that it exists" in (status.error or "")
    assert status.tasks[0].state == "failed"


@pytest.mark.parametrize("engine", ["direct", "spirit"])
def test_drop_of_an_absent_table_through_the_cli_fails_unless_if_exists_which_says_already_absent(
    env: ProcEnv, worker: Cluster, engine: str
) -> None:
    """Issue 10 §3: `DROP TABLE` of a table that does not exist reported `completed` (spirit).
    The rule of every engine (docs/architecture.md §5.1): it fails and says how to accept it;
    with IF EXISTS it completes and says "already absent" in status and in the log."""
    ghost = f"ghost_{engine}"
    ddl = f"DROP TABLE {ghost}"
    args = ("--target", "local", "--engine", engine, "--ddl", ddl, "--allow-unsafe", "--wait")
    plain = env.cli("apply", *args)
    assert plain.returncode == 1, plain.stderr + worker.logs()
    failed = env.client().get_apply(plain.stdout.split()[0])
    assert failed.state == "failed"
    assert f"{env.target_schema}.{ghost} does not exist; use DROP TABLE IF EXISTS" in (failed.error or "")

    accepted = env.cli(
        "apply",
        "--target",
        "local",
        "--engine",
        engine,
        "--ddl",
        f"DROP TABLE IF EXISTS {ghost}",
        "--wait",
        "--allow-unsafe",
        "--json",
    )
    assert accepted.returncode == 0, accepted.stderr + worker.logs()
    apply_id = _json(accepted)["apply_id"]
    absent = f"{env.target_schema}.{ghost} was already absent"
    status = env.cli("status", apply_id)
    assert "completed" in status.stdout and absent in status.stdout, status.stdout
    log = env.cli("log", apply_id)
    assert absent in log.stdout, log.stdout


def test_a_write_with_a_stale_fencing_token_is_refused(env: ProcEnv, worker: Cluster) -> None:
    client = env.client()
    apply_id = client.submit_apply("fake", "fake", [ChangeSet(["ALTER TABLE t ADD c INT"], "app")]).apply_id
    client.wait(apply_id, timeout=60)
    db = Database(env.state_url)
    token = client.get_apply(apply_id)  # completed: every token is now stale
    assert token.state == "completed"
    with pytest.raises(LeaseLost):
        fenced_writes.note(db, apply_id, 1, "stale", "an old owner writes")
    with pytest.raises(LeaseLost):
        fenced_writes.record_failure(
            db, apply_id, 1, "late", retryable=False, operation_id=None, backoff_seconds=0
        )
    assert client.get_apply(apply_id).state == "completed"
    db.dispose()


def test_s19_duplicated_and_stale_poll_messages_through_the_broker_do_nothing(
    env: ProcEnv, worker: Cluster, tmp_path: Path
) -> None:
    fake = FakeTarget(env.env["SCHEMABOT_TARGET_FAKE"].removeprefix("fake://"))
    fake.set_knob("step_sleep", 0.3)
    fake.set_knob("rows_total", 30)
    client = env.client()
    apply_id = client.submit_apply("fake", "fake", [ChangeSet(["ALTER TABLE dup ADD c INT"], "app")]).apply_id
    db = Database(env.state_url)
    wait_for(lambda: client.get_apply(apply_id).state == "running", 30, "the apply to run")
    row = reads.snapshot(db, apply_id).apply
    dispatcher = producer_dispatcher(env.env["SCHEMABOT_BROKER_URL"], env.env["SCHEMABOT_QUEUE"])
    for _ in range(3):  # copies of the message the driver is about to receive, plus stale ones
        dispatcher.poll_progress(apply_id, row.lease_token, row.poll_seq, 0)
        dispatcher.poll_progress(apply_id, row.lease_token - 1, row.poll_seq, 0)
    final = client.wait(apply_id, timeout=60)
    assert final.state == "completed"
    task_id = final.tasks[0].task_id
    assert fake.query("SELECT COUNT(*) AS n FROM violations")[0]["n"] == 0
    assert fake.work(task_id)["rows_done"] == 30
    logs = worker.logs()
    assert logs.count("'stale'") >= 5, logs[-3000:]
    assert final.state is State.COMPLETED
    db.dispose()


def test_sigusr2_to_a_pool_process_writes_its_threads_stacks_to_the_log(worker: Cluster) -> None:
    """How an operator (and a chaos test that times out) sees where a step waits, without
    stopping the worker (README, Watching it)."""
    before = {proc.name: len(proc.log()) for proc in worker.processes}
    text = worker.stacks()
    dumped = [p for p in worker.processes if "most recent call first" in p.log()[before[p.name]:]]
    assert dumped, text[-3000:]
    assert all(p.proc is not None and p.proc.poll() is None for p in worker.processes)
