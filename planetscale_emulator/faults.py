"""Fault injection: rules stored with the emulator's metadata that make it misbehave on purpose.

Two families:

- *Request faults* match an API request by method and path pattern and fire a given number of
  times: `error` (answer a status and error body instead of acting), `delay` (sleep, then act),
  `freeze_caller` (SIGSTOP the calling process, found on this host by its connection, then as
  `delay`: callers.py), `drop` (close the connection before acting), `lose_response` (act,
  commit, then close the connection without answering: the client cannot tell whether the call
  happened, which is the failure that makes naive retries open a second branch or deploy
  request).
- *Deploy faults* act on the deploy state machine at a tick: `stall` (a deploy request does not
  leave a given state for N ticks, or until cleared) and `fail_deploy` (the deploy fails in a
  given state: `error` before deploying, `complete_error` after).

Making a branch or deploy request vanish is an immediate admin action, not a rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from planetscale_emulator.errors import invalid
from planetscale_emulator.store import Row, Store

REQUEST_KINDS = ("error", "delay", "freeze_caller", "drop", "lose_response")
HOLDING_KINDS = ("delay", "freeze_caller")  # hold the request `delay_ms`, then act
DEPLOY_KINDS = ("stall", "fail_deploy")

# Named targets for the side-effecting calls the engine must survive, so tests and demos need
# not spell out the patterns.
TARGETS: dict[str, tuple[str, str]] = {
    "create_branch": ("POST", r"/branches$"),
    "delete_branch": ("DELETE", r"/branches/[^/]+$"),
    "create_deploy_request": ("POST", r"/deploy-requests$"),
    "deploy": ("POST", r"/deploy-requests/\d+/deploy$"),
    "apply_deploy": ("POST", r"/deploy-requests/\d+/apply-deploy$"),
    "cancel": ("POST", r"/deploy-requests/\d+/cancel$"),
    "revert": ("POST", r"/deploy-requests/\d+/revert$"),
    "skip_revert": ("POST", r"/deploy-requests/\d+/skip-revert$"),
    "get_deploy_request": ("GET", r"/deploy-requests/\d+$"),
    "list_deploy_requests": ("GET", r"/deploy-requests$"),
    "get_branch": ("GET", r"/branches/[^/]+$"),
    "patch_vschema": ("PATCH", r"/vschema$"),
    "create_password": ("POST", r"/passwords$"),
}


@dataclass(frozen=True)
class Fault:
    id: int
    kind: str
    method: str | None
    path_pattern: str | None
    number: int | None
    deploy_state: str | None
    status: int | None
    code: str | None
    message: str | None
    delay_ms: int | None
    remaining: int

    @classmethod
    def from_row(cls, row: Row) -> Fault:
        return cls(**{k: row[k] for k in cls.__dataclass_fields__})

    def matches_request(self, method: str, path: str) -> bool:
        if self.kind not in REQUEST_KINDS:
            return False
        if self.method and self.method.upper() != method.upper():
            return False
        return not self.path_pattern or re.search(self.path_pattern, path) is not None

    def matches_deploy(self, number: int, deploy_state: str) -> bool:
        if self.kind not in DEPLOY_KINDS:
            return False
        if self.number is not None and self.number != number:
            return False
        return self.deploy_state == deploy_state

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def add_fault(store: Store, spec: dict[str, Any], now: float) -> Fault:
    """Validate and store one rule; `times` (default 1, -1 = until cleared) sets its budget."""
    kind = str(spec.get("kind", ""))
    if kind not in REQUEST_KINDS + DEPLOY_KINDS:
        raise invalid(
            f"unknown fault kind {kind!r}; expected one of {REQUEST_KINDS + DEPLOY_KINDS}"
        )
    method, pattern = spec.get("method"), spec.get("path")
    if "target" in spec:
        if spec["target"] not in TARGETS:
            raise invalid(f"unknown fault target {spec['target']!r}; known: {sorted(TARGETS)}")
        method, pattern = TARGETS[spec["target"]]
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise invalid(f"bad path pattern: {exc}") from None
    deploy_state = spec.get("deploy_state")
    if kind == "fail_deploy" and deploy_state is None:
        deploy_state = "in_progress"
    if kind == "stall" and not deploy_state:
        raise invalid("a stall fault needs deploy_state")
    times = int(spec.get("times", 1))
    if times == 0 or times < -1:
        raise invalid("times must be a positive count or -1 (until cleared)")
    fault_id = store.execute(
        "INSERT INTO faults (kind, method, path_pattern, number, deploy_state, status, code,"
        " message, delay_ms, remaining, created_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
        (
            kind,
            method,
            pattern,
            spec.get("number"),
            deploy_state,
            int(spec.get("status", 503)) if kind == "error" else None,
            spec.get("code", "unavailable") if kind == "error" else None,
            spec.get("message"),
            int(spec.get("delay_ms", 1000)) if kind in HOLDING_KINDS else None,
            times,
            now,
        ),
    )
    row = store.one("SELECT * FROM faults WHERE id=%s", (fault_id,))
    assert row is not None
    return Fault.from_row(row)


def list_faults(store: Store) -> list[Fault]:
    return [Fault.from_row(r) for r in store.query("SELECT * FROM faults ORDER BY id")]


def clear_faults(store: Store) -> None:
    store.execute("DELETE FROM faults")


def consume(store: Store, fault: Fault) -> None:
    """Spend one firing of `fault`; a rule with `remaining=-1` lasts until cleared."""
    if fault.remaining == -1:
        return
    if fault.remaining <= 1:
        store.execute("DELETE FROM faults WHERE id=%s", (fault.id,))
    else:
        store.execute("UPDATE faults SET remaining=remaining-1 WHERE id=%s", (fault.id,))


def first_request_fault(store: Store, method: str, path: str) -> Fault | None:
    for fault in list_faults(store):
        if fault.matches_request(method, path):
            return fault
    return None


def first_deploy_fault(store: Store, kind: str, number: int, deploy_state: str) -> Fault | None:
    for fault in list_faults(store):
        if fault.kind == kind and fault.matches_deploy(number, deploy_state):
            return fault
    return None
