"""The provider side of a plan for a Vitess target: a plan branch and its deploy request, never
deployed (issue 13 §5; docs/architecture.md §5.9).

A plan must show what PlanetScale itself would deploy, so it asks PlanetScale: the planner makes a
development branch hold "main plus the change" and opens a deploy request from it into main
without deploying it; the deploy request's diff is the plan. This module owns the calls that do
that; what runs on the branch is the planner's business (schemabot/planning/vitess.py).

**The plan branch.** `sb-plan-<16 hex>`: the hex is a SHA-256 of the plan's input (target's
database and main branch, the namespaces and their statements or desired files), so repeating a
plan reuses its branch and its deploy request, and two different plans never share (or trample)
one. An apply branch is `sb-<hex>` (`naming.branch_name`): hex digits only after `sb-`, so
"sb-plan-..." can never be one of them. The deploy request carries `schemabot-plan: <branch>` in
its notes; the apply engine adopts only requests tagged `schemabot-apply:`, so it can never pick a
plan's request.

**Lifetime.** The branch and its open deploy request are left in place after the plan, so the
diff can be reviewed on PlanetScale (the plan gives its URL) and an identical plan is cheap. They
are never deployed. A later plan with other input uses another branch; deleting a plan branch at
any time is safe (the next identical plan creates it again). Nothing deletes them automatically
(engines/planetscale/README.md, "Not done").

Failures: `RetryableEngineError` when the provider does not answer or is not ready in time,
`PermanentEngineError` when it refuses (a bad token, an unknown database). The first call has a
short budget of its own (`CONNECT_SECONDS`), so a provider that is down is reported in seconds.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import pymysql

from engines.base import PermanentEngineError, RetryableEngineError
from engines.mysql.tls import open_connection
from engines.planetscale.api import ApiError, ApiFailure, ApiUnreachable, Json, NotFound, PlanetScaleAPI
from engines.planetscale.budget import Budget, OutOfBudget
from engines.planetscale.retry import retrying
from engines.planetscale.setup import canonical_json
from engines.planetscale.target import PlanetScaleTarget
from engines.targets import redact

PLAN_BRANCH_PREFIX = "sb-plan-"
PLAN_TAG_KEY = "schemabot-plan"
CONNECT_SECONDS = 5.0
POLL_SECONDS = 0.2
PASSWORD_TTL_SECONDS = 900
_NOT_DEPLOYED_YET = ("pending",)


def plan_branch_name(key: str) -> str:
    """The branch of the plan whose canonical input is `key` (see the module docstring)."""
    return PLAN_BRANCH_PREFIX + hashlib.sha256(key.encode()).hexdigest()[:16]


def plan_notes(branch: str) -> str:
    return f"Opened by schemabot plan to show a diff; it is never deployed.\n\n{PLAN_TAG_KEY}: {branch}\n"


def _tagged(dr: Json, branch: str) -> bool:
    return f"{PLAN_TAG_KEY}: {branch}" in str(dr.get("notes") or "") and dr.get("branch") == branch


@dataclass(frozen=True)
class DiffEntry:
    """One entry of a deploy request's diff: a table (CREATE/ALTER/DROP) or a keyspace's VSchema."""

    keyspace: str
    name: str
    kind: str  # table | vschema
    operation: str  # CREATE | ALTER | DROP | VSCHEMA
    raw: str  # PlanetScale's diff text: lines prefixed "-", "+" or " "


@dataclass(frozen=True)
class Expected:
    """What the diff must name once the provider has caught up with the branch."""

    tables: frozenset[tuple[str, str]]
    vschemas: frozenset[str]


@dataclass
class DeployRequestDiff:
    number: int
    url: str | None
    state: str  # ready, no_changes or error
    reused: bool
    entries: list[DiffEntry] = field(default_factory=list)
    message: str | None = None  # why the provider says it is not deployable


class PlanBranch:
    """The plan branch `name` of one PlanetScale database, within one overall time budget."""

    def __init__(
        self,
        target: PlanetScaleTarget,
        name: str,
        *,
        timeout: float,
        http_client: httpx.Client | None = None,
    ) -> None:
        self.target = target
        self.name = name
        self.api = PlanetScaleAPI(target, http_client)
        self.budget = Budget(timeout)
        self._password: str | None = None
        self._conn: pymysql.Connection | None = None

    def close(self) -> None:
        """Close the branch connection and delete its password (best effort: it expires anyway)."""
        if self._conn is not None:
            with contextlib.suppress(pymysql.Error):
                self._conn.close()
            self._conn = None
        if self._password is not None:
            with contextlib.suppress(ApiFailure, OutOfBudget):
                self.api.delete_password(self.name, self._password, Budget(CONNECT_SECONDS))
            self._password = None
        self.api.close()

    # -- reads -------------------------------------------------------------------------------

    def main_keyspaces(self) -> list[str]:
        """The keyspaces of main; the first call, with a short budget of its own."""
        probe = Budget(min(CONNECT_SECONDS, self.budget.remaining()))
        main = self.target.main_branch
        try:
            items = retrying(probe, lambda: self.api.keyspaces(main, probe), "reading main's keyspaces")
        except NotFound:
            raise PermanentEngineError(
                f"database {self.target.database} or branch {main} does not exist on the provider"
            ) from None
        except OutOfBudget:
            raise RetryableEngineError(f"the provider did not answer within {CONNECT_SECONDS:.0f}s") from None
        return [str(k.get("name")) for k in items]

    def schema(self, branch: str, keyspace: str) -> dict[str, str]:
        """{table: CREATE TABLE} of `keyspace` on `branch`, as the provider shows it."""
        items = retrying(
            self.budget,
            lambda: self.api.branch_schema(branch, keyspace, self.budget),
            f"reading the schema of {keyspace} on {branch}",
        )
        return {str(i["name"]): str(i.get("raw") or "") for i in items}

    def vschema(self, branch: str, keyspace: str) -> str:
        return retrying(
            self.budget,
            lambda: self.api.get_vschema(branch, keyspace, self.budget),
            f"reading the VSchema of {keyspace} on {branch}",
        )

    # -- the branch --------------------------------------------------------------------------

    def ensure(self) -> bool:
        """Create the plan branch from main, or reuse it; wait until it is ready. True: reused."""
        main = self.target.main_branch
        reused = True
        for _ in range(3):
            try:
                branch = retrying(
                    self.budget,
                    lambda: self.api.get_branch(self.name, self.budget),
                    "reading the plan branch",
                )
                break
            except NotFound:
                pass
            reused = False
            try:
                self.api.create_branch(self.name, main, self.budget)
            except ApiUnreachable:
                continue  # created or not: look again
            except ApiError as exc:
                if exc.transient or (exc.status == 422 and "taken" in exc.message.lower()):
                    continue  # another plan of the same input created it: look again
                raise PermanentEngineError(redact(f"creating plan branch {self.name}: {exc}")) from None
        else:
            raise RetryableEngineError(f"could not create or find plan branch {self.name}")
        if branch.get("parent_branch") != main:
            raise PermanentEngineError(
                f"branch {self.name} exists but was not branched from {main}; delete it and plan again"
            )
        while not branch.get("ready"):
            self._pause(f"plan branch {self.name} is not ready")
            branch = retrying(
                self.budget, lambda: self.api.get_branch(self.name, self.budget), "reading the plan branch"
            )
        return reused

    def set_vschema(self, keyspace: str, document: str) -> None:
        retrying(
            self.budget,
            lambda: self.api.patch_vschema(self.name, keyspace, document, self.budget),
            f"patching the VSchema of {keyspace} on {self.name}",
        )

    def connection(self) -> pymysql.Connection:
        """An admin connection to the plan branch (a short-lived password of its own)."""
        if self._conn is not None:
            return self._conn
        body = retrying(
            self.budget,
            lambda: self.api.create_password(
                self.name, f"schemabot-plan-{secrets.token_hex(3)}", PASSWORD_TTL_SECONDS, self.budget
            ),
            f"creating a password for {self.name}",
        )
        self._password = str(body.get("id") or "") or None
        host, _, port = str(body["access_host_url"]).rpartition(":")
        if not host:
            host, port = port, "3306"
        timeout = self.budget.call_timeout()
        try:
            self._conn = open_connection(
                host=host,
                port=int(port or 3306),
                user=str(body["username"]),
                password=str(body["plain_text"]),
                autocommit=True,
                charset="utf8mb4",
                connect_timeout=timeout,
                read_timeout=max(timeout, 30.0),
                write_timeout=max(timeout, 30.0),
                ssl=ssl.create_default_context() if self.target.mysql_tls else None,
            )
        except pymysql.MySQLError as exc:
            raise RetryableEngineError(
                redact(f"connecting to plan branch {self.name}: {exc.args[-1] if exc.args else exc}")
            ) from None
        return self._conn

    # -- the deploy request ------------------------------------------------------------------

    def deploy_request(self, *, branch_changed: bool, expected: Expected) -> DeployRequestDiff:
        """Open this plan's deploy request (or reuse the open one when the branch did not change
        in this plan) and wait for its diff to name exactly `expected`. Never deploys."""
        main = self.target.main_branch
        retrying(
            self.budget, lambda: self.api.refresh_schema(self.name, self.budget), "refreshing the schema"
        )
        found = [
            dr
            for dr in retrying(
                self.budget,
                lambda: self.api.list_deploy_requests(self.name, main, self.budget),
                "listing the plan's deploy requests",
            )
            if _tagged(dr, self.name) and dr.get("state") == "open" and not dr.get("deployed_at")
        ]
        found.sort(key=lambda dr: int(dr["number"]))
        # Reuse the open request only when the branch is as it was: its diff is then current. One
        # the provider found undeployable is asked again, with a new request.
        keep = (
            found[0] if found and not branch_changed and found[0].get("deployment_state") != "error" else None
        )
        for dr in found:
            if dr is not keep:  # opened for an earlier branch content: its diff may be stale
                stale = int(dr["number"])
                retrying(
                    self.budget,
                    lambda stale=stale: self.api.close_deploy_request(stale, self.budget),  # type: ignore[misc]
                    f"closing the plan's earlier deploy request #{stale}",
                )
        dr = keep if keep is not None else self._open(main)
        number = int(dr["number"])
        while True:
            dr = retrying(
                self.budget,
                lambda: self.api.get_deploy_request(number, self.budget),
                f"reading deploy request #{number}",
            )
            state = str(dr.get("deployment_state"))
            if state in _NOT_DEPLOYED_YET:
                self._pause(f"deploy request #{number} is still computing its diff")
                continue
            result = DeployRequestDiff(number, dr.get("html_url"), state, keep is not None)
            if state == "error":
                result.message = str(dr.get("error") or "no detail given")
                return result
            if state not in ("ready", "no_changes"):
                raise PermanentEngineError(
                    f"deploy request #{number} of plan branch {self.name} is {state}: someone deployed it"
                )
            result.entries = self._diff(number) if state == "ready" else []
            if _names(result.entries) == expected:
                return result
            # The provider has not caught up with the branch yet (it recomputes on its own).
            self._pause(f"the diff of deploy request #{number} does not match the plan branch yet")

    def _open(self, main: str) -> Json:
        for _ in range(3):
            try:
                return self.api.create_deploy_request(
                    self.name, main, plan_notes(self.name), False, self.budget
                )
            except (ApiUnreachable, ApiError) as exc:
                if isinstance(exc, ApiError) and not exc.transient:
                    raise PermanentEngineError(redact(f"opening the plan's deploy request: {exc}")) from None
                listed = retrying(
                    self.budget,
                    lambda: self.api.list_deploy_requests(self.name, main, self.budget),
                    "listing the plan's deploy requests",
                )
                mine = [dr for dr in listed if _tagged(dr, self.name) and dr.get("state") == "open"]
                if mine:  # the lost answer had opened it
                    return mine[0]
        raise RetryableEngineError(f"could not open a deploy request for {self.name}")

    def _diff(self, number: int) -> list[DiffEntry]:
        items = retrying(
            self.budget,
            lambda: self.api.deploy_request_diff(number, self.budget),
            f"reading the diff of #{number}",
        )
        return [
            DiffEntry(
                keyspace=str(i.get("keyspace_name") or ""),
                name=str(i.get("name")),
                kind=str(i.get("kind") or "table"),
                operation=str(i.get("operation_name") or ""),
                raw=str(i.get("raw") or ""),
            )
            for i in items
        ]

    def _pause(self, why: str) -> None:
        if self.budget.remaining() < POLL_SECONDS + 0.5:
            raise RetryableEngineError(f"{why} after {self.budget.seconds:.0f}s; plan again later")
        time.sleep(POLL_SECONDS)


def _names(entries: list[DiffEntry]) -> Expected:
    return Expected(
        frozenset((e.keyspace, e.name) for e in entries if e.kind != "vschema"),
        frozenset(e.keyspace for e in entries if e.kind == "vschema"),
    )


def same_vschema(a: str | dict[str, Any] | None, b: str | dict[str, Any] | None) -> bool:
    return canonical_json(a) == canonical_json(b)


def document_text(document: dict[str, Any]) -> str:
    return json.dumps(document, sort_keys=True)
