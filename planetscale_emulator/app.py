"""The emulator's ASGI application: API and admin routes, middleware, and the process's life.

At start-up the app creates what is missing in MariaDB (a restart finds everything where it
was), starts the branch MySQL proxy and, unless ticks are manual (`tick_interval=0`), a
background task that ticks the world. `POST /admin/restart` re-executes the very same process
image, which is a real restart: nothing survives but what is in MariaDB.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from planetscale_emulator import admin, branches, tick
from planetscale_emulator.config import EmulatorConfig
from planetscale_emulator.middleware import AuthMiddleware, FaultMiddleware
from planetscale_emulator.mysql_proxy import BranchProxy
from planetscale_emulator.routes import api_routes, endpoint
from planetscale_emulator.world import World

log = logging.getLogger("schemabot.emulator")


def _restart_process() -> None:
    """Replace this process with a fresh copy of itself (same pid, same arguments)."""
    logging.shutdown()
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])


def admin_routes(
    world: World, boot_id: str, schedule_restart: Callable[[], None]
) -> list[BaseRoute]:
    def route(path: str, action: Any, methods: list[str]) -> Route:
        return Route(path, endpoint(None, action), methods=methods)

    def restart(_: Request, __: dict[str, Any]) -> dict[str, Any]:
        schedule_restart()
        return {"restarting": True, "boot_id": boot_id}

    return [
        route("/healthz", lambda r, b: {"ok": True, "boot_id": boot_id}, ["GET"]),
        route("/admin/status", lambda r, b: admin.status(world, boot_id), ["GET"]),
        route(
            "/admin/reset",
            lambda r, b: admin.reset(world, boot_id),
            ["POST"],
        ),
        route("/admin/advance", lambda r, b: admin.advance(world, b), ["POST"]),
        route("/admin/force-state", lambda r, b: admin.force_state(world, b), ["POST"]),
        route("/admin/vanish", lambda r, b: admin.vanish(world, b), ["POST"]),
        route("/admin/events", lambda r, b: admin.events(world, dict(r.query_params)), ["GET"]),
        route("/admin/faults", lambda r, b: admin.add_fault(world, b), ["POST"]),
        route("/admin/faults", lambda r, b: admin.list_faults(world), ["GET"]),
        route("/admin/faults", lambda r, b: admin.clear_faults(world), ["DELETE"]),
        route("/admin/restart", restart, ["POST"]),
    ]


def build_app(config: EmulatorConfig) -> ASGIApp:
    world = World.open(config)
    boot_id = secrets.token_hex(8)
    proxy = BranchProxy(config, lambda user: branches.credentials(world, user))
    loops: list[asyncio.AbstractEventLoop] = []

    def schedule_restart() -> None:
        # Called from a worker thread; the answer must reach the client before the exec.
        loop = loops[0]
        loop.call_soon_threadsafe(loop.call_later, 0.2, _restart_process)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        loops.append(asyncio.get_running_loop())
        boot = await run_in_threadpool(world.bootstrap)
        port = await proxy.start()
        world.config = replace(world.config, mysql_port=port)
        proxy.config = world.config
        log.info(
            "emulator boot %s: API on %s:%s, branch MySQL proxy on port %s",
            boot,
            config.host,
            config.port,
            port,
        )
        ticker = None
        if config.tick_interval > 0:
            ticker = asyncio.ensure_future(_tick_forever(world, config.tick_interval))
        try:
            yield
        finally:
            if ticker is not None:
                ticker.cancel()
                with contextlib.suppress(BaseException):
                    await ticker
            await proxy.stop()
            world.store.close()

    routes = [*admin_routes(world, boot_id, schedule_restart), *api_routes(world)]
    app = Starlette(routes=routes, lifespan=lifespan)
    return FaultMiddleware(AuthMiddleware(app), world)


async def _tick_forever(world: World, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await run_in_threadpool(tick.run, world, 1)
        except Exception:  # a failed tick must not stop the clock; the next one retries
            log.exception("tick failed")
