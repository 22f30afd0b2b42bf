"""`schemabot plan` and `apply --schema-dir` for a Vitess target (issue 13 §5), through the CLI and
the HTTP API against a real emulator process (a real HTTP server and MySQL proxy): the plan is
the diff of a deploy request opened from a plan branch and never deployed; a repeated plan reuses
the branch and the deploy request; `vschema.json` is part of the plan and lands with the apply;
bad VSchema files are bad input; a provider that does not answer is neither clean nor blocked.

The emulator ticks on its own here (every 50 ms), since a plan waits for the branch and for the
deploy request's diff as it would on PlanetScale.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engines.planetscale.naming import branch_name
from schemabot.api import Client
from schemabot.cli import main
from schemabot.migrate import upgrade
from schemabot.runtime import Runtime
from schemabot.settings import Settings, get_settings
from schemabot.storage.database import Database
from tests.conftest import FAST
from tests.support.emulator_process import EmulatorProcess
from tests.support.harness import RecordingDispatcher, deliver
from tests.support.servers import free_port

pytestmark = pytest.mark.integration

ADD_SKU = "ALTER TABLE product ADD COLUMN sku VARCHAR(32) NULL"
VSCHEMA = {"sharded": False, "tables": {"customer": {}}}
PRODUCT_WITH_SKU = (
    "CREATE TABLE product (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(64) NOT NULL, "
    "price INT NOT NULL DEFAULT 0, sku VARCHAR(32) NULL);"
)
COUPON = "CREATE TABLE coupon (id INT PRIMARY KEY, code VARCHAR(16) NOT NULL);"
CUSTOMER = "CREATE TABLE customer (id INT PRIMARY KEY, email VARCHAR(128));"


@pytest.fixture(scope="module")
def ticking() -> Iterator[EmulatorProcess]:
    emulator = EmulatorProcess(tick_interval=0.05)
    try:
        emulator.start()
        yield emulator
    finally:
        emulator.stop()
        emulator.drop_schemas()


@pytest.fixture
def emulator(ticking: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> EmulatorProcess:
    ticking.reset()
    ticking.seed()
    monkeypatch.setenv("SCHEMABOT_TARGET_PS", ticking.target("ps").dsn)
    get_settings.cache_clear()
    return ticking


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def write(directory: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return directory


def schema_files() -> dict[str, str]:
    return {
        "commerce/product.sql": PRODUCT_WITH_SKU,
        "commerce/coupon.sql": COUPON,
        "customers/customer.sql": CUSTOMER,
        "customers/vschema.json": json.dumps(VSCHEMA),
    }


def main_state(emulator: EmulatorProcess) -> dict[str, Any]:
    """Main's schema and VSchemas, to show that a plan changed nothing there."""
    state: dict[str, Any] = {}
    for keyspace in ("commerce", "customers"):
        schema = emulator.api("GET", f"/branches/main/schema?keyspace={keyspace}").json()["data"]
        vschema = emulator.api("GET", f"/branches/main/keyspaces/{keyspace}/vschema").json()["raw"]
        state[keyspace] = ({t["name"]: t["raw"] for t in schema}, json.loads(vschema or "{}"))
    return state


def nothing_deployed(emulator: EmulatorProcess) -> None:
    assert emulator.events("deploy_request.deploy") == []
    for dr in emulator.api("GET", "/deploy-requests").json()["data"]:
        assert dr["deployment_state"] in ("pending", "ready", "no_changes", "error"), dr
        assert dr["deployed_at"] is None


def test_a_ddl_plan_is_the_deploy_requests_diff_and_a_repeat_reuses_branch_and_request(
    emulator: EmulatorProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    before = main_state(emulator)
    args = ("plan", "--target", "ps", "--namespace", "commerce", "--ddl", ADD_SKU, "--json")
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    doc = json.loads(out)
    assert (doc["version"], doc["platform"], doc["blocking"]) == (1, "vitess", False)
    [st] = doc["statements"]
    assert (st["namespace"], st["table"], st["action"], st["engine"]) == (
        "commerce",
        "product",
        "alter",
        "planetscale",
    )
    assert st["ddl"] == ADD_SKU  # what an apply submits
    lines = st["diff"].split("\n")
    assert "+  `sku` varchar(32) DEFAULT NULL," in lines and "   `name` varchar(64) NOT NULL," in lines
    assert not [line for line in lines if line.startswith("-")]  # a column added, nothing removed
    vitess = doc["vitess"]
    branch, dr = vitess["branch"], vitess["deploy_request"]
    assert branch.startswith("sb-plan-") and vitess["branch_reused"] is False
    assert (dr["state"], dr["reused"], dr["deployed"]) == ("ready", False, False)
    assert main_state(emulator) == before and emulator.columns("commerce", "product") == [
        "id",
        "name",
        "price",
    ]
    nothing_deployed(emulator)

    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    again = json.loads(out)
    assert again["vitess"]["branch"] == branch and again["vitess"]["branch_reused"] is True
    assert again["vitess"]["deploy_request"]["number"] == dr["number"]
    assert again["vitess"]["deploy_request"]["reused"] is True
    assert again["statements"] == doc["statements"]
    assert len(emulator.events("branch.create")) == 1 and len(emulator.events("deploy_request.create")) == 1

    code, out, _ = run_cli(capsys, "plan", "--target", "ps", "--namespace", "commerce", "--ddl", ADD_SKU)
    assert code == 0 and f"plan branch {branch} (reused); deploy request #{dr['number']}" in out
    assert "+  `sku` varchar(32) DEFAULT NULL," in out and "  commerce.product  alter -> planetscale\n" in out
    assert branch != branch_name("apply-" + branch.removeprefix("sb-plan-"))  # never an apply's name
    assert main_state(emulator) == before
    nothing_deployed(emulator)


def test_blocking_findings_and_statements_the_branch_refuses_exit_3(
    emulator: EmulatorProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    before = main_state(emulator)
    drop = (
        "plan",
        "--target",
        "ps",
        "--namespace",
        "commerce",
        "--ddl",
        "ALTER TABLE product DROP COLUMN price",
    )
    code, out, _ = run_cli(capsys, *drop, "--json")
    doc = json.loads(out)
    assert code == 3 and doc["blocking"] is True
    assert [f["rule"] for f in doc["statements"][0]["findings"]] == ["SB002"]
    assert "-  `price` int(11) NOT NULL DEFAULT 0," in doc["statements"][0]["diff"]
    code, out, _ = run_cli(capsys, *drop, "--allow-unsafe", "--json")
    assert code == 0 and json.loads(out)["statements"][0]["findings"][0]["allowed"] is True
    bad = (
        "plan",
        "--target",
        "ps",
        "--namespace",
        "commerce",
        "--ddl",
        "ALTER TABLE product ADD KEY k (nope)",
    )
    code, out, _ = run_cli(capsys, *bad, "--json")
    doc = json.loads(out)
    assert code == 3 and doc["statements"][0]["findings"][0]["rule"] == "SB900"
    assert "nope" in doc["statements"][0]["findings"][0]["message"]
    assert doc["statements"][0]["diff"] is None  # the branch was left as main: nothing to deploy
    assert doc["vitess"]["deploy_request"]["state"] == "no_changes"
    # PlanetScale's own verdict: a deploy request it cannot deploy blocks the plan (SB904), once.
    emulator.fault(kind="fail_deploy", deploy_state="pending", message="lint: no primary key", times=1)
    add = ("plan", "--target", "ps", "--namespace", "commerce", "--ddl", ADD_SKU, "--json")
    code, out, _ = run_cli(capsys, *add)
    refused = json.loads(out)
    assert code == 3 and [(f["rule"], f["blocking"]) for f in refused["findings"]] == [("SB904", True)]
    assert "cannot be deployed: lint: no primary key" in refused["findings"][0]["message"]
    code, out, _ = run_cli(capsys, *add)
    assert code == 0 and json.loads(out)["vitess"]["deploy_request"]["state"] == "ready"  # asked anew
    code, _, err = run_cli(capsys, "plan", "--target", "ps", "--namespace", "nowhere", "--ddl", ADD_SKU)
    assert code == 2 and "keyspace(s) nowhere do not exist" in err
    assert main_state(emulator) == before
    nothing_deployed(emulator)


def test_a_schema_dir_plan_includes_vschema_json_and_main_moving_on_is_not_in_the_diff(
    emulator: EmulatorProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = main_state(emulator)
    files = write(tmp_path / "schema", schema_files())
    code, out, err = run_cli(capsys, "plan", "--target", "ps", "--schema-dir", str(files), "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert [(s["namespace"], s["table"], s["action"]) for s in doc["statements"]] == [
        ("commerce", "coupon", "create"),  # files in name order
        ("commerce", "product", "alter"),
    ]
    product = doc["statements"][1]
    assert product["ddl"].startswith("ALTER TABLE `product` ADD COLUMN `sku` varchar(32) DEFAULT NULL")
    assert doc["statements"][0]["diff"].startswith("+CREATE TABLE `coupon` (")
    [vschema] = doc["vitess"]["vschemas"]
    assert vschema["namespace"] == "customers" and vschema["document"] == VSCHEMA
    assert '+  "tables": {' in vschema["diff"].split("\n") and "-{}" in vschema["diff"].split("\n")
    assert main_state(emulator) == before
    nothing_deployed(emulator)

    # Main moves on (someone else's change): the next plan of the same files reuses the branch,
    # resets what is not its own, and shows only its own change in a fresh deploy request.
    emulator.sql("commerce", "CREATE TABLE audit (id INT PRIMARY KEY)")
    code, out, err = run_cli(capsys, "plan", "--target", "ps", "--schema-dir", str(files), "--json")
    assert code == 0, err
    again = json.loads(out)
    assert again["vitess"]["branch"] == doc["vitess"]["branch"] and again["vitess"]["branch_reused"]
    assert [s["table"] for s in again["statements"]] == ["coupon", "product"]
    assert [f["rule"] for f in again["findings"]] == ["SB001"]  # audit: live, no file, not dropped
    open_requests = [
        dr for dr in emulator.api("GET", "/deploy-requests").json()["data"] if dr["state"] == "open"
    ]
    assert [dr["number"] for dr in open_requests] == [again["vitess"]["deploy_request"]["number"]]
    diff = emulator.api("GET", f"/deploy-requests/{open_requests[0]['number']}/diff").json()["data"]
    assert sorted((d["keyspace_name"], d["name"]) for d in diff) == [
        ("commerce", "coupon"),
        ("commerce", "product"),
        ("customers", "vschema"),
    ]
    nothing_deployed(emulator)


def test_a_schema_file_the_branch_refuses_is_bad_input_naming_the_file(
    emulator: EmulatorProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    refused = {
        **schema_files(),
        "commerce/coupon.sql": "CREATE TABLE coupon (id INT PRIMARY KEY, KEY k (nope));",
    }
    files = write(tmp_path / "schema", refused)
    code, _, err = run_cli(capsys, "plan", "--target", "ps", "--schema-dir", str(files))
    assert code == 2 and "coupon.sql: the server refuses the statement" in err and "nope" in err
    nothing_deployed(emulator)


def test_a_provider_that_does_not_answer_is_exit_1_not_a_plan(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    monkeypatch.setenv("SCHEMABOT_TARGET_PS", f"planetscale://id:secret@acme/shop?api_url={dead}")
    get_settings.cache_clear()
    started = time.monotonic()
    code, out, err = run_cli(capsys, "plan", "--target", "ps", "--namespace", "commerce", "--ddl", ADD_SKU)
    assert code == 1 and out == ""
    assert err.startswith("error: provider:") and "no answer (ConnectError" in err
    assert "secret" not in err
    assert time.monotonic() - started < 15


# -- HTTP ---------------------------------------------------------------------------------------


@pytest.fixture
def runtime(tmp_path: Path, emulator: EmulatorProcess) -> Iterator[Runtime]:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    upgrade(database_url=url)
    settings = Settings(database_url=url, targets={"ps": emulator.target("ps").dsn}, **FAST)
    db = Database(url, settings.storage_retry_seconds)
    yield Runtime(settings=settings, db=db, dispatcher=RecordingDispatcher(), owner="test-worker")
    db.dispose()


def test_post_v1_plans_returns_the_same_document_and_refuses_bad_vschemas(
    runtime: Runtime, emulator: EmulatorProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from starlette.testclient import TestClient

    from schemabot.http_api import build_app

    http = TestClient(build_app(lambda: Client(runtime=runtime)), base_url="http://localhost")
    planned = http.post("/v1/plans", json={"target": "ps", "schema_files": schema_files()})
    assert planned.status_code == 200, planned.text
    doc = planned.json()
    code, out, err = run_cli(
        capsys, "plan", "--target", "ps", "--schema-dir", str(write(tmp_path, schema_files())), "--json"
    )
    assert code == 0, err
    cli_doc = json.loads(out)
    assert (doc["vitess"]["branch_reused"], cli_doc["vitess"]["branch_reused"]) == (False, True)
    assert cli_doc["vitess"]["deploy_request"]["reused"] is True  # the same plan, branch and request
    for one in (doc, cli_doc):
        del one["elapsed_seconds"], one["vitess"]["branch_reused"], one["vitess"]["deploy_request"]["reused"]
    assert cli_doc == doc
    for text in ("{not json", "[1, 2]"):
        files = {**schema_files(), "customers/vschema.json": text}
        bad = http.post("/v1/plans", json={"target": "ps", "schema_files": files})
        assert bad.status_code == 400 and "vschema.json" in bad.json()["error"], bad.text
    applied = http.post("/v1/plans/apply", json={"target": "ps", "schema_files": schema_files()})
    assert applied.status_code == 201 and applied.json()["engine"] == "planetscale", applied.text
    tasks = http.get(f"/v1/applies/{applied.json()['apply_id']}").json()["tasks"]
    assert sorted((t["namespace"], t["action"]) for t in tasks) == [
        ("commerce", "alter"),
        ("commerce", "create"),
        ("customers", "vschema_update"),
    ]
    nothing_deployed(emulator)  # submitted, not yet driven: the plan itself deployed nothing


def test_post_v1_plans_when_the_provider_is_down_is_503(runtime: Runtime) -> None:
    from starlette.testclient import TestClient

    from schemabot.http_api import build_app

    dead = f"planetscale://id:secret@acme/shop?api_url=http://127.0.0.1:{free_port()}/v1"
    settings = runtime.settings.model_copy(update={"targets": {"ps": dead}})
    rt = Runtime(settings=settings, db=runtime.db, dispatcher=runtime.dispatcher, owner="test-worker")
    http = TestClient(build_app(lambda: Client(runtime=rt)), base_url="http://localhost")
    answer = http.post("/v1/plans", json={"target": "ps", "namespace": "commerce", "ddl": [ADD_SKU]})
    assert answer.status_code == 503 and answer.json()["code"] == "provider_unavailable", answer.text
    assert "secret" not in answer.text


@pytest.mark.parametrize(
    ("text", "message"),
    [("{not json", "not valid JSON"), ('["customer"]', "must be a JSON object, not list")],
)
def test_a_bad_vschema_json_is_bad_input_before_the_provider_is_asked(
    runtime: Runtime,
    emulator: EmulatorProcess,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    text: str,
    message: str,
) -> None:
    import schemabot.cli as cli_module

    monkeypatch.setattr(cli_module, "_client", lambda: Client(runtime=runtime))
    files = write(tmp_path / "schema", {**schema_files(), "customers/vschema.json": text})
    code, _, err = run_cli(capsys, "plan", "--target", "ps", "--schema-dir", str(files))
    assert code == 2 and "vschema.json" in err and message in err
    code, _, err = run_cli(capsys, "apply", "--target", "ps", "--engine", "auto", "--schema-dir", str(files))
    assert code == 2 and message in err
    assert emulator.events("branch.create") == [] and Client(runtime=runtime).list_applies() == []


# -- apply --schema-dir ----------------------------------------------------------------------------


def run_to_the_end(rt: Runtime, apply_id: str, timeout: float = 60) -> str:
    """Deliver messages as a worker would while the emulator ticks on its own."""
    client = Client(runtime=rt)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = client.get_apply(apply_id).state
        if state in ("completed", "failed", "cancelled", "reverted"):
            return state
        message = rt.dispatcher.take()  # type: ignore[attr-defined]
        if message is None:
            time.sleep(0.05)
            continue
        deliver(rt, message)
        time.sleep(0.02)
    raise AssertionError(f"{apply_id} still {client.get_apply(apply_id).state} after {timeout}s")


def test_apply_schema_dir_submits_the_vschema_and_main_ends_equal_to_the_files(
    runtime: Runtime,
    emulator: EmulatorProcess,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import schemabot.cli as cli_module

    monkeypatch.setattr(cli_module, "_client", lambda: Client(runtime=runtime))
    monkeypatch.setenv("SCHEMABOT_DATABASE_URL", runtime.settings.database_url)
    get_settings.cache_clear()
    files = write(tmp_path / "schema", schema_files())
    code, out, err = run_cli(
        capsys,
        "apply",
        "--target",
        "ps",
        "--engine",
        "auto",
        "--schema-dir",
        str(files),
        "--skip-revert",
        "--json",
    )
    assert code == 0, err
    apply_id = json.loads(out)["apply_id"]
    status = Client(runtime=runtime).get_apply(apply_id)
    assert status.engine == "planetscale"
    assert sorted((t.namespace, t.table or "", t.action) for t in status.tasks) == [
        ("commerce", "coupon", "create"),
        ("commerce", "product", "alter"),
        ("customers", "", "vschema_update"),
    ]
    assert run_to_the_end(runtime, apply_id) == "completed"
    assert emulator.columns("commerce", "product") == ["id", "name", "price", "sku"]
    assert emulator.tables("commerce") == ["coupon", "product"]
    raw = emulator.api("GET", "/branches/main/keyspaces/customers/vschema").json()["raw"]
    assert json.loads(raw) == VSCHEMA
    code, out, err = run_cli(capsys, "plan", "show", apply_id, "--json")
    assert code == 0 and json.loads(out)["vitess"]["vschemas"][0]["document"] == VSCHEMA
    code, out, err = run_cli(capsys, "plan", "--target", "ps", "--schema-dir", str(files), "--json")
    assert code == 0, err
    settled = json.loads(out)  # main now equals the files: nothing left to plan
    assert settled["statements"] == [] and settled["vitess"]["vschemas"] == []
    assert settled["vitess"]["deploy_request"]["state"] == "no_changes"
    # A vschema.json that takes a table's routing away is destructive: blocked without --allow-unsafe.
    (files / "customers" / "vschema.json").write_text(json.dumps({"sharded": False, "tables": {}}))
    code, out, _ = run_cli(capsys, "plan", "--target", "ps", "--schema-dir", str(files), "--json")
    removal = json.loads(out)
    assert code == 3 and [(f["rule"], f["blocking"]) for f in removal["findings"]] == [("SB007", True)]
    assert "removes the routing of table customer" in removal["findings"][0]["message"]
    assert '-    "customer": {}' in removal["vitess"]["vschemas"][0]["diff"].split("\n")
    code, out, _ = run_cli(capsys, "plan", "--target", "ps", "--schema-dir", str(files), "--allow-unsafe")
    assert code == 0 and "allowed by --allow-unsafe" in out
