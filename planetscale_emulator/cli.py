"""`schemabot emulator ...` / `python -m planetscale_emulator ...`: serve the emulator."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from engines.targets import redact
from planetscale_emulator.config import EmulatorConfig

DSN_ENV = "SCHEMABOT_EMULATOR_MYSQL_DSN"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="schemabot emulator",
        description="Serve a local emulator of the PlanetScale HTTP API backed by MariaDB/MySQL.",
    )
    p.add_argument("--port", type=int, default=8980, help="API port (default 8980)")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address the API and the branch MySQL proxy listen on (default 127.0.0.1: loopback)",
    )
    p.add_argument(
        "--mysql-dsn",
        default=os.environ.get(DSN_ENV, "mysql://root@127.0.0.1:3306"),
        help="the MariaDB/MySQL server that holds all data (mysql://user:pw@host:port); default "
        f"${DSN_ENV}, which keeps the password out of the process list. The user needs CREATE USER "
        "and GRANT OPTION: each branch password gets its own user, granted its branch only",
    )
    p.add_argument("--org", default="schemabot", help="organization name (default schemabot)")
    p.add_argument("--database", default="app", help="database name (default app)")
    p.add_argument(
        "--keyspaces", default="app", help="comma-separated keyspaces of the database (default app)"
    )
    p.add_argument(
        "--db-prefix",
        default=None,
        help="prefix of every schema created on the server (default: the DSN's schema, else psemu)",
    )
    p.add_argument(
        "--mysql-port",
        type=int,
        default=None,
        help="port of the branch MySQL proxy (default: API port + 1; 0 = any free)",
    )
    p.add_argument(
        "--advertise-host",
        default=None,
        help="host name clients are told to use for the API and the branch MySQL proxy "
        "(default: --host; set it when listening on 0.0.0.0 in a container)",
    )
    p.add_argument("--main-branch", default="main")
    p.add_argument(
        "--tick-interval",
        type=float,
        default=1.0,
        help="seconds between automatic ticks; 0 = only on POST /admin/advance",
    )
    p.add_argument(
        "--copy-ticks",
        type=int,
        default=3,
        help="ticks an unthrottled deploy needs to copy its tables",
    )
    p.add_argument(
        "--revert-window",
        type=float,
        default=1800.0,
        help="revert window in seconds after a deploy; 0 = none (default 1800)",
    )
    p.add_argument("--log-level", default="info")
    return p  # fmt: skip


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    prefix = args.db_prefix
    if prefix is None:
        from engines.targets import parse_mysql_dsn

        prefix = parse_mysql_dsn(args.mysql_dsn).schema or "psemu"
    return EmulatorConfig(
        mysql_dsn=args.mysql_dsn,
        org=args.org,
        database=args.database,
        keyspaces=tuple(k.strip() for k in args.keyspaces.split(",") if k.strip()),
        db_prefix=prefix,
        host=args.host,
        advertise_host=args.advertise_host,
        port=args.port,
        mysql_port=args.port + 1 if args.mysql_port is None else args.mysql_port,
        main_branch=args.main_branch,
        tick_interval=args.tick_interval,
        copy_ticks=args.copy_ticks,
        revert_window_seconds=args.revert_window,
    )


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as exc:
        print(f"schemabot emulator: {redact(str(exc))}", file=sys.stderr)
        return 2
    import uvicorn

    from planetscale_emulator.app import build_app

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    uvicorn.run(
        build_app(config),
        host=config.host,
        port=config.port,
        http="h11",  # the drop/lose_response faults reach the transport through h11's cycle
        log_level=args.log_level,
        access_log=False,
        lifespan="on",
    )
    return 0
