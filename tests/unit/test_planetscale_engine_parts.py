"""Unit tests of the planetscale engine's parts: target DSN, names, resume state, state
mapping, the HTTP client's error typing and the retry policy. No servers."""

from __future__ import annotations

import json

import httpx
import pytest

from engines.base import (
    ControlRequest,
    EngineState,
    NamespaceChange,
    OperationRequest,
    PermanentEngineError,
    RetryableEngineError,
    TableChange,
)
from engines.planetscale import PlanetScaleEngine, naming
from engines.planetscale import deploy_states as ds
from engines.planetscale.api import ApiError, ApiUnreachable, NotFound, PlanetScaleAPI
from engines.planetscale.budget import Budget, OutOfBudget
from engines.planetscale.resume_state import FORMAT, PSResumeState
from engines.planetscale.retry import retrying
from engines.planetscale.target import PUBLIC_API_URL, PlanetScaleTarget
from engines.registry import build_engine, engine_platform
from engines.targets import Target
from planetscale_emulator import deploy_states as emulator_states

DSN = "planetscale://tok-id:s3cret@acme/shop?api_url=http://127.0.0.1:9/v1"


# -- target ---------------------------------------------------------------------------------


def test_target_defaults_to_public_api_main_branch_and_tls() -> None:
    target = PlanetScaleTarget.parse("planetscale://id:tok@acme/shop")
    assert (target.org, target.database, target.main_branch) == ("acme", "shop", "main")
    assert target.api_url == PUBLIC_API_URL and target.mysql_tls
    assert target.authorization == "id:tok"
    assert "tok" not in repr(target).replace("token_id", "")


def test_target_on_loopback_emulator_has_no_tls_and_custom_branch() -> None:
    target = PlanetScaleTarget.parse(DSN + "&main_branch=prod")
    assert target.api_url == "http://127.0.0.1:9/v1" and not target.mysql_tls
    assert target.main_branch == "prod"


@pytest.mark.parametrize(
    "dsn",
    [
        "mysql://id:s3cret@acme/shop",
        "planetscale://acme/shop",
        "planetscale://id:s3cret@acme",
        "planetscale://id:s3cret@acme/shop?bogus=1",
        "planetscale://id:s3cret@acme/shop?api_url=ftp://x",
    ],
)
def test_bad_targets_are_refused_without_showing_the_token(dsn: str) -> None:
    with pytest.raises(ValueError) as error:
        PlanetScaleTarget.parse(dsn)
    assert "s3cret" not in str(error.value)


def test_registry_builds_the_vitess_engine() -> None:
    engine = build_engine("planetscale", Target("shop", DSN))
    assert isinstance(engine, PlanetScaleEngine) and engine.name == "planetscale"
    assert engine_platform("planetscale") == "vitess"
    engine.close()


# -- names ----------------------------------------------------------------------------------


def test_branch_name_is_deterministic_and_valid() -> None:
    assert naming.branch_name("apply-0a1b2c") == "sb-0a1b2c"
    assert naming.branch_name("apply-0A1B2C") == "sb-0a1b2c"
    odd = naming.branch_name("Task 42/weird")
    assert odd == naming.branch_name("Task 42/weird") and odd.startswith("sb-")
    assert all(c.isdigit() or c.islower() or c == "-" for c in odd)


def test_deploy_request_tag_round_trips_and_ignores_other_notes() -> None:
    notes = naming.deploy_request_notes("apply-abc")
    assert naming.tagged_context(notes) == "apply-abc"
    assert naming.tagged_context("please review") is None
    assert naming.tagged_context(None) is None


# -- resume state ---------------------------------------------------------------------------


def test_resume_state_round_trips_through_json() -> None:
    state = PSResumeState(context="apply-1", branch="sb-1", dr_number=7, phase="deploying")
    again = PSResumeState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert again == state and again.to_dict()["format"] == FORMAT


@pytest.mark.parametrize(
    "data",
    [
        {"format": 99, "context": "apply-1", "branch": "sb-1"},
        {"format": FORMAT, "context": "apply-1"},
        {"format": FORMAT, "context": "apply-1", "branch": "sb-1", "phase": "dreaming"},
    ],
)
def test_unreadable_resume_states_are_permanent_errors(data: dict[str, object]) -> None:
    with pytest.raises(PermanentEngineError):
        PSResumeState.from_dict(data)


# -- deploy states --------------------------------------------------------------------------


def test_every_deploy_state_the_emulator_knows_is_mapped() -> None:
    assert set(emulator_states.ALL_STATES) == set(ds.MAPPING)
    assert ds.engine_state("complete_pending_revert")[0] is EngineState.REVERT_WINDOW
    assert ds.engine_state("pending_cutover")[0] is EngineState.WAITING_FOR_CUTOVER
    assert ds.engine_state("something_new")[0] is EngineState.RUNNING  # never terminal
    assert {
        "no_changes",
        "error",
        "complete_revert",
        "complete",
        "complete_cancel",
        "cancelled",
        "complete_error",
    } == ds.TERMINAL


def test_volume_maps_onto_the_throttle_ratio() -> None:
    assert ds.volume_to_ratio(1) == 95 and ds.volume_to_ratio(11) == 0
    assert ds.volume_to_ratio(3) == 76
    with pytest.raises(ValueError):
        ds.volume_to_ratio(0)


# -- HTTP client ----------------------------------------------------------------------------


def api_with(handler: httpx.MockTransport) -> PlanetScaleAPI:
    return PlanetScaleAPI(PlanetScaleTarget.parse(DSN), httpx.Client(transport=handler))


def answer(status: int, body: object) -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: httpx.Response(status, json=body))


def test_typed_404_is_not_found_and_never_retried() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        assert request.headers["Authorization"] == "tok-id:s3cret"
        return httpx.Response(404, json={"code": "not_found", "message": "Branch x not found"})

    api = api_with(httpx.MockTransport(handler))
    with pytest.raises(NotFound) as error:
        retrying(Budget(2), lambda: api.get_branch("x", Budget(2)), "reading")
    assert not error.value.transient and len(calls) == 1


def test_untyped_404_and_5xx_are_transient_and_end_retryable() -> None:
    for status, body in ((404, {"error": "no route"}), (503, {"code": "x", "message": "busy"})):
        api = api_with(answer(status, body))
        with pytest.raises(ApiError) as error:
            api.get_branch("x", Budget(2))
        assert error.value.transient and not isinstance(error.value, NotFound)
        with pytest.raises(RetryableEngineError):
            retrying(Budget(0.6), lambda a=api: a.get_branch("x", Budget(0.6)), "reading")


def test_refused_read_becomes_permanent() -> None:
    api = api_with(answer(403, {"code": "forbidden", "message": "no access"}))
    with pytest.raises(PermanentEngineError, match="no access"):
        retrying(Budget(1), lambda: api.get_branch("x", Budget(1)), "reading")


def test_no_answer_says_whether_the_call_may_have_happened() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    def drop(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("Server disconnected", request=request)

    with pytest.raises(ApiUnreachable) as refused:
        api_with(httpx.MockTransport(refuse)).create_branch("b", "main", Budget(1))
    assert refused.value.maybe_applied is False
    with pytest.raises(ApiUnreachable) as dropped:
        api_with(httpx.MockTransport(drop)).create_branch("b", "main", Budget(1))
    assert dropped.value.maybe_applied is True and "s3cret" not in str(dropped.value)


def test_lists_follow_next_page() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params.get("page", "1"))
        return httpx.Response(200, json={"data": [{"n": page}], "next_page": 2 if page == 1 else None})

    assert api_with(httpx.MockTransport(handler)).list_all("/deploy-requests", Budget(1)) == [
        {"n": 1},
        {"n": 2},
    ]


def test_no_call_starts_without_budget_left() -> None:
    api = api_with(answer(200, {}))
    with pytest.raises(OutOfBudget):
        api.get_branch("x", Budget(0.05))


# -- request validation (before any call) ---------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ((), "at least one change"),
        ((NamespaceChange("ks", vschema_changed=True),), "no VSchema"),
        ((NamespaceChange("ks"),), "nothing to change"),
    ],
)
def test_invalid_requests_are_refused_before_touching_planetscale(
    changes: tuple[NamespaceChange, ...], match: str
) -> None:
    engine = PlanetScaleEngine(Target("shop", DSN))  # port 9: nothing listens there
    with pytest.raises(PermanentEngineError, match=match):
        engine.apply(OperationRequest(context="apply-1", changes=changes))


# -- the step budget never turns a provider failure into a different error (issue 11, defect 7) --


def test_a_failing_read_ends_retryable_even_when_a_backoff_would_outlast_the_budget() -> None:
    """0.75 s: the fourth failure leaves 0.4 s, over the 0.3 s stop line, and the next backoff
    is 0.4 s. Sleeping it whole left the fifth call no time, and its OutOfBudget escaped in
    place of the failure (the flaky test_get_error_is_never_read_as_gone)."""
    api = api_with(answer(500, {"code": "internal", "message": "down"}))
    budget = Budget(0.75)
    with pytest.raises(RetryableEngineError, match="kept failing"):
        retrying(budget, lambda: api.get_branch("x", budget), "reading")


def _engine_with(handler: httpx.MockTransport) -> PlanetScaleEngine:
    return PlanetScaleEngine(Target("shop", DSN), http_client=httpx.Client(transport=handler))


def _in_flight(step_budget: float) -> dict[str, object]:
    state = PSResumeState(context="apply-1", branch=naming.branch_name("apply-1"), phase="deploying")
    state.branch_created, state.dr_number = True, 7
    return {
        "context": "apply-1",
        "changes": (NamespaceChange("ks", (TableChange("t", "ALTER TABLE t ADD c INT", "alter"),)),),
        "resume_state": state.to_dict(),
        "step_budget": step_budget,
    }


def test_a_reattach_that_runs_out_of_budget_is_declined_for_now_not_an_error() -> None:
    engine = _engine_with(answer(200, {"number": 7, "deployment_state": "in_progress"}))
    result = engine.apply(OperationRequest(**_in_flight(0.1)))  # type: ignore[arg-type]
    assert result.accepted is False and "trying again" in result.message


def test_a_control_that_runs_out_of_budget_is_retryable() -> None:
    engine = _engine_with(answer(200, {"number": 7, "deployment_state": "in_progress"}))
    with pytest.raises(RetryableEngineError):
        engine.cancel(ControlRequest(**_in_flight(0.1)))  # type: ignore[arg-type]


def test_a_stop_that_cancels_says_so_to_the_orchestrator() -> None:
    """PlanetScale cannot pause: the engine's ControlResult.state (cancelled) must come out of
    the engine, or the apply sits in `stopped` forever (issue 11, defect 5)."""
    states = iter(["in_progress", "cancelled"])

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json={"number": 7, "deployment_state": next(states, "cancelled")})
        return httpx.Response(200, json={"number": 7, "deployment_state": "in_progress_cancel"})

    result = _engine_with(httpx.MockTransport(handler)).stop(ControlRequest(**_in_flight(2.0)))  # type: ignore[arg-type]
    assert result.accepted and result.state is EngineState.CANCELLED
