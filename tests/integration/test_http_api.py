"""The HTTP endpoint: the same contract as the Python API, over real storage."""

from __future__ import annotations

from starlette.testclient import TestClient

from schemabot.api import Client
from schemabot.http_api import build_app
from schemabot.runtime import Runtime
from tests.support.harness import RecordingDispatcher, pump


def _http(rt: Runtime) -> TestClient:
    return TestClient(build_app(lambda: Client(runtime=rt)), base_url="http://localhost")


def test_submit_read_and_control_over_http(rt: Runtime, dispatcher: RecordingDispatcher) -> None:
    http = _http(rt)
    body = {
        "target": "fake",
        "engine": "fake",
        "idempotency_key": "k1",
        "changes": [{"namespace": "app", "ddl": ["ALTER TABLE t ADD c INT"]}],
    }
    first = http.post("/v1/applies", json=body)
    assert first.status_code == 201
    apply_id = first.json()["apply_id"]
    again = http.post("/v1/applies", json=body)
    assert (again.status_code, again.json()) == (200, {"apply_id": apply_id, "created": False})
    assert [m.name for m in dispatcher.messages] == ["start_apply"]

    pump(rt, dispatcher)
    status = http.get(f"/v1/applies/{apply_id}").json()
    assert status["state"] == "completed" and status["tasks"][0]["table"] == "t"
    assert [a["apply_id"] for a in http.get("/v1/applies?state=completed").json()] == [apply_id]
    assert any(e["event"] == "submitted" for e in http.get(f"/v1/applies/{apply_id}/log").json())

    refused = http.post(f"/v1/applies/{apply_id}/stop", json={})
    assert refused.status_code == 409 and "completed" in refused.json()["error"]


def test_bad_requests_are_400_and_store_nothing(rt: Runtime) -> None:
    http = _http(rt)
    cases = [
        {"target": "fake", "engine": "fake", "changes": [{"namespace": "a", "ddl": ["not sql"]}]},
        {"target": "nowhere", "engine": "fake", "changes": [{"namespace": "a", "ddl": ["DROP TABLE t"]}]},
        {"target": "fake", "engine": "warp", "changes": [{"namespace": "a", "ddl": ["DROP TABLE t"]}]},
        {"target": "fake", "engine": "fake", "changes": []},
        {"engine": "fake"},
    ]
    for body in cases:
        response = http.post("/v1/applies", json=body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["code"] == "invalid"
    not_json = http.post("/v1/applies", content=b"{not json", headers={"Content-Type": "application/json"})
    assert not_json.status_code == 400
    assert http.get("/v1/applies").json() == []
    assert http.get("/v1/applies/apply-nope").status_code == 404
