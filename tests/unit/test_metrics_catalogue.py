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
