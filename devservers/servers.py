"""Private Redis and MariaDB servers, started from the installed binaries.

`make demo` uses them when the machine runs no Redis or MariaDB, and the chaos tests use them to
crash a broker or a state database without touching the shared ones. Each server runs on a free
port in a directory of its own and can be killed (SIGKILL) and started again on the same port
with the same data.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pymysql
import redis


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(condition: Callable[[], object], timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll `condition()` until true or `timeout` seconds pass; then fail naming `what`."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except Exception as exc:
            last = exc
        time.sleep(interval)
    raise TimeoutError(
        f"timed out after {timeout}s waiting for {what}" + (f" (last error: {last})" if last else "")
    )


class RedisServer:
    """`redis-server` without persistence: a restart loses every message, like a crashed broker."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                "--logfile",
                str(self.workdir / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        wait_for(client.ping, 10, f"redis-server on port {self.port}")
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def restart(self) -> None:
        self.kill()
        self.start()


class MariaDBServer:
    """A private `mariadbd` (no authentication) for tests that crash the state database."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.datadir = workdir / "data"
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, schema: str) -> str:
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/{schema}"

    def start(self) -> MariaDBServer:
        daemon = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
        if not os.path.exists(daemon):
            raise RuntimeError("mariadbd is not installed (apt-get install mariadb-server)")
        # Its own temporary directory: at start a server deletes every `#sql*` file in its tmpdir,
        # and with the default /tmp those include the temporary tables of the machine's shared
        # server, in use (it then failed queries with "Error on delete of '/tmp/#sql-...MAI'").
        tmpdir = self.workdir / "tmp"
        tmpdir.mkdir(parents=True, exist_ok=True)
        if not self.datadir.exists():
            subprocess.run(
                [
                    "mariadb-install-db",
                    "--no-defaults",
                    f"--datadir={self.datadir}",
                    f"--tmpdir={tmpdir}",
                    "--user=root",
                    "--auth-root-authentication-method=normal",
                    "--skip-test-db",
                ],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        self.proc = subprocess.Popen(
            [
                daemon,
                "--no-defaults",
                f"--datadir={self.datadir}",
                f"--tmpdir={tmpdir}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                f"--socket={self.workdir / 'mysql.sock'}",
                "--user=root",
                *self.server_options(),
                f"--log-error={self.workdir / 'error.log'}",
                f"--pid-file={self.workdir / 'mysqld.pid'}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self._answers, 30, f"mariadbd on port {self.port}")
        return self

    def server_options(self) -> list[str]:
        """The options that make this server what it is (a subclass changes only these)."""
        return ["--skip-grant-tables", "--innodb-buffer-pool-size=32M", "--skip-log-bin"]

    def _answers(self) -> bool:
        pymysql.connect(host="127.0.0.1", port=self.port, user="root", connect_timeout=1).close()
        return True

    def execute(self, sql: str) -> None:
        conn = pymysql.connect(host="127.0.0.1", port=self.port, user="root", autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
        finally:
            conn.close()

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)


def redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def mysql_answers(host: str, port: int, user: str, password: str = "") -> bool:
    try:
        pymysql.connect(host=host, port=port, user=user, password=password, connect_timeout=1).close()
        return True
    except pymysql.MySQLError:
        return False


def start_celery(
    kind: str, env: dict[str, str], log: Path, queue: str, name: str = "local"
) -> subprocess.Popen[bytes]:
    """A `celery -A tasks worker|beat` process of this interpreter, logging to `log`, in its own
    process group (so stopping it never signals the caller)."""
    args = [sys.executable, "-m", "celery", "-A", "tasks", kind, "-l", "INFO"]
    if kind == "worker":
        args += ["-Q", queue, "-c", "2", "-n", f"{name}-{os.getpid()}@%h"]
    else:
        args += ["-s", str(log.with_suffix(".schedule")), "--pidfile="]
    with open(log, "ab") as out:
        return subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
