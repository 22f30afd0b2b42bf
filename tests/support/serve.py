"""A real `schemabot serve` process for tests of the HTTP service (auth, strict input, readiness).

Each server gets its own SQLite state database (migrated first), a private queue on the machine's
Redis (in this test process's database, servers.TEST_REDIS_DB; deleted afterwards) and the fake
engine, so submits are stored for real and their `start_apply` messages go to a real broker that
no worker consumes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis

from schemabot.migrate import upgrade
from tests.support.processes import REPO
from tests.support.servers import TEST_REDIS_DB, free_port, wait_for

SCHEMABOT = str(Path(sys.executable).with_name("schemabot"))
PLUGINS = {"fake": "tests.support.fake_engine:FakeEngine"}


@dataclass
class Served:
    base_url: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    state_url: str
    env: dict[str, str]

    def client(self, token: str | None = None, **headers: str) -> httpx.Client:
        all_headers = dict(headers)
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        return httpx.Client(base_url=self.base_url, headers=all_headers, timeout=20)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


def serve_env(workdir: Path, extra: Mapping[str, str] | None = None) -> tuple[dict[str, str], str]:
    workdir.mkdir(parents=True, exist_ok=True)
    state_url = f"sqlite:///{workdir / 'state.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEMABOT_")}
    env.update(
        {
            "SCHEMABOT_DATABASE_URL": state_url,
            "SCHEMABOT_BROKER_URL": f"redis://127.0.0.1:6379/{TEST_REDIS_DB}",
            "SCHEMABOT_QUEUE": f"sbt-serve-{uuid.uuid4().hex[:8]}",
            "SCHEMABOT_ENGINE_PLUGINS": json.dumps(PLUGINS),
            "SCHEMABOT_TARGET_FAKE": f"fake://{workdir / 'fake-target.db'}",
            "SCHEMABOT_TARGET_OTHER": f"fake://{workdir / 'other-target.db'}",
            "PYTHONPATH": str(REPO),
        }
    )
    env.update(extra or {})
    return env, state_url


@contextmanager
def served(
    workdir: Path, extra: Mapping[str, str] | None = None, migrate: bool = True, host: str = "127.0.0.1"
) -> Iterator[Served]:
    """Start `schemabot serve` on a free loopback port; stop it (and clean its queue) afterwards."""
    env, state_url = serve_env(workdir, extra)
    if migrate and state_url == env["SCHEMABOT_DATABASE_URL"]:
        upgrade(database_url=state_url)
    port = free_port()
    log_path = workdir / f"serve-{port}.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [SCHEMABOT, "serve", "--host", host, "--port", str(port)],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Served(f"http://127.0.0.1:{port}", proc, log_path, state_url, env)

    def up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"schemabot serve exited {proc.returncode}: {server.log()[-3000:]}")
        return httpx.get(f"{server.base_url}/healthz", timeout=2).status_code == 200

    try:
        wait_for(up, 60, "schemabot serve to answer /healthz", interval=0.1)
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        redis.Redis(db=TEST_REDIS_DB).delete(env["SCHEMABOT_QUEUE"])
