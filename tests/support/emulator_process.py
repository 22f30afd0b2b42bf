"""The PlanetScale API emulator as a real subprocess, for integration tests.

Each instance gets free ports and its own schema prefix (`sbt_ps_<hex>`) on the shared MariaDB;
`stop()` kills the process and `drop_schemas()` removes every schema with the prefix.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from engines.targets import Target
from tests.support.mariadb import connect, mysql_dsn
from tests.support.servers import free_port

REPO = Path(__file__).resolve().parents[2]
ORG, DATABASE, KEYSPACES = "acme", "shop", ("commerce", "customers")


class EmulatorProcess:
    def __init__(self, *, revert_window: float = 600, copy_ticks: int = 2, tick_interval: float = 0) -> None:
        self.prefix = f"sbt_ps_{uuid.uuid4().hex[:8]}"
        self.port, self.mysql_port = free_port(), free_port()
        self.revert_window, self.copy_ticks, self.tick_interval = (
            revert_window,
            copy_ticks,
            tick_interval,
        )
        self.log_path = Path(f"/tmp/{self.prefix}.log")
        self.proc: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(timeout=30)
        self.dsn = mysql_dsn(self.prefix)

    # -- process ----------------------------------------------------------------------------

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.base}/v1"

    def argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "planetscale_emulator",
            "--port",
            str(self.port),
            "--mysql-port",
            str(self.mysql_port),
            "--org",
            ORG,
            "--database",
            DATABASE,
            "--keyspaces",
            ",".join(KEYSPACES),
            "--tick-interval",
            str(self.tick_interval),
            "--copy-ticks",
            str(self.copy_ticks),
            "--revert-window",
            str(self.revert_window),
            "--log-level",
            "warning",
        ]

    def start(self) -> None:
        log = self.log_path.open("ab")
        # The DSN goes in the environment, as users are told to: never visible in `ps`.
        env = {**os.environ, "SCHEMABOT_EMULATOR_MYSQL_DSN": self.dsn}
        self.proc = subprocess.Popen(self.argv(), cwd=REPO, stdout=log, stderr=log, env=env)
        self.wait_ready()

    def wait_ready(self, previous_boot: str | None = None, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"emulator exited: {self.log_path.read_text()[-3000:]}")
            try:
                status = self.http.get(f"{self.base}/admin/status", timeout=1).json()
                if status.get("boot_id") != previous_boot:
                    return dict(status)
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"emulator not ready in {timeout}s: {self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: the emulator gets no chance to tidy up."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        self.kill()
        self.http.close()

    def drop_schemas(self) -> None:
        conn = connect()
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE %s",
                    (self.prefix.replace("_", r"\_") + "%",),
                )
                for (name,) in cur.fetchall():
                    cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        finally:
            conn.close()
        self.log_path.unlink(missing_ok=True)

    # -- admin ------------------------------------------------------------------------------

    def admin(self, verb: str, path: str, /, **body: Any) -> Any:
        method = verb
        response = self.http.request(
            method, f"{self.base}/admin/{path}", json=body if method != "GET" else None
        )
        response.raise_for_status()
        return response.json() if response.content else None

    def status(self) -> dict[str, Any]:
        return dict(self.admin("GET", "status"))

    def reset(self) -> None:
        self.admin("POST", "reset")

    def advance(self, ticks: int = 1, seconds: float = 0) -> dict[str, Any]:
        return dict(self.admin("POST", "advance", ticks=ticks, seconds=seconds))

    def fault(self, **spec: Any) -> dict[str, Any]:
        response = self.http.post(f"{self.base}/admin/faults", json=spec)
        response.raise_for_status()
        return dict(response.json())

    def clear_faults(self) -> None:
        self.admin("DELETE", "faults")

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        query = f"events?kind={kind}" if kind else "events"
        return list(self.admin("GET", query)["data"])

    def restart(self) -> dict[str, Any]:
        boot = self.status()["boot_id"]
        self.admin("POST", "restart")
        return self.wait_ready(previous_boot=boot)

    # -- API and data -----------------------------------------------------------------------

    def target(self, name: str = "shop") -> Target:
        # No settle wait after an unanswered "open deploy request": the emulator's faults either
        # perform a call or drop it, never perform it late (test_planetscale_create_settle covers that).
        return Target(
            name,
            f"planetscale://tok-id:tok-secret@{ORG}/{DATABASE}?api_url={self.api_url}&create_settle_seconds=0",
        )

    def api(self, method: str, path: str, **body: Any) -> httpx.Response:
        return self.http.request(
            method,
            f"{self.api_url}/organizations/{ORG}/databases/{DATABASE}{path}",
            json=body if method not in ("GET", "DELETE") else None,
            headers={"Authorization": "tok-id:tok-secret"},
        )

    def main_db(self, keyspace: str) -> str:
        return f"{self.prefix}_{keyspace}"

    def sql(self, keyspace: str, statement: str, args: Any = None) -> list[tuple[Any, ...]]:
        conn = connect(self.main_db(keyspace))
        try:
            with conn.cursor() as cur:
                cur.execute(statement, args)
                return list(cur.fetchall())
        finally:
            conn.close()

    def seed(self) -> None:
        """Main's starting schema and rows for the tests."""
        self.sql(
            "commerce",
            "CREATE TABLE product (id INT AUTO_INCREMENT PRIMARY KEY, "
            "name VARCHAR(64) NOT NULL, price INT NOT NULL DEFAULT 0)",
        )
        self.sql(
            "commerce",
            "INSERT INTO product (name, price) VALUES "
            "('apple', 3), ('pear', 4), ('fig', 9), ('kiwi', 2), ('lime', 1)",
        )
        self.sql("customers", "CREATE TABLE customer (id INT PRIMARY KEY, email VARCHAR(128))")
        self.sql("customers", "INSERT INTO customer VALUES (1, 'a@x'), (2, 'b@x'), (3, 'c@x')")

    def columns(self, keyspace: str, table: str) -> list[str]:
        rows = self.sql(
            keyspace,
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE "
            "TABLE_SCHEMA=DATABASE() AND TABLE_NAME=%s ORDER BY ORDINAL_POSITION",
            (table,),
        )
        return [str(r[0]) for r in rows]

    def tables(self, keyspace: str) -> list[str]:
        return sorted(str(r[0]) for r in self.sql(keyspace, "SHOW TABLES"))
