"""PlanetScaleEngine: Vitess schema changes through PlanetScale branches and deploy requests.

`apply` starts (creates or reuses the apply's branch) or reattaches (checks that the branch and
deploy request the resume state names still exist); `progress` runs the set-up steps in order
and then watches the deploy, all within the step budget. See README.md beside this file for the
resume rules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import httpx

from engines.base import (
    ApplyRequest,
    ApplyResult,
    ControlRequest,
    ControlResult,
    Engine,
    EngineState,
    OperationRequest,
    PermanentEngineError,
    Platform,
    ProgressRequest,
    ProgressResult,
    ResumeStateNotFound,
    RetryableEngineError,
    TableProgress,
)
from engines.options import PlanetScaleOptions, read_options
from engines.planetscale import deploy_controls, naming, observe, setup
from engines.planetscale import deploy_states as ds
from engines.planetscale.api import NotFound, PlanetScaleAPI
from engines.planetscale.branch_sql import BranchSQL
from engines.planetscale.budget import Budget, OutOfBudget
from engines.planetscale.resume_state import PSResumeState
from engines.planetscale.session import Session, Waiting
from engines.planetscale.target import PlanetScaleTarget
from engines.targets import Target, redact

Step = Callable[[Session], Waiting | None]

STEPS: dict[str, Step] = {
    "branch": setup.step_branch,
    "vschema": setup.step_vschema,
    "ddl": setup.step_ddl,
    "validate_branch": setup.step_validate_branch,
    "create_dr": setup.step_create_dr,
    "validate_dr": setup.step_validate_dr,
    "deploy": setup.step_deploy,
    "deploying": observe.step_deploying,
}

# What a phase reports when the budget ends inside it.
PHASE_STATES: dict[str, EngineState] = {
    "branch": EngineState.PREPARING_BRANCH,
    "vschema": EngineState.APPLYING_BRANCH_CHANGES,
    "ddl": EngineState.APPLYING_BRANCH_CHANGES,
    "validate_branch": EngineState.APPLYING_BRANCH_CHANGES,
    "create_dr": EngineState.CREATING_DEPLOY_REQUEST,
    "validate_dr": EngineState.VALIDATING_DEPLOY_REQUEST,
    "deploy": EngineState.WAITING_FOR_DEPLOY,
}

MAX_STEPS_PER_CALL = 40


class PlanetScaleEngine(Engine):
    name: ClassVar[str] = "planetscale"
    platform: ClassVar[Platform] = "vitess"
    dsn_schemes: ClassVar[tuple[str, ...]] = ("planetscale",)
    options_model = PlanetScaleOptions

    def __init__(self, target: Target, *, http_client: httpx.Client | None = None) -> None:
        """`http_client` (optional, keyword-only) lets tests observe or fault the HTTP calls."""
        super().__init__(target)
        self.ps = PlanetScaleTarget.from_target(target)
        self.api = PlanetScaleAPI(self.ps, http_client)
        self._sql: dict[str, BranchSQL] = {}

    def close(self) -> None:
        for sql in self._sql.values():
            sql.close()
        self.api.close()

    # -- helpers ----------------------------------------------------------------------------

    def _session(self, request: OperationRequest, state: PSResumeState) -> Session:
        sql = self._sql.get(state.branch)
        if sql is None:
            sql = self._sql[state.branch] = BranchSQL(self.api, state.branch, self.ps.mysql_tls)
        return Session(self.ps, self.api, sql, request, state, Budget(request.step_budget))

    def _load(self, request: OperationRequest) -> PSResumeState:
        if request.resume_state is None:
            raise ResumeStateNotFound(
                "no resume state: the planetscale engine needs the state its apply returned"
            )
        state = PSResumeState.from_dict(request.resume_state)
        if state.context != request.context:
            raise PermanentEngineError(
                f"the resume state belongs to {state.context}, not to {request.context}"
            )
        return state

    @staticmethod
    def _validate(request: OperationRequest) -> None:
        if not request.changes:
            raise PermanentEngineError("an apply needs at least one change")
        seen: set[str] = set()
        for change in request.changes:
            if change.namespace in seen:
                raise PermanentEngineError(f"keyspace {change.namespace} appears twice")
            seen.add(change.namespace)
            if change.vschema_changed and not isinstance(change.vschema, dict):
                # Fail closed: never deploy the tables of a VSchema change without its VSchema.
                raise PermanentEngineError(
                    f"keyspace {change.namespace} is flagged vschema_changed but carries no "
                    f"VSchema document"
                )
            if not change.tables and not change.vschema_changed:
                raise PermanentEngineError(f"keyspace {change.namespace} has nothing to change")
            for table in change.tables:
                if not table.ddl.strip():
                    raise PermanentEngineError(f"{change.namespace}.{table.table} has an empty DDL")

    # -- contract ---------------------------------------------------------------------------

    def apply(self, request: ApplyRequest) -> ApplyResult:
        self._validate(request)
        if request.resume_state is not None:
            return self._reattach(request, self._load(request))
        state = PSResumeState(
            context=request.context,
            branch=naming.branch_name(request.context),
            deferred_deploy=bool(read_options(PlanetScaleOptions, request.options.extra).defer_deploy),
        )
        s = self._session(request, state)
        s.save()  # persist before act: the branch name is known before anything exists
        try:
            setup.ensure_branch(s)
            if s.state.branch_adopted and setup.adopt_tagged(s):
                # The previous owner got as far as a deploy request: continue from there.
                s.set_phase("validate_dr")
        except OutOfBudget:
            pass  # the state is saved; progress carries on
        adopted = s.state.branch_adopted
        point = (
            f"deploy request #{state.dr_number}" if state.dr_number else f"branch {state.branch}"
        )
        return ApplyResult(
            accepted=True,
            resume_state=state.to_dict(),
            message=f"{'reusing' if adopted else 'using'} branch {state.branch}",
            reattached=adopted,
            resume_point=point if adopted else None,
        )

    def _reattach(self, request: ApplyRequest, state: PSResumeState) -> ApplyResult:
        """Check that what the state names is still there; a typed 404 alone means gone.

        Running out of step budget while checking is no verdict on the deploy request: the
        reattach is declined for now (not accepted, no error), and the next tick checks again.
        """
        try:
            return self._check_reattach(request, state)
        except OutOfBudget as exc:
            return ApplyResult(
                accepted=False,
                resume_state=None,
                message=f"reattach not checked yet: {exc}; trying again",
            )

    def _check_reattach(self, request: ApplyRequest, state: PSResumeState) -> ApplyResult:
        s = self._session(request, state)
        if state.dr_number is not None:
            dr = setup.get_dr(s)
            point = f"deploy request #{state.dr_number} ({dr.get('deployment_state')})"
        elif state.branch_created or state.at_or_after("vschema"):
            if setup.find_branch(s) is None:
                raise ResumeStateNotFound(f"branch {state.branch} of this apply is gone")
            point = f"branch {state.branch} at phase {state.phase}"
        else:
            point = f"branch {state.branch} not created yet"
        return ApplyResult(
            accepted=True,
            resume_state=state.to_dict(),
            message=f"reattached to {point}",
            reattached=True,
            resume_point=point,
        )

    def progress(self, request: ProgressRequest) -> ProgressResult:
        state = self._load(request)
        s = self._session(request, state)
        waiting: Waiting | None = None
        try:
            for _ in range(MAX_STEPS_PER_CALL):
                if state.phase == "done":
                    final = EngineState(state.final_state or EngineState.COMPLETED.value)
                    waiting = Waiting(final, state.message)
                    break
                waiting = STEPS[state.phase](s)
                if waiting is not None:
                    break
        except OutOfBudget:
            waiting = None
        except NotFound as exc:
            raise ResumeStateNotFound(redact(f"something this apply uses is gone: {exc}")) from None
        if waiting is None:
            waiting = Waiting(self._phase_state(state), f"{state.phase} in progress")
        tables = waiting.tables or self._tables(request, waiting.state)
        return ProgressResult(
            state=waiting.state,
            tables=tables,
            resume_state=state.to_dict(),
            message=redact(waiting.message),
            events=tuple(s.events),
        )

    @staticmethod
    def _phase_state(state: PSResumeState) -> EngineState:
        if state.phase == "deploying":
            return ds.engine_state(state.last_deploy_state or "queued")[0]
        return PHASE_STATES.get(state.phase, EngineState.RUNNING)

    @staticmethod
    def _tables(request: OperationRequest, overall: EngineState) -> tuple[TableProgress, ...]:
        return tuple(
            TableProgress(namespace=c.namespace, table=t.table, state=overall)
            for c in request.changes
            for t in c.tables
        )

    # -- controls ---------------------------------------------------------------------------

    def _control(
        self, request: ControlRequest, run: Callable[[Session], ControlResult]
    ) -> ControlResult:
        s = self._session(request, self._load(request))
        try:
            result = run(s)
        except NotFound as exc:
            raise ResumeStateNotFound(redact(f"something this apply uses is gone: {exc}")) from None
        except OutOfBudget as exc:
            raise RetryableEngineError(f"the control did not finish within the step budget: {exc}") from None
        # The engine's word on what the apply becomes (a stop that cancels) must reach schemabot.
        return ControlResult(
            result.accepted, result.resume_state, redact(result.message), state=result.state
        )

    def cutover(self, request: ControlRequest) -> ControlResult:
        return self._control(request, deploy_controls.cutover)

    def cancel(self, request: ControlRequest) -> ControlResult:
        return self._control(request, deploy_controls.cancel)

    def stop(self, request: ControlRequest) -> ControlResult:
        return self._control(request, lambda s: deploy_controls.cancel(s, as_stop=True))

    def start(self, request: ControlRequest) -> ControlResult:
        return self._control(request, deploy_controls.start)

    def revert(self, request: ControlRequest) -> ControlResult:
        return self._control(request, deploy_controls.revert)

    def skip_revert(self, request: ControlRequest) -> ControlResult:
        return self._control(request, deploy_controls.skip_revert)

    def volume(self, request: ControlRequest) -> ControlResult:
        return self._control(request, lambda s: deploy_controls.volume(s, request.value))
