"""docs/architecture.md §5, issue 14 §2: the HTTP service accepts only well-formed JSON requests.

Every case here was seen to be accepted (or to answer 500) before: each must now be refused with
the API's JSON error shape ({"error", "code"}), and nothing may be stored. All through a real
`schemabot serve` process.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.serve import Served, served

pytestmark = pytest.mark.integration

GOOD = {
    "target": "fake",
    "engine": "fake",
    "changes": [{"namespace": "app", "ddl": ["ALTER TABLE t ADD c INT"]}],
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    # Development mode (no tokens): strictness does not depend on authentication.
    with served(tmp_path_factory.mktemp("strict")) as s:
        yield s


def _assert_error(response: object, status: int) -> dict[str, object]:
    assert response.status_code == status, (response.status_code, response.text)  # type: ignore[attr-defined]
    assert response.headers["content-type"].startswith("application/json"), response.text  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert isinstance(body.get("error"), str) and body["error"], body
    assert isinstance(body.get("code"), str) and body["code"], body
    return body  # type: ignore[no-any-return]


def _nothing_stored(server: Served) -> None:
    with server.client() as http:
        assert http.get("/v1/applies").json() == []


@pytest.mark.parametrize(
    "change",
    [
        {"defer_cutover": "false"},  # was stored as True: bool("false")
        {"skip_revert": "false"},  # made a PlanetScale apply skip its revert window
        {"defer_cutover": 0},
        {"defercutover": True},  # a typo was silently ignored
        {"volume": "5"},
        {"volume": 99},
        {"volume": True},
        {"revert_window_seconds": 0},
        {"revert_window_seconds": -5},
        {"revert_window_seconds": "60"},
        {"idempotency_key": 12345},  # was a 500
        {"target": ["fake"]},
        {"changes": [{"namespace": ["app"], "ddl": ["ALTER TABLE t ADD c INT"]}]},  # was a 500
        {"changes": [{"namespace": "app", "ddl": ["ALTER TABLE t ADD c INT"], "vshcema": {}}]},
        {"changes": [{"namespace": "app", "ddl": [1]}]},
        {"changes": "ALTER TABLE t ADD c INT"},
        {"changes": []},
        {"engine_options": ["chunk_rows", 10]},
    ],
)
def test_malformed_submit_fields_are_400(server: Served, change: dict[str, object]) -> None:
    with server.client() as http:
        body = _assert_error(http.post("/v1/applies", json={**GOOD, **change}), 400)
    assert body["code"] == "invalid"
    _nothing_stored(server)


@pytest.mark.parametrize(
    ("raw", "what"),
    [
        (b'{"target": "fake", "engine": "fake\xff", "changes": []}', "byte 0xff"),
        (
            b'{"target": "fake", "engine": "fake", "changes": [{"namespace": "\\ud800", '
            b'"ddl": ["ALTER TABLE t ADD c INT"]}]}',
            "lone surrogate",
        ),
        (
            b'{"target": "fake", "engine": "fake", "engine_options": {"x": "\\udfff"}, '
            b'"changes": [{"namespace": "app", "ddl": ["ALTER TABLE t ADD c INT"]}]}',
            "lone surrogate in a free-form object",
        ),
        (b"{not json", "not JSON"),
        (b"[]", "not an object"),
        (b"", "empty"),
    ],
)
def test_undecodable_bodies_are_400(server: Served, raw: bytes, what: str) -> None:
    with server.client() as http:
        response = http.post("/v1/applies", content=raw, headers={"Content-Type": "application/json"})
    _assert_error(response, 400)
    _nothing_stored(server)


def test_only_json_bodies_are_accepted_for_writes(server: Served) -> None:
    import json

    with server.client() as http:
        plain = http.post("/v1/applies", content=json.dumps(GOOD), headers={"Content-Type": "text/plain"})
        _assert_error(plain, 415)
        form = http.post("/v1/applies", data={"target": "fake", "engine": "fake"})
        _assert_error(form, 415)
        none = http.post("/v1/applies", content=json.dumps(GOOD), headers={"Content-Type": ""})
        _assert_error(none, 415)
        # A bodyless control posted like an HTML form (or a no-cors fetch) is refused too.
        _assert_error(http.post("/v1/applies/apply-x/cancel", data={"a": "b"}), 415)
        _assert_error(http.post("/v1/applies/apply-x/cancel"), 415)
    _nothing_stored(server)


def test_host_header_must_name_this_service(server: Served) -> None:
    with server.client() as http:
        # DNS rebinding: a page on evil.example resolved to 127.0.0.1 sends its own Host.
        body = _assert_error(http.get("/v1/applies", headers={"Host": "evil.example"}), 400)
        assert "host" in str(body["error"]).lower()
        _assert_error(http.post("/v1/applies", json=GOOD, headers={"Host": "evil.example:8080"}), 400)
        assert http.get("/v1/applies", headers={"Host": "localhost"}).status_code == 200
    _nothing_stored(server)


def test_cross_origin_writes_are_refused(server: Served) -> None:
    with server.client() as http:
        body = _assert_error(
            http.post("/v1/applies", json=GOOD, headers={"Origin": "http://evil.example"}), 403
        )
        assert "origin" in str(body["error"]).lower()
        _assert_error(
            http.post("/v1/applies", json=GOOD, headers={"Sec-Fetch-Site": "cross-site"}), 403
        )
    _nothing_stored(server)


def test_body_size_is_capped(server: Served) -> None:
    huge = "ALTER TABLE t ADD c INT -- " + "x" * 2_000_000
    big = {**GOOD, "changes": [{"namespace": "app", "ddl": [huge]}]}
    with server.client() as http:
        _assert_error(http.post("/v1/applies", json=big), 413)

        # Without a Content-Length (chunked) the cap still holds.
        def chunks() -> Iterator[bytes]:
            yield b'{"target": "fake", "engine": "fake", "changes": [], "x": "'
            for _ in range(40):
                yield b"y" * 65536
            yield b'"}'

        chunked = http.post("/v1/applies", content=chunks(), headers={"Content-Type": "application/json"})
        _assert_error(chunked, 413)
    _nothing_stored(server)


def test_bad_query_parameters_are_400(server: Served) -> None:
    with server.client() as http:
        _assert_error(http.get("/v1/applies", params={"limit": str(10**30)}), 400)
        _assert_error(http.get("/v1/applies", params={"limit": "100000"}), 400)
        _assert_error(http.get("/v1/applies", params={"limit": "0"}), 400)
        _assert_error(http.get("/v1/applies", params={"limit": "ten"}), 400)
        _assert_error(http.get("/v1/applies", params={"state": "exploded"}), 400)


def test_unknown_routes_and_methods_answer_json(server: Served) -> None:
    with server.client() as http:
        assert _assert_error(http.get("/nope"), 404)["code"] == "not_found"
        assert _assert_error(http.get("/v1/applies/apply-nope"), 404)["code"] == "not_found"
        _assert_error(http.put("/v1/applies", json=GOOD), 405)
        _assert_error(http.post("/v1/applies/apply-x/explode", json={}), 400)


def test_a_good_submit_still_works(server: Served) -> None:
    with server.client() as http:
        created = http.post("/v1/applies", json={**GOOD, "defer_cutover": False, "volume": 4})
        assert created.status_code == 201, created.text
        status = http.get(f"/v1/applies/{created.json()['apply_id']}").json()
        assert status["options"]["defer_cutover"] is False and status["options"]["volume"] == 4
        # The control body may be empty JSON; volume takes {"value": n} with n an integer.
        apply_id = created.json()["apply_id"]
        assert http.post(f"/v1/applies/{apply_id}/volume", json={"value": "5"}).status_code == 400
        assert http.post(f"/v1/applies/{apply_id}/volume", json={"value": 12}).status_code == 400
        assert http.post(f"/v1/applies/{apply_id}/stop", json={"value": 1}).status_code == 400
        # A well-formed volume request is judged by the state (pending: not yet): 409, not 400.
        assert http.post(f"/v1/applies/{apply_id}/volume", json={"value": 5}).status_code == 409
        assert http.post(f"/v1/applies/{apply_id}/stop", json={}).status_code == 202
        assert http.post(
            f"/v1/applies/{apply_id}/cancel", content=b"", headers={"Content-Type": "application/json"}
        ).status_code == 202
