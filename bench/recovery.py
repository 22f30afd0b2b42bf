"""Recovery latency: how long after the worker driving an apply is SIGKILLed does another worker
record progress on it? With default settings, against the settings' bound (lease TTL + sweep
interval). Real worker and beat processes, the machine's Redis and MariaDB, the recording fake
engine (a step of ~1 s, so the kill lands inside an engine step, the worst case).

    .venv/bin/python bench/recovery.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from schemabot.api import ChangeSet
from schemabot.settings import Settings
from tests.support.fake_engine import FakeTarget
from tests.support.proc_env import PROC_TIMINGS, proc_env
from tests.support.servers import wait_for


def one_run(workdir: Path) -> tuple[float, float]:
    """Seconds from the kill to (another worker's first engine step, its first stored progress)."""
    fake = FakeTarget(workdir / "fake.db")
    fake.set_knob("rows_total", 400)
    fake.set_knob("rows_per_step", 2)
    fake.set_knob("step_sleep", 1.0)
    defaults = {key: "" for key in PROC_TIMINGS}  # drop the tests' short timings: use the defaults
    with proc_env(workdir, fake.path) as env:
        for key in defaults:
            env.env.pop(key, None)
        cluster = env.cluster()
        try:
            cluster.worker("a")
            cluster.worker("b")
            cluster.beat()
            client = env.client()
            apply_id = client.submit_apply(
                "fake", "fake", [ChangeSet(["ALTER TABLE t ADD c INT"], "app")]
            ).apply_id
            task_id = client.get_apply(apply_id).tasks[0].task_id
            wait_for(lambda: (fake.work(task_id) or {"rows_done": 0})["rows_done"] >= 6, 60, "progress")
            wait_for(lambda: fake.query("SELECT pid FROM active WHERE context = ?", task_id), 10, "a step")
            pid = int(fake.query("SELECT pid FROM active WHERE context = ?", task_id)[0]["pid"])
            victim = cluster.owner_of(f"host:{pid}")
            dead = victim.pids()
            rows_before = client.get_apply(apply_id).tasks[0].rows_copied or 0
            victim.kill()
            killed = time.time()
            killed_mono = time.monotonic()
            wait_for(
                lambda: any(c["pid"] not in dead and c["at"] > killed for c in fake.calls("progress")),
                60,
                "another worker's engine step",
            )
            engine_step = min(
                c["at"] for c in fake.calls("progress") if c["pid"] not in dead and c["at"] > killed
            )
            wait_for(
                lambda: (client.get_apply(apply_id).tasks[0].rows_copied or 0) > rows_before,
                60,
                "stored progress",
            )
            stored = time.monotonic() - killed_mono
            client.request_control(apply_id, "cancel")
            return engine_step - killed, stored
        finally:
            cluster.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    settings = Settings()
    bound = settings.lease_ttl + settings.sweep_interval
    print(
        f"defaults: lease_ttl={settings.lease_ttl}s sweep_interval={settings.sweep_interval}s "
        f"step_budget={settings.step_budget}s poll_interval={settings.poll_interval}s"
    )
    steps, stored = [], []
    for run in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory(prefix="sb-bench-recovery-") as tmp:
            step, record = one_run(Path(tmp))
        steps.append(step)
        stored.append(record)
        print(
            f"run {run}: another worker's first step after {step:.2f}s, progress stored after {record:.2f}s"
        )
    median_step, median_stored = statistics.median(steps), statistics.median(stored)
    print(
        f"median: first step {median_step:.2f}s, stored progress {median_stored:.2f}s "
        f"(theoretical bound lease_ttl + sweep_interval = {bound:.1f}s; "
        f"ratio stored/bound = {median_stored / bound:.2f}; goal < 10 s: "
        f"{'met' if median_stored < 10 else 'NOT met'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
