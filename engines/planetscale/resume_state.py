"""The engine's resume state: a versioned JSON document that schemabot stores for the apply.

It holds what cannot be found again on PlanetScale alone, and the *intent* of the side effect in
flight: before every side-effecting call the engine records the intent and saves; right after,
it records the result and saves. A new owner that finds an intent without a result does not
call again blindly: it first looks on PlanetScale for the effect (the branch by its name, the
deploy request by its tag, the deploy by the request's state) and only acts when it is absent.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from engines.base import PermanentEngineError, ResumeState

FORMAT = 1

# Set-up phases in order, then observation. `done` keeps the final state.
PHASES = (
    "branch",  # branch created (or reused) and ready
    "vschema",  # VSchema documents patched on the branch
    "ddl",  # DDL run on the branch over MySQL
    "validate_branch",  # the branch differs from main exactly by the desired changes
    "create_dr",  # deploy request opened (or adopted) into main
    "validate_dr",  # the deploy request's diff is what we asked for
    "deploy",  # deploy called
    "deploying",  # watching the deploy to its end (cutover, revert window)
    "done",
)


@dataclass
class PSResumeState:
    context: str
    branch: str
    format: int = FORMAT
    phase: str = "branch"
    branch_created: bool = False
    # Found by its name with no record of creating it (a previous owner's state was lost):
    # DDL already on it counts as done (see setup.step_ddl).
    branch_adopted: bool = False
    vschema_done: list[str] = field(default_factory=list)
    ddl_done: list[str] = field(default_factory=list)
    # Keys of DROP TABLE IF EXISTS changes whose table was absent at their first attempt: done
    # with nothing run, and not expected to differ from main (docs/architecture.md §5.1).
    ddl_absent: list[str] = field(default_factory=list)
    # The one side effect in flight, e.g. {"call": "create_deploy_request"} or
    # {"call": "ddl", "key": "ks/table/0", "before": "<fingerprint>"}.
    intent: dict[str, Any] | None = None
    dr_number: int | None = None
    dr_url: str | None = None
    deployed_at: str | None = None
    instant: bool = False
    deferred_deploy: bool = False
    deploy_requested: bool = False
    cutover_requested: bool = False
    skip_revert_requested: bool = False
    last_deploy_state: str | None = None
    final_state: str | None = None
    message: str = ""

    def to_dict(self) -> ResumeState:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: ResumeState) -> PSResumeState:
        version = data.get("format")
        if version != FORMAT:
            raise PermanentEngineError(
                f"unsupported planetscale resume state format {version!r} (this engine reads "
                f"format {FORMAT}); refusing to guess where the apply stands"
            )
        known = {f.name for f in fields(cls)}
        missing = {"context", "branch"} - set(data)
        if missing:
            raise PermanentEngineError(f"planetscale resume state lacks {sorted(missing)}")
        state = cls(**{k: v for k, v in data.items() if k in known})
        if state.phase not in PHASES:
            raise PermanentEngineError(
                f"planetscale resume state has unknown phase {state.phase!r}"
            )
        return state

    def at_or_after(self, phase: str) -> bool:
        return PHASES.index(self.phase) >= PHASES.index(phase)
