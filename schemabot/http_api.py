"""The HTTP endpoint of the producer API, for bots and CI systems that do not run Python.

    POST /v1/applies                      submit (JSON body below); 201 new, 200 idempotent repeat
    GET  /v1/applies?state=&limit=        list
    GET  /v1/applies/{apply_id}           status (the same document as `schemabot status --json`)
    GET  /v1/applies/{apply_id}/log       audit log
    POST /v1/applies/{apply_id}/{control} stop|start|cutover|cancel|revert|skip-revert|volume
                                          (volume takes {"value": 1-11}); 202 accepted
    GET  /healthz                         liveness

Submit body: {"target", "engine", "changes": [{"namespace", "ddl": [...], "vschema"}],
"defer_cutover", "skip_revert", "volume", "revert_window_seconds", "idempotency_key",
"engine_options", "atomic"}. `atomic` (true/false; absent = the default) cuts all tables over
together.
Errors are {"error": "...", "code": "..."} with 400 (bad input), 404, 409 (control refused in this
state) or 503 (state database unavailable). It is a thin layer over `schemabot.api.Client`.

Serve with `schemabot serve --port 8080`. Authentication belongs in front of it (a reverse proxy).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from engines.targets import redact
from schemabot.api import ChangeSet, Client
from schemabot.errors import ControlRejected, NotFound, StorageUnavailable, ValidationError

Handler = Callable[[Request], Awaitable[JSONResponse]]


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": redact(message), "code": code}, status_code=status)


def _guarded(handler: Callable[[Request], Awaitable[JSONResponse]]) -> Handler:
    async def wrapped(request: Request) -> JSONResponse:
        try:
            return await handler(request)
        except ValidationError as exc:
            return _error(400, "invalid", str(exc))
        except NotFound as exc:
            return _error(404, "not_found", str(exc))
        except ControlRejected as exc:
            return _error(409, "refused", str(exc))
        except StorageUnavailable as exc:
            return _error(503, "unavailable", str(exc))

    return wrapped


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except json.JSONDecodeError as exc:
        raise ValidationError(f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ValidationError("the body must be a JSON object")
    return body


def _changes(raw: Any) -> list[ChangeSet]:
    if not isinstance(raw, list) or not raw:
        raise ValidationError('"changes" must be a non-empty list of {"namespace", "ddl", "vschema"}')
    sets = []
    for item in raw:
        if not isinstance(item, dict):
            raise ValidationError("each change must be an object")
        ddl = item.get("ddl") or []
        if isinstance(ddl, str):
            ddl = [ddl]
        if not isinstance(ddl, list) or not all(isinstance(d, str) for d in ddl):
            raise ValidationError('"ddl" must be a list of statements')
        sets.append(ChangeSet(ddl=ddl, namespace=item.get("namespace"), vschema=item.get("vschema")))
    return sets


def build_app(client_factory: Callable[[], Client] = Client) -> Starlette:
    client = client_factory()

    @_guarded
    async def submit(request: Request) -> JSONResponse:
        body = await _body(request)
        for field in ("target", "engine"):
            if not isinstance(body.get(field), str):
                raise ValidationError(f'"{field}" is required')
        result = await run_in_threadpool(
            client.submit_apply,
            body["target"],
            body["engine"],
            _changes(body.get("changes")),
            defer_cutover=bool(body.get("defer_cutover", False)),
            skip_revert=bool(body.get("skip_revert", False)),
            volume=body.get("volume"),
            revert_window_seconds=body.get("revert_window_seconds"),
            idempotency_key=body.get("idempotency_key"),
            engine_options=body.get("engine_options"),
            atomic=None if body.get("atomic") is None else bool(body["atomic"]),
        )
        return JSONResponse({"apply_id": result.apply_id, "created": result.created},
                            status_code=201 if result.created else 200)

    @_guarded
    async def listing(request: Request) -> JSONResponse:
        try:
            limit = int(request.query_params.get("limit", "100"))
        except ValueError:
            raise ValidationError("limit must be an integer") from None
        applies = await run_in_threadpool(client.list_applies, request.query_params.get("state"), limit)
        return JSONResponse([a.to_dict() for a in applies])

    @_guarded
    async def status(request: Request) -> JSONResponse:
        st = await run_in_threadpool(client.get_apply, request.path_params["apply_id"])
        return JSONResponse(st.to_dict())

    @_guarded
    async def log(request: Request) -> JSONResponse:
        entries = await run_in_threadpool(client.log, request.path_params["apply_id"])
        return JSONResponse([asdict(e) for e in entries])

    @_guarded
    async def control(request: Request) -> JSONResponse:
        value = None
        if request.path_params["control"] == "volume":
            value = (await _body(request)).get("value")
        receipt = await run_in_threadpool(
            client.request_control, request.path_params["apply_id"], request.path_params["control"], value
        )
        return JSONResponse(asdict(receipt), status_code=202)

    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/v1/applies", submit, methods=["POST"]),
            Route("/v1/applies", listing, methods=["GET"]),
            Route("/v1/applies/{apply_id}", status, methods=["GET"]),
            Route("/v1/applies/{apply_id}/log", log, methods=["GET"]),
            Route("/v1/applies/{apply_id}/{control}", control, methods=["POST"]),
        ]
    )
