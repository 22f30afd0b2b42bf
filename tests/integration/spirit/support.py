"""Helpers for the spirit engine's integration tests: requests, stepping, worker processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pymysql

from engines.base import (
    ApplyOptions,
    EngineState,
    NamespaceChange,
    OperationRequest,
    ProgressResult,
    TableChange,
)
from engines.spirit import SpiritEngine
from engines.targets import Target
from tests.support.mariadb import connect, mysql_dsn

REPO = Path(__file__).resolve().parents[3]


def request(
    changes: Iterable[tuple[str, str, str]],
    context: str = "task-1",
    *,
    defer_cutover: bool = False,
    step_budget: float = 2.0,
    resume_state: dict[str, Any] | None = None,
    **extra: Any,
) -> OperationRequest:
    """changes: (schema, table, ddl); the action is read from the DDL's first word."""
    by_schema: dict[str, list[TableChange]] = {}
    for schema, table, ddl in changes:
        action = ddl.split()[0].lower()
        by_schema.setdefault(schema, []).append(TableChange(table, ddl, action))  # type: ignore[arg-type]
    return OperationRequest(
        context=context,
        changes=[NamespaceChange(s, tuple(t)) for s, t in by_schema.items()],
        options=ApplyOptions(defer_cutover=defer_cutover, extra=extra),
        step_budget=step_budget,
        resume_state=resume_state,
    )


def engine(schema: str) -> SpiritEngine:
    return SpiritEngine(Target("test", mysql_dsn(schema)))


def run_until(
    eng: SpiritEngine,
    req: OperationRequest,
    states: Iterable[EngineState] = (EngineState.COMPLETED,),
    max_steps: int = 2000,
    between: Callable[[ProgressResult], None] | None = None,
) -> ProgressResult:
    """Step until the operation reaches one of `states` (bounded by `max_steps`)."""
    wanted = set(states)
    for _ in range(max_steps):
        result = eng.progress(req)
        if result.state in wanted:
            return result
        if between is not None:
            between(result)
    raise AssertionError(f"not in {wanted} after {max_steps} steps: {result}")


def checkpoint_row(schema: str, table: str, context: str = "task-1") -> dict[str, Any] | None:
    conn = connect(schema)
    try:
        with conn.cursor(pymysql.cursors.DictCursor) as cur:
            cur.execute("SHOW TABLES LIKE '\\_sb\\_spirit\\_checkpoint'")
            if cur.fetchone() is None:
                return None
            cur.execute(
                "SELECT * FROM _sb_spirit_checkpoint WHERE table_name = %s AND context = %s",
                (table, context),
            )
            return cur.fetchone()
    finally:
        conn.close()


def tables(schema: str) -> set[str]:
    conn = connect(schema)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW TABLES")
            return {r[0] for r in cur.fetchall()}
    finally:
        conn.close()


def triggers(schema: str) -> set[str]:
    conn = connect(schema)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s",
                (schema,),
            )
            return {r[0] for r in cur.fetchall()}
    finally:
        conn.close()


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `condition` until true, failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Worker:
    """The engine driven in a child process (tests/integration/spirit/worker.py), to be killed."""

    def __init__(self, schema: str, req: OperationRequest, pause: float = 0.02, **hooks: Any):
        spec = {
            "dsn": mysql_dsn(schema),
            "context": req.context,
            "changes": [[ns.namespace, t.table, t.ddl] for ns in req.changes for t in ns.tables],
            "defer_cutover": req.options.defer_cutover,
            "extra": dict(req.options.extra),
            "step_budget": req.step_budget,
            "pause": pause,
            "hooks": hooks,
        }
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.spirit.worker", json.dumps(spec)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def wait(self, timeout: float = 60) -> int:
        return self.proc.wait(timeout=timeout)
