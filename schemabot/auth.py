"""API tokens of the HTTP service (the HTTP API of docs/architecture.md §1 and §5; issue 14 §1).

A token is a random secret a client sends as `Authorization: Bearer <secret>`. Settings hold only
its SHA-256 (hex), with a name (recorded on every apply and control it asks for), a scope and an
optional list of targets it is restricted to:

    SCHEMABOT_API_TOKENS='[{"name": "ci", "sha256": "<hex>", "scope": "apply", "targets": ["prod"]}]'

or, in the targets TOML file (`SCHEMABOT_TARGETS_FILE`):

    [[tokens]]
    name = "ci"
    sha256 = "<hex>"
    scope = "apply"
    targets = ["prod"]

`schemabot token new NAME --scope apply` makes a secret and prints the entry to configure.
Secrets are 256 random bits, so an unsalted SHA-256 is as strong as a password hash here and
costs nothing per request; comparisons are constant-time.

Scopes are ordered: `read` (status, list, log) < `apply` (submit and controls) < `admin`
(everything, whatever the target restriction of endpoints that ask for it).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

TOKEN_PREFIX = "sbt_"


class Scope(StrEnum):
    READ = "read"
    APPLY = "apply"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return [Scope.READ, Scope.APPLY, Scope.ADMIN].index(self)

    def covers(self, needed: Scope) -> bool:
        return self.rank >= needed.rank


class ApiToken(BaseModel):
    """One configured token: never the secret itself, only its SHA-256."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@:-]+$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="hex SHA-256 of the secret")
    scope: Scope
    targets: list[str] | None = Field(
        default=None, description="target names this token may use; none = every target"
    )

    @field_validator("sha256", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("targets")
    @classmethod
    def _lower_targets(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [t.lower() for t in value]


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def new_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Principal:
    """Who is asking: a configured token, or the development-mode user when none is configured."""

    name: str
    scope: Scope
    targets: frozenset[str] | None = None

    def may_use(self, target: str) -> bool:
        return self.targets is None or self.scope is Scope.ADMIN or target.lower() in self.targets


DEVELOPMENT = Principal(name="development", scope=Scope.ADMIN)


class Unauthenticated(Exception):
    """No credentials, or credentials that match no token (401)."""


class Forbidden(Exception):
    """A known token without the scope or target the request needs (403)."""


def authenticate(authorization: str | None, tokens: list[ApiToken]) -> Principal:
    """The principal of an `Authorization` header. Raises Unauthenticated."""
    if not authorization:
        raise Unauthenticated("this endpoint needs an API token: send `Authorization: Bearer <token>`")
    kind, _, secret = authorization.partition(" ")
    if kind.lower() != "bearer" or not secret.strip():
        raise Unauthenticated("use `Authorization: Bearer <token>`")
    digest = hash_secret(secret.strip())
    found: ApiToken | None = None
    for token in tokens:  # compare against every token: timing says nothing about which
        if hmac.compare_digest(digest, token.sha256):
            found = token
    if found is None:
        raise Unauthenticated("unknown API token")
    return Principal(
        found.name, found.scope, None if found.targets is None else frozenset(found.targets)
    )


def require(principal: Principal, scope: Scope, target: str | None = None) -> None:
    """Raise Forbidden unless `principal` has `scope` (and may use `target`, when given)."""
    if not principal.scope.covers(scope):
        raise Forbidden(
            f"token {principal.name!r} has scope {principal.scope.value!r}; this needs {scope.value!r}"
        )
    if target is not None and not principal.may_use(target):
        raise Forbidden(f"token {principal.name!r} may not use target {target!r}")


def is_loopback(host: str) -> bool:
    """Is `host` (as given to `serve --host`) reachable only from this machine?"""
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
