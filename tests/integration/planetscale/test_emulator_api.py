"""The emulator at the HTTP level: PlanetScale's paths, shapes and errors, the deploy state
machine, the branch MySQL proxy, and every fault it can inject."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import httpx
import pymysql
import pytest

from planetscale_emulator import callers
from tests.support.emulator_process import DATABASE, ORG, EmulatorProcess


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def ready_branch(emulator: EmulatorProcess, name: str = "dev") -> dict[str, Any]:
    ok(emulator.api("POST", "/branches", name=name, parent_branch="main"), 201)
    emulator.advance(1)
    return dict(ok(emulator.api("GET", f"/branches/{name}")))


def branch_sql(emulator: EmulatorProcess, branch: str, database: str | None = None) -> pymysql.Connection:
    pw = ok(emulator.api("POST", f"/branches/{branch}/passwords", name="t"), 201)
    host, _, port = pw["access_host_url"].rpartition(":")
    return pymysql.connect(
        host=host,
        port=int(port),
        user=pw["username"],
        password=pw["plain_text"],
        database=database,
        autocommit=True,
    )


def branch_with_change(emulator: EmulatorProcess, name: str = "dev") -> None:
    ready_branch(emulator, name)
    conn = branch_sql(emulator, name)
    with conn.cursor() as cur:
        cur.execute("USE commerce")
        cur.execute("ALTER TABLE product ADD COLUMN sku VARCHAR(8)")
    conn.close()


def open_dr(emulator: EmulatorProcess, branch: str = "dev", **extra: Any) -> int:
    dr = ok(
        emulator.api("POST", "/deploy-requests", branch=branch, into_branch="main", notes="n", **extra),
        201,
    )
    assert dr["deployment_state"] == "pending" and dr["state"] == "open"
    emulator.advance(1)
    return int(dr["number"])


def dr_state(emulator: EmulatorProcess, number: int) -> str:
    return str(ok(emulator.api("GET", f"/deploy-requests/{number}"))["deployment_state"])


def run_until(emulator: EmulatorProcess, number: int, state: str, ticks: int = 12) -> list[str]:
    seen = [dr_state(emulator, number)]
    for _ in range(ticks):
        if seen[-1] == state:
            return seen
        emulator.advance(1)
        seen.append(dr_state(emulator, number))
    raise AssertionError(f"never reached {state}: {seen}")


# -- auth and errors ------------------------------------------------------------------------


def test_requests_without_token_are_unauthorized_with_typed_body(emulator: EmulatorProcess) -> None:
    url = f"{emulator.api_url}/organizations/acme/databases/shop/branches"
    response = httpx.get(url)
    assert response.status_code == 401 and response.json()["code"] == "unauthorized"
    assert httpx.get(url, headers={"Authorization": "any-id:any-token"}).status_code == 200


def test_unknown_org_database_branch_are_typed_404(emulator: EmulatorProcess) -> None:
    headers = {"Authorization": "a:b"}
    response = httpx.get(f"{emulator.api_url}/organizations/nope/databases/shop/branches", headers=headers)
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    missing = emulator.api("GET", "/branches/ghost")
    assert missing.status_code == 404
    assert missing.json() == {"code": "not_found", "message": "Branch ghost not found"}


# -- branches -------------------------------------------------------------------------------


def test_branch_is_provisioned_on_a_tick_with_main_schema_and_no_rows(
    emulator: EmulatorProcess,
) -> None:
    created = ok(emulator.api("POST", "/branches", name="dev", parent_branch="main"), 201)
    assert created["ready"] is False and created["parent_branch"] == "main"
    assert emulator.api("GET", "/branches/dev/schema").status_code == 422  # not ready yet
    emulator.advance(1)
    assert ok(emulator.api("GET", "/branches/dev"))["ready"] is True
    schema = ok(emulator.api("GET", "/branches/dev/schema?keyspace=commerce"))["data"]
    assert [t["name"] for t in schema] == ["product"]
    conn = branch_sql(emulator, "dev", "commerce")
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM product")
        assert cur.fetchone() == (0,)
    conn.close()
    keyspaces = ok(emulator.api("GET", "/branches/dev/keyspaces"))["data"]
    assert [k["name"] for k in keyspaces] == ["commerce", "customers"]
    assert ok(emulator.api("POST", "/branches/dev/refresh-schema"))["name"] == "dev"


def test_taken_and_invalid_branch_names_are_refused(emulator: EmulatorProcess) -> None:
    ok(emulator.api("POST", "/branches", name="dev"), 201)
    taken = emulator.api("POST", "/branches", name="dev")
    assert taken.status_code == 422 and taken.json()["message"] == "Name has already been taken"
    assert emulator.api("POST", "/branches", name="Bad_Name").status_code == 422
    assert emulator.api("DELETE", "/branches/main").status_code == 422
    assert emulator.api("DELETE", "/branches/dev").status_code == 204
    assert emulator.api("GET", "/branches/dev").status_code == 404
    names = [b["name"] for b in ok(emulator.api("GET", "/branches"))["data"]]
    assert names == ["main"]


def test_vschema_get_and_patch_on_a_branch_only(emulator: EmulatorProcess) -> None:
    ready_branch(emulator)
    path = "/branches/dev/keyspaces/customers/vschema"
    assert ok(emulator.api("GET", path))["raw"] == "{}"
    ok(emulator.api("PATCH", path, vschema='{"tables": {"customer": {}}}'))
    assert "customer" in ok(emulator.api("GET", "/branches/dev/vschema?keyspace=customers"))["raw"]
    assert emulator.api("PATCH", path, vschema="{not json").status_code == 422
    main = "/branches/main/keyspaces/customers/vschema"
    assert emulator.api("PATCH", main, vschema="{}").status_code == 422
    assert emulator.api("GET", "/branches/dev/keyspaces/nope/vschema").status_code == 404


# -- the MySQL proxy ------------------------------------------------------------------------


def test_proxy_maps_use_keyspace_to_the_branch_database(emulator: EmulatorProcess) -> None:
    ready_branch(emulator)
    conn = branch_sql(emulator, "dev")
    with conn.cursor() as cur:
        cur.execute("USE commerce")
        cur.execute("CREATE TABLE only_on_branch (id INT PRIMARY KEY)")
        cur.execute("SELECT DATABASE()")
        (physical,) = cur.fetchone()
        assert physical != emulator.main_db("commerce") and physical.endswith("_commerce")
        with pytest.raises(pymysql.err.OperationalError) as unknown:
            cur.execute("USE nowhere")
        assert unknown.value.args[0] == 1049
    conn.select_db("customers")  # COM_INIT_DB
    with conn.cursor() as cur:
        cur.execute("SHOW TABLES")
        assert cur.fetchall() == (("customer",),)
    conn.close()
    assert "only_on_branch" not in emulator.tables("commerce")
    schema = ok(emulator.api("GET", "/branches/dev/schema?keyspace=commerce"))["data"]
    assert "only_on_branch" in [t["name"] for t in schema]


def test_proxy_refuses_a_wrong_password(emulator: EmulatorProcess) -> None:
    ready_branch(emulator)
    pw = ok(emulator.api("POST", "/branches/dev/passwords", name="t"), 201)
    host, _, port = pw["access_host_url"].rpartition(":")
    with pytest.raises(pymysql.err.OperationalError) as denied:
        pymysql.connect(host=host, port=int(port), user=pw["username"], password="wrong")
    assert denied.value.args[0] == 1045
    listed = ok(emulator.api("GET", "/branches/dev/passwords"))["data"]
    assert "plain_text" not in listed[0]  # shown once, at creation


# -- deploy requests ------------------------------------------------------------------------


def test_deploy_with_deferred_cutover_walks_every_state_and_changes_main(
    emulator: EmulatorProcess,
) -> None:
    branch_with_change(emulator)
    number = open_dr(emulator, auto_cutover=False)
    assert dr_state(emulator, number) == "ready"
    diff = ok(emulator.api("GET", f"/deploy-requests/{number}/diff"))["data"]
    assert [(d["keyspace_name"], d["name"], d["operation_name"]) for d in diff] == [
        ("commerce", "product", "ALTER")
    ]
    queued = ok(emulator.api("POST", f"/deploy-requests/{number}/deploy"))
    assert queued["deployment_state"] == "queued"
    seen = run_until(emulator, number, "pending_cutover")
    assert seen[:3] == ["queued", "submitting", "in_progress"]
    ops = ok(emulator.api("GET", f"/deploy-requests/{number}/operations"))["data"]
    assert ops[0]["progress_percentage"] == 100 and ops[0]["table_name"] == "product"
    assert "sku" not in emulator.columns("commerce", "product")
    ok(emulator.api("POST", f"/deploy-requests/{number}/apply-deploy"))
    run_until(emulator, number, "complete_pending_revert")
    assert emulator.columns("commerce", "product") == ["id", "name", "price", "sku"]
    dr = ok(emulator.api("GET", f"/deploy-requests/{number}"))
    assert dr["deployed_at"] and dr["state"] == "open"
    ok(emulator.api("POST", f"/deploy-requests/{number}/skip-revert"))
    dr = ok(emulator.api("GET", f"/deploy-requests/{number}"))
    assert dr["deployment_state"] == "complete" and dr["state"] == "closed"
    assert [t for t in emulator.tables("commerce") if t.startswith("_sb")] == []


def test_auto_apply_lets_a_waiting_deploy_cut_over(emulator: EmulatorProcess) -> None:
    branch_with_change(emulator)
    number = open_dr(emulator)
    ok(emulator.api("POST", f"/deploy-requests/{number}/deploy"))
    run_until(emulator, number, "pending_cutover")
    ok(emulator.api("PUT", f"/deploy-requests/{number}/auto-apply", enable=True))
    run_until(emulator, number, "complete_pending_revert")


def test_refused_calls_answer_422_in_the_wrong_state(emulator: EmulatorProcess) -> None:
    branch_with_change(emulator)
    number = open_dr(emulator)
    for action in ("apply-deploy", "revert", "skip-revert"):
        refused = emulator.api("POST", f"/deploy-requests/{number}/{action}")
        assert refused.status_code == 422 and refused.json()["code"] == "unprocessable"
    assert emulator.api("POST", f"/deploy-requests/{number}/deploy", instant_ddl=False).status_code == 200
    assert emulator.api("POST", f"/deploy-requests/{number}/deploy").status_code == 422
    assert emulator.api("PATCH", f"/deploy-requests/{number}", state="closed").status_code == 422


def test_no_changes_and_close(emulator: EmulatorProcess) -> None:
    ready_branch(emulator)
    number = open_dr(emulator)
    assert dr_state(emulator, number) == "no_changes"
    closed = ok(emulator.api("PATCH", f"/deploy-requests/{number}", state="closed"))
    assert closed["state"] == "closed"


def test_an_undeployed_request_follows_its_branch_and_its_diff_marks_lines(emulator: EmulatorProcess) -> None:
    """As on PlanetScale: a change to the branch after the diff was computed sends an open,
    never deployed request back to pending, and the next diff is of the branch as it is now. The
    diff's `raw` marks main's lines with -, the branch's with +."""
    ready_branch(emulator)
    number = open_dr(emulator, auto_cutover=True)
    assert dr_state(emulator, number) == "no_changes"
    conn = branch_sql(emulator, "dev")
    with conn.cursor() as cur:
        cur.execute("USE commerce")
        cur.execute("ALTER TABLE product ADD COLUMN sku VARCHAR(8)")
    conn.close()
    emulator.advance(1)
    assert dr_state(emulator, number) == "pending" and emulator.events("deploy_request.outdated")
    emulator.advance(1)
    assert dr_state(emulator, number) == "ready"
    [entry] = ok(emulator.api("GET", f"/deploy-requests/{number}/diff"))["data"]
    assert (entry["name"], entry["operation_name"]) == ("product", "ALTER")
    assert "+  `sku` varchar(8) DEFAULT NULL," in entry["raw"].split("\n")
    assert "   `name` varchar(64) NOT NULL," in entry["raw"].split("\n")
    ok(emulator.api("POST", f"/deploy-requests/{number}/deploy"))
    emulator.advance(1)
    conn = branch_sql(emulator, "dev")
    with conn.cursor() as cur:
        cur.execute("USE commerce")
        cur.execute("CREATE TABLE late (id INT PRIMARY KEY)")
    conn.close()
    run_until(emulator, number, "complete_pending_revert")  # once queued, the stored diff deploys
    assert "late" not in emulator.tables("commerce") and len(emulator.events("deploy_request.outdated")) == 1


def test_list_filters_by_state_branch_and_into_branch(emulator: EmulatorProcess) -> None:
    branch_with_change(emulator, "dev")
    branch_with_change(emulator, "other")
    first, second = open_dr(emulator, "dev"), open_dr(emulator, "other")
    ok(emulator.api("PATCH", f"/deploy-requests/{second}", state="closed"))

    def numbers(query: str) -> list[int]:
        return [d["number"] for d in ok(emulator.api("GET", f"/deploy-requests?{query}"))["data"]]

    assert numbers("branch=dev") == [first]
    assert numbers("state=open") == [first]
    assert numbers("state=closed&branch=other") == [second]
    assert sorted(numbers("into_branch=main")) == [first, second]
    assert numbers("into_branch=dev") == []


def test_cancel_queued_and_running_deploys(emulator: EmulatorProcess) -> None:
    branch_with_change(emulator, "dev")
    branch_with_change(emulator, "other")
    first, second = open_dr(emulator, "dev"), open_dr(emulator, "other")
    ok(emulator.api("POST", f"/deploy-requests/{first}/deploy"))
    run_until(emulator, first, "in_progress")
    ok(emulator.api("POST", f"/deploy-requests/{second}/deploy"))
    emulator.advance(1)
    assert dr_state(emulator, second) == "queued"  # waits: the database deploys one at a time
    cancelled = ok(emulator.api("POST", f"/deploy-requests/{second}/cancel"))
    assert cancelled["deployment_state"] == "cancelled" and cancelled["state"] == "closed"
    assert (
        ok(emulator.api("POST", f"/deploy-requests/{first}/cancel"))["deployment_state"]
        == "in_progress_cancel"
    )
    run_until(emulator, first, "complete_cancel")
    assert "sku" not in emulator.columns("commerce", "product")


def test_revert_restores_schema_and_keeps_rows_written_in_the_window(
    emulator: EmulatorProcess,
) -> None:
    branch_with_change(emulator)
    number = open_dr(emulator, auto_cutover=True)
    ok(emulator.api("POST", f"/deploy-requests/{number}/deploy"))
    run_until(emulator, number, "complete_pending_revert")
    emulator.sql("commerce", "INSERT INTO product (name, sku) VALUES ('new', 'N')")
    queued = emulator.api("POST", "/deploy-requests", branch="dev", notes="x")  # gated by the window
    ok(emulator.api("POST", f"/deploy-requests/{number}/revert"))
    run_until(emulator, number, "complete_revert")
    assert emulator.columns("commerce", "product") == ["id", "name", "price"]
    names = [r[0] for r in emulator.sql("commerce", "SELECT name FROM product ORDER BY id")]
    assert names[-1] == "new" and len(names) == 6
    assert queued.status_code == 201


def test_revert_window_closes_when_the_clock_passes_it(emulator: EmulatorProcess) -> None:
    branch_with_change(emulator)
    number = open_dr(emulator, auto_cutover=True)
    ok(emulator.api("POST", f"/deploy-requests/{number}/deploy"))
    run_until(emulator, number, "complete_pending_revert")
    emulator.advance(ticks=1, seconds=300)
    assert dr_state(emulator, number) == "complete_pending_revert"
    emulator.advance(ticks=1, seconds=301)
    assert dr_state(emulator, number) == "complete"


def test_throttle_ratio_is_validated_and_slows_the_copy(emulator: EmulatorProcess) -> None:
    branch_with_change(emulator)
    number = open_dr(emulator)
    path = f"/deploy-requests/{number}/throttler"
    assert emulator.api("PATCH", path, ratio=96).status_code == 422
    assert ok(emulator.api("PATCH", path, ratio=90))["ratio"] == 90
    ok(emulator.api("POST", f"/deploy-requests/{number}/deploy"))
    run_until(emulator, number, "in_progress")
    emulator.advance(1)
    ops = ok(emulator.api("GET", f"/deploy-requests/{number}/operations"))["data"]
    assert ops[0]["progress_percentage"] == 5  # 50% per tick unthrottled (copy_ticks=2)


def test_force_state_and_events(emulator: EmulatorProcess) -> None:
    branch_with_change(emulator)
    number = open_dr(emulator)
    forced = emulator.admin("POST", "force-state", number=number, deployment_state="complete_error")
    assert forced["deployment_state"] == "complete_error" and forced["state"] == "closed"
    kinds = [e["kind"] for e in emulator.events()]
    assert kinds.count("deploy_request.create") == 1 and "admin.force_state" in kinds
    transitions = emulator.events("deploy_request.state")
    assert transitions[-1]["detail"] == {"old": "ready", "new": "complete_error"}


# -- faults ---------------------------------------------------------------------------------


def test_error_fault_answers_status_and_body_for_its_budget(emulator: EmulatorProcess) -> None:
    emulator.fault(
        kind="error",
        method="GET",
        path=r"/branches/main$",
        status=503,
        code="unavailable",
        message="try later",
        times=2,
    )
    for _ in range(2):
        failed = emulator.api("GET", "/branches/main")
        assert failed.status_code == 503
        assert failed.json() == {"code": "unavailable", "message": "try later"}
    assert emulator.api("GET", "/branches/main").status_code == 200


def test_delay_fault_delays_then_acts(emulator: EmulatorProcess) -> None:
    emulator.fault(kind="delay", target="create_branch", delay_ms=400)
    began = time.monotonic()
    ok(emulator.api("POST", "/branches", name="dev"), 201)
    assert time.monotonic() - began >= 0.4


def test_freeze_caller_stops_the_calling_process_with_its_request_held(
    emulator: EmulatorProcess,
) -> None:
    """The in-flight chaos tests kill the process the emulator froze: it must be the caller,
    frozen while its request is held (still connected), and its call must then never happen."""
    emulator.fault(kind="freeze_caller", target="create_branch", delay_ms=1500)
    url = f"{emulator.api_url}/organizations/{ORG}/databases/{DATABASE}/branches"
    caller = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import httpx, sys; httpx.post(sys.argv[1], json={'name': 'held'}, "
            "headers={'Authorization': 'tok-id:tok-secret'}, timeout=30)",
            url,
        ]
    )
    try:
        deadline = time.monotonic() + 20
        while not emulator.events("fault.freeze_caller.frozen") and time.monotonic() < deadline:
            time.sleep(0.02)
        (frozen,) = emulator.events("fault.freeze_caller.frozen")
        assert frozen["detail"]["pids"] == [caller.pid]
        assert frozen["detail"]["client_gone"] is False
        assert callers.state(caller.pid) == "T"
    finally:
        caller.kill()
        caller.wait(10)
    deadline = time.monotonic() + 10
    while not emulator.events("fault.freeze_caller.released") and time.monotonic() < deadline:
        time.sleep(0.05)
    (released,) = emulator.events("fault.freeze_caller.released")
    assert released["detail"]["client_gone"] is True
    assert emulator.events("branch.create") == []
    assert emulator.api("GET", "/branches/held").status_code == 404


def test_delay_fault_says_whether_the_client_waited_and_drops_a_gone_clients_call(
    emulator: EmulatorProcess,
) -> None:
    """The chaos tests freeze a worker inside a delayed call; they must know whether the call's
    client was still there when the delay ended (its own timeout may have run out first)."""
    emulator.fault(kind="delay", target="create_branch", delay_ms=300, times=2)
    ok(emulator.api("POST", "/branches", name="waited"), 201)
    with pytest.raises(httpx.TimeoutException):
        emulator.http.post(
            f"{emulator.api_url}/organizations/{ORG}/databases/{DATABASE}/branches",
            json={"name": "left"},
            headers={"Authorization": "tok-id:tok-secret"},
            timeout=0.1,
        )
    deadline = time.monotonic() + 5
    while len(emulator.events("fault.delay.released")) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    released = [e["detail"]["client_gone"] for e in emulator.events("fault.delay.released")]
    assert released == [False, True]
    assert [e["subject"] for e in emulator.events("branch.create")] == ["waited"]
    assert emulator.api("GET", "/branches/left").status_code == 404


def test_drop_fault_closes_the_connection_without_acting(emulator: EmulatorProcess) -> None:
    emulator.fault(kind="drop", target="create_branch")
    with pytest.raises(httpx.RemoteProtocolError):
        emulator.api("POST", "/branches", name="dev")
    assert emulator.api("GET", "/branches/dev").status_code == 404
    assert emulator.events("branch.create") == []


@pytest.mark.parametrize("target", ["create_branch", "create_deploy_request", "deploy", "apply_deploy"])
def test_lose_response_fault_acts_then_drops_the_answer(emulator: EmulatorProcess, target: str) -> None:
    if target != "create_branch":
        branch_with_change(emulator)
    number = open_dr(emulator) if target in ("deploy", "apply_deploy") else None
    if target == "apply_deploy":
        ok(emulator.api("POST", f"/deploy-requests/{number}/deploy"))
        run_until(emulator, number, "pending_cutover")  # type: ignore[arg-type]
    emulator.fault(kind="lose_response", target=target)
    calls = {
        "create_branch": lambda: emulator.api("POST", "/branches", name="lost"),
        "create_deploy_request": lambda: emulator.api("POST", "/deploy-requests", branch="dev", notes=""),
        "deploy": lambda: emulator.api("POST", f"/deploy-requests/{number}/deploy"),
        "apply_deploy": lambda: emulator.api("POST", f"/deploy-requests/{number}/apply-deploy"),
    }
    with pytest.raises(httpx.RemoteProtocolError):
        calls[target]()
    effect = {
        "create_branch": lambda: emulator.api("GET", "/branches/lost").status_code == 200,
        "create_deploy_request": lambda: len(ok(emulator.api("GET", "/deploy-requests"))["data"]) == 1,
        "deploy": lambda: dr_state(emulator, number) == "queued",  # type: ignore[arg-type]
        "apply_deploy": lambda: dr_state(emulator, number) == "in_progress_cutover",  # type: ignore[arg-type]
    }
    assert effect[target]()


def test_stall_holds_a_deploy_request_in_a_state_for_n_ticks(emulator: EmulatorProcess) -> None:
    branch_with_change(emulator)
    number = open_dr(emulator)
    emulator.fault(kind="stall", number=number, deploy_state="queued", times=3)
    ok(emulator.api("POST", f"/deploy-requests/{number}/deploy"))
    for _ in range(3):
        emulator.advance(1)
        assert dr_state(emulator, number) == "queued"
    emulator.advance(1)
    assert dr_state(emulator, number) == "submitting"


def test_fail_deploy_ends_in_complete_error_with_the_message(emulator: EmulatorProcess) -> None:
    branch_with_change(emulator)
    number = open_dr(emulator)
    emulator.fault(kind="fail_deploy", number=number, message="disk full")
    ok(emulator.api("POST", f"/deploy-requests/{number}/deploy"))
    run_until(emulator, number, "complete_error")
    dr = ok(emulator.api("GET", f"/deploy-requests/{number}"))
    assert dr["error"] == "disk full" and dr["state"] == "closed"
    assert "sku" not in emulator.columns("commerce", "product")


def test_fail_deploy_in_pending_makes_the_request_undeployable(emulator: EmulatorProcess) -> None:
    branch_with_change(emulator)
    emulator.fault(kind="fail_deploy", deploy_state="pending", message="lint: no primary key")
    number = open_dr(emulator)
    assert dr_state(emulator, number) == "error"


def test_vanish_removes_a_branch_or_a_deploy_request(emulator: EmulatorProcess) -> None:
    branch_with_change(emulator)
    number = open_dr(emulator)
    emulator.admin("POST", "vanish", number=number)
    assert emulator.api("GET", f"/deploy-requests/{number}").json()["code"] == "not_found"
    emulator.admin("POST", "vanish", branch="dev")
    assert emulator.api("GET", "/branches/dev").status_code == 404
    status = emulator.status()
    assert list(status["branches"]) == ["main"]


def test_faults_are_listed_and_cleared(emulator: EmulatorProcess) -> None:
    emulator.fault(kind="error", target="get_branch", times=-1)
    assert len(emulator.admin("GET", "faults")["data"]) == 1
    bad = emulator.http.post(f"{emulator.base}/admin/faults", json={"kind": "nonsense"})
    assert bad.status_code == 422
    emulator.clear_faults()
    assert emulator.admin("GET", "faults")["data"] == []
    assert emulator.api("GET", "/branches/main").status_code == 200
