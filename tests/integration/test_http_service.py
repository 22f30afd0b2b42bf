"""Issue 14 §1 and §3: who may do what over HTTP, readiness, the API
document. All through real `schemabot serve` processes."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from schemabot.api import Client
from schemabot.auth import hash_secret, new_secret
from schemabot.http_api import build_app
from schemabot.settings import Settings
from tests.support.serve import SCHEMABOT, Served, serve_env, served
from tests.support.servers import TEST_REDIS_DB, free_port

pytestmark = pytest.mark.integration

SECRETS = {name: new_secret() for name in ("reader", "ci", "boss")}
TOKENS = [
    {"name": "reader", "sha256": hash_secret(SECRETS["reader"]), "scope": "read"},
    {"name": "ci", "sha256": hash_secret(SECRETS["ci"]), "scope": "apply", "targets": ["fake"]},
    {"name": "boss", "sha256": hash_secret(SECRETS["boss"]), "scope": "admin"},
]


def change(target: str = "fake", table: str = "t") -> dict[str, object]:
    return {
        "target": target,
        "engine": "fake",
        "changes": [{"namespace": "app", "ddl": [f"ALTER TABLE {table} ADD c INT"]}],
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served(tmp_path_factory.mktemp("auth"), {"SCHEMABOT_API_TOKENS": json.dumps(TOKENS)}) as s:
        yield s


def test_requests_without_a_valid_token_are_401(server: Served) -> None:
    for token in (None, "sbt_not-a-token"):
        with server.client(token) as http:
            for response in (
                http.get("/v1/applies"),
                http.get("/v1/applies/apply-x"),
                http.post("/v1/applies", json=change()),
                http.post("/v1/applies/apply-x/cancel", json={}),
            ):
                assert response.status_code == 401, response.text
                assert response.json()["code"] == "unauthenticated"
                assert response.headers["www-authenticate"] == "Bearer"
    with server.client(**{"Authorization": f"Basic {SECRETS['ci']}"}) as http:
        assert http.get("/v1/applies").status_code == 401
    with server.client() as http:  # liveness, readiness and the document stay open
        assert http.get("/healthz").status_code == 200
        assert http.get("/readyz").status_code == 200
        assert http.get("/openapi.json").status_code == 200


def test_scopes_and_target_restrictions_are_403(server: Served) -> None:
    with server.client(SECRETS["ci"]) as ci, server.client(SECRETS["reader"]) as reader, server.client(
        SECRETS["boss"]
    ) as boss:
        mine = ci.post("/v1/applies", json=change("fake", "scoped"))
        assert mine.status_code == 201, mine.text
        mine_id = mine.json()["apply_id"]
        # ci may only use target "fake".
        other = ci.post("/v1/applies", json=change("other", "scoped"))
        assert (other.status_code, other.json()["code"]) == (403, "forbidden")
        theirs = boss.post("/v1/applies", json=change("other", "scoped"))
        assert theirs.status_code == 201, theirs.text
        theirs_id = theirs.json()["apply_id"]
        assert ci.get(f"/v1/applies/{theirs_id}").status_code == 403
        assert ci.post(f"/v1/applies/{theirs_id}/cancel", json={}).status_code == 403
        listed = {a["apply_id"] for a in ci.get("/v1/applies").json()}
        assert mine_id in listed and theirs_id not in listed

        # read: status, list, log; not submit, not controls.
        assert reader.get(f"/v1/applies/{theirs_id}").status_code == 200
        assert reader.get(f"/v1/applies/{theirs_id}/log").status_code == 200
        assert {mine_id, theirs_id} <= {a["apply_id"] for a in reader.get("/v1/applies").json()}
        denied = reader.post("/v1/applies", json=change("fake", "reader_t"))
        assert (denied.status_code, denied.json()["code"]) == (403, "forbidden")
        assert "apply" in denied.json()["error"]
        assert reader.post(f"/v1/applies/{mine_id}/cancel", json={}).status_code == 403
        assert boss.post(f"/v1/applies/{theirs_id}/cancel", json={}).status_code == 202


def test_the_token_name_is_recorded_on_the_apply_and_every_control(server: Served) -> None:
    with server.client(SECRETS["ci"]) as ci, server.client(SECRETS["boss"]) as boss:
        apply_id = ci.post("/v1/applies", json=change("fake", "who")).json()["apply_id"]
        assert ci.get(f"/v1/applies/{apply_id}").json()["submitted_by"] == "ci"
        assert ci.post(f"/v1/applies/{apply_id}/stop", json={}).status_code == 202
        assert boss.post(f"/v1/applies/{apply_id}/cancel", json={}).status_code == 202
        log = ci.get(f"/v1/applies/{apply_id}/log").json()
    submitted = [e for e in log if e["event"] == "submitted"]
    assert submitted[0]["detail"]["by"] == "ci"
    controls = [(e["detail"]["kind"], e["detail"]["by"]) for e in log if e["event"] == "control"]
    assert controls == [("stop", "ci"), ("cancel", "boss")]


def test_readyz_names_what_is_down(server: Served, tmp_path: Path) -> None:
    with server.client() as http:
        ok = http.get("/readyz")
    assert ok.json() == {"ready": True, "state_database": "ok", "broker": "ok"}
    dead = f"redis://127.0.0.1:{free_port()}/0"
    with served(tmp_path / "nobroker", {"SCHEMABOT_BROKER_URL": dead}) as broken, broken.client() as http:
        response = http.get("/readyz")
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["ready"] is False and body["state_database"] == "ok"
    assert body["broker"].startswith("broker"), body
    # A state database that cannot be opened (in process: the same app).
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'missing-dir' / 'state.db'}",
        broker_url=f"redis://127.0.0.1:6379/{TEST_REDIS_DB}",
    )
    http_app = TestClient(build_app(lambda: Client(settings)), base_url="http://localhost")
    body = http_app.get("/readyz").json()
    assert body["ready"] is False and body["broker"] == "ok"
    assert body["state_database"].startswith("state database"), body


def test_openapi_document_is_generated_from_the_models(server: Served) -> None:
    with server.client() as http:
        document = http.get("/openapi.json").json()
        page = http.get("/docs")
    assert document["openapi"].startswith("3.")
    schemas = document["components"]["schemas"]
    submit = schemas["SubmitRequest"]
    assert submit["additionalProperties"] is False
    assert submit["properties"]["defer_cutover"]["type"] == "boolean"
    assert set(submit["required"]) == {"target", "engine", "changes"}
    assert schemas["Change"]["additionalProperties"] is False
    assert "submitted_by" in schemas["ApplyStatus"]["properties"]
    post = document["paths"]["/v1/applies"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/SubmitRequest")
    assert post["security"] == [{"HTTPBearer": []}]
    assert "422" not in post["responses"] and "400" in post["responses"]
    controls = document["paths"]["/v1/applies/{apply_id}/{control}"]["post"]["parameters"]
    assert any(p["name"] == "control" for p in controls)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "openapi.json" in page.text and "https://" not in page.text and "http://" not in page.text


def test_development_mode_is_loopback_only(tmp_path: Path) -> None:
    env, _ = serve_env(tmp_path)
    refused = subprocess.run(
        [SCHEMABOT, "serve", "--host", "0.0.0.0", "--port", str(free_port())],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2, (refused.stdout, refused.stderr)
    assert refused.stderr.count("\n") == 1 and "SCHEMABOT_API_TOKENS" in refused.stderr
    with served(tmp_path / "dev") as dev, dev.client() as http:
        assert "DEVELOPMENT MODE" in dev.log()
        assert http.post("/v1/applies", json=change()).status_code == 201
