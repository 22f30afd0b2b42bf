"""S30 with real processes (docs/architecture.md §10): an apply whose every engine step kills the
worker process that runs it (SIGKILL, as the OOM killer does) is re-driven `orphan_claim_limit`
times, then parked in needs_attention with the reason, a webhook and an audit entry, while another
apply on the same workers completes; `schemabot adopt` through the CLI drives it again once the
cause is gone."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from schemabot.api import ChangeSet, Client
from tests.support.fake_engine import FakeTarget
from tests.support.proc_env import ProcEnv, proc_env
from tests.support.servers import wait_for
from tests.support.webhook_receiver import Receiver, receiver

pytestmark = pytest.mark.chaos
LIMIT = 2


@pytest.fixture
def fake(tmp_path: Path) -> FakeTarget:
    target = FakeTarget(tmp_path / "fake.db")
    target.set_knob("rows_total", 12)
    target.set_knob("rows_per_step", 2)
    target.set_knob("step_sleep", 0.1)
    target.set_knob("kill_on_table", "poison")
    return target


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


@pytest.fixture
def env(tmp_path: Path, fake: FakeTarget, hook: Receiver) -> Iterator[ProcEnv]:
    extra = {
        "SCHEMABOT_ORPHAN_CLAIM_LIMIT": str(LIMIT),
        "SCHEMABOT_WEBHOOK_URL": hook.url,
        "SCHEMABOT_WEBHOOK_EVENTS": "needs_attention",
    }
    with proc_env(tmp_path, fake.path, extra=extra) as environment:
        yield environment


def submit(client: Client, table: str) -> str:
    changes = [ChangeSet([f"ALTER TABLE {table} ADD c INT"], "app")]
    return client.submit_apply("fake", "fake", changes).apply_id


def test_s30_a_driver_killed_on_every_tick_is_parked_and_adopted_through_the_cli(
    env: ProcEnv, fake: FakeTarget, hook: Receiver
) -> None:
    client = env.client()
    cluster = env.cluster()
    try:
        workers = [cluster.worker("a"), cluster.worker("b")]
        cluster.beat()
        poison = submit(client, "poison")
        healthy = submit(client, "t")

        wait_for(
            lambda: client.get_apply(poison).state == "needs_attention", 120, "the poison to be parked"
        )
        deaths = [c for c in fake.calls("progress") if "poison" in c["changes"]]
        claims = [e for e in client.log(poison) if e.event == "claimed"]
        assert [e.detail["reason"] for e in claims] == ["orphaned"] * LIMIT  # type: ignore[index]
        assert len(deaths) == LIMIT + 1  # every step it was given killed its worker
        assert len({d["pid"] for d in deaths}) == LIMIT + 1  # a new pool child each time

        # Meanwhile the other apply, on the same two workers, went on and completed.
        final_healthy = client.wait(healthy, timeout=60)
        assert final_healthy.state == "completed", cluster.logs()
        assert all(w.proc is not None and w.proc.poll() is None for w in workers)  # pools survived
        done_at = next(e.at for e in client.log(healthy) if e.new_state == "completed")
        parked_entry = next(e.at for e in client.log(poison) if e.new_state == "needs_attention")
        assert done_at is not None and parked_entry is not None and done_at < parked_entry

        status = env.cli("status", poison)
        assert status.returncode == 0, status.stderr
        assert "needs_attention" in status.stdout and "died mid-tick" in status.stdout, status.stdout
        wait_for(lambda: hook.bodies("needs_attention"), 30, "the needs_attention webhook")
        body = hook.bodies("needs_attention")[0]
        assert body["apply_id"] == poison and body["state"] == "needs_attention"
        time.sleep(2 * 3.0)  # two lease lengths: nobody picks it up again on its own
        assert client.get_apply(poison).state == "needs_attention"
        assert len([c for c in fake.calls("progress") if "poison" in c["changes"]]) == LIMIT + 1

        # The cause is fixed (here: the knob); the operator adopts it through the CLI.
        fake.set_knob("kill_on_table", None)
        adopted = env.cli("adopt", poison)
        assert adopted.returncode == 0, adopted.stderr
        final = client.wait(poison, timeout=60)
        assert final.state == "completed", cluster.logs()
        assert final.attention is None
        task_id = final.tasks[0].task_id
        assert (fake.work(task_id)["created"], fake.work(task_id)["rows_done"]) == (1, 12)
    finally:
        cluster.stop()
