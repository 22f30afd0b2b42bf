"""Which control is allowed in which state (request time) and what the driver does (run time)."""

from __future__ import annotations

import pytest

from schemabot import control_rules
from schemabot.control_rules import Decision
from schemabot.errors import ControlRejected, ValidationError
from schemabot.states import State


def test_s22_stop_in_revert_window_is_refused_with_guidance() -> None:
    with pytest.raises(ControlRejected, match="use revert or skip-revert"):
        control_rules.check_request("stop", State.REVERT_WINDOW)


def test_s20_cutover_while_recovering_is_refused_but_a_recorded_one_is_held() -> None:
    with pytest.raises(ControlRejected, match="recovering after a restart"):
        control_rules.check_request("cutover", State.RECOVERING)
    assert control_rules.decide("cutover", State.RECOVERING).decision is Decision.HOLD
    assert control_rules.decide("cutover", State.WAITING_FOR_CUTOVER).decision is Decision.RUN


@pytest.mark.parametrize(
    ("kind", "state"),
    [
        ("start", State.RUNNING),
        ("stop", State.COMPLETED),
        ("cutover", State.RUNNING),
        ("revert", State.RUNNING),
        ("skip_revert", State.WAITING_FOR_CUTOVER),
        ("cancel", State.CUTTING_OVER),
        ("stop", State.STOPPED),
    ],
)
def test_controls_out_of_place_are_refused(kind: str, state: State) -> None:
    with pytest.raises(ControlRejected):
        control_rules.check_request(kind, state)
    assert control_rules.decide(kind, state).decision is Decision.REJECT


@pytest.mark.parametrize(
    ("kind", "state"),
    [
        ("stop", State.RUNNING),
        ("start", State.STOPPED),
        ("cancel", State.STOPPED),
        ("cancel", State.FAILED_RETRYABLE),
        ("revert", State.REVERT_WINDOW),
        ("skip_revert", State.REVERT_WINDOW),
        ("volume", State.RUNNING),
    ],
)
def test_controls_in_place_are_allowed(kind: str, state: State) -> None:
    control_rules.check_request(kind, state)


def test_kind_and_value_are_normalised() -> None:
    assert control_rules.normalise_kind("Skip-Revert") == "skip_revert"
    assert control_rules.normalise_value("volume", 7) == "7"
    with pytest.raises(ValidationError):
        control_rules.normalise_kind("pause")
    with pytest.raises(ValidationError):
        control_rules.normalise_value("volume", 12)
    with pytest.raises(ValidationError):
        control_rules.normalise_value("stop", "1")
