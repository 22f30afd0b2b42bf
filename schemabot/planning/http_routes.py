"""HTTP routes for plans (issue 13), added to schemabot/http_api.py:

    POST /v1/plans              body {"target", "namespace", "engine" (default auto),
                                "ddl": [...] | "schema_files": {"orders.sql": "CREATE TABLE ..."},
                                "allow_unsafe"} -> 200 with the plan document (its "blocking" field
                                says whether an apply of it would be refused)
    POST /v1/plans/apply        the same body plus "requested_by", "defer_cutover", "skip_revert",
                                "volume", "idempotency_key": plans, then submits what the plan says;
                                201 {"apply_id", "created", "engine", "plan"}; 409 with the plan
                                when it is blocked
    GET  /v1/applies/{id}/plan  the plan stored on an apply

`schema_files` keys are file names, or "<namespace>/<file>" for several namespaces; they are
written to a private temporary directory and read as `--schema-dir` would.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from schemabot.errors import ValidationError
from schemabot.planning.service import PlanBlocked, make_plan, stored_plan, submit_planned


def _schema_dir(files: Any, root: str) -> str:
    if not isinstance(files, dict) or not files:
        raise ValidationError('"schema_files" must be an object of {"file.sql": "CREATE TABLE ..."}')
    for name, text in files.items():
        parts = Path(str(name)).parts
        if not isinstance(text, str) or not 1 <= len(parts) <= 2 or any(p in ("..", "/", "") for p in parts):
            raise ValidationError(f"bad schema file name {name!r}: use 'file.sql' or 'namespace/file.sql'")
        path = Path(root, *parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def _inputs(body: dict[str, Any], root: str) -> dict[str, Any]:
    if not isinstance(body.get("target"), str):
        raise ValidationError('"target" is required')
    ddl, files = body.get("ddl"), body.get("schema_files")
    if (ddl is None) == (files is None):
        raise ValidationError('give either "ddl" (a list of statements) or "schema_files"')
    if ddl is not None and (not isinstance(ddl, list) or not all(isinstance(d, str) for d in ddl)):
        raise ValidationError('"ddl" must be a list of statements')
    return {
        "namespace": body.get("namespace"),
        "ddl": ddl,
        "schema_dir": _schema_dir(files, root) if files is not None else None,
        "engine": str(body.get("engine") or "auto"),
        "allow_unsafe": body.get("allow_unsafe") is True,
    }


def plan_routes(client: Any, guarded: Callable[..., Any], read_body: Callable[..., Any]) -> list[Route]:
    """The routes, wrapped by http_api's own error handling and body reading."""

    @guarded
    async def create_plan(request: Request) -> JSONResponse:
        body = await read_body(request)
        with tempfile.TemporaryDirectory(prefix="schemabot-plan-") as root:
            args = _inputs(body, root)
            plan = await run_in_threadpool(
                lambda: make_plan(client.settings, body["target"], db=client.runtime.db, **args)
            )
        return JSONResponse(plan.to_dict())

    @guarded
    async def apply_plan(request: Request) -> JSONResponse:
        body = await read_body(request)
        options = {
            "defer_cutover": bool(body.get("defer_cutover", False)),
            "skip_revert": bool(body.get("skip_revert", False)),
            "volume": body.get("volume"),
            "idempotency_key": body.get("idempotency_key"),
        }
        with tempfile.TemporaryDirectory(prefix="schemabot-plan-") as root:
            args = _inputs(body, root)
            try:
                submitted = await run_in_threadpool(
                    lambda: submit_planned(
                        client, body["target"], requested_by=body.get("requested_by"), **args, **options
                    )
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

    @guarded
    async def show_plan(request: Request) -> JSONResponse:
        apply_id = request.path_params["apply_id"]
        plan = await run_in_threadpool(lambda: stored_plan(client.settings, apply_id, db=client.runtime.db))
        return JSONResponse(plan)

    return [
        Route("/v1/plans", create_plan, methods=["POST"]),
        Route("/v1/plans/apply", apply_plan, methods=["POST"]),
        Route("/v1/applies/{apply_id}/plan", show_plan, methods=["GET"]),
    ]
