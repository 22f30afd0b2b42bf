"""The public API routes under `/v1/organizations/{org}/databases/{db}`, PlanetScale's paths.

Endpoints are thin: parse the request, run the action in a worker thread (the store is a
blocking MariaDB client) and render the result or the `ApiError`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from planetscale_emulator import branches, deploy_requests
from planetscale_emulator.errors import ApiError, invalid, not_found
from planetscale_emulator.world import World

Action = Callable[[Request, dict[str, Any]], Any]


def error_response(exc: ApiError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status)


async def read_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise invalid(f"request body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise invalid("request body must be a JSON object")
    return body


def endpoint(world: World | None, action: Action, status: int = 200) -> Callable[..., Any]:
    async def handle(request: Request) -> Response:
        try:
            if world is not None:
                params = request.path_params
                if params.get("org") != world.config.org:
                    raise not_found(f"Organization {params.get('org')}")
                if params.get("db") != world.config.database:
                    raise not_found(f"Database {params.get('db')}")
            body = await read_body(request) if request.method in ("POST", "PATCH", "PUT") else {}
            result = await run_in_threadpool(action, request, body)
        except ApiError as exc:
            return error_response(exc)
        if result is None:
            return Response(status_code=204)
        return JSONResponse(result, status_code=status)

    return handle


def _number(request: Request) -> int:
    try:
        return int(request.path_params["number"])
    except ValueError:
        raise not_found(f"Deploy request {request.path_params['number']}") from None


def api_routes(world: World) -> list[BaseRoute]:
    w = world
    p = "/v1/organizations/{org}/databases/{db}"
    b = p + "/branches/{branch}"
    d = p + "/deploy-requests/{number}"

    def route(path: str, action: Action, methods: list[str], status: int = 200) -> Route:
        return Route(path, endpoint(w, action, status), methods=methods)

    def dr_action(fn: Callable[[World, int], Any]) -> Action:
        return lambda r, _: fn(w, _number(r))

    def database(_: Request, __: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": "db-emulator",
            "type": "database",
            "name": w.config.database,
            "kind": "mysql",
            "state": "ready",
            "sharded": False,
            "default_branch": w.config.main_branch,
        }

    return [
        route(p, database, ["GET"]),
        route(p + "/branches", lambda r, body: branches.list_all(w), ["GET"]),
        route(p + "/branches", lambda r, body: branches.create(w, body), ["POST"], 201),
        route(b, lambda r, _: branches.get(w, r.path_params["branch"]), ["GET"]),
        route(b, lambda r, _: branches.delete(w, r.path_params["branch"]), ["DELETE"]),
        route(
            b + "/refresh-schema",
            lambda r, _: branches.refresh_schema(w, r.path_params["branch"]),
            ["POST"],
        ),
        route(
            b + "/keyspaces", lambda r, _: branches.keyspaces(w, r.path_params["branch"]), ["GET"]
        ),
        route(
            b + "/schema",
            lambda r, _: branches.schema(
                w, r.path_params["branch"], r.query_params.get("keyspace")
            ),
            ["GET"],
        ),
        route(
            b + "/vschema",
            lambda r, _: branches.get_vschema(
                w, r.path_params["branch"], r.query_params.get("keyspace") or w.config.keyspaces[0]
            ),
            ["GET"],
        ),
        route(
            b + "/keyspaces/{keyspace}/vschema",
            lambda r, _: branches.get_vschema(
                w, r.path_params["branch"], r.path_params["keyspace"]
            ),
            ["GET"],
        ),
        route(
            b + "/keyspaces/{keyspace}/vschema",
            lambda r, body: branches.patch_vschema(
                w, r.path_params["branch"], r.path_params["keyspace"], body
            ),
            ["PATCH"],
        ),
        route(
            b + "/passwords",
            lambda r, _: branches.list_passwords(w, r.path_params["branch"]),
            ["GET"],
        ),
        route(
            b + "/passwords",
            lambda r, body: branches.create_password(w, r.path_params["branch"], body),
            ["POST"],
            201,
        ),
        route(
            b + "/passwords/{password_id}",
            lambda r, _: branches.delete_password(
                w, r.path_params["branch"], r.path_params["password_id"]
            ),
            ["DELETE"],
        ),
        route(
            p + "/deploy-requests",
            lambda r, _: deploy_requests.list_filtered(w, dict(r.query_params)),
            ["GET"],
        ),
        route(
            p + "/deploy-requests", lambda r, body: deploy_requests.create(w, body), ["POST"], 201
        ),
        route(d, dr_action(deploy_requests.get), ["GET"]),
        route(d, lambda r, body: deploy_requests.close(w, _number(r), body), ["PATCH"]),
        route(
            d + "/deployment",
            lambda r, _: deploy_requests.get(w, _number(r))["deployment"],
            ["GET"],
        ),
        route(d + "/deploy", lambda r, body: deploy_requests.deploy(w, _number(r), body), ["POST"]),
        route(d + "/apply-deploy", dr_action(deploy_requests.apply_deploy), ["POST"]),
        route(d + "/cancel", dr_action(deploy_requests.cancel), ["POST"]),
        route(d + "/revert", dr_action(deploy_requests.revert), ["POST"]),
        route(d + "/skip-revert", dr_action(deploy_requests.skip_revert), ["POST"]),
        route(
            d + "/auto-apply",
            lambda r, body: deploy_requests.auto_apply(w, _number(r), body),
            ["PUT"],
        ),
        route(d + "/throttler", dr_action(deploy_requests.get_throttler), ["GET"]),
        route(
            d + "/throttler",
            lambda r, body: deploy_requests.patch_throttler(w, _number(r), body),
            ["PATCH"],
        ),
        route(d + "/operations", dr_action(deploy_requests.operations), ["GET"]),
        route(d + "/diff", dr_action(deploy_requests.diff), ["GET"]),
    ]
