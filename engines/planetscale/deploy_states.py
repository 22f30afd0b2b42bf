"""How a deploy request's `deployment_state` reads as an engine state.

PlanetScale's states are finer than schemabot's; several map onto one engine state and the
message keeps the detail. `pending_cutover` is WAITING_FOR_CUTOVER only when the user deferred
the cutover; otherwise the engine cuts over itself.
"""

from __future__ import annotations

from engines.base import EngineState

MAPPING: dict[str, tuple[EngineState, str]] = {
    "pending": (EngineState.VALIDATING_DEPLOY_REQUEST, "PlanetScale is computing the diff"),
    "ready": (EngineState.VALIDATING_DEPLOY_REQUEST, "deploy request is deployable"),
    "no_changes": (EngineState.COMPLETED, "main already has the desired schema (no changes)"),
    "error": (EngineState.FAILED, "the deploy request cannot be deployed"),
    "queued": (EngineState.WAITING_FOR_DEPLOY, "queued behind other deploys"),
    "submitting": (EngineState.WAITING_FOR_DEPLOY, "submitting the deploy"),
    "in_progress": (EngineState.RUNNING, "copying tables"),
    "pending_cutover": (EngineState.WAITING_FOR_CUTOVER, "copy done, waiting for cutover"),
    "in_progress_vschema": (EngineState.CUTTING_OVER, "applying the VSchema"),
    "in_progress_cutover": (EngineState.CUTTING_OVER, "cutting over"),
    "complete_pending_revert": (EngineState.REVERT_WINDOW, "deployed; revert window open"),
    "in_progress_revert": (EngineState.REVERT_WINDOW, "reverting"),
    "complete_revert": (EngineState.REVERTED, "reverted"),
    "complete": (EngineState.COMPLETED, "deployed"),
    "in_progress_cancel": (EngineState.RUNNING, "cancelling"),
    "complete_cancel": (EngineState.CANCELLED, "cancelled"),
    "cancelled": (EngineState.CANCELLED, "cancelled"),
    "complete_error": (EngineState.FAILED, "the deploy failed"),
}

TERMINAL = frozenset(
    s
    for s, (e, _) in MAPPING.items()
    if e in (EngineState.COMPLETED, EngineState.FAILED, EngineState.CANCELLED, EngineState.REVERTED)
)
# States in which the deploy has been started (deploy was called and took effect).
DEPLOYED_OR_LATER = frozenset(MAPPING) - {"pending", "ready", "no_changes", "error"}
CANCELLABLE = frozenset({"queued", "submitting", "in_progress", "pending_cutover"})


def engine_state(deployment_state: str) -> tuple[EngineState, str]:
    """Unknown states (PlanetScale adds some now and then) read as RUNNING, never terminal."""
    return MAPPING.get(deployment_state, (EngineState.RUNNING, f"state {deployment_state}"))


def volume_to_ratio(volume: int) -> int:
    """Volume 1 (gentlest) .. 11 (fastest) onto PlanetScale's throttle ratio 95 .. 0."""
    if not 1 <= volume <= 11:
        raise ValueError("volume must be between 1 and 11")
    return round((11 - volume) * 9.5)
