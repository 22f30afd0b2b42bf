"""`planetscale://TOKEN_ID:TOKEN@ORG/DATABASE?main_branch=main&api_url=...` target DSNs.

The service token is the only secret: it lives in `PlanetScaleTarget.token`, never in `repr`,
messages, resume states or events. `api_url` defaults to PlanetScale's public API; pointing it
at the emulator (`http://127.0.0.1:8980/v1`) is the only difference between local and real runs.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

from engines.targets import Target, redact

PUBLIC_API_URL = "https://api.planetscale.com/v1"


@dataclass(frozen=True)
class PlanetScaleTarget:
    token_id: str
    token: str = field(repr=False)
    org: str = ""
    database: str = ""
    main_branch: str = "main"
    api_url: str = PUBLIC_API_URL
    # TLS to branch MySQL endpoints: on for PlanetScale, off for a loopback emulator.
    mysql_tls: bool = True
    # Seconds an unanswered "open deploy request" call is given to show up before it is sent
    # again (see setup.step_create_dr).
    create_settle_seconds: float = 60.0

    @property
    def authorization(self) -> str:
        return f"{self.token_id}:{self.token}"

    @classmethod
    def parse(cls, dsn: str) -> PlanetScaleTarget:
        parts = urlsplit(dsn)
        if parts.scheme != "planetscale":
            raise ValueError(f"not a planetscale:// DSN: {redact(dsn)}")
        token_id, token = unquote(parts.username or ""), unquote(parts.password or "")
        org = parts.hostname or ""
        database = unquote(parts.path.strip("/"))
        if not token_id or not token:
            raise ValueError(f"the DSN needs TOKEN_ID:TOKEN before the @: {redact(dsn)}")
        if not org or not database or "/" in database:
            raise ValueError(f"the DSN must be planetscale://ID:TOKEN@ORG/DATABASE: {redact(dsn)}")
        # urlsplit lowercases the host; PlanetScale org names are lowercase anyway.
        options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = set(options) - {"main_branch", "api_url", "mysql_tls", "create_settle_seconds"}
        if unknown:
            raise ValueError(f"unknown DSN option(s) {sorted(unknown)}: {redact(dsn)}")
        api_url = options.get("api_url", PUBLIC_API_URL).rstrip("/")
        if urlsplit(api_url).scheme not in ("http", "https"):
            raise ValueError(f"api_url must be an http(s) URL: {redact(dsn)}")
        tls_default = not _is_loopback(urlsplit(api_url).hostname or "")
        tls = options.get("mysql_tls")
        try:
            settle = float(options.get("create_settle_seconds", "60"))
        except ValueError:
            raise ValueError(f"create_settle_seconds must be a number: {redact(dsn)}") from None
        return cls(
            token_id=token_id,
            token=token,
            org=org,
            database=database,
            main_branch=options.get("main_branch", "main"),
            api_url=api_url,
            mysql_tls=tls_default if tls is None else tls.lower() in ("1", "true", "yes"),
            create_settle_seconds=settle,
        )

    @classmethod
    def from_target(cls, target: Target) -> PlanetScaleTarget:
        return cls.parse(target.dsn)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
