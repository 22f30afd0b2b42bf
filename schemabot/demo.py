"""`schemabot demo` (and `make demo`): one schema change from submission to completion.

Uses the Redis and MariaDB that answer on their default local ports, or starts private ones from
the installed binaries; starts a Celery worker and beat as separate processes; creates a table
with rows; submits an apply; shows live progress until it completes; checks the rows; and stops
everything it started. State lives in MariaDB (`schemabot_demo_state`), the table in
`schemabot_demo`.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pymysql
from rich.console import Console

from devservers.servers import (
    MariaDBServer,
    RedisServer,
    mysql_answers,
    redis_answers,
    start_celery,
    stop_process,
    wait_for,
)
from engines.registry import UnknownEngine, engine_class
from schemabot.api import Client
from schemabot.migrate import upgrade
from schemabot.settings import Settings
from schemabot.watch import watch

STATE_DB, TARGET_DB, QUEUE = "schemabot_demo_state", "schemabot_demo", "schemabot-demo"
DEMO_VOLUME = 2
INSTALL_HINT = (
    "schemabot demo needs Redis and MariaDB (or MySQL). Install the servers with\n"
    "    sudo apt-get install redis-server mariadb-server\n"
    "or start them (for example with `docker compose up -d redis mysql`) and run `make demo` again."
)
DEMO_CHANGES = {
    # An ALTER that needs a full table copy: the online engine copies it while writes go on.
    "spirit": "ALTER TABLE orders ADD COLUMN note VARCHAR(64) NULL, MODIFY amount DECIMAL(14,2) NOT NULL",
    # An ALTER the server does instantly.
    "direct": "ALTER TABLE orders ADD COLUMN note VARCHAR(64) NULL",
}


@dataclass
class Services:
    broker_url: str
    mysql_host: str
    mysql_port: int
    private: bool = False  # started by the demo, stopped when it ends


@contextmanager
def local_services(console: Console, workdir: Path) -> Iterator[Services]:
    """The running Redis and MariaDB if they answer, else private ones (stopped on exit)."""
    with ExitStack() as stack:
        broker_url = "redis://127.0.0.1:6379/0"
        private = False
        if redis_answers(broker_url):
            console.print("• Redis answers on 127.0.0.1:6379: using it")
        elif shutil.which("redis-server"):
            redis_server = RedisServer(workdir / "redis").start()
            stack.callback(redis_server.kill)
            broker_url = redis_server.url
            private = True
            console.print(f"• started a private redis-server on port {redis_server.port}")
        else:
            raise SystemExit(INSTALL_HINT)

        host, port = "127.0.0.1", 3306
        if mysql_answers(host, port, "root"):
            console.print("• MariaDB/MySQL answers on 127.0.0.1:3306 (root): using it")
        elif shutil.which("mariadbd") or os.path.exists("/usr/sbin/mariadbd"):
            server = MariaDBServer(workdir / "mariadb").start()
            stack.callback(server.kill)
            port = server.port
            private = True
            console.print(f"• started a private mariadbd on port {port}")
        else:
            raise SystemExit(INSTALL_HINT)
        yield Services(broker_url, host, port, private=private)


BIN = Path(sys.executable).parent  # .venv/bin: schemabot and celery live here


def drop_warning(services: Services, existing: list[str]) -> str:
    where = f"{services.mysql_host}:{services.mysql_port}"
    names = ", ".join(existing)
    return (
        f"[yellow]• warning: dropping and re-creating {names} on {where} "
        f"(left by an earlier demo; anything else in {'it' if len(existing) == 1 else 'them'} is lost)"
        "[/yellow]"
    )


def inspection_hint(env: dict[str, str], apply_id: str, private: bool) -> str:
    """What to paste into a shell to look at the demo's apply after it ends."""
    keys = ("SCHEMABOT_DATABASE_URL", "SCHEMABOT_BROKER_URL", "SCHEMABOT_QUEUE", "SCHEMABOT_TARGET_DEMO")
    exports = "\n".join(f"    export {k}='{env[k]}'" for k in keys)
    text = (
        "• to inspect this apply (schemabot and celery are in "
        f"{BIN}):\n{exports}\n"
        f"    {BIN / 'schemabot'} status {apply_id}\n"
        f"    {BIN / 'schemabot'} log {apply_id}\n"
        f"    {BIN / 'celery'} -A tasks flower   # the worker and beat have stopped; start your own"
    )
    if private:
        text += "\n  (the demo started private servers and stopped them: the state above is gone)"
    return text


def existing_databases(services: Services) -> list[str]:
    conn = pymysql.connect(host=services.mysql_host, port=services.mysql_port, user="root")
    with conn.cursor() as cur:
        cur.execute("SHOW DATABASES")
        names = {row[0] for row in cur.fetchall()}
    conn.close()
    return [name for name in (STATE_DB, TARGET_DB) if name in names]


def prepare_databases(services: Services, rows: int) -> None:
    """Fresh state and target databases, and an `orders` table with `rows` rows."""
    conn = pymysql.connect(host=services.mysql_host, port=services.mysql_port, user="root", autocommit=True)
    with conn.cursor() as cur:
        for name in (STATE_DB, TARGET_DB):
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        cur.execute(
            f"CREATE TABLE `{TARGET_DB}`.orders (id BIGINT UNSIGNED PRIMARY KEY, customer_id INT NOT NULL, "
            "amount DECIMAL(10,2) NOT NULL, status ENUM('new','paid','shipped') NOT NULL, "
            "created_at DATETIME(6) NOT NULL, note_pad CHAR(100) NOT NULL DEFAULT '', "
            "KEY ix_customer (customer_id))"
        )
        batch = 10_000
        for start in range(1, rows + 1, batch):
            values = [
                (
                    i,
                    i % 9973,
                    (i % 100_000) / 100,
                    ("new", "paid", "shipped")[i % 3],
                    "2026-01-01 00:00:00",
                    f"order {i} for customer {i % 9973}",
                )
                for i in range(start, min(rows, start + batch - 1) + 1)
            ]
            cur.executemany(f"INSERT INTO `{TARGET_DB}`.orders VALUES (%s, %s, %s, %s, %s, %s)", values)
    conn.close()


def _count_and_sum(services: Services) -> tuple[int, str]:
    conn = pymysql.connect(
        host=services.mysql_host, port=services.mysql_port, user="root", database=TARGET_DB
    )
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*), CAST(SUM(amount) AS CHAR) FROM orders")
        count, total = cur.fetchone()  # type: ignore[misc]
    conn.close()
    return int(count), str(total)


def run_demo(rows: int = 600_000, engine: str | None = None) -> int:
    console = Console()
    if engine is None:
        try:
            engine_class("spirit")
            engine = "spirit"
        except (UnknownEngine, ImportError):
            engine = "direct"
    ddl = DEMO_CHANGES.get(engine)
    if ddl is None:
        console.print(f"[red]the demo runs the spirit or direct engine, not {engine!r}[/red]")
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="schemabot-demo-"))
    console.rule("schemabot demo")
    with local_services(console, workdir) as services, ExitStack() as stack:
        state_url = f"mysql+pymysql://root@{services.mysql_host}:{services.mysql_port}/{STATE_DB}"
        target_dsn = f"mysql://root@{services.mysql_host}:{services.mysql_port}/{TARGET_DB}"
        started = time.monotonic()
        existing = existing_databases(services)
        if existing:
            console.print(drop_warning(services, existing))
        prepare_databases(services, rows)
        upgrade(database_url=state_url)
        console.print(
            f"• created {TARGET_DB}.orders with {rows:,} rows "
            f"({time.monotonic() - started:.1f}s) and the state database {STATE_DB}"
        )

        env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEMABOT_")}
        env.update(
            {
                "SCHEMABOT_DATABASE_URL": state_url,
                "SCHEMABOT_BROKER_URL": services.broker_url,
                "SCHEMABOT_QUEUE": QUEUE,
                "SCHEMABOT_TARGET_DEMO": target_dsn,
            }
        )
        worker = start_celery("worker", env, workdir / "worker.log", QUEUE, "demo")
        stack.callback(stop_process, worker)
        beat = start_celery("beat", env, workdir / "beat.log", QUEUE)
        stack.callback(stop_process, beat)
        wait_for(
            lambda: "ready." in (workdir / "worker.log").read_text(errors="replace"),
            60,
            f"the worker to start (log: {workdir / 'worker.log'})",
        )
        console.print(
            f"• worker and beat running (logs in {workdir}); watch them live with "
            f"`{BIN / 'celery'} -A tasks flower` (with the environment printed at the end)"
        )

        settings = Settings(
            database_url=state_url, broker_url=services.broker_url, queue=QUEUE, targets={"demo": target_dsn}
        )
        client = Client(settings)
        before = _count_and_sum(services)
        # A gentler volume than the default so the copy takes long enough to watch.
        submitted = client.submit_apply("demo", engine, [ddl], volume=DEMO_VOLUME)
        console.print(f"• submitted {submitted.apply_id} with the {engine} engine:\n    {ddl}")
        final = watch(client, submitted.apply_id)
        console.print()
        after = _count_and_sum(services)
        elapsed = time.monotonic() - started
        if final.state != "completed":
            console.print(f"[red]the apply ended {final.state}: {final.error}[/red] (logs in {workdir})")
            return 1
        if after != before:
            console.print(f"[red]rows changed: before {before}, after {after}[/red]")
            return 1
        console.print(f"• completed; {after[0]:,} rows, the same sum of amounts ({after[1]}) as before")
        for entry in client.log(submitted.apply_id)[-6:]:
            console.print(f"    {entry.event:<10} {entry.message or ''}")
        console.print(inspection_hint(env, submitted.apply_id, services.private), highlight=False)
        console.rule(f"done in {elapsed:.1f}s")
    return 0
