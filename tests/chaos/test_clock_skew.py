"""Recovery does not depend on host clocks agreeing (issue 11, defect 4): a real worker process,
a real Redis, and sweep messages sent exactly as beat sends them, from a host whose clock is
behind the worker's. Leases already live in database time; the sweep message must too."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from schemabot.api import ChangeSet, Client
from schemabot.messaging import RECOVERY_SWEEP
from schemabot.settings import Settings
from tests.support.fake_engine import FakeTarget
from tests.support.proc_env import ProcEnv, proc_env
from tests.support.servers import free_port

pytestmark = pytest.mark.chaos
SKEW = timedelta(seconds=10)  # the worker's clock runs this far ahead of beat's


@pytest.fixture
def env(tmp_path: Path) -> Iterator[ProcEnv]:
    fake = FakeTarget(tmp_path / "fake.db")
    with proc_env(tmp_path, fake.path) as environment:
        yield environment


def skewed_beat(env: ProcEnv) -> tuple[Celery, dict[str, Any]]:
    """A sender whose clock is SKEW behind, with the options beat's schedule sends the sweep with."""
    from tasks.celery_app import app as worker_app

    options = dict(worker_app.conf.beat_schedule["recovery-sweep"].get("options") or {})
    beat = Celery("skewed-beat", broker=env.env["SCHEMABOT_BROKER_URL"], set_as_current=False)
    real_now = beat.now
    beat.now = lambda: real_now() - SKEW  # type: ignore[method-assign]
    return beat, options


def test_a_worker_whose_clock_runs_ahead_of_beat_still_recovers_an_orphan(env: ProcEnv) -> None:
    settings = env.settings()
    dead_broker = Settings(
        **{**settings.model_dump(exclude={"targets"}), "broker_url": f"redis://127.0.0.1:{free_port()}/0"},
        targets=settings.targets,
    )
    # Stored, but start_apply was never delivered: only a sweep can bring it to a worker.
    changes = [ChangeSet(["ALTER TABLE t ADD c INT"], "app")]
    apply_id = Client(dead_broker).submit_apply("fake", "fake", changes).apply_id
    client = env.client()
    assert client.get_apply(apply_id).state == "pending"
    beat, options = skewed_beat(env)

    cluster = env.cluster()
    try:
        cluster.worker()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and client.get_apply(apply_id).state != "completed":
            beat.send_task(RECOVERY_SWEEP, queue=env.env["SCHEMABOT_QUEUE"], **options)
            time.sleep(0.5)  # SCHEMABOT_SWEEP_INTERVAL of the process environment
        final = client.get_apply(apply_id)
        assert final.state == "completed", (final.state, cluster.logs()[-3000:])
        claims = [e for e in client.log(apply_id) if e.event == "claimed"]
        assert [e.detail["reason"] for e in claims] == ["unstarted"]  # type: ignore[index]
    finally:
        cluster.stop()
        beat.close()


def test_the_beat_schedule_sends_the_sweep_with_no_absolute_expiry() -> None:
    from tasks.celery_app import app as worker_app

    entry = worker_app.conf.beat_schedule["recovery-sweep"]
    assert "expires" not in (entry.get("options") or {})
