"""Opening a deploy request exactly once when the answer is lost but the server finishes late.

A deploy request has no name we choose; it is found again only by the tag in its notes. If the
answer to "open it" never comes while PlanetScale is still working on it, listing right away finds
nothing. Sending the request again then would make a second deploy request
(docs/architecture.md §8 invariant 3).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from engines.base import EngineState, OperationRequest
from engines.planetscale import naming, setup
from engines.planetscale.api import ApiUnreachable
from engines.planetscale.budget import Budget
from engines.planetscale.resume_state import PSResumeState
from engines.planetscale.session import Session
from engines.planetscale.target import PlanetScaleTarget


class SlowPlanetScale:
    """The API as a slow server looks from the client: the create times out, lands later."""

    def __init__(self, maybe_applied: bool = True) -> None:
        self.creates = 0
        self.visible: list[dict[str, Any]] = []
        self.maybe_applied = maybe_applied

    def list_deploy_requests(self, branch: str, into: str, budget: Budget) -> list[dict[str, Any]]:
        return list(self.visible)

    def create_deploy_request(self, branch: str, into: str, notes: str, auto: bool, budget: Budget) -> Any:
        self.creates += 1
        raise ApiUnreachable(
            "POST", "/deploy-requests", httpx.ReadTimeout("timed out"), maybe_applied=self.maybe_applied
        )

    def land(self, context: str, branch: str) -> None:
        self.visible.append(
            {
                "number": 7,
                "state": "open",
                "deployment_state": "pending",
                "branch": branch,
                "notes": naming.deploy_request_notes(context),
                "html_url": "https://x/7",
            }
        )


def session(api: SlowPlanetScale, saved: list[dict[str, Any]]) -> Session:
    target = PlanetScaleTarget.parse("planetscale://id:tok@acme/shop?create_settle_seconds=60")
    request = OperationRequest(context="apply-abc", changes=(), save_state=saved.append)
    state = PSResumeState(context="apply-abc", branch="sb-apply-abc", phase="create_dr")
    return Session(target, api, None, request, state, Budget(5.0))  # type: ignore[arg-type]


def test_an_unanswered_create_is_not_sent_again_before_it_had_time_to_land(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api, saved = SlowPlanetScale(), []
    clock = [1_000.0]
    monkeypatch.setattr(setup.time, "time", lambda: clock[0])

    s = session(api, saved)
    waiting = setup.step_create_dr(s)
    assert api.creates == 1 and waiting is not None
    assert waiting.state is EngineState.CREATING_DEPLOY_REQUEST
    assert saved[-1]["intent"]["call"] == "create_deploy_request"  # persisted before the call

    # A new owner, 20 s later: the request has not shown up; it must wait, not send again.
    clock[0] += 20
    s = session(api, saved)
    s.state = PSResumeState.from_dict(saved[-1])
    assert setup.step_create_dr(s) is not None
    assert api.creates == 1

    # Then the slow server finishes: the next look adopts it, and nothing is opened twice.
    api.land("apply-abc", "sb-apply-abc")
    clock[0] += 5
    assert setup.step_create_dr(s) is None
    assert (api.creates, s.state.dr_number, s.state.phase) == (1, 7, "validate_dr")


def test_after_the_settle_time_an_unanswered_create_is_sent_again(monkeypatch: pytest.MonkeyPatch) -> None:
    api, saved = SlowPlanetScale(), []
    clock = [1_000.0]
    monkeypatch.setattr(setup.time, "time", lambda: clock[0])
    s = session(api, saved)
    setup.step_create_dr(s)
    clock[0] += 61
    setup.step_create_dr(s)
    assert api.creates == 2


def test_a_create_that_never_left_the_client_is_sent_again_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    api, saved = SlowPlanetScale(maybe_applied=False), []
    monkeypatch.setattr(setup.time, "time", lambda: 1_000.0)
    s = session(api, saved)
    setup.step_create_dr(s)
    setup.step_create_dr(s)
    assert api.creates == 2
