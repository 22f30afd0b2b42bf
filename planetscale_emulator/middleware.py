"""ASGI middleware in front of the API: authentication, then fault injection.

Fault injection has to sit outside Starlette, at the raw ASGI layer, because two faults are not
HTTP answers at all: `drop` closes the connection before acting and `lose_response` acts and
then closes the connection without answering. Both need the server's transport, which uvicorn
(h11) exposes on the object whose bound method is the raw `send` callable.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from planetscale_emulator import callers, faults
from planetscale_emulator.world import World

API_PREFIX = "/v1/"


async def send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def client_gone(send: Send) -> bool:
    """Has the client closed its connection (uvicorn marks the request's cycle disconnected)?"""
    cycle = getattr(send, "__self__", None)
    return bool(getattr(cycle, "disconnected", False))


def abort_connection(send: Send) -> None:
    """Close the client's TCP connection at once, with no HTTP answer."""
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        raise RuntimeError("the server does not expose its transport; cannot drop a connection")
    transport.abort()
    # Tell uvicorn the client is gone, so it does not try to answer 500 on our behalf.
    cycle.disconnected = True  # type: ignore[union-attr]


class AuthMiddleware:
    """PlanetScale service tokens travel as `Authorization: <id>:<token>`; any token is accepted,
    but a request without one is refused as PlanetScale refuses it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(API_PREFIX):
            headers = dict(scope.get("headers") or [])
            value = headers.get(b"authorization", b"").decode(errors="replace").strip()
            valid = value.startswith("Bearer ") or (
                ":" in value and all(part.strip() for part in value.split(":", 1))
            )
            if not valid:
                await send_json(
                    send,
                    401,
                    {
                        "code": "unauthorized",
                        "message": "Authorization header is missing or malformed",
                    },
                )
                return
        await self.app(scope, receive, send)


class FaultMiddleware:
    def __init__(self, app: ASGIApp, world: World) -> None:
        self.app = app
        self.world = world

    def _match(self, method: str, path: str) -> faults.Fault | None:
        with self.world.lock:
            fault = faults.first_request_fault(self.world.store, method, path)
            if fault is not None:
                faults.consume(self.world.store, fault)
                self.world.event(f"fault.{fault.kind}", path, method=method, fault=fault.id)
            return fault

    def _event(self, kind: str, path: str, fault: faults.Fault, **detail: Any) -> None:
        with self.world.lock:
            self.world.event(kind, path, fault=fault.id, **detail)

    async def _hold(self, scope: Scope, send: Send, fault: faults.Fault) -> None:
        """`delay` and `freeze_caller`: hold the request, then say whether the client is still
        there (a test tells a caller still waiting, frozen say, from one whose own timeout ran
        out meanwhile: a gone client's request fails reading its body, so it is not acted on)."""
        path = scope["path"]
        if fault.kind == "freeze_caller":
            pids = await run_in_threadpool(callers.freeze, scope.get("client"), scope.get("server"))
            # A close the caller made before it stopped reaches the event loop first.
            await asyncio.sleep(0.05)
            await run_in_threadpool(
                self._event, "fault.freeze_caller.frozen", path, fault, pids=pids,
                client_gone=client_gone(send),
            )  # fmt: skip
        await asyncio.sleep((fault.delay_ms or 0) / 1000)
        await run_in_threadpool(
            self._event, f"fault.{fault.kind}.released", path, fault, client_gone=client_gone(send)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return
        fault = await run_in_threadpool(self._match, scope["method"], scope["path"])
        if fault is None:
            await self.app(scope, receive, send)
        elif fault.kind == "error":
            await send_json(
                send,
                fault.status or 503,
                {
                    "code": fault.code or "unavailable",
                    "message": fault.message or "injected error",
                },
            )
        elif fault.kind in faults.HOLDING_KINDS:
            await self._hold(scope, send, fault)
            await self.app(scope, receive, send)
        elif fault.kind == "drop":
            abort_connection(send)
        else:  # lose_response: act fully, then vanish without a word.

            async def swallow(message: Message) -> None:
                return None

            await self.app(scope, receive, swallow)
            abort_connection(send)
