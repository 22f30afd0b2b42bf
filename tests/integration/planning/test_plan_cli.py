"""`schemabot plan` and `apply --schema-dir` on MariaDB (issue 13): the plan
document, its exit codes, the scratch schemas always removed, lint configuration per target, and
an apply from schema files that ends with the live schema equal to the files."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from engines.targets import Target
from schemabot.api import Client
from schemabot.cli import main
from schemabot.errors import ValidationError
from schemabot.migrate import upgrade
from schemabot.planning.planner import Planner
from schemabot.planning.service import PlanBlocked, stored_plan, submit_planned
from schemabot.runtime import Runtime
from schemabot.settings import Settings, get_settings
from schemabot.storage.database import Database
from tests.conftest import FAST
from tests.support.harness import RecordingDispatcher, pump
from tests.support.mariadb import connect, fresh_schema, mysql_dsn, plan_scratch_leftovers

pytestmark = pytest.mark.integration

LIVE = [
    "CREATE TABLE orders (id INT PRIMARY KEY, note VARCHAR(100), cust INT)",
    "INSERT INTO orders VALUES (1, 'a', 1), (2, 'b', 1), (3, 'c', 2)",
    "CREATE TABLE legacy (id INT PRIMARY KEY)",
]


@pytest.fixture
def schema(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with fresh_schema("sbt_plan") as name:
        conn = connect(name)
        with conn.cursor() as cur:
            for statement in LIVE:
                cur.execute(statement)
            cur.execute("ANALYZE TABLE orders")
        conn.close()
        monkeypatch.setenv("SCHEMABOT_TARGET_SHOP", mysql_dsn(name))
        get_settings.cache_clear()
        yield name


def write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_plan_from_schema_files_as_a_versioned_document(
    schema: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = plan_scratch_leftovers()
    files = write(
        tmp_path / "schema",
        {
            "orders.sql": "-- the orders\nCREATE TABLE orders (id INT PRIMARY KEY, note VARCHAR(100), "
            "cust INT, total DECIMAL(10,2) NOT NULL DEFAULT 0);",
            "customers.sql": "CREATE TABLE customers (id BIGINT PRIMARY KEY, name VARCHAR(50));",
            "legacy.sql": "CREATE TABLE legacy (id INT PRIMARY KEY);",
        },
    )
    code, out, err = run_cli(capsys, "plan", "--target", "shop", "--schema-dir", str(files), "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["version"] == 1 and doc["source"] == "schema_dir" and doc["blocking"] is False
    by_table = {s["table"]: s for s in doc["statements"]}
    assert set(by_table) == {"customers", "orders"}
    assert by_table["customers"]["action"] == "create" and by_table["customers"]["engine"] == "direct"
    orders = by_table["orders"]
    assert orders["ddl"].startswith("ALTER TABLE `orders` ADD COLUMN `total` decimal(10,2) NOT NULL")
    assert (orders["algorithm"], orders["engine"]) == ("INSTANT", "direct")
    assert orders["rows_estimate"] == 3 and orders["duration_seconds"] is None
    assert doc["copy_rate"] == {"rows_per_second": 50000.0, "source": "default"}
    assert plan_scratch_leftovers() <= before
    with connect(schema).cursor() as cur:  # nothing changed on the target
        cur.execute("SHOW TABLES")
        assert sorted(r[0] for r in cur.fetchall()) == ["legacy", "orders"]


def test_a_copy_is_estimated_and_given_to_spirit_with_its_preflight(schema: str) -> None:
    planner = Planner(shop(), copy_rate=(2.0, "measured"))
    plan = planner.plan_ddl(["ALTER TABLE orders MODIFY cust BIGINT, ADD INDEX ic (cust)"])
    [st] = plan.statements
    assert (st.algorithm, st.engine) == ("COPY", "spirit")
    assert st.rows_estimate == 3 and st.duration_seconds == 1.5
    assert st.preflight and all(p["verdict"] == "pass" for p in st.preflight)
    # The plan says which change source the copy would use (the shared server has no binlog).
    [source] = [p for p in st.preflight if p["check"] == "change_source"]
    assert source["message"].startswith("triggers: the server's log_bin=OFF"), source
    direct = Planner(shop(), engine="direct").plan_ddl(["ALTER TABLE orders MODIFY cust BIGINT"])
    assert [f.rule for f in direct.statements[0].findings] == ["SB902"] and direct.blocking


def shop() -> Target:
    return get_settings().target("shop")


def test_exit_codes_blocking_bad_input_and_scratch_removed_on_failure(
    schema: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = plan_scratch_leftovers()
    code, out, _ = run_cli(capsys, "plan", "--target", "shop", "--ddl", "ALTER TABLE orders DROP COLUMN note")
    assert code == 3 and "SB002 drop-column" in out and "BLOCKED" in out
    code, out, _ = run_cli(
        capsys, "plan", "--target", "shop", "--ddl", "ALTER TABLE orders DROP COLUMN note", "--allow-unsafe"
    )
    assert code == 0 and "allowed by --allow-unsafe" in out
    bad_key = "ALTER TABLE orders ADD KEY k (nope)"
    code, out, _ = run_cli(capsys, "plan", "--target", "shop", "--ddl", bad_key)
    assert code == 3 and "SB900" in out and "nope" in out  # the server rejects it on the empty copy
    refused = write(tmp_path / "bad", {"orders.sql": "CREATE TABLE orders (id INT PRIMARY KEY, KEY k (no));"})
    code, _, err = run_cli(capsys, "plan", "--target", "shop", "--schema-dir", str(refused))
    assert code == 2 and "orders.sql" in err and "the server refuses" in err
    altering = write(tmp_path / "alter", {"orders.sql": "ALTER TABLE orders ADD COLUMN y INT;"})
    code, _, err = run_cli(capsys, "plan", "--target", "shop", "--schema-dir", str(altering))
    assert code == 2 and "only CREATE TABLE" in err
    code, _, err = run_cli(capsys, "plan", "--target", "shop", "--schema-dir", str(tmp_path / "missing"))
    assert code == 2 and "does not exist" in err
    assert plan_scratch_leftovers() <= before


def test_lint_rules_can_be_disabled_per_target(
    schema: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ddl = "ALTER TABLE orders ADD COLUMN price FLOAT"
    code, out, _ = run_cli(capsys, "plan", "--target", "shop", "--ddl", ddl, "--json")
    assert code == 0 and [f["rule"] for f in json.loads(out)["statements"][0]["findings"]] == ["SB108"]
    monkeypatch.setenv("SCHEMABOT_LINT_DISABLE_SHOP", "float-money")
    code, out, _ = run_cli(capsys, "plan", "--target", "shop", "--ddl", ddl, "--json")
    doc = json.loads(out)
    assert code == 0 and doc["statements"][0]["findings"] == [] and doc["disabled_rules"] == ["float-money"]


@pytest.fixture
def runtime(tmp_path: Path, schema: str) -> Iterator[tuple[Runtime, RecordingDispatcher]]:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    upgrade(database_url=url)
    settings = Settings(database_url=url, targets={"shop": mysql_dsn(schema)}, **FAST)
    dispatcher = RecordingDispatcher()
    db = Database(url, settings.storage_retry_seconds)
    yield Runtime(settings=settings, db=db, dispatcher=dispatcher, owner="test-worker"), dispatcher
    db.dispose()


def test_apply_from_schema_files_ends_equal_to_the_files_with_the_plan_stored(
    runtime: tuple[Runtime, RecordingDispatcher], schema: str, tmp_path: Path
) -> None:
    rt, dispatcher = runtime
    client = Client(runtime=rt)
    files = write(
        tmp_path / "schema",
        {
            "orders.sql": "CREATE TABLE orders (id INT PRIMARY KEY, note VARCHAR(20), cust INT, "
            "KEY ic (cust));",
            "customers.sql": "CREATE TABLE customers (id BIGINT PRIMARY KEY, name VARCHAR(50));",
        },
    )
    with pytest.raises(PlanBlocked, match="SB004 shrink-varchar"):
        submit_planned(client, "shop", schema_dir=str(files))
    assert client.list_applies() == []  # nothing submitted

    submitted = submit_planned(client, "shop", schema_dir=str(files), allow_unsafe=True, requested_by="alice")
    assert submitted.engine == "auto"  # the shrink copies (spirit); the rest runs natively (direct)
    pump(rt, dispatcher, max_messages=2000)
    status = client.get_apply(submitted.apply_id)
    assert status.state == "completed", status
    assert {t.table: t.engine for t in status.tasks} == {
        "orders": "spirit",
        "customers": "direct",
        "legacy": "direct",
    }
    assert [t.engine for t in status.tasks] == ["direct", "direct", "spirit"]  # direct runs first

    again = Planner(rt.settings.target("shop")).plan_schema_dir(files)
    assert again.statements == []  # the live schema now equals the files
    plan = stored_plan(rt.settings, submitted.apply_id, db=rt.db)
    assert plan["version"] == 1 and plan["submitted_engine"] == "auto"
    unsafe = [e for e in client.log(submitted.apply_id) if e.event == "unsafe_allowed"]
    assert len(unsafe) == 1 and "alice" in (unsafe[0].message or "") and "SB001" in (unsafe[0].message or "")
    with connect(schema).cursor() as cur:
        cur.execute("SELECT id, note FROM orders ORDER BY id")
        assert cur.fetchall() == ((1, "a"), (2, "b"), (3, "c"))


def test_plain_apply_refuses_a_destructive_statement_without_allow_unsafe(
    runtime: tuple[Runtime, RecordingDispatcher],
) -> None:
    rt, dispatcher = runtime
    client = Client(runtime=rt)
    from schemabot.api import UnsafeChange

    with pytest.raises(UnsafeChange, match="drops table legacy"):
        client.submit_apply("shop", "direct", ["DROP TABLE legacy"], allow_unsafe=False)
    assert client.list_applies() == []
    result = client.submit_apply(
        "shop", "direct", ["DROP TABLE legacy"], allow_unsafe=True, requested_by="bob"
    )
    [entry] = [e for e in client.log(result.apply_id) if e.event == "unsafe_allowed"]
    assert "bob" in (entry.message or "")
    pump(rt, dispatcher)
    assert client.get_apply(result.apply_id).state == "completed"


def test_migration_0005_on_mariadb() -> None:
    with fresh_schema("sbt_plan_state") as name:
        url = f"mysql+pymysql://root@127.0.0.1:3306/{name}"
        upgrade(database_url=url)
        db = Database(url)
        from schemabot.storage.plans import load_plan, store_plan

        store_plan(db, "apply-x", {"version": 1}, "carol")
        store_plan(db, "apply-x", {"version": 2}, "dave")  # the first plan stays
        assert load_plan(db, "apply-x") == {"version": 1}
        db.dispose()


def test_plans_over_http(runtime: tuple[Runtime, RecordingDispatcher], schema: str) -> None:
    from starlette.testclient import TestClient

    from schemabot.http_api import build_app

    rt, dispatcher = runtime
    http = TestClient(build_app(lambda: Client(runtime=rt)), base_url="http://localhost")
    files = {
        "orders.sql": "CREATE TABLE orders (id INT PRIMARY KEY, note VARCHAR(100), cust INT, flag INT);",
        "legacy.sql": "CREATE TABLE legacy (id INT PRIMARY KEY);",
    }
    planned = http.post("/v1/plans", json={"target": "shop", "schema_files": files})
    assert planned.status_code == 200, planned.text
    doc = planned.json()
    assert doc["version"] == 1 and doc["blocking"] is False
    assert [(s["table"], s["algorithm"], s["engine"]) for s in doc["statements"]] == [
        ("orders", "INSTANT", "direct")
    ]
    escaping = {"../x.sql": "CREATE TABLE x (id INT)"}
    bad = http.post("/v1/plans", json={"target": "shop", "schema_files": escaping})
    assert bad.status_code == 400

    drop = {"target": "shop", "ddl": ["DROP TABLE legacy"]}
    blocked = http.post("/v1/plans/apply", json=drop)
    assert blocked.status_code == 409 and blocked.json()["plan"]["blocking"] is True
    refused = http.post(
        "/v1/applies", json={"target": "shop", "engine": "direct", "changes": [{"ddl": drop["ddl"]}]}
    )
    assert refused.status_code == 400 and "allow_unsafe" in refused.json()["error"]

    body = {"target": "shop", "schema_files": files, "idempotency_key": "ci-1"}
    applied = http.post("/v1/plans/apply", json=body)
    assert applied.status_code == 201 and applied.json()["engine"] == "direct"
    apply_id = applied.json()["apply_id"]
    pump(rt, dispatcher)
    repeat = http.post("/v1/plans/apply", json=body)  # after it ran: the same apply, not "nothing to do"
    assert repeat.status_code == 200 and repeat.json()["apply_id"] == apply_id
    assert http.get(f"/v1/applies/{apply_id}").json()["state"] == "completed"
    assert http.get(f"/v1/applies/{apply_id}/plan").json()["statements"][0]["table"] == "orders"
    assert http.get("/v1/applies/apply-nope/plan").status_code == 404


def test_cli_apply_engine_auto_then_plan_show(
    runtime: tuple[Runtime, RecordingDispatcher],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rt, dispatcher = runtime
    import schemabot.cli as cli_module

    monkeypatch.setattr(cli_module, "_client", lambda: Client(runtime=rt))
    monkeypatch.setenv("SCHEMABOT_DATABASE_URL", rt.settings.database_url)
    get_settings.cache_clear()
    ddl = ["--ddl", "ALTER TABLE orders ADD COLUMN flag INT", "--ddl", "ALTER TABLE legacy MODIFY id BIGINT"]
    code, out, err = run_cli(capsys, "apply", "--target", "shop", "--engine", "auto", *ddl, "--json")
    assert code == 0, err
    apply_id = json.loads(out)["apply_id"]
    submitted = Client(runtime=rt).get_apply(apply_id)
    assert submitted.engine == "auto"  # one statement must copy, the other runs natively
    assert [(t.table, t.engine) for t in submitted.tasks] == [("orders", "direct"), ("legacy", "spirit")]
    pump(rt, dispatcher, max_messages=2000)
    assert Client(runtime=rt).get_apply(apply_id).state == "completed"
    code, out, err = run_cli(capsys, "plan", "show", apply_id, "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert [(s["table"], s["algorithm"], s["engine"]) for s in shown["statements"]] == [
        ("orders", "INSTANT", "direct"),
        ("legacy", "COPY", "spirit"),
    ]
    assert shown["submitted_engine"] == "auto"
    assert "1 on direct, 1 on spirit" in shown["submitted_engine_reason"]
    code, out, _ = run_cli(capsys, "status", apply_id)
    assert code == 0 and "plan: submitted with auto" in out
    assert "legacy  alter  completed 100.0%" in out and "engine=spirit (the server would copy" in out
    assert "orders: INSTANT -> direct (the server changes it instantly" in out
    drop = ["--ddl", "DROP TABLE legacy"]
    code, _, err = run_cli(capsys, "apply", "--target", "shop", "--engine", "auto", *drop)
    assert code == 3 and "SB001" in err


def test_a_unique_key_over_duplicates_is_found_on_the_live_table(schema: str) -> None:
    dup = Planner(shop()).plan_ddl(["ALTER TABLE orders ADD UNIQUE KEY uc (cust)"])
    [finding] = dup.statements[0].findings
    assert (finding.rule, finding.blocking) == ("SB102", True) and "e.g. (1)" in finding.message
    fine = Planner(shop()).plan_ddl(["ALTER TABLE orders ADD UNIQUE KEY un (note)"])
    assert fine.statements[0].findings == [] and not fine.blocking


def test_a_plan_refuses_a_name_in_another_schema_before_rehearsing(schema: str) -> None:
    """The rehearsal runs the statement: one that reaches another schema is refused first."""
    with pytest.raises(ValidationError, match="names schema 'other'"):
        Planner(shop()).plan_ddl(["ALTER TABLE orders ADD FOREIGN KEY (cust) REFERENCES other.p (id)"])


def test_adding_a_foreign_key_is_planned_as_a_copy(schema: str) -> None:
    plan = Planner(shop()).plan_ddl(
        ["ALTER TABLE orders ADD CONSTRAINT fk_cust FOREIGN KEY (cust) REFERENCES legacy (id)"]
    )
    [st] = plan.statements
    assert (st.algorithm, st.engine) == ("COPY", "spirit")
    assert "SB104" in [f.rule for f in st.findings]


def test_one_subdirectory_per_namespace(schema: str, tmp_path: Path) -> None:
    with fresh_schema("sbt_plan_other") as other:
        write(
            tmp_path / "multi" / schema,
            {
                "orders.sql": "CREATE TABLE orders (id INT PRIMARY KEY, note VARCHAR(100), cust INT);",
                "legacy.sql": "CREATE TABLE legacy (id INT PRIMARY KEY);",
            },
        )
        write(tmp_path / "multi" / other, {"audit.sql": "CREATE TABLE audit (id BIGINT PRIMARY KEY);"})
        plan = Planner(shop()).plan_schema_dir(tmp_path / "multi")
        assert [(s.namespace, s.table, s.action) for s in plan.statements] == [(other, "audit", "create")]
        assert plan.statements[0].ddl.startswith("CREATE TABLE `audit`")


def test_a_mixed_plan_applied_over_http_shows_each_tasks_engine_in_the_api_and_on_the_page(
    runtime: tuple[Runtime, RecordingDispatcher],
) -> None:
    from starlette.testclient import TestClient

    from schemabot.http_api import build_app

    rt, dispatcher = runtime
    http = TestClient(build_app(lambda: Client(runtime=rt)), base_url="http://localhost")
    ddl = ["ALTER TABLE legacy MODIFY id BIGINT", "ALTER TABLE orders ADD COLUMN flag INT"]
    applied = http.post("/v1/plans/apply", json={"target": "shop", "ddl": ddl, "defer_cutover": True})
    assert applied.status_code == 201, applied.text
    assert applied.json()["engine"] == "auto"
    apply_id = applied.json()["apply_id"]
    waiting = lambda: http.get(f"/v1/applies/{apply_id}").json()["state"] == "waiting_for_cutover"  # noqa: E731
    pump(rt, dispatcher, max_messages=2000, until=waiting)
    doc = http.get(f"/v1/applies/{apply_id}").json()
    # Only the copy waits for the cutover: the native change already ran.
    assert [(t["table"], t["engine"], t["state"]) for t in doc["tasks"]] == [
        ("orders", "direct", "completed"),
        ("legacy", "spirit", "waiting_for_cutover"),
    ]
    assert all(t["engine_reason"] for t in doc["tasks"])
    page = http.get(f"/ui/applies/{apply_id}")
    assert page.status_code == 200, page.text
    assert '<td class="engine">direct<br><span class="muted">the server changes it instantly' in page.text
    assert '<td class="engine">spirit<br><span class="muted">the server would copy the table' in page.text
    # The page shows the plan the apply came from, as `plan show` does: estimates and the copy rate.
    shown = page.text.split('<pre id="plan">', 1)[1].split("</pre>", 1)[0]
    assert "plan v1 for target shop" in shown and "copy rate:" in shown, shown
    assert "legacy  alter  COPY -&gt; spirit" in shown, shown
    cutover = http.post(f"/v1/applies/{apply_id}/cutover", json={})
    assert cutover.status_code in (200, 201, 202), cutover.text
    pump(rt, dispatcher, max_messages=2000)
    assert http.get(f"/v1/applies/{apply_id}").json()["state"] == "completed"


def test_a_live_table_missing_from_the_files_is_reported_and_kept_without_allow_unsafe(
    runtime: tuple[Runtime, RecordingDispatcher],
    schema: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rt, dispatcher = runtime
    import schemabot.cli as cli_module

    monkeypatch.setattr(cli_module, "_client", lambda: Client(runtime=rt))
    files = write(
        tmp_path / "schema",  # no legacy.sql
        {"orders.sql": "CREATE TABLE orders (id INT PRIMARY KEY, note VARCHAR(100), cust INT, flag INT);"},
    )
    code, out, err = run_cli(capsys, "plan", "--target", "shop", "--schema-dir", str(files), "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert [s["table"] for s in doc["statements"]] == ["orders"]  # no DROP TABLE legacy
    [finding] = doc["findings"]
    assert (finding["rule"], finding["severity"], finding["blocking"]) == ("SB001", "warning", False)
    assert f"{schema}.legacy exists but has no schema file: not dropped" in finding["message"]
    apply = ("apply", "--target", "shop", "--engine", "auto", "--schema-dir", str(files), "--json")
    code, out, err = run_cli(capsys, *apply)
    assert code == 0, err
    apply_id = json.loads(out)["apply_id"]
    pump(rt, dispatcher, max_messages=2000)
    status = Client(runtime=rt).get_apply(apply_id)
    assert status.state == "completed" and [t.table for t in status.tasks] == ["orders"]
    with connect(schema).cursor() as cur:
        cur.execute("SHOW TABLES")
        assert sorted(r[0] for r in cur.fetchall()) == ["legacy", "orders"]
