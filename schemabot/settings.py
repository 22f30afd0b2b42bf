"""Configuration, read from `SCHEMABOT_*` environment variables (and a `.env` file).

Timing defaults are chosen so that recovery after a worker dies takes under ten seconds:
recovery latency is about `lease_ttl + sweep_interval`, and the lease must outlive one engine
step plus the poll countdown plus queueing delay, or healthy drivers would lose their leases.
"""

from __future__ import annotations

import json
import os
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from dotenv import dotenv_values
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from engines.targets import Target
from schemabot.auth import ApiToken

TARGET_ENV_PREFIX = "SCHEMABOT_TARGET_"
DEFAULT_TARGETS = {"local": "mysql://root@127.0.0.1:3306/test"}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SCHEMABOT_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default="sqlite:///./schemabot.db",
        description="State database (SQLAlchemy URL). SQLite embedded, MySQL/MariaDB in production.",
    )
    broker_url: str = "redis://127.0.0.1:6379/0"
    queue: str = "schemabot"

    lease_ttl: float = Field(default=6.0, gt=0, description="Seconds a driver's lease lasts.")
    poll_interval: float = Field(default=0.5, ge=0, description="Countdown between poll ticks.")
    sweep_interval: float = Field(default=2.0, gt=0, description="Seconds between recovery sweeps.")
    step_budget: float = Field(default=2.0, gt=0, description="Longest engine step, in seconds.")
    start_grace: float = Field(
        default=5.0,
        ge=0,
        description="Age after which a never-started pending apply is started by the sweep.",
    )

    retry_budget: int = Field(default=5, ge=1, description="Attempts before failed_retryable fails.")
    retry_backoff: float = Field(default=2.0, ge=0, description="Base seconds before a re-drive.")
    retry_backoff_max: float = Field(
        default=60.0, ge=0, description="Longest wait between two re-drives (the backoff's cap)."
    )
    retry_max_age: float = Field(
        default=24 * 3600, gt=0, description="failed_retryable applies older than this fail."
    )
    orphan_claim_limit: int = Field(
        default=5,
        ge=1,
        description="Times in a row the sweep re-drives an apply whose driver died mid-tick without "
        "the apply moving on; one more death parks it in needs_attention.",
    )
    task_time_limit: float = Field(default=300.0, gt=0, description="Hard limit per Celery task.")
    storage_retry_seconds: float = Field(
        default=3.0, ge=0, description="How long one tick retries the state database before giving up."
    )

    max_ddl_bytes: int = Field(
        default=256 * 1024,
        ge=1024,
        le=64 * 1024 * 1024,
        description="Largest DDL statement accepted at submit, in bytes (UTF-8).",
    )

    targets_file: Path | None = Field(default=None, description="Optional TOML file of targets.")
    engine_plugins: dict[str, str] = Field(
        default_factory=dict,
        description='Extra engines, as JSON: {"name": "module:Class"}.',
    )
    targets: dict[str, str] = Field(default_factory=dict, exclude=True)

    # -- the HTTP service (`schemabot serve`; README "HTTP"; issue 14) ---------------------------
    api_tokens: list[ApiToken] = Field(
        default_factory=list,
        description='API tokens, as JSON [{"name", "sha256", "scope", "targets"}] (or [[tokens]] in '
        "the targets TOML). None configured: development mode, loopback only, no authentication.",
    )
    http_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["localhost", "127.0.0.1", "::1"],
        description="Comma-separated names the service answers to (the Host header); * for any.",
    )
    http_max_body_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="Largest request body accepted (413 above)."
    )
    http_ready_timeout: float = Field(
        default=2.0, gt=0, description="Seconds /readyz waits for the state database and the broker."
    )

    @field_validator("api_tokens", mode="before")
    @classmethod
    def _tokens_json(cls, value: object) -> object:
        return json.loads(value) if isinstance(value, str) else value  # as given to Settings(...)

    @field_validator("http_allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            return [h.strip().lower() for h in value.split(",") if h.strip()]
        return value

    @field_validator("database_url")
    @classmethod
    def _pymysql_driver(cls, url: str) -> str:
        # Users write mysql://; SQLAlchemy would pick mysqlclient, which we do not install.
        for scheme in ("mysql://", "mariadb://"):
            if url.startswith(scheme):
                return "mysql+pymysql://" + url[len(scheme) :]
        # Likewise postgresql:// would pick psycopg2; we install psycopg (3).
        for scheme in ("postgresql://", "postgres://"):
            if url.startswith(scheme):
                return "postgresql+psycopg://" + url[len(scheme) :]
        return url

    @model_validator(mode="after")
    def _collect_targets(self) -> Settings:
        """Targets come from defaults, then the TOML file, then SCHEMABOT_TARGET_<NAME> variables.

        pydantic-settings cannot map a family of variables onto a dict, so they are read here.
        """
        found = dict(DEFAULT_TARGETS)
        if self.targets_file is not None:
            with open(self.targets_file, "rb") as fh:
                data = tomllib.load(fh)
            found.update({str(k).lower(): str(v) for k, v in data.get("targets", {}).items()})
            self.api_tokens = [*self.api_tokens, *(ApiToken(**t) for t in data.get("tokens", []))]
        # The .env file counts like the environment (which wins), as for every other setting.
        env_file = Path(str(self.model_config.get("env_file") or ".env"))
        dotenv = dotenv_values(env_file) if env_file.is_file() else {}
        for key, value in [*dotenv.items(), *os.environ.items()]:
            if key.startswith(TARGET_ENV_PREFIX) and value:
                found[key[len(TARGET_ENV_PREFIX) :].lower()] = value
        found.update({k.lower(): v for k, v in self.targets.items()})
        self.targets = found
        if self.lease_ttl <= self.step_budget + self.poll_interval:
            raise ValueError(
                f"lease_ttl ({self.lease_ttl}s) must exceed step_budget + poll_interval "
                f"({self.step_budget + self.poll_interval}s), or healthy drivers lose their leases"
            )
        return self

    def target(self, name: str) -> Target:
        """The named target, or LookupError naming the known ones (never their DSNs)."""
        try:
            return Target(name=name, dsn=self.targets[name.lower()])
        except KeyError:
            known = ", ".join(sorted(self.targets)) or "none"
            raise LookupError(
                f"unknown target {name!r}; known targets: {known} "
                f"(define one with {TARGET_ENV_PREFIX}{name.upper()}=mysql://user:pass@host:port/schema)"
            ) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings. Tests that change the environment call `get_settings.cache_clear()`."""
    return Settings()
