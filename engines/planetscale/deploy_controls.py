"""User controls on a PlanetScale apply. Each reads the deploy request first and is a no-op when
it is already where the user wants it, so a control repeated by a new owner is harmless.

- cutover: apply-deploy (or auto-apply while the copy still runs).
- stop / cancel: cancel the deploy. PlanetScale cannot pause a deploy and cannot resume a
  cancelled one: it is permanent, and the messages say so.
- revert / skip_revert: inside the revert window only.
- volume: the deploy request's throttle ratio (volume 1 = ratio 95 .. volume 11 = ratio 0).
- start: deploys a deploy request whose deploy was deferred (`extra["defer_deploy"]`).
"""

from __future__ import annotations

from engines.base import (
    ControlNotApplicable,
    ControlResult,
    EngineState,
    PermanentEngineError,
    RetryableEngineError,
)
from engines.planetscale import deploy_states as ds
from engines.planetscale.api import ApiError, ApiUnreachable
from engines.planetscale.retry import retrying
from engines.planetscale.session import Session
from engines.planetscale.setup import get_dr, note_dr
from engines.targets import redact

PERMANENT = (
    "PlanetScale cannot resume a cancelled deploy request: this is permanent, a new apply is "
    "needed to make the change"
)


def _result(s: Session, accepted: bool, message: str, state: EngineState | None = None) -> ControlResult:
    return ControlResult(accepted=accepted, resume_state=s.state.to_dict(), message=message, state=state)


def _call(s: Session, action: str) -> None:
    """One control call; an unanswered one is checked by re-reading the deploy request."""
    s.intend(action.replace("-", "_"), number=s.state.dr_number)
    try:
        s.api.action(s.dr_number, action, s.budget)
    except (ApiUnreachable, ApiError) as exc:
        after = note_dr(s, get_dr(s))
        if not _took_effect(action, after):
            s.state.intent = None
            s.save()
            raise _as_engine_error(exc) from None
    s.state.intent = None
    s.save()


def _took_effect(action: str, state: str) -> bool:
    effects = {
        "apply-deploy": {"in_progress_cutover", "in_progress_vschema", "complete_pending_revert",
                         "complete"},
        "cancel": {"in_progress_cancel", "complete_cancel", "cancelled"},
        "revert": {"in_progress_revert", "complete_revert"},
        "skip-revert": {"complete"},
    }  # fmt: skip
    return state in effects[action]


def _as_engine_error(exc: Exception) -> Exception:
    if isinstance(exc, ApiError) and not exc.transient:
        return PermanentEngineError(redact(str(exc)))
    return RetryableEngineError(redact(str(exc)))


def cutover(s: Session) -> ControlResult:
    s.state.cutover_requested = True
    s.save()
    if s.state.dr_number is None:
        return _result(s, True, "cutover recorded: it happens as soon as the deploy is ready")
    state = note_dr(s, get_dr(s))
    if state == "pending_cutover":
        _call(s, "apply-deploy")
        return _result(s, True, f"cutting over deploy request #{s.state.dr_number}")
    if state in ("queued", "submitting", "in_progress"):
        s.intend("auto_apply", number=s.state.dr_number)
        retrying(s.budget, lambda: s.api.auto_apply(s.dr_number, True, s.budget), "auto-apply")
        s.state.intent = None
        s.save()
        return _result(s, True, "the copy is still running; it cuts over as soon as it is done")
    if state in ("pending", "ready"):
        return _result(s, True, "cutover recorded: it happens as soon as the deploy is ready")
    if state in (
        "in_progress_cutover",
        "in_progress_vschema",
        "complete_pending_revert",
        "complete",
    ):
        return _result(s, True, f"already cut over ({state})")
    return _result(s, False, f"deploy request #{s.state.dr_number} is {state}; nothing to cut over")


def cancel(s: Session, *, as_stop: bool = False) -> ControlResult:
    prefix = "PlanetScale cannot pause a deploy; stop cancels it. " if as_stop else ""
    cancelled = EngineState.CANCELLED  # what the apply becomes: a cancelled deploy never resumes
    if s.state.phase == "done":
        done = s.state.final_state == EngineState.CANCELLED.value
        return _result(s, done, f"{prefix}the apply already ended ({s.state.final_state})",
                       cancelled if done else None)  # fmt: skip
    if s.state.dr_number is None:
        s.finish(EngineState.CANCELLED, "cancelled before a deploy request was opened")
        return _result(s, True, f"{prefix}cancelled before a deploy request was opened; "
                                f"branch {s.state.branch} is left for inspection", cancelled)  # fmt: skip
    state = note_dr(s, get_dr(s))
    number = s.state.dr_number
    if state in ("in_progress_cancel", "complete_cancel", "cancelled"):
        return _result(
            s, True, f"{prefix}deploy request #{number} is already cancelled. {PERMANENT}", cancelled
        )
    if state in ds.CANCELLABLE:
        _call(s, "cancel")
        return _result(s, True, f"{prefix}cancelled deploy request #{number}. {PERMANENT}", cancelled)
    if state in ("pending", "ready", "no_changes", "error"):
        # Nothing was deployed: closing the deploy request is the cancel.
        s.intend("close_deploy_request", number=number)
        retrying(s.budget, lambda: s.api.request("PATCH", f"/deploy-requests/{number}", s.budget,
                                                 json={"state": "closed"}), "closing")  # fmt: skip
        s.finish(EngineState.CANCELLED, f"closed deploy request #{number} before deploying it")
        return _result(s, True, f"{prefix}closed deploy request #{number} before deploying it. "
                                f"{PERMANENT}", cancelled)  # fmt: skip
    if state in ("complete_pending_revert", "in_progress_revert"):
        return _result(s, False, "the change is already live on main: use revert or skip-revert")
    return _result(s, False, f"deploy request #{number} is {state}; there is nothing to cancel")


def revert(s: Session) -> ControlResult:
    if s.state.dr_number is None:
        return _result(s, False, "nothing was deployed yet; there is nothing to revert")
    state = note_dr(s, get_dr(s))
    if state in ("in_progress_revert", "complete_revert"):
        return _result(s, True, f"deploy request #{s.state.dr_number} is already reverting")
    if state != "complete_pending_revert":
        return _result(s, False, f"revert is possible inside the revert window only; deploy "
                                 f"request #{s.state.dr_number} is {state}")  # fmt: skip
    _call(s, "revert")
    return _result(s, True, f"reverting deploy request #{s.state.dr_number}")


def skip_revert(s: Session) -> ControlResult:
    s.state.skip_revert_requested = True
    s.save()
    if s.state.dr_number is None:
        return _result(s, True, "recorded: the revert window will be skipped")
    state = note_dr(s, get_dr(s))
    if state == "complete":
        return _result(s, True, "the revert window is already closed")
    if state == "complete_pending_revert":
        _call(s, "skip-revert")
        return _result(s, True, f"skipped the revert window of #{s.state.dr_number}")
    if state in ds.TERMINAL or state in ("in_progress_revert",):
        return _result(s, False, f"deploy request #{s.state.dr_number} is {state}")
    return _result(s, True, "recorded: the revert window will be skipped when it opens")


def volume(s: Session, value: str | None) -> ControlResult:
    try:
        ratio = ds.volume_to_ratio(int(value or ""))
    except ValueError:
        return _result(s, False, f"volume must be 1..11, got {value!r}")
    if s.state.dr_number is None:
        return _result(s, False, "there is no deploy to throttle yet")
    state = note_dr(s, get_dr(s))
    if state in ds.TERMINAL:
        return _result(s, False, f"deploy request #{s.state.dr_number} is {state}")
    current = retrying(s.budget, lambda: s.api.get_throttler(s.dr_number, s.budget), "throttler")
    if int(current.get("ratio", -1)) == ratio:
        return _result(s, True, f"throttle ratio already {ratio}")
    s.intend("throttle", number=s.state.dr_number, ratio=ratio)
    retrying(s.budget, lambda: s.api.set_throttler(s.dr_number, ratio, s.budget), "throttle")
    s.state.intent = None
    s.save()
    return _result(s, True, f"throttle ratio set to {ratio} (volume {value})")


def start(s: Session) -> ControlResult:
    if s.state.deferred_deploy and not s.state.deploy_requested:
        s.state.deploy_requested = True
        s.save()
        return _result(s, True, "the deploy starts on the next step")
    raise ControlNotApplicable(
        "a PlanetScale deploy cannot be paused, so there is nothing to start; a cancelled "
        "deploy request cannot be restarted (a new apply is needed)"
    )
