"""What submit refuses, through the HTTP API (400) and the CLI (exit 2), storing nothing
(issue 10 §3 and §4): hidden text, other namespaces, forms the engines cannot run, oversize and
non-UTF-8 input, names the server would refuse, out-of-range numbers and unknown engine options."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from schemabot import cli
from schemabot.api import ChangeSet, Client
from schemabot.errors import ValidationError
from schemabot.http_api import build_app
from schemabot.runtime import Runtime
from schemabot.settings import Settings
from schemabot.storage.database import Database
from tests.support.harness import RecordingDispatcher
from tests.support.steps import status

REFUSED = [
    ("DROP TABLE dropme /*!50000 , other.victim */", "versioned comment"),
    ("CREATE TABLE stolen (id INT) /*!50000 SELECT * FROM other.secret */", "versioned comment"),
    ("ALTER TABLE t /*M!100000 DROP COLUMN c */ FORCE", "versioned comment"),
    ("DROP TABLE other.victim", "namespace"),
    ("ALTER TABLE other.t ADD COLUMN c INT", "namespace"),
    ("CREATE TABLE t LIKE other.secret", "namespace"),
    ("ALTER TABLE t EXCHANGE PARTITION p0 WITH TABLE other.victim", "exchanges a partition"),
    ("ALTER TABLE t EXCHANGE PARTITION p0 WITH TABLE app.victim", "exchanges a partition"),
    (
        "ALTER TABLE t CONVERT TO CHARACTER SET utf8mb4, ADD CONSTRAINT fk FOREIGN KEY (a) "
        "REFERENCES other.p(id)",
        "names schema 'other'",
    ),
    ("ALTER TABLE t UNION=(other.a)", "MERGE table"),
    ("CREATE TABLE t (id INT) ENGINE=MERGE UNION=(other.a)", "ENGINE=MERGE"),
    (
        "CREATE TABLE t (id INT) ENGINE=FEDERATED CONNECTION='mysql://u@h:3306/other/victim'",
        "ENGINE=FEDERATED",
    ),
    ("CREATE OR REPLACE TABLE t (id INT PRIMARY KEY)", "CREATE OR REPLACE"),
    ("ALTER TABLE IF EXISTS t ADD COLUMN c INT", "IF EXISTS"),
    ("ALTER TABLE t ADDD COLUMN x INT", "ADDD"),
    ("ALTER TABLE t ADD COLUMN x INT, ALGORITHM=COPY", "ALGORITHM=COPY"),
    ("ALTER TABLE t ADD COLUMN x INT, LOCK = NONE", "LOCK = NONE"),
    ("ALTER TABLE t RENAME TO u", "renames the table"),
    ("ALTER TABLE t ADD COLUMN x INT, RENAME AS u", "renames the table"),
    (f"ALTER TABLE {'x' * 65} ADD COLUMN c INT", "at most 64"),
    ("ALTER TABLE t ADD COLUMN x INT COMMENT '\udcff'", "UTF-8"),
]


def _http(rt: Runtime) -> TestClient:
    return TestClient(build_app(lambda: Client(runtime=rt)), base_url="http://localhost")


def _cli(rt: Runtime, monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str]:
    monkeypatch.setattr(cli, "_client", lambda: Client(runtime=rt))
    result = CliRunner().invoke(cli.cli, list(args))
    return result.exit_code, result.stderr


@pytest.mark.parametrize(("ddl", "fragment"), REFUSED)
def test_refused_at_submit_over_http_and_cli(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch, ddl: str, fragment: str
) -> None:
    http = _http(rt)
    body = json.dumps(
        {"target": "fake", "engine": "fake", "changes": [{"namespace": "app", "ddl": [ddl]}]}
    ).encode()
    response = http.post("/v1/applies", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert fragment in response.json()["error"], response.json()
    code, err = _cli(
        rt, monkeypatch, "apply", "--target", "fake", "--engine", "fake", "--namespace", "app", "--ddl", ddl
    )
    assert code == 2 and fragment in err, err
    assert Client(runtime=rt).list_applies() == []


@pytest.mark.parametrize(
    "ddl",
    [
        "ALTER TABLE t CONVERT TO CHARACTER SET utf8mb4, ADD CONSTRAINT fk FOREIGN KEY (a) "
        "REFERENCES app.p(id)",
        "ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES p (id)",
        "CREATE TABLE t LIKE app.x",
        "CREATE TABLE t (a INT, b INT AS (t.a + 1.5), CHECK (t.a > 0))",
    ],
)
def test_names_in_the_namespace_are_accepted_over_http(rt: Runtime, ddl: str) -> None:
    """A foreign key's parent or a LIKE source in the apply's own namespace, and `t.col` in an
    expression, stay accepted (issue 10 §3). `allow_unsafe`: the destructive-change guard is
    another question (a CONVERT TO CHARACTER SET it cannot read is refused without it)."""
    body = {
        "target": "fake",
        "engine": "fake",
        "changes": [{"namespace": "app", "ddl": [ddl]}],
        "allow_unsafe": True,
    }
    response = _http(rt).post("/v1/applies", json=body)
    assert response.status_code < 300, response.text


def test_comments_are_stripped_before_storing(rt: Runtime) -> None:
    apply_id = (
        Client(runtime=rt)
        .submit_apply(
            "fake", "fake", [ChangeSet(namespace="app", ddl=["-- why\nALTER TABLE t ADD c INT # note"])]
        )
        .apply_id
    )
    assert [t.ddl for t in status(rt, apply_id).tasks] == ["ALTER TABLE t ADD c INT"]


def test_sizes_names_and_encodings_are_checked(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    http = _http(rt)
    big = "ALTER TABLE t ADD COLUMN c INT COMMENT '" + "x" * (256 * 1024) + "'"
    response = http.post(
        "/v1/applies",
        json={"target": "fake", "engine": "fake", "changes": [{"namespace": "app", "ddl": [big]}]},
    )
    assert response.status_code == 400 and "at most 262144 bytes" in response.json()["error"]
    long_ns = {
        "target": "fake",
        "engine": "fake",
        "changes": [{"namespace": "n" * 65, "ddl": ["DROP TABLE t"]}],
    }
    assert http.post("/v1/applies", json=long_ns).status_code == 400
    raw = (
        b'{"target": "fake", "engine": "fake", "changes": [{"namespace": "app", "ddl": ["DROP TABLE \xff"]}]}'
    )
    response = http.post("/v1/applies", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400 and "UTF-8" in response.json()["error"]
    assert http.get("/v1/applies?limit=0").status_code == 400
    assert http.get("/v1/applies?limit=100000").status_code == 400

    code, err = _cli(rt, monkeypatch, "list", "--limit", "0")
    assert code == 2, err
    code, err = _cli(rt, monkeypatch, "list", "--limit", "-5")
    assert code == 2, err
    assert Client(runtime=rt).list_applies() == []


def test_the_ddl_cap_is_a_setting(settings: Settings) -> None:
    small = settings.model_copy(update={"max_ddl_bytes": 1024})
    db = Database(small.database_url, 1.0)
    client = Client(runtime=Runtime(settings=small, db=db, dispatcher=RecordingDispatcher(), owner="t"))
    ddl = "ALTER TABLE t ADD COLUMN c INT COMMENT '" + "x" * 1100 + "'"
    with pytest.raises(ValidationError, match="at most 1024 bytes"):
        client.submit_apply("fake", "fake", [ChangeSet(namespace="app", ddl=[ddl])])
    db.dispose()


@pytest.mark.parametrize(
    ("engine", "options", "fragment"),
    [
        ("spirit", {"chunk_rows": "abc"}, "chunk_rows"),
        ("spirit", {"chunk_rows": 0}, "greater than or equal to 1"),
        ("spirit", {"chunk_rows": 1.5}, "chunk_rows"),
        ("spirit", {"chunk_size": 100}, "unknown option 'chunk_size'"),
        ("spirit", {"lock_wait_seconds": 10**9}, "lock_wait_seconds"),
        ("spirit", {"trailing_checksum": "false"}, "trailing_checksum"),
        ("spirit", {"max_replica_lag_seconds": 0}, "max_replica_lag_seconds"),
        ("spirit", {"max_threads_running": "50"}, "max_threads_running"),
        ("direct", {"chunk_rows": 100}, "unknown option"),
        ("planetscale", {"instant_ddl": "yes"}, "instant_ddl"),
        ("planetscale", {"defer_deploy": 1}, "defer_deploy"),
        ("planetscale", {"chunk_rows": 100}, "unknown option 'chunk_rows' (the planetscale engine takes"),
        ("fake", {"anything": 1}, "unknown option"),
    ],
)
def test_engine_options_are_checked_per_engine(
    settings: Settings, engine: str, options: dict[str, object], fragment: str
) -> None:
    mysql = settings.model_copy(
        update={"targets": {**settings.targets, "my": "mysql://root@127.0.0.1:3306/app", "ps": _PS_DSN}}
    )
    db = Database(mysql.database_url, 1.0)
    client = Client(runtime=Runtime(settings=mysql, db=db, dispatcher=RecordingDispatcher(), owner="t"))
    target = {"fake": "fake", "planetscale": "ps"}.get(engine, "my")
    http = TestClient(build_app(lambda: client), base_url="http://localhost")
    body = {
        "target": target,
        "engine": engine,
        "engine_options": options,
        "changes": [{"namespace": "app", "ddl": ["ALTER TABLE t ADD c INT"]}],
    }
    response = http.post("/v1/applies", json=body)
    assert response.status_code == 400 and fragment in response.json()["error"], response.text
    ok = client.submit_apply(
        "my",
        "spirit",
        [ChangeSet(namespace="app", ddl=["ALTER TABLE t ADD c INT"])],
        engine_options={"chunk_rows": 500, "trailing_checksum": False, "max_replica_lag_seconds": 2.5},
    )
    expected = {"chunk_rows": 500, "trailing_checksum": False, "max_replica_lag_seconds": 2.5}
    assert status_options(client, ok.apply_id) == expected
    ps = client.submit_apply(
        "ps",
        "planetscale",
        [ChangeSet(namespace="app", ddl=["ALTER TABLE t ADD c INT"])],
        engine_options={"instant_ddl": True, "defer_deploy": False},
    )
    assert status_options(client, ps.apply_id) == {"instant_ddl": True, "defer_deploy": False}
    db.dispose()


_PS_DSN = "planetscale://id:secret@org/db?api_url=http://127.0.0.1:9"


def status_options(client: Client, apply_id: str) -> object:
    return client.get_apply(apply_id).options.get("extra")
