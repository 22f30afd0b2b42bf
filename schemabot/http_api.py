"""The HTTP API of the producer API, for CI systems and bots that do not run Python.

    POST /v1/applies                      submit (SubmitRequest); 201 new, 200 idempotent repeat   apply
    GET  /v1/applies?state=&limit=        list                                                      read
    GET  /v1/applies/{apply_id}           status (the document of `schemabot status --json`)        read
    GET  /v1/applies/{apply_id}/log       audit log                                                 read
    POST /v1/applies/{apply_id}/{control} stop|start|cutover|cancel|revert|skip-revert|volume       apply
                                          (ControlBody: volume takes {"value": 1-11}); 202
    POST /v1/plans, POST /v1/plans/apply, GET /v1/applies/{apply_id}/plan: plans
                                          (schemabot/planning/http_routes.py)
    GET  /healthz                         liveness (open)
    GET  /readyz                          state database and broker reachable: 200, else 503 (open)
    GET  /openapi.json, /docs             the OpenAPI 3 document, generated from the models, and a
                                          self-contained page that renders it (open: no data)

Errors are always `{"error": "...", "code": "..."}` (ErrorBody): 400 bad input, 401 no or unknown
token, 403 wrong scope/target or a cross-origin write, 404, 405, 409 refused in this state (or, code
"conflict", a table held by another unfinished apply), 413
body too large, 415 not JSON, 502 the provider refused a Vitess plan's request, 503 state database
(or, code "provider_unavailable", the provider of a Vitess plan) unavailable.

Built on FastAPI (on the starlette the project already used): the request models below are the
single source of validation *and* of the OpenAPI document, so neither is written by hand.
Everything FastAPI would accept leniently is made strict here: models are `strict` with unknown
fields forbidden, and `RequestGuard` refuses non-JSON writes, foreign Host headers (DNS
rebinding), cross-origin writes, oversized and undecodable bodies before any route runs.

Authentication (schemabot/auth.py): `Authorization: Bearer <token>`, tokens hashed in settings.
With no token configured the service runs in development mode (no authentication); `schemabot
serve` then refuses to bind anything but loopback.

Where later request options go: a submit option is one field on `SubmitRequest` (and one keyword
passed in `submit`); a new error of the Python API is one line in `ERRORS`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import asdict
from enum import StrEnum
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, JsonValue
from starlette.exceptions import HTTPException as StarletteHTTPException

from engines.base import CONTROL_KINDS
from engines.targets import redact
from schemabot import auth, web
from schemabot.api import ApplyStatus, ChangeSet, Client, ControlReceipt, LogEntry
from schemabot.errors import (
    ControlRejected,
    NotFound,
    ProviderError,
    StorageUnavailable,
    TableConflict,
    ValidationError,
)
from schemabot.planning.http_routes import install_plan_routes
from schemabot.settings import Settings
from schemabot.states import State

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# -- models ------------------------------------------------------------------------------------

_STRICT = ConfigDict(strict=True, extra="forbid")


class ErrorBody(BaseModel):
    error: str = Field(description="what went wrong, for a person")
    code: str = Field(description="what went wrong, for a program: invalid, unauthenticated, ...")
    detail: list[dict[str, Any]] | None = Field(default=None, description="per-field problems")


class Change(BaseModel):
    """The changes for one namespace (MySQL schema or Vitess keyspace)."""

    model_config = _STRICT

    namespace: str | None = Field(
        default=None, min_length=1, max_length=128, description="default: the schema of the target's DSN"
    )
    ddl: list[Annotated[str, Field(min_length=1, max_length=1_000_000)]] = Field(
        default_factory=list, max_length=500, description="CREATE/ALTER/DROP TABLE statements, one each"
    )
    vschema: dict[str, JsonValue] | None = Field(default=None, description="Vitess only: the VSchema")


class SubmitRequest(BaseModel):
    """POST /v1/applies. One field per option; booleans and integers are strict (no "false")."""

    model_config = _STRICT

    target: str = Field(min_length=1, max_length=64, description="a configured target name")
    engine: str = Field(min_length=1, max_length=32, description="direct, spirit, planetscale, ...")
    changes: list[Change] = Field(min_length=1, max_length=100)
    defer_cutover: bool = False
    skip_revert: bool = False
    volume: int | None = Field(default=None, ge=1, le=11)
    revert_window_seconds: int | None = Field(default=None, gt=0, le=30 * 24 * 3600)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=191)
    engine_options: dict[str, JsonValue] | None = Field(
        default=None, description="engine-specific knobs (spirit: chunk_rows, lock_wait_seconds, ...)"
    )
    queue: bool = Field(
        default=False,
        description="wait in pending behind an unfinished apply on the same tables instead of a 409",
    )
    after: str | None = Field(
        default=None, min_length=1, max_length=64, description="wait for this apply to end, then start"
    )
    atomic: bool | None = Field(
        default=None,
        description="cut all tables over together; absent: on for spirit when all tables share a schema",
    )
    allow_unsafe: bool = Field(
        default=False,
        description="let DROP TABLE / DROP COLUMN / DROP PRIMARY KEY through; recorded in the audit log",
    )


class SubmitResponse(BaseModel):
    apply_id: str
    created: bool = Field(description="false when the idempotency key returned an existing apply")


class ControlBody(BaseModel):
    """POST /v1/applies/{id}/{control}: an empty body or {}; volume takes {"value": 1-11}."""

    model_config = _STRICT

    value: int | None = Field(default=None, ge=1, le=11)


ControlName = StrEnum(  # type: ignore[misc]
    "ControlName", {k.upper(): k.replace("_", "-") for k in CONTROL_KINDS}
)
StateName = StrEnum("StateName", {s.name: s.value for s in State})  # type: ignore[misc]


class Readiness(BaseModel):
    ready: bool
    state_database: str = Field(description='"ok" or why it is not')
    broker: str = Field(description='"ok" or why it is not')


# -- errors ------------------------------------------------------------------------------------

# The Python API's errors, as HTTP statuses and codes. A new error is one line here.
ERRORS: dict[type[Exception], tuple[int, str]] = {
    TableConflict: (409, "conflict"),  # before its base class ValidationError
    ValidationError: (400, "invalid"),
    NotFound: (404, "not_found"),
    ControlRejected: (409, "refused"),
    StorageUnavailable: (503, "unavailable"),
    auth.Unauthenticated: (401, "unauthenticated"),
    auth.Forbidden: (403, "forbidden"),
}
_HTTP_CODES = {
    400: "invalid",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "refused",
    413: "too_large",
    415: "unsupported_media_type",
    502: "provider_error",
    503: "unavailable",
}
_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404, 503)
}


def error_response(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    body = {"error": redact(message), "code": code, **{k: v for k, v in extra.items() if v is not None}}
    return JSONResponse(body, status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    for exc_type, (status, code) in ERRORS.items():

        async def handler(_: Request, exc: Exception, status: int = status, code: str = code) -> JSONResponse:
            return error_response(status, code, str(exc))

        app.add_exception_handler(exc_type, handler)

    async def provider(_: Request, exc: Exception) -> JSONResponse:
        """A Vitess plan whose provider did not answer (503) or refused (502)."""
        transient = getattr(exc, "transient", True)
        status, code = (503, "provider_unavailable") if transient else (502, "provider_error")
        return error_response(status, code, f"provider: {exc}")

    app.add_exception_handler(ProviderError, provider)

    async def invalid(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": e.get("type")}
            for e in exc.errors()
        ]
        summary = "; ".join(f"{'.'.join(p['loc'][1:]) or p['loc'][0]}: {p['msg']}" for p in problems[:5])
        return error_response(400, "invalid", f"invalid request: {summary}", detail=problems)

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return error_response(exc.status_code, code, message)

    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)


def _document_400_not_422(app: FastAPI) -> None:
    """FastAPI documents its 422 for invalid input; this API answers 400 ErrorBody instead."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            for item in document.get("paths", {}).values():
                for operation in item.values():
                    operation.get("responses", {}).pop("422", None)
            for unused in ("HTTPValidationError", "ValidationError"):
                document.get("components", {}).get("schemas", {}).pop(unused, None)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


# -- the guard in front of every route ---------------------------------------------------------

_UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


def _host_name(value: str) -> str:
    """The name part of a Host header or an Origin's netloc: no port, no IPv6 brackets."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def _check_json(raw: bytes) -> None:
    """Refuse a body that is not one UTF-8 JSON object, including lone surrogates (\\ud800) that
    Python's json accepts but no database column or JSON encoder can store."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        where = f"byte {raw[exc.start]:#04x} at {exc.start}"
        raise _Refused(400, "invalid", f"the body is not UTF-8 ({where})") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _Refused(400, "invalid", f"the body is not JSON: {exc}") from None
    except RecursionError:
        raise _Refused(400, "invalid", "the body is nested too deeply") from None
    if not isinstance(document, dict):
        raise _Refused(400, "invalid", "the body must be a JSON object")
    try:
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        message = "the body is not valid UTF-8 text: it has a lone UTF-16 surrogate escape (\\ud800-\\udfff)"
        raise _Refused(400, "invalid", message) from None


class RequestGuard:
    """Pure ASGI middleware: Host check, cross-origin and content-type rules for writes, body cap
    and body decoding, all before routing, all answered in the API's JSON error shape."""

    def __init__(self, app: ASGIApp, allowed_hosts: list[str], max_body: int) -> None:
        self.app = app
        self.allowed_hosts = {h.lower() for h in allowed_hosts}
        self.any_host = "*" in self.allowed_hosts
        self.max_body = max_body

    def _known(self, name: str) -> bool:
        return self.any_host or _host_name(name) in self.allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            body = await self._check(scope, headers, receive)
        except _Refused as refused:
            await error_response(refused.status, refused.code, str(refused))(scope, receive, send)
            return
        if body is None:
            await self.app(scope, receive, send)
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _check(self, scope: Scope, headers: dict[str, str], receive: Receive) -> bytes | None:
        host = headers.get("host", "")
        if not host or not self._known(host):
            raise _Refused(
                400, "bad_host", f"unknown Host {host!r}: add it to SCHEMABOT_HTTP_ALLOWED_HOSTS to serve it"
            )
        if scope["method"] not in _UNSAFE_METHODS:
            return None
        origin = headers.get("origin")
        if origin is not None:
            netloc = origin.split("://", 1)[1] if "://" in origin else ""
            if not netloc or not self._known(netloc):
                raise _Refused(403, "cross_origin", f"cross-origin writes are refused (Origin {origin!r})")
        if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            raise _Refused(403, "cross_origin", "cross-origin writes are refused (Sec-Fetch-Site)")
        media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media != "application/json":
            raise _Refused(
                415,
                "unsupported_media_type",
                f"writes take Content-Type: application/json, not {media or 'none'!r}",
            )
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            raise _Refused(413, "too_large", f"the body is larger than {self.max_body} bytes")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Refused(400, "invalid", "the client went away")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise _Refused(413, "too_large", f"the body is larger than {self.max_body} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body.strip():
            _check_json(body)
        return body


# -- the application ---------------------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, description="an API token (`schemabot token new`)")


def _principal(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)], request: Request
) -> auth.Principal:
    """Who asks: the token of the Authorization header (401 without a valid one), or the
    development-mode user when the service has no token configured."""
    if request.app.state.development:
        return auth.DEVELOPMENT
    return auth.authenticate(request.headers.get("authorization"), request.app.state.tokens)


Caller = Annotated[auth.Principal, Depends(_principal)]


def build_app(
    client_factory: Callable[[], Client] = Client, settings: Settings | None = None
) -> RequestGuard:
    """The ASGI application: the FastAPI routes behind `RequestGuard` (`.app` is the FastAPI)."""
    client = client_factory()
    cfg = settings or client.settings
    tokens = list(cfg.api_tokens)
    development = not tokens

    app = FastAPI(
        title="schemabot",
        version="1",
        summary="Online MySQL and Vitess schema changes that survive any crash.",
        description=(__doc__ or "").split("\n\n")[0]
        + ("\n\nAuthentication: `Authorization: Bearer <token>`; scopes read < apply < admin."),
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.development = development
    app.state.tokens = tokens
    _install_error_handlers(app)
    _document_400_not_422(app)

    def visible(who: auth.Principal, apply_id: str) -> ApplyStatus:
        status = client.get_apply(apply_id)
        if not who.may_use(status.target):
            raise auth.Forbidden(f"token {who.name!r} may not use target {status.target!r}")
        return status

    @app.post(
        "/v1/applies",
        status_code=201,
        response_model=SubmitResponse,
        responses={
            200: {"model": SubmitResponse, "description": "idempotent repeat"},
            409: {"model": ErrorBody, "description": "a table is held by another unfinished apply"},
            **_ERROR_RESPONSES,
        },
        summary="Submit an apply (scope apply)",
    )
    def submit(body: SubmitRequest, who: Caller) -> JSONResponse:
        auth.require(who, auth.Scope.APPLY, body.target)
        result = client.submit_apply(
            body.target,
            body.engine,
            [ChangeSet(ddl=list(c.ddl), namespace=c.namespace, vschema=c.vschema) for c in body.changes],
            defer_cutover=body.defer_cutover,
            skip_revert=body.skip_revert,
            volume=body.volume,
            revert_window_seconds=body.revert_window_seconds,
            idempotency_key=body.idempotency_key,
            engine_options=body.engine_options,
            allow_unsafe=body.allow_unsafe,
            requested_by=who.name,
            queue=body.queue,
            after=body.after,
            atomic=body.atomic,
        )
        return JSONResponse(
            {"apply_id": result.apply_id, "created": result.created},
            status_code=201 if result.created else 200,
        )

    @app.get(
        "/v1/applies",
        response_model=list[ApplyStatus],
        responses=_ERROR_RESPONSES,
        summary="List recent applies (scope read)",
    )
    def listing(
        who: Caller,
        state: Annotated[StateName | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[dict[str, Any]]:
        auth.require(who, auth.Scope.READ)
        targets = None if who.targets is None or who.scope is auth.Scope.ADMIN else sorted(who.targets)
        applies = client.list_applies(state.value if state else None, limit, targets=targets)
        return [a.to_dict() for a in applies]

    @app.get(
        "/v1/applies/{apply_id}",
        response_model=ApplyStatus,
        responses=_ERROR_RESPONSES,
        summary="One apply and its tasks (scope read)",
    )
    def status(apply_id: str, who: Caller) -> dict[str, Any]:
        auth.require(who, auth.Scope.READ)
        return visible(who, apply_id).to_dict()

    @app.get(
        "/v1/applies/{apply_id}/log",
        response_model=list[LogEntry],
        responses=_ERROR_RESPONSES,
        summary="The audit log of an apply (scope read)",
    )
    def log(apply_id: str, who: Caller) -> list[dict[str, Any]]:
        auth.require(who, auth.Scope.READ)
        visible(who, apply_id)
        return [asdict(e) for e in client.log(apply_id)]

    @app.post(
        "/v1/applies/{apply_id}/{control}",
        status_code=202,
        response_model=ControlReceipt,
        responses={409: {"model": ErrorBody}, **_ERROR_RESPONSES},
        summary="Ask for a control: stop, start, cutover, cancel, revert, skip-revert, volume (scope apply)",
    )
    def control(
        apply_id: str, control: ControlName, who: Caller, body: ControlBody | None = None
    ) -> dict[str, Any]:
        auth.require(who, auth.Scope.APPLY)
        visible(who, apply_id)
        value = body.value if body is not None else None
        receipt = client.request_control(apply_id, control.value, value, requested_by=who.name)
        return asdict(receipt)

    install_plan_routes(app, client, Caller, _ERROR_RESPONSES)

    @app.get("/healthz", summary="Liveness: the process answers")
    def healthz() -> dict[str, bool]:
        return {"ok": True}

    @app.get(
        "/readyz",
        response_model=Readiness,
        responses={503: {"model": Readiness}},
        summary="Readiness: the state database and the broker answer within a short timeout",
    )
    async def readyz() -> JSONResponse:
        from schemabot.readiness import check_broker, check_database

        timeout = cfg.http_ready_timeout
        db_state, broker_state = await asyncio.gather(
            _bounded(lambda: check_database(client.runtime.db), timeout, "state database"),
            _bounded(lambda: check_broker(cfg.broker_url, timeout), timeout, "broker"),
        )
        ready = db_state == "ok" and broker_state == "ok"
        body = Readiness(ready=ready, state_database=db_state, broker=broker_state)
        return JSONResponse(body.model_dump(), status_code=200 if ready else 503)

    metrics_registry: list[Any] = []

    @app.get(
        "/metrics",
        include_in_schema=False,
        summary="Prometheus metrics (scope read, a token for every target; open in development mode)",
    )
    def metrics(who: Caller) -> Response:
        # A scraper's token: scope read and no target list, since the document covers every
        # target's applies (README "Metrics").
        auth.require(who, auth.Scope.READ)
        if who.targets is not None and who.scope is not auth.Scope.ADMIN:
            raise auth.Forbidden(f"token {who.name!r} is limited to some targets; /metrics covers all")
        from schemabot import metrics as prom

        if not metrics_registry:
            metrics_registry.append(prom.registry(client.runtime.db))
        payload, content_type = prom.exposition(metrics_registry[0])
        return Response(payload, media_type=content_type)

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        from schemabot.api_docs_page import PAGE

        return HTMLResponse(PAGE)

    web.install(app, client)  # the page of applies under /ui (schemabot/web)
    return RequestGuard(app, cfg.http_allowed_hosts, cfg.http_max_body_bytes)


async def _bounded(check: Callable[[], None], timeout: float, what: str) -> str:
    """Run a blocking check in a thread; "ok", or why not (a timeout counts as unreachable)."""
    try:
        await asyncio.wait_for(asyncio.to_thread(check), timeout)
        return "ok"
    except TimeoutError:
        return f"{what} did not answer within {timeout:g}s"
    except Exception as exc:
        first = (str(exc).splitlines() or [""])[0]
        return redact(f"{what} unreachable: {type(exc).__name__}: {first}")[:300]


__all__ = ["ERRORS", "ChangeSet", "ControlBody", "ErrorBody", "SubmitRequest", "build_app"]
