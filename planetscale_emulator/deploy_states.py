"""Deploy request states, as PlanetScale names them, and which transitions each call makes.

A deploy request's `deployment_state` goes (one step per emulator tick unless noted):

    pending --(diff computed)--> ready | no_changes | error
    ready --deploy--> queued --> submitting --> in_progress        (copying)
    in_progress --> pending_cutover          (auto cutover off; waits for apply-deploy)
    in_progress | pending_cutover(apply-deploy) --> in_progress_cutover   (tables swapped on main)
    in_progress_cutover --> in_progress_vschema                    (when the VSchema changes)
    ... --> complete_pending_revert --(window over | skip-revert)--> complete
    complete_pending_revert --revert--> in_progress_revert --> complete_revert
    queued --cancel--> cancelled;  submitting | in_progress | pending_cutover --cancel-->
        in_progress_cancel --> complete_cancel
    a failing deploy --> complete_error

A VSchema-only plan skips the copy (submitting --> in_progress_vschema); an instant deploy skips
the copy and the revert window. A queued deploy waits while another deploy request of the
database is deploying or inside its revert window, as PlanetScale gates deploys.
"""

from __future__ import annotations

PENDING = "pending"
READY = "ready"
NO_CHANGES = "no_changes"
ERROR = "error"
QUEUED = "queued"
SUBMITTING = "submitting"
IN_PROGRESS = "in_progress"
PENDING_CUTOVER = "pending_cutover"
IN_PROGRESS_VSCHEMA = "in_progress_vschema"
IN_PROGRESS_CUTOVER = "in_progress_cutover"
COMPLETE_PENDING_REVERT = "complete_pending_revert"
IN_PROGRESS_REVERT = "in_progress_revert"
COMPLETE_REVERT = "complete_revert"
COMPLETE = "complete"
IN_PROGRESS_CANCEL = "in_progress_cancel"
COMPLETE_CANCEL = "complete_cancel"
CANCELLED = "cancelled"
COMPLETE_ERROR = "complete_error"

ALL_STATES = (
    PENDING, READY, NO_CHANGES, ERROR, QUEUED, SUBMITTING, IN_PROGRESS, PENDING_CUTOVER,
    IN_PROGRESS_VSCHEMA, IN_PROGRESS_CUTOVER, COMPLETE_PENDING_REVERT, IN_PROGRESS_REVERT,
    COMPLETE_REVERT, COMPLETE, IN_PROGRESS_CANCEL, COMPLETE_CANCEL, CANCELLED, COMPLETE_ERROR,
)  # fmt: skip

# Nothing more will happen to the deployment; the request is closed when it gets there.
FINISHED = (COMPLETE, COMPLETE_REVERT, COMPLETE_CANCEL, CANCELLED, COMPLETE_ERROR)
# States in which a deploy request holds the database's deploy queue.
HOLDS_QUEUE = (
    SUBMITTING, IN_PROGRESS, PENDING_CUTOVER, IN_PROGRESS_VSCHEMA, IN_PROGRESS_CUTOVER,
    COMPLETE_PENDING_REVERT, IN_PROGRESS_REVERT, IN_PROGRESS_CANCEL,
)  # fmt: skip
# Once deployed (queued or later), a deploy request cannot be closed by hand.
DEPLOYING = (QUEUED, *HOLDS_QUEUE)

# The states each user call is accepted in, and where it takes the deploy request.
ACTIONS: dict[str, dict[str, str]] = {
    "deploy": {READY: QUEUED},
    "apply-deploy": {PENDING_CUTOVER: IN_PROGRESS_CUTOVER},
    "cancel": {
        QUEUED: CANCELLED,
        SUBMITTING: IN_PROGRESS_CANCEL,
        IN_PROGRESS: IN_PROGRESS_CANCEL,
        PENDING_CUTOVER: IN_PROGRESS_CANCEL,
    },
    "revert": {COMPLETE_PENDING_REVERT: IN_PROGRESS_REVERT},
    "skip-revert": {COMPLETE_PENDING_REVERT: COMPLETE},
}


def action_target(action: str, current: str) -> str | None:
    """Where `action` takes a deploy request in state `current`, or None when refused."""
    return ACTIONS[action].get(current)
