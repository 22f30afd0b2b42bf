"""Issue 15 §1 and §3 through real processes: `schemabot serve`, a prefork Celery worker and beat
sharing one PROMETHEUS_MULTIPROC_DIR, Redis, an SQLite state database (WAL) and a real webhook
receiver. The fake engine stands in for the engine (the subject is what is observed, not the copy).

One apply runs; the test scrapes serve's /metrics (with a read token) while it copies and checks
the rows gauge moves, then that the completed apply shows in the state gauge, the worker's
duration histogram, the sweep metrics and the worker's own exporter, and that the worker (not the
tick) delivered the signed `completed` webhook and recorded it in the audit log.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from schemabot.auth import hash_secret, new_secret
from tests.support.fake_engine import FakeTarget
from tests.support.proc_env import PROC_TIMINGS
from tests.support.processes import Cluster
from tests.support.serve import served
from tests.support.servers import free_port, wait_for
from tests.support.webhook_receiver import receiver

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, frozenset(s.labels.items()))] = s.value
    return found


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    """The sum of `name` over samples whose labels include `labels` (0 when none)."""
    want = set(labels.items())
    return sum(v for (n, ls), v in found.items() if n == name and want <= set(ls))


def test_metrics_move_during_a_real_apply_and_the_worker_delivers_webhooks(tmp_path: Path) -> None:
    fake = FakeTarget(tmp_path / "fake.db")
    fake.set_knob("rows_total", 60)
    fake.set_knob("rows_per_step", 3)
    fake.set_knob("step_sleep", 0.1)
    reader, submitter = new_secret(), new_secret()
    tokens = [
        {"name": "prometheus", "sha256": hash_secret(reader), "scope": "read"},
        {"name": "ci", "sha256": hash_secret(submitter), "scope": "apply"},
    ]
    prom_dir = tmp_path / "prom"
    prom_dir.mkdir()
    worker_port = free_port()
    with receiver() as hook:
        extra = {
            **PROC_TIMINGS,
            "SCHEMABOT_API_TOKENS": json.dumps(tokens),
            "PROMETHEUS_MULTIPROC_DIR": str(prom_dir),
            "SCHEMABOT_WEBHOOK_URL": hook.url,
            "SCHEMABOT_WEBHOOK_SECRET": "k",
            "SCHEMABOT_TARGET_FAKE": f"fake://{fake.path}",
        }
        with served(tmp_path, extra) as server:
            cluster = Cluster({**server.env, "SCHEMABOT_METRICS_PORT": str(worker_port)}, tmp_path)
            try:
                cluster.worker()
                cluster.beat()
                api = server.base_url
                scraper = server.client(reader)
                assert httpx.get(f"{api}/metrics", timeout=10).status_code == 401

                submitted = server.client(submitter).post(
                    "/v1/applies",
                    json={
                        "target": "fake",
                        "engine": "fake",
                        "changes": [{"namespace": "app", "ddl": ["ALTER TABLE t ADD c INT"]}],
                    },
                )
                assert submitted.status_code == 201, submitted.text
                apply_id = submitted.json()["apply_id"]

                # While it copies, the rows gauge of its task moves.
                seen: list[float] = []

                def copied_moved() -> bool:
                    found = samples(scraper.get("/metrics").text)
                    rows = value(found, "schemabot_task_rows_copied", apply_id=apply_id)
                    if rows and (not seen or rows != seen[-1]):
                        seen.append(rows)
                    return len(seen) >= 2

                wait_for(copied_moved, 60, "the rows copied gauge to move", interval=0.2)
                assert seen[1] > seen[0] > 0

                def completed() -> bool:
                    return bool(scraper.get(f"/v1/applies/{apply_id}").json()["state"] == "completed")

                wait_for(completed, 90, "the apply to complete", interval=0.3)

                def final_metrics() -> bool:
                    found = samples(scraper.get("/metrics").text)
                    return (
                        value(found, "schemabot_applies", state="completed", engine="fake") == 1
                        and value(found, "schemabot_apply_duration_seconds_count", outcome="completed") == 1
                        and value(found, "schemabot_webhook_deliveries_total", outcome="delivered") >= 2
                        and value(found, "schemabot_sweep_duration_seconds_count") >= 1
                    )

                wait_for(final_metrics, 30, "the final metrics", interval=0.3)
                found = samples(scraper.get("/metrics").text)
                assert value(found, "schemabot_task_rows_copied", apply_id=apply_id) == 0  # finished
                assert value(found, "schemabot_transitions_total", state="running") >= 1
                assert value(found, "schemabot_sweep_last_run_timestamp_seconds") > time.time() - 60
                assert value(found, "schemabot_state_database_up") == 1

                # The worker's own exporter shows its processes' counters (no state gauges).
                own = samples(httpx.get(f"http://127.0.0.1:{worker_port}/metrics", timeout=10).text)
                assert value(own, "schemabot_apply_duration_seconds_count", engine="fake") == 1

                # The webhooks: `submitted` from serve, `completed` from the worker, both signed
                # and recorded in the audit log.
                assert [b["event"] for b in hook.bodies()] == ["submitted", "completed"]
                assert all(r.headers["x-schemabot-signature"].startswith("sha256=") for r in hook.received)
                def recorded() -> bool:
                    entries = scraper.get(f"/v1/applies/{apply_id}/log").json()
                    return len([e for e in entries if e["event"] == "webhook"]) == 2

                wait_for(recorded, 30, "both deliveries in the audit log", interval=0.2)
            except BaseException:
                print(cluster.logs(), server.log()[-3000:])
                raise
            finally:
                cluster.stop()
