"""Issue 14 §5: Celery on RabbitMQ (quorum queues, publisher confirms): docs/architecture.md §10 S14 with a
worker SIGKILLed mid-apply, on the machine's RabbitMQ (127.0.0.1:5672), in a vhost of its own."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from schemabot.api import ChangeSet
from schemabot.messaging import broker_conf
from tests.support.fake_engine import FakeTarget
from tests.support.proc_env import proc_env
from tests.support.servers import wait_for

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="needs rabbitmqctl (RabbitMQ server)"),
]
TTL, SWEEP = 3.0, 0.5


def rabbitmqctl(*args: str) -> str:
    done = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def vhost() -> Iterator[str]:
    name = f"sbt-{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", name)
    try:
        rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield name
    finally:
        rabbitmqctl("delete_vhost", name)


def test_s14_on_rabbitmq_killed_worker_is_resumed_from_where_it_was(tmp_path: Path, vhost: str) -> None:
    url = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    assert broker_conf(url)["broker_transport_options"]["confirm_publish"] is True
    fake = FakeTarget(tmp_path / "fake.db")
    # RabbitMQ's delayed delivery counts whole seconds, so poll pauses are 1 s here: bigger
    # steps keep the test short.
    fake.set_knob("rows_per_step", 4)
    fake.set_knob("rows_total", 40)
    fake.set_knob("step_sleep", 0.25)
    with proc_env(tmp_path, fake.path, broker_url=url) as env:
        client = env.client()
        cluster = env.cluster()
        try:
            cluster.worker("a")
            cluster.worker("b")
            cluster.beat()
            apply_id = client.submit_apply(
                "fake", "fake", [ChangeSet(["ALTER TABLE t ADD c INT"], "app")]
            ).apply_id
            queues = rabbitmqctl("list_queues", "-p", vhost, "name", "type")
            assert any(
                line.split()[:2] == [env.env["SCHEMABOT_QUEUE"], "quorum"] for line in queues.splitlines()
            ), queues
            task_id = client.get_apply(apply_id).tasks[0].task_id
            wait_for(lambda: (fake.work(task_id) or {"rows_done": 0})["rows_done"] >= 12, 60, "row 12")

            victim = cluster.freeze_the_worker_inside(lambda: fake.pid_inside(task_id))
            dead = victim.pids()
            victim.kill()
            killed_at = time.time()
            rows_at_kill = fake.work(task_id)["rows_done"]

            def resumed() -> bool:
                return any(c["pid"] not in dead and c["at"] > killed_at for c in fake.calls("progress"))

            wait_for(resumed, 30, "another worker to record progress")
            final = client.wait(apply_id, timeout=90)
            assert final.state == "completed", cluster.logs()
            work = fake.work(task_id)
            assert (work["created"], work["rows_done"]) == (1, 40)  # no second shadow, every row
            after = [c for c in fake.calls("progress") if c["at"] > killed_at]
            assert len(after) <= (40 - rows_at_kill) // 4 + 4  # continued; not restarted from row 0
        finally:
            cluster.stop()
