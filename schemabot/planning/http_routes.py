"""HTTP routes for plans, added to the FastAPI app of schemabot/http_api.py:

    POST /v1/plans              PlanRequest -> 200 with the plan document (its "blocking" field says
                                whether an apply of it would be refused)                    read
    POST /v1/plans/apply        PlanApplyRequest: plans, then submits what the plan says;
                                201 {"apply_id", "created", "engine", "plan"}; 409 with the plan
                                when it is blocked                                           apply
    GET  /v1/applies/{id}/plan  the plan stored on an apply                                  read

`schema_files` keys are file names, or "<namespace>/<file>" for several namespaces (for a Vitess
target "<keyspace>/vschema.json" is the keyspace's desired VSchema); they are written to a private
temporary directory and read as `--schema-dir` would. A Vitess plan whose provider does not
answer is 503 (502 when it refuses): no plan was made. Who asked is the
caller's token name, as for every other write of the API.
"""

# No `from __future__ import annotations`: FastAPI reads the route annotations at definition
# time, and `caller` is a local (the dependency of http_api), not a name of this module.
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemabot import auth
from schemabot.errors import ValidationError
from schemabot.planning.service import PlanBlocked, make_plan, stored_plan, submit_planned

_STRICT = ConfigDict(strict=True, extra="forbid")
_Statement = Annotated[str, Field(min_length=1, max_length=1_000_000)]


class PlanRequest(BaseModel):
    """POST /v1/plans: either `ddl` or `schema_files`."""

    model_config = _STRICT

    target: str = Field(min_length=1, max_length=64)
    namespace: str | None = Field(default=None, min_length=1, max_length=64)
    engine: str = Field(default="auto", min_length=1, max_length=32)
    ddl: list[_Statement] | None = Field(default=None, max_length=500)
    schema_files: dict[str, Annotated[str, Field(max_length=1_000_000)]] | None = Field(
        default=None, description='{"orders.sql": "CREATE TABLE ...", "ns/t.sql": "..."}'
    )
    allow_unsafe: bool = False

    @model_validator(mode="after")
    def _one_source(self) -> "PlanRequest":
        if (self.ddl is None) == (self.schema_files is None):
            raise ValueError('give either "ddl" (a list of statements) or "schema_files"')
        return self


class PlanApplyRequest(PlanRequest):
    """POST /v1/plans/apply: a plan request plus the submit options."""

    defer_cutover: bool = False
    skip_revert: bool = False
    volume: int | None = Field(default=None, ge=1, le=11)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=191)


def _schema_dir(files: dict[str, str], root: str) -> str:
    if not files:
        raise ValidationError('"schema_files" must name at least one file')
    for name, text in files.items():
        parts = Path(name).parts
        if not 1 <= len(parts) <= 2 or any(p in ("..", "/", "") for p in parts) or Path(name).is_absolute():
            raise ValidationError(f"bad schema file name {name!r}: use 'file.sql' or 'namespace/file.sql'")
        path = Path(root, *parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def _inputs(body: PlanRequest, root: str) -> dict[str, Any]:
    return {
        "namespace": body.namespace,
        "ddl": list(body.ddl) if body.ddl is not None else None,
        "schema_dir": _schema_dir(body.schema_files, root) if body.schema_files is not None else None,
        "engine": body.engine,
        "allow_unsafe": body.allow_unsafe,
    }


def install_plan_routes(
    app: FastAPI, client: Any, caller: Any, error_responses: dict[int | str, Any]
) -> None:
    """Add the plan routes to `app` (`caller` is http_api's authenticated-principal dependency)."""

    @app.post(
        "/v1/plans", responses=error_responses, summary="Plan changes without applying them (scope read)"
    )
    async def create_plan(body: PlanRequest, who: caller) -> JSONResponse:
        auth.require(who, auth.Scope.READ, body.target)
        with tempfile.TemporaryDirectory(prefix="schemabot-plan-") as root:
            args = _inputs(body, root)
            plan = await run_in_threadpool(
                lambda: make_plan(client.settings, body.target, db=client.runtime.db, **args)
            )
        return JSONResponse(plan.to_dict())

    @app.post(
        "/v1/plans/apply",
        status_code=201,
        responses={409: {"description": "the plan has blocking findings"}, **error_responses},
        summary="Plan, then apply what the plan says (scope apply)",
    )
    async def apply_plan(body: PlanApplyRequest, who: caller) -> JSONResponse:
        auth.require(who, auth.Scope.APPLY, body.target)
        options: dict[str, Any] = {
            "defer_cutover": body.defer_cutover,
            "skip_revert": body.skip_revert,
            "volume": body.volume,
            "idempotency_key": body.idempotency_key,
        }
        with tempfile.TemporaryDirectory(prefix="schemabot-plan-") as root:
            args = _inputs(body, root)
            try:
                submitted = await run_in_threadpool(
                    lambda: submit_planned(client, body.target, requested_by=who.name, **args, **options)
                )
            except PlanBlocked as exc:
                return JSONResponse(
                    {"error": str(exc), "code": "blocked", "plan": exc.plan.to_dict()}, status_code=409
                )
        return JSONResponse(
            {
                "apply_id": submitted.apply_id,
                "created": submitted.created,
                "engine": submitted.engine,
                "plan": submitted.plan.to_dict() if submitted.plan else None,
            },
            status_code=201 if submitted.created else 200,
        )

    @app.get(
        "/v1/applies/{apply_id}/plan",
        responses=error_responses,
        summary="The plan stored on an apply (scope read)",
    )
    async def show_plan(apply_id: str, who: caller) -> JSONResponse:
        auth.require(who, auth.Scope.READ)
        status = await run_in_threadpool(lambda: client.get_apply(apply_id))
        if not who.may_use(status.target):
            raise auth.Forbidden(f"token {who.name!r} may not use target {status.target!r}")
        plan = await run_in_threadpool(lambda: stored_plan(client.settings, apply_id, db=client.runtime.db))
        return JSONResponse(plan)
