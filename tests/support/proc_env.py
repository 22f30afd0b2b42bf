"""The environment shared by a test and the worker processes it starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis

from schemabot.api import Client
from schemabot.migrate import upgrade
from schemabot.settings import Settings
from tests.support.mariadb import SHARED_HOST, SHARED_PORT, SHARED_USER, fresh_schema, mysql_dsn
from tests.support.processes import REPO, Cluster
from tests.support.servers import TEST_REDIS_DB

SCHEMABOT = str(Path(sys.executable).with_name("schemabot"))
PLUGINS = {
    "fake": "tests.support.fake_engine:FakeEngine",
    "fakevitess": "tests.support.fake_engine:FakeVitessEngine",
}
# Short leases so each scenario takes seconds: recovery ~ TTL + sweep interval.
PROC_TIMINGS = {
    "SCHEMABOT_LEASE_TTL": "3",
    "SCHEMABOT_POLL_INTERVAL": "0.2",
    "SCHEMABOT_SWEEP_INTERVAL": "0.5",
    "SCHEMABOT_STEP_BUDGET": "1",
    "SCHEMABOT_START_GRACE": "1",
    "SCHEMABOT_STORAGE_RETRY_SECONDS": "1",
    "SCHEMABOT_RETRY_BACKOFF": "0.5",
}


@dataclass
class ProcEnv:
    env: dict[str, str]
    workdir: Path
    target_schema: str
    state_url: str

    def settings(self) -> Settings:
        values = {
            k[len("SCHEMABOT_") :].lower(): v for k, v in self.env.items() if k.startswith("SCHEMABOT_")
        }
        targets = {k[len("target_") :]: v for k, v in values.items() if k.startswith("target_")}
        plain: dict[str, object] = {k: v for k, v in values.items() if not k.startswith("target_")}
        plain["engine_plugins"] = json.loads(self.env["SCHEMABOT_ENGINE_PLUGINS"])
        return Settings(targets=targets, **plain)  # type: ignore[arg-type]

    def client(self) -> Client:
        return Client(self.settings())

    def cluster(self) -> Cluster:
        return Cluster(self.env, self.workdir)

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [SCHEMABOT, *args], cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout
        )


def state_url_for(schema: str, port: int = SHARED_PORT) -> str:
    return f"mysql+pymysql://{SHARED_USER}@{SHARED_HOST}:{port}/{schema}"


@contextmanager
def proc_env(
    workdir: Path,
    fake_target_path: str,
    extra: Mapping[str, str] | None = None,
    broker_url: str | None = None,
    state_url: str | None = None,
) -> Iterator[ProcEnv]:
    """A migrated state database, a private queue, a fake target and a MariaDB target schema."""
    queue = f"sbt-{uuid.uuid4().hex[:8]}"
    with fresh_schema("sbt_proc") as state_schema, fresh_schema("sbt_tgt") as target_schema:
        url = state_url or state_url_for(state_schema)
        upgrade(database_url=url)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEMABOT_")}
        env.update(PROC_TIMINGS)
        env.update(
            {
                "SCHEMABOT_DATABASE_URL": url,
                "SCHEMABOT_BROKER_URL": broker_url or f"redis://127.0.0.1:6379/{TEST_REDIS_DB}",
                "SCHEMABOT_QUEUE": queue,
                "SCHEMABOT_ENGINE_PLUGINS": json.dumps(PLUGINS),
                "SCHEMABOT_TARGET_FAKE": f"fake://{fake_target_path}",
                "SCHEMABOT_TARGET_LOCAL": mysql_dsn(target_schema),
                "PYTHONPATH": str(REPO),
            }
        )
        env.update(extra or {})
        try:
            yield ProcEnv(env, workdir, target_schema, url)
        finally:
            if broker_url is None:
                redis.Redis(db=TEST_REDIS_DB).delete(queue)
