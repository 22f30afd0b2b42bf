"""The copy's rate for the ETA is smoothed over steps, not one step's."""

from __future__ import annotations

from engines.spirit.runner import CopyRate, StepReport


def test_the_rate_follows_steps_smoothly_and_survives_a_step_that_copied_nothing() -> None:
    rate = CopyRate()
    assert rate.observe("t", None) is None
    assert rate.observe("t", StepReport(rows_copied=1000, seconds=1.0)) == 1000
    smoothed = rate.observe("t", StepReport(rows_copied=4000, seconds=1.0))
    assert smoothed is not None and 1000 < smoothed < 4000
    assert rate.observe("t", StepReport(rows_copied=0, seconds=0.0)) == smoothed
    assert rate.observe("other", None) is None
