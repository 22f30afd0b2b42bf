"""Issue 15 §3: webhooks on apply events, delivered to a real HTTP receiver on 127.0.0.1.

Orchestration in process (the fake engine, messages played by the test, SQLite and MariaDB state
databases); the delivery is real HTTP from the events thread. The same with a real worker
process is in tests/integration/test_observability_worker.py.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from schemabot import events, notifications
from schemabot.runtime import Runtime
from schemabot.storage import audit
from tests.support.fake_engine import FakeTarget
from tests.support.harness import RecordingDispatcher
from tests.support.steps import run_until, submit
from tests.support.webhook_receiver import receiver

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _fresh_webhook_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("SCHEMABOT_WEBHOOK_BACKOFF", "0.05")
    notifications.webhook_settings.cache_clear()
    yield
    events.drain(30)
    notifications.webhook_settings.cache_clear()


def _configure(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    notifications.webhook_settings.cache_clear()


def webhook_log(rt: Runtime, apply_id: str) -> list[dict[str, object]]:
    return [e.detail or {} for e in audit.entries(rt.db, apply_id) if e.event == "webhook"]


def test_signed_json_events_are_retried_and_recorded_in_the_audit_log(
    rt: Runtime, dispatcher: RecordingDispatcher, fake_target: FakeTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_target.set_knob("rows_total", 4)
    with receiver(fail_first=1) as hook:
        _configure(monkeypatch, SCHEMABOT_WEBHOOK_URL=hook.url, SCHEMABOT_WEBHOOK_SECRET="s3cret")
        apply_id = submit(rt)
        run_until(rt, dispatcher, apply_id, "completed")
        assert events.drain(30)

        kinds = [r.headers["x-schemabot-event"] for r in hook.received]
        assert kinds == ["submitted", "completed"], kinds
        for got in hook.received:
            expected = "sha256=" + hmac.new(b"s3cret", got.raw, hashlib.sha256).hexdigest()
            assert got.headers["x-schemabot-signature"] == expected
            doc = got.json
            assert doc["schema"] == "schemabot.apply_event/v1"
            assert doc["apply_id"] == apply_id and doc["target"] == "fake" and doc["engine"] == "fake"
        completed = hook.bodies("completed")[0]
        assert completed["state"] == "completed" and completed["previous_state"] in (
            "cutting_over",
            "running",
        )

        # The first delivery met a 503 and was retried; both are in the audit log.
        recorded = {d["event"]: d for d in webhook_log(rt, apply_id)}
        assert recorded["submitted"]["outcome"] == "delivered" and recorded["submitted"]["attempts"] == 2
        assert recorded["completed"]["outcome"] == "delivered" and recorded["completed"]["attempts"] == 1
        assert recorded["completed"]["url"] == hook.url


def test_a_failing_receiver_is_recorded_as_failed_after_the_attempt_budget(
    rt: Runtime, dispatcher: RecordingDispatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    with receiver(fail_first=100) as hook:
        _configure(
            monkeypatch,
            SCHEMABOT_WEBHOOK_URL=hook.url,
            SCHEMABOT_WEBHOOK_EVENTS="submitted",
            SCHEMABOT_WEBHOOK_ATTEMPTS="3",
        )
        apply_id = submit(rt)
        assert events.drain(30)
        (only,) = webhook_log(rt, apply_id)
        assert only["outcome"] == "failed" and only["attempts"] == 3 and only["status"] == 503


def test_per_target_slack_hook_names_the_next_command_at_waiting_for_cutover(
    rt: Runtime, dispatcher: RecordingDispatcher, fake_target: FakeTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_target.set_knob("rows_total", 4)
    with receiver() as mine, receiver() as others:
        hooks = [
            {"url": mine.url, "format": "slack", "events": ["waiting_for_cutover"], "targets": ["FAKE"]},
            {"url": others.url, "targets": ["other"]},
        ]
        _configure(monkeypatch, SCHEMABOT_WEBHOOKS=json.dumps(hooks))
        apply_id = submit(rt, defer_cutover=True)
        run_until(rt, dispatcher, apply_id, "waiting_for_cutover")
        assert events.drain(30)
        (slack,) = mine.bodies()
        assert set(slack) == {"text"}
        assert apply_id in slack["text"] and f"schemabot cutover {apply_id}" in slack["text"]
        assert others.received == []


def test_a_slow_receiver_never_holds_up_the_ticks(
    rt: Runtime, dispatcher: RecordingDispatcher, fake_target: FakeTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The receiver holds every request until the apply has completed: were delivery part of the
    tick, the apply could not complete while the receiver holds the first one."""
    fake_target.set_knob("rows_total", 4)
    release = threading.Event()
    with receiver(hold=release) as hook:
        _configure(monkeypatch, SCHEMABOT_WEBHOOK_URL=hook.url)
        apply_id = submit(rt)
        run_until(rt, dispatcher, apply_id, "completed")
        assert hook.received == []  # nothing answered yet: the apply completed regardless
        release.set()
        assert events.drain(30)
        assert [r.headers["x-schemabot-event"] for r in hook.received] == ["submitted", "completed"]


def test_waiting_for_cutover_is_sent_only_when_a_person_must_act(monkeypatch: pytest.MonkeyPatch) -> None:
    """An apply without defer_cutover passes through waiting_for_cutover on its way to the
    automatic cutover: no webhook for that."""
    from schemabot.events import Recorded

    class Row:
        def __init__(self, options: dict[str, object]) -> None:
            self.options = options

        def get(self) -> dict[str, object]:
            return {"target": "fake", "engine": "spirit", "options": self.options}

    with receiver() as hook:
        _configure(monkeypatch, SCHEMABOT_WEBHOOK_URL=hook.url)
        entry = Recorded("apply-9", "state", "ready", None, "running", "waiting_for_cutover", {})
        notifications.observe(entry, Row({}))  # type: ignore[arg-type]
        assert hook.received == []
        notifications.observe(entry, Row({"defer_cutover": True}))  # type: ignore[arg-type]
        assert [b["event"] for b in hook.bodies()] == ["waiting_for_cutover"]


def test_the_cli_delivers_its_submitted_webhook_before_it_exits(tmp_path: Path) -> None:
    """`schemabot apply` is a short-lived producer: its `submitted` delivery is not lost when the
    process ends right after storing the apply."""
    import subprocess

    import redis

    from schemabot.migrate import upgrade
    from tests.support.serve import SCHEMABOT, serve_env
    from tests.support.servers import TEST_REDIS_DB

    env, state_url = serve_env(tmp_path)
    upgrade(database_url=state_url)
    with receiver() as hook:
        env.update({"SCHEMABOT_WEBHOOK_URL": hook.url, "SCHEMABOT_WEBHOOK_SECRET": "k"})
        try:
            done = subprocess.run(
                [
                    SCHEMABOT,
                    "apply",
                    "--target",
                    "fake",
                    "--engine",
                    "fake",
                    "--namespace",
                    "app",
                    "--ddl",
                    "ALTER TABLE t ADD c INT",
                ],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
        finally:
            redis.Redis(db=TEST_REDIS_DB).delete(env["SCHEMABOT_QUEUE"])
        assert done.returncode == 0, done.stderr
        apply_id = done.stdout.strip()
        (only,) = hook.bodies()
        assert only["event"] == "submitted" and only["apply_id"] == apply_id
