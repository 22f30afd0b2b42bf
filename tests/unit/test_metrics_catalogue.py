"""Issue 15 §1: every metric the Grafana dashboard (deploy/grafana) queries is one schemabot
exports, and a PlanetScale API call is counted (the engine's observer hook reaches the metrics)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from schemabot import metrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "schemabot-dashboard.json"


class _EmptyState:
    """A state database with no applies, for the scrape-time collector."""

    def run(self, work: Any, write: bool = True) -> dict[str, Any]:
        return {"applies": [("running", "spirit", 1)], "tasks": [], "now": None, "lag": 0.0}


def exported_names() -> set[str]:
    names: set[str] = set()
    reg = metrics.registry(_EmptyState())
    for family in reg.collect():
        names.add(family.name)
        names.update(s.name for s in family.samples)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_count", "_sum"))
    return names


def test_the_dashboard_queries_only_exported_metrics() -> None:
    metrics.provider_call("planetscale", True)  # labelled metrics appear once used
    metrics.webhook_delivered("delivered")
    metrics.sweep_finished(0.01)
    metrics.infrastructure_error()
    exported = exported_names()
    dashboard = json.loads(DASHBOARD.read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\bschemabot_[a-z_]+", target["expr"])
    }
    assert queried, "the dashboard queries nothing"
    assert queried - exported == set()
    # The state gauges come from the state database at scrape time.
    assert {"schemabot_applies", "schemabot_task_rows_copied", "schemabot_recovery_lag_seconds"} <= exported


def test_planetscale_api_calls_are_counted_by_outcome() -> None:
    from engines.planetscale.api import ApiError, PlanetScaleAPI
    from engines.planetscale.budget import Budget
    from engines.planetscale.target import PlanetScaleTarget

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/missing"):
            return httpx.Response(500, json={"code": "boom", "message": "no"})
        return httpx.Response(200, json={"ok": True})

    ok = metrics.PROVIDER_CALLS.labels("planetscale", "ok")
    error = metrics.PROVIDER_CALLS.labels("planetscale", "error")
    before = (ok._value.get(), error._value.get())
    target = PlanetScaleTarget(
        token_id="id", token="secret", org="o", database="d", api_url="http://ps.invalid"
    )
    api = PlanetScaleAPI(target, http=httpx.Client(transport=httpx.MockTransport(answer)))
    assert api.request("GET", "/branches", Budget(30.0)) == {"ok": True}
    with pytest.raises(ApiError):
        api.request("GET", "/missing", Budget(30.0))
    assert (ok._value.get(), error._value.get()) == (before[0] + 1, before[1] + 1)


def _entry(event: str, message: str | None = None, **kw: Any) -> Any:
    from schemabot.events import Recorded

    return Recorded("apply-1", event, message, None, kw.get("old"), kw.get("new"), kw.get("detail") or {})


class _Row:
    def __init__(self, row: dict[str, Any] | None) -> None:
        self.row, self.reads = row, 0

    def get(self) -> dict[str, Any] | None:
        self.reads += 1
        return self.row


def _value(metric: Any, *labels: str) -> float:
    return float(metric.labels(*labels)._value.get())


def test_audit_entries_become_the_right_counters() -> None:
    from datetime import datetime, timedelta

    start = datetime(2026, 1, 1, 12, 0, 0)
    row = _Row({"engine": "spirit", "created_at": start, "completed_at": start + timedelta(seconds=42)})
    before = {
        "claim": _value(metrics.RECOVERIES, "orphaned"),
        "reattached": _value(metrics.RECOVERIES, "reattached"),
        "restarted": _value(metrics.RECOVERIES, "restarted"),
        "asked": _value(metrics.CONTROLS, "cutover", "requested"),
        "done": _value(metrics.CONTROLS, "cutover", "done"),
        "retryable": _value(metrics.ENGINE_ERRORS, "spirit", "retryable"),
        "permanent": _value(metrics.ENGINE_ERRORS, "spirit", "permanent"),
    }
    duration_before = metrics.APPLY_DURATION.labels("spirit", "failed")._sum.get()

    metrics.observe(_entry("claimed", "recovery sweep: orphaned", detail={"reason": "orphaned"}), row)
    metrics.observe(_entry("resume", "reattached at x", detail={"reattached": True}), row)
    metrics.observe(_entry("resume", "restarted", detail={"reattached": False}), row)
    metrics.observe(_entry("control", "cutover requested by ci", detail={"kind": "cutover"}), row)
    metrics.observe(_entry("control", "cutover: done: released", detail={"kind": "cutover"}), row)
    assert row.reads == 0  # counting these needs no read of the apply
    metrics.observe(_entry("state", "boom", old="running", new="failed_retryable"), row)
    metrics.observe(_entry("state", "bad DDL", old="running", new="failed"), row)

    assert _value(metrics.RECOVERIES, "orphaned") == before["claim"] + 1
    assert _value(metrics.RECOVERIES, "reattached") == before["reattached"] + 1
    assert _value(metrics.RECOVERIES, "restarted") == before["restarted"] + 1
    assert _value(metrics.CONTROLS, "cutover", "requested") == before["asked"] + 1
    assert _value(metrics.CONTROLS, "cutover", "done") == before["done"] + 1
    assert _value(metrics.ENGINE_ERRORS, "spirit", "retryable") == before["retryable"] + 1
    assert _value(metrics.ENGINE_ERRORS, "spirit", "permanent") == before["permanent"] + 1
    assert metrics.APPLY_DURATION.labels("spirit", "failed")._sum.get() == duration_before + 42
