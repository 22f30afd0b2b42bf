"""The planetscale engine under real worker processes: `celery -A tasks worker` and `beat`
processes, the machine's Redis and MariaDB, and a real emulator process that ticks on its own.

For each side-effecting call (create branch, create deploy request, deploy, apply-deploy) two
ways of losing its outcome, and for each the same end: exactly one branch and one deploy request
for the apply, every call took effect once, main changed, the apply completed.

- the emulator performs the call and loses the response (the engine must look before it calls
  again);
- the worker holding the lease is SIGKILLed right after the call: the emulator's
  `freeze_caller` fault stops (SIGSTOP) the calling process as its request arrives, so its
  socket stays open, holds the request, performs the call and answers into the frozen socket,
  then the test SIGKILLs the worker. The intent is persisted, the result never is. Only the
  recovery sweep can bring the apply back, and the next owner must find the call's effect, not
  call again;
- the same worker SIGKILLed with the call in flight (still held, so never performed): the next
  owner must find nothing and make the call itself, once.

Plus the emulator itself dying mid-deploy, and the CLI path once.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from engines.planetscale.naming import branch_name
from schemabot.api import ChangeSet, Client
from schemabot.storage import reads
from schemabot.storage.database import Database
from tests.support.emulator_process import EmulatorProcess
from tests.support.proc_env import ProcEnv, proc_env
from tests.support.processes import CeleryProcess, Cluster
from tests.support.servers import wait_for

pytestmark = pytest.mark.chaos

CALLS = ("create_branch", "create_deploy_request", "deploy", "apply_deploy")
EVENT_OF = {
    "create_branch": "branch.create",
    "create_deploy_request": "deploy_request.create",
    "deploy": "deploy_request.deploy",
    "apply_deploy": "deploy_request.apply_deploy",
}
ADD_SKU = "ALTER TABLE product ADD COLUMN sku VARCHAR(32) NULL"
CHANGES = [
    ChangeSet(namespace="commerce", ddl=[ADD_SKU]),
    ChangeSet(namespace="customers", ddl=["ALTER TABLE customer ADD INDEX idx_email (email)"]),
]
WORKERS = 2
TOKEN = "tok-secret-4f1c"  # the service token in the target DSN: it must never be written out
# A frozen caller's call is held this long before the emulator performs it (right after).
DELAY_MS = 1000
# How long the emulator holds the request of a caller it froze (`freeze_caller`): the test
# kills the caller well within it.
IN_FLIGHT_HOLD_MS = 5000


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorProcess]:
    """One emulator for the module that ticks by itself (workers drive it, nobody advances it).
    Deploys open a revert window, as on PlanetScale: applies submitted from Python skip it (so
    the engine's own skip-revert call runs under the same faults), the CLI tests use it."""
    emulator = EmulatorProcess(tick_interval=0.1, copy_ticks=2, revert_window=600)
    try:
        emulator.start()
        yield emulator
    finally:
        emulator.stop()
        emulator.drop_schemas()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, emulator: EmulatorProcess) -> Iterator[ProcEnv]:
    workdir = tmp_path_factory.mktemp("ps-workers")
    dsn = (
        f"planetscale://tok-id:{TOKEN}@acme/shop?main_branch=main&api_url={emulator.api_url}"
        "&create_settle_seconds=0"
    )
    # A step budget of 2 s (lease 3 s) leaves a delayed call time to be caught in flight: the
    # engine's HTTP timeout is what is left of the step budget.
    # Retries of an apply blocked on the provider are at most a second apart (the cap), so an
    # outage outlasts the whole retry budget in seconds.
    extra = {"SCHEMABOT_TARGET_PS": dsn, "SCHEMABOT_STEP_BUDGET": "2", "SCHEMABOT_RETRY_BACKOFF_MAX": "1"}
    with proc_env(workdir, str(workdir / "unused-fake.db"), extra=extra) as environment:
        yield environment


@pytest.fixture(scope="module")
def cluster(env: ProcEnv) -> Iterator[Cluster]:
    cluster = env.cluster()
    try:
        for i in range(WORKERS):
            cluster.worker(f"w{i}", wait=False)
        cluster.beat()
        yield cluster
    finally:
        cluster.stop()


def live_workers(cluster: Cluster) -> list[CeleryProcess]:
    return [p for p in cluster.processes if p.kind == "worker" and p.proc and p.proc.poll() is None]


@pytest.fixture
def workers(env: ProcEnv, cluster: Cluster, emulator: EmulatorProcess) -> Cluster:
    """Before each test: WORKERS live, ready workers (a test that killed one has started its
    replacement, which may still be booting), no apply of an earlier test still running, and the
    emulator back to a seeded main.

    A test that failed half-way can leave a worker frozen and its apply unfinished, holding its
    tables: every later test of the module would then fail with a table conflict. So frozen
    workers are replaced and unfinished applies cancelled first, and a failure stays one."""
    for proc in live_workers(cluster):
        if proc.stopped():
            proc.kill()
    for _ in range(WORKERS - len(live_workers(cluster))):
        cluster.worker(wait=False)
    for proc in live_workers(cluster):
        wait_for(lambda proc=proc: "ready." in proc.log(), 30, f"{proc.name} to start")
    emulator.clear_faults()
    cancel_unfinished(env.client())
    emulator.reset()
    emulator.seed()
    return cluster


@pytest.fixture
def state_db(env: ProcEnv) -> Iterator[Database]:
    db = Database(env.state_url)
    yield db
    db.dispose()


# -- helpers ----------------------------------------------------------------------------------


def cancel_unfinished(client: Client, timeout: float = 60) -> None:
    """Cancel every apply not yet finished (left by a test that failed) and wait for it to end."""
    unfinished = [st.apply_id for st in client.list_applies() if not st.is_terminal]
    for apply_id in unfinished:
        with contextlib.suppress(Exception):  # a state that refuses cancel: waited for below
            client.request_control(apply_id, "cancel")
    deadline = time.monotonic() + timeout
    for apply_id in unfinished:
        with contextlib.suppress(TimeoutError):
            client.wait(apply_id, timeout=max(deadline - time.monotonic(), 1), stop_at_waiting=False)


def submit(client: Client, **options: Any) -> str:
    return client.submit_apply("ps", "planetscale", CHANGES, skip_revert=True, **options).apply_id


def wait_state(client: Client, apply_id: str, *states: str, timeout: float = 60) -> None:
    wait_for(lambda: client.get_apply(apply_id).state in states, timeout, f"{apply_id} in {states}")


def assert_one_of_everything(emulator: EmulatorProcess, apply_id: str, call: str | None) -> None:
    """One branch, one deploy request, each creating call took effect once; main changed."""
    branches = [b["name"] for b in emulator.api("GET", "/branches").json()["data"]]
    assert sorted(branches) == ["main", branch_name(apply_id)]
    tagged = [
        dr
        for dr in emulator.api("GET", "/deploy-requests").json()["data"]
        if f"schemabot-apply: {apply_id}" in (dr.get("notes") or "")
    ]
    assert [dr["deployment_state"] for dr in tagged] == ["complete"]
    assert len(emulator.events("branch.create")) == 1
    assert len(emulator.events("deploy_request.create")) == 1
    assert len(emulator.events("deploy_request.deploy")) == 1
    # apply-deploy is called only for a deferred cutover (the apply_deploy cases).
    assert len(emulator.events("deploy_request.apply_deploy")) == (call == "apply_deploy")
    assert emulator.columns("commerce", "product") == ["id", "name", "price", "sku"]
    assert emulator.sql("customers", "SHOW INDEX FROM customer WHERE Key_name='idx_email'")


def assert_token_never_written(workers: Cluster, client: Client, state_db: Database, apply_id: str) -> None:
    """The service token appears in no worker log (the dead workers' included), no audit entry,
    error or stored resume state, even after lost answers and killed workers."""
    for proc in workers.processes:
        assert TOKEN not in proc.log(), proc.name
    snap = reads.snapshot(state_db, apply_id)
    stored = [snap.apply.error, *(op.resume_context for op in snap.operations), *client.log(apply_id)]
    assert TOKEN not in json.dumps(stored, default=str)


def lease_owner(db: Database, apply_id: str) -> str | None:
    return reads.snapshot(db, apply_id).apply.lease_owner


def persisted_intent(db: Database, apply_id: str) -> dict[str, Any] | None:
    (op,) = reads.snapshot(db, apply_id).operations
    return (op.resume_context or {}).get("intent")


def audit_of(client: Client, apply_id: str) -> list[tuple[str, str]]:
    return [(e.event, e.message or "") for e in client.log(apply_id)]


def submit_with_the_call_frozen(client: Client, emulator: EmulatorProcess, call: str, hold_ms: int) -> str:
    """Submit an apply whose `call` meets a `freeze_caller` fault holding it `hold_ms` (for
    apply-deploy: a deferred apply, the fault armed before its cutover is asked for)."""
    deferred = call == "apply_deploy"
    hold = {"kind": "freeze_caller", "target": call, "delay_ms": hold_ms}
    if not deferred:
        emulator.fault(**hold)
    apply_id = submit(client, defer_cutover=deferred)
    if deferred:
        wait_state(client, apply_id, "waiting_for_cutover")
        emulator.fault(**hold)
        client.request_control(apply_id, "cutover")
    return apply_id


def frozen_caller(emulator: EmulatorProcess, db: Database, apply_id: str, call: str) -> str:
    """The lease owner the emulator froze inside its `call`, proved: the emulator stopped the
    caller the instant the request arrived and says its connection was still open once it was
    stopped (so the worker's own timeout, what is left of its step budget, could not run out
    first), and the frozen process is the apply's owner."""
    wait_for(lambda: emulator.events("fault.freeze_caller.frozen"), 60, f"the {call} call to arrive")
    (frozen,) = emulator.events("fault.freeze_caller.frozen")
    assert frozen["detail"]["client_gone"] is False, "the caller had left before it was stopped"
    (pid,) = frozen["detail"]["pids"]
    owner = lease_owner(db, apply_id)
    assert owner is not None and owner.rsplit(":", 1)[1] == str(pid)  # the caller owns the apply
    return owner


def released_with_the_caller(emulator: EmulatorProcess, hold_ms: int, what: str) -> bool:
    """Whether the caller was still there (frozen, not killed) when the held request ended."""
    wait_for(lambda: emulator.events("fault.freeze_caller.released"), hold_ms / 1000 + 10, what)
    return not emulator.events("fault.freeze_caller.released")[0]["detail"]["client_gone"]


# -- the outcome of each side-effecting call is lost ------------------------------------------


@pytest.mark.parametrize("call", CALLS)
def test_lost_response_of_each_call_leaves_one_branch_and_one_deploy_request_and_completes(
    env: ProcEnv, emulator: EmulatorProcess, workers: Cluster, state_db: Database, call: str
) -> None:
    client = env.client()
    emulator.fault(kind="lose_response", target=call)
    deferred = call == "apply_deploy"  # apply-deploy is only called for a deferred cutover
    apply_id = submit(client, defer_cutover=deferred)
    if deferred:
        wait_state(client, apply_id, "waiting_for_cutover")
        client.request_control(apply_id, "cutover")

    final = client.wait(apply_id, timeout=60, stop_at_waiting=False)
    assert final.state == "completed", (final.error, workers.logs())
    assert len(emulator.events("fault.lose_response")) == 1  # the response really was lost
    assert_one_of_everything(emulator, apply_id, call)
    assert_token_never_written(workers, client, state_db, apply_id)
    assert final.attempt == 1  # handled inside the engine's step, not by failing the attempt


@pytest.mark.parametrize("call", CALLS)
def test_worker_sigkilled_right_after_each_call_resumes_without_duplicates(
    env: ProcEnv, emulator: EmulatorProcess, workers: Cluster, state_db: Database, call: str
) -> None:
    client = env.client()
    apply_id = submit_with_the_call_frozen(client, emulator, call, DELAY_MS)

    # The emulator froze the caller as its call arrived, so the socket stays open; it performs
    # the call and answers into the frozen socket; then the caller is killed.
    owner = frozen_caller(emulator, state_db, apply_id, call)
    assert released_with_the_caller(emulator, DELAY_MS, f"the emulator to release the {call} call")
    wait_for(lambda: emulator.events(EVENT_OF[call]), 10, f"the emulator to perform {call}")
    victim = workers.owner_of(owner)
    victim.kill()
    killed_at = time.monotonic()
    workers.worker(wait=False)  # a replacement boots while the lease runs out
    # The dead worker persisted its intent before the call and never recorded the result.
    assert (persisted_intent(state_db, apply_id) or {}).get("call") == call

    final = client.wait(apply_id, timeout=60, stop_at_waiting=False)
    assert final.state == "completed", (final.error, workers.logs())
    assert time.monotonic() - killed_at < 45
    assert_one_of_everything(emulator, apply_id, call)
    log = audit_of(client, apply_id)
    assert ("claimed", "recovery sweep: orphaned") in log
    assert any(event == "resume" and message.startswith("reattached") for event, message in log), log
    assert final.attempt == 1  # a dead worker is not a failed attempt
    assert_token_never_written(workers, client, state_db, apply_id)


@pytest.mark.parametrize("call", CALLS)
def test_worker_sigkilled_with_each_call_in_flight_resumes_and_makes_the_call_once(
    env: ProcEnv, emulator: EmulatorProcess, workers: Cluster, state_db: Database, call: str
) -> None:
    """The other side of the same moment: the worker dies while the emulator still holds its
    request, so the call is never performed (the emulator drops the request of a client that
    is gone). The intent is persisted with no effect behind it: the next owner must look,
    find nothing, and make the call itself, once.

    The moment is proven, not hoped for: the emulator stops the caller (SIGSTOP) the instant
    its request arrives (`freeze_caller`), and says its connection was still open once it was
    stopped. Killed from the test after a lookup instead, a worker whose call's timeout (what
    is left of its step budget) ran out first had retried and made the call before it died."""
    client = env.client()
    apply_id = submit_with_the_call_frozen(client, emulator, call, IN_FLIGHT_HOLD_MS)

    owner = frozen_caller(emulator, state_db, apply_id, call)
    workers.owner_of(owner).kill()
    workers.worker(wait=False)
    assert (persisted_intent(state_db, apply_id) or {}).get("call") == call

    final = client.wait(apply_id, timeout=60, stop_at_waiting=False)
    assert final.state == "completed", (final.error, workers.logs())
    # The dead worker's request, still held when it died, was dropped unread, not performed.
    assert not released_with_the_caller(
        emulator, IN_FLIGHT_HOLD_MS, "the emulator to release the dead worker's request"
    )
    assert_one_of_everything(emulator, apply_id, call)
    assert ("claimed", "recovery sweep: orphaned") in audit_of(client, apply_id)
    assert final.attempt == 1


# -- the emulator dies ------------------------------------------------------------------------


def test_emulator_killed_and_restarted_mid_deploy_loses_nothing_and_the_apply_completes(
    env: ProcEnv, emulator: EmulatorProcess, workers: Cluster, state_db: Database
) -> None:
    client = env.client()
    emulator.fault(kind="stall", deploy_state="in_progress", times=-1)  # hold it mid-copy
    apply_id = submit(client)
    wait_state(client, apply_id, "running")
    (op,) = reads.snapshot(state_db, apply_id).operations
    number = (op.resume_context or {}).get("dr_number")
    assert number is not None

    boots = emulator.status()["boots"]
    emulator.kill()  # SIGKILL: no chance to tidy up; workers now get connection refused
    # The outage is seen: a poll ran out of its step budget retrying the dead API. The deploy
    # request may be running on, so the apply waits for the provider instead of failing.
    wait_state(client, apply_id, "waiting_for_provider", timeout=30)
    emulator.start()  # same port, same MariaDB prefix: everything comes back from MariaDB
    assert emulator.status()["boots"] == boots + 1
    emulator.clear_faults()

    final = client.wait(apply_id, timeout=60, stop_at_waiting=False)
    assert final.state == "completed", (final.error, workers.logs())
    (dr,) = emulator.api("GET", "/deploy-requests").json()["data"]
    assert dr["number"] == number  # the same deploy request, carried on
    assert_one_of_everything(emulator, apply_id, None)
    log = audit_of(client, apply_id)
    blocked = [m for event, m in log if event == "state" and m.startswith("blocked on the provider")]
    assert blocked, log  # the outage was said once per distinct reason, not once per retry
    assert len(blocked) <= 2, blocked  # (connection refused, then maybe a 5xx while booting)
    reattached = f"reattached at deploy request #{number} ("
    assert any(event == "resume" and message.startswith(reattached) for event, message in log), log


def test_provider_api_failing_longer_than_the_retry_budget_mid_deploy_still_completes_once(
    env: ProcEnv, emulator: EmulatorProcess, workers: Cluster, state_db: Database
) -> None:
    """Issue 11, defect 2: every API call answers HTTP 500 for longer than the whole retry budget
    while the deploy runs on (and finishes on PlanetScale's side). The apply never fails: it
    waits for the provider, says why, and completes with the one deploy request it opened."""
    client = env.client()
    emulator.fault(kind="stall", deploy_state="in_progress", times=-1)  # hold it mid-copy
    apply_id = submit(client)
    wait_state(client, apply_id, "running")
    (op,) = reads.snapshot(state_db, apply_id).operations
    number = (op.resume_context or {}).get("dr_number")
    assert number is not None

    emulator.clear_faults()  # the deploy goes on ...
    emulator.fault(kind="error", path="/(branches|deploy-requests)", status=500, times=-1)  # ... unseen
    budget = env.settings().retry_budget
    states: set[str] = set()

    def past_the_budget() -> bool:
        st = client.get_apply(apply_id)
        states.add(st.state)
        return st.attempt > budget + 1 or st.is_terminal  # (a terminal apply fails below)

    wait_for(past_the_budget, 90, f"{apply_id} retried past its budget of {budget}")
    st = client.get_apply(apply_id)
    assert st.state == "waiting_for_provider" and "failed" not in states, (states, st.error)
    assert f"deploy request #{number}" in (st.attention or "") and "HTTP 500" in (st.attention or "")
    shown = json.loads(env.cli("status", apply_id, "--json").stdout)
    assert shown["state"] == "waiting_for_provider" and shown["attention"] == st.attention

    emulator.clear_faults()
    final = client.wait(apply_id, timeout=60, stop_at_waiting=False)
    assert final.state == "completed", (final.error, workers.logs()[-4000:])
    assert final.attention is None
    assert_one_of_everything(emulator, apply_id, None)
    log = audit_of(client, apply_id)
    blocked = [m for event, m in log if event == "state" and m.startswith("blocked on the provider")]
    assert len(blocked) == 1, "\n".join(f"{e} {m[:160]}" for e, m in log)  # one entry for the outage


# -- the CLI ----------------------------------------------------------------------------------


def state_per_cli(env: ProcEnv, apply_id: str, state: str) -> bool:
    """Does `schemabot status --json` show the apply in `state`?"""
    shown = env.cli("status", apply_id, "--json")
    return shown.returncode == 0 and json.loads(shown.stdout)["state"] == state


def test_cli_apply_waits_at_cutover_then_cutover_and_skip_revert_complete(
    env: ProcEnv, emulator: EmulatorProcess, workers: Cluster
) -> None:
    applied = env.cli(
        "apply",
        "--target",
        "ps",
        "--engine",
        "planetscale",
        "--namespace",
        "commerce",
        "--ddl",
        ADD_SKU,
        "--defer-cutover",
        "--wait",
        timeout=90,
    )
    assert applied.returncode == 0, applied.stderr + workers.logs()
    apply_id = applied.stdout.split()[0]
    assert f"{apply_id} waiting_for_cutover" in applied.stdout
    assert "sku" not in emulator.columns("commerce", "product")

    cut = env.cli("cutover", apply_id)
    assert (cut.returncode, cut.stdout.strip()) == (0, f"cutover requested for {apply_id}"), cut.stderr
    wait_for(lambda: state_per_cli(env, apply_id, "revert_window"), 60, "the revert window", 0.5)
    assert "sku" in emulator.columns("commerce", "product")  # live, still revertible

    skipped = env.cli("skip-revert", apply_id)
    assert skipped.returncode == 0, skipped.stderr
    wait_for(lambda: state_per_cli(env, apply_id, "completed"), 60, f"{apply_id} to complete", 0.5)
    assert emulator.columns("commerce", "product") == ["id", "name", "price", "sku"]
    assert len(emulator.events("deploy_request.apply_deploy")) == 1
    assert len(emulator.events("deploy_request.skip_revert")) == 1
    assert len(emulator.events("deploy_request.create")) == 1


def test_cli_apply_wait_exits_0_in_the_revert_window_then_revert_restores_main(
    env: ProcEnv, emulator: EmulatorProcess, workers: Cluster
) -> None:
    """A Vitess deploy without --skip-revert waits in its revert window, as the user asked:
    `--wait` returns there with success (as `watch` does), and `revert` undoes the change."""
    applied = env.cli(
        "apply", "--target", "ps", "--engine", "planetscale", "--namespace", "commerce",
        "--ddl", ADD_SKU, "--wait", timeout=90,
    )  # fmt: skip
    apply_id = applied.stdout.split()[0]
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert f"{apply_id} revert_window" in applied.stdout
    assert "sku" in emulator.columns("commerce", "product")

    reverted = env.cli("revert", apply_id)
    assert reverted.returncode == 0, reverted.stderr
    wait_for(lambda: state_per_cli(env, apply_id, "reverted"), 60, f"{apply_id} to revert", 0.5)
    assert emulator.columns("commerce", "product") == ["id", "name", "price"]
    assert len(emulator.events("deploy_request.revert")) == 1
