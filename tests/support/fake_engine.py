"""A recording fake engine for orchestration tests (not for engine behaviour).

Its "target" is a SQLite file named by the DSN (`fake:///abs/path.db`), so that what it creates
survives the worker process that created it, and tests can read it and inject faults from another
process. It counts what an invariant cares about: how many times `apply` created new work for a
context (a second shadow table/branch would show as created > 1), every call with the resume state
it received, and the rows it "copied".

Work per context moves: copy (rows_per_step per progress) -> [waiting_for_cutover while deferred]
-> cutting_over -> [revert_window for the vitess flavour] -> completed.
After a reattach of deferred work, it reports `running` for `ready_after_reattach` steps before
`waiting_for_cutover` again, so the orchestrator's `recovering` state is observable.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import time
from contextlib import closing, suppress
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from engines.base import (
    ApplyRequest,
    ApplyResult,
    ControlNotApplicable,
    ControlRequest,
    ControlResult,
    Engine,
    EngineState,
    PermanentEngineError,
    ProgressRequest,
    ProgressResult,
    ResumeStateNotFound,
    RetryableEngineError,
    TableProgress,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS works (
    context TEXT PRIMARY KEY, created INTEGER NOT NULL, rows_done INTEGER NOT NULL,
    rows_total INTEGER NOT NULL, phase TEXT NOT NULL, cutover_requested INTEGER NOT NULL DEFAULT 0,
    stopped INTEGER NOT NULL DEFAULT 0, recovering_steps INTEGER NOT NULL DEFAULT 0,
    volume INTEGER, revert_steps INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT, context TEXT, method TEXT, resume_state TEXT,
    changes TEXT, pid INTEGER, at REAL, engine TEXT, defer_cutover INTEGER
);
CREATE TABLE IF NOT EXISTS faults (
    method TEXT NOT NULL, kind TEXT NOT NULL, remaining INTEGER NOT NULL, message TEXT
);
CREATE TABLE IF NOT EXISTS knobs (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS active (
    context TEXT NOT NULL, pid INTEGER NOT NULL, started REAL NOT NULL, PRIMARY KEY (context, pid)
);
CREATE TABLE IF NOT EXISTS violations (context TEXT, detail TEXT, at REAL);
"""
# An `active` entry older than this belongs to a killed process, not a concurrent one.
ACTIVE_HORIZON = 5.0

DEFAULT_KNOBS = {
    "rows_total": 10,
    "rows_per_step": 2,
    "step_sleep": 0.0,
    "ready_after_reattach": 2,
    "revert_window_steps": 3,
    "stop_cancels": False,  # like PlanetScale: a deploy cannot pause, stopping cancels it
    # A table whose every progress step kills the worker process (SIGKILL, as the OOM killer or a
    # task hard time limit would): docs/architecture.md §10 S30.
    "kill_on_table": None,
}


class FakeTarget:
    """The fake's durable side, usable from tests directly."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        with closing(self._conn()) as conn:
            conn.executescript(SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.row_factory = sqlite3.Row
        return conn

    def query(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        with closing(self._conn()) as conn:
            return list(conn.execute(sql, args))

    def execute(self, sql: str, *args: Any) -> None:
        with closing(self._conn()) as conn:
            conn.execute(sql, args)

    # -- test helpers --------------------------------------------------------------------------

    def set_knob(self, key: str, value: Any) -> None:
        self.execute("INSERT OR REPLACE INTO knobs(key, value) VALUES (?, ?)", key, json.dumps(value))

    def knob(self, key: str) -> Any:
        rows = self.query("SELECT value FROM knobs WHERE key = ?", key)
        return json.loads(rows[0]["value"]) if rows else DEFAULT_KNOBS[key]

    def inject(self, method: str, kind: str, times: int = 1, message: str = "injected") -> None:
        """kind: retryable | permanent | not_found | no_state | empty_state | busy | hang |
        broker (a Redis/kombu connection error escapes the step, as when a broker blips) |
        statedb (a SQLAlchemy OperationalError of the state database escapes the step)"""
        self.execute("INSERT INTO faults VALUES (?, ?, ?, ?)", method, kind, times, message)

    def clear_faults(self) -> None:
        self.execute("DELETE FROM faults")

    def created_total(self) -> int:
        """Works created over all contexts, counting each second deploy request a Vitess apply
        opened without its state: anything above one per operation is a duplicate."""
        return int(self.query("SELECT COALESCE(SUM(created), 0) AS n FROM works")[0]["n"])

    def work(self, context: str) -> sqlite3.Row | None:
        rows = self.query("SELECT * FROM works WHERE context = ?", context)
        return rows[0] if rows else None

    def calls(self, method: str | None = None) -> list[sqlite3.Row]:
        if method is None:
            return self.query("SELECT * FROM calls ORDER BY id")
        return self.query("SELECT * FROM calls WHERE method = ? ORDER BY id", method)

    def enter(self, context: str) -> None:
        """Register a progress call; record a violation if another live process is inside."""
        now, pid = time.time(), os.getpid()
        with closing(self._conn()) as conn:
            conn.execute("BEGIN IMMEDIATE")
            others = conn.execute(
                "SELECT pid FROM active WHERE context = ? AND pid != ? AND started > ?",
                (context, pid, now - ACTIVE_HORIZON),
            ).fetchall()
            if others:
                conn.execute(
                    "INSERT INTO violations VALUES (?, ?, ?)",
                    (context, f"{pid} overlaps {[r['pid'] for r in others]}", now),
                )
            conn.execute("INSERT OR REPLACE INTO active VALUES (?, ?, ?)", (context, pid, now))
            conn.execute("COMMIT")
        marker = self._inside_marker(context)
        marker.with_name(f"{marker.name}.{pid}").write_text(str(pid))
        os.replace(marker.with_name(f"{marker.name}.{pid}"), marker)

    def leave(self, context: str) -> None:
        with suppress(FileNotFoundError, ValueError):
            marker = self._inside_marker(context)
            if int(marker.read_text()) == os.getpid():
                marker.unlink()
        self.execute("DELETE FROM active WHERE context = ? AND pid = ?", context, os.getpid())

    def _inside_marker(self, context: str) -> Path:
        return Path(f"{self.path}.inside.{re.sub(r'[^A-Za-z0-9_.-]', '_', context)}")

    def pid_inside(self, context: str) -> int | None:
        """The pid of the process inside a progress step of `context` now, if any, from a marker
        file written after `enter` and removed before `leave`, not from SQLite: a test reads it
        while a worker it froze (SIGSTOP) may hold the fake's SQLite locks, and a read of the
        database then fails with "database is locked" (seen closing the last connection, which
        checkpoints the WAL under an exclusive lock)."""
        try:
            return int(self._inside_marker(context).read_text())
        except (FileNotFoundError, ValueError):
            return None

    def take_fault(self, method: str) -> sqlite3.Row | None:
        with closing(self._conn()) as conn:
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute(
                "SELECT rowid, * FROM faults WHERE method = ? AND remaining > 0 LIMIT 1", (method,)
            ).fetchone()
            if row is not None:
                conn.execute("UPDATE faults SET remaining = remaining - 1 WHERE rowid = ?", (row["rowid"],))
            conn.execute("COMMIT")
            return row


def _path_of(dsn: str) -> str:
    return urlsplit(dsn).path


class FakeEngine(Engine):
    name = "fake"
    platform = "mysql"
    dsn_schemes = ("fake",)
    has_revert_window = False

    def __init__(self, target: Any) -> None:
        super().__init__(target)
        self.store = FakeTarget(_path_of(target.dsn))

    # -- plumbing ------------------------------------------------------------------------------

    def _record(self, request: ApplyRequest, method: str) -> None:
        changes = [
            {
                "namespace": ns.namespace,
                "vschema_changed": ns.vschema_changed,
                "tables": [[t.table, t.ddl, t.action] for t in ns.tables],
            }
            for ns in request.changes
        ]
        self.store.execute(
            "INSERT INTO calls(context, method, resume_state, changes, pid, at, engine, defer_cutover) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            request.context,
            method,
            json.dumps(request.resume_state),
            json.dumps(changes),
            os.getpid(),
            time.time(),
            self.name,
            int(request.options.defer_cutover),
        )

    def _fault(self, method: str) -> str | None:
        fault = self.store.take_fault(method)
        if fault is None:
            return None
        kind, message = fault["kind"], fault["message"]
        if kind == "retryable":
            raise RetryableEngineError(message)
        if kind == "permanent":
            raise PermanentEngineError(message)
        if kind == "not_found":
            raise ResumeStateNotFound(message)
        if kind == "hang":
            time.sleep(float(message))
            return None
        if kind == "broker":
            from kombu.exceptions import OperationalError

            raise OperationalError(f"Error 111 connecting to 127.0.0.1:6379. Connection refused ({message})")
        if kind == "statedb":
            import sqlalchemy.exc

            lost = Exception(f"(2013) Lost connection to server during query ({message})")
            raise sqlalchemy.exc.OperationalError("UPDATE apply ...", {}, lost)
        return str(kind)  # no_state, empty_state, busy: handled by the caller

    def _state(self, context: str) -> dict[str, Any]:
        work = self.store.work(context)
        assert work is not None
        state: dict[str, Any] = {
            "format": 1,
            "context": context,
            "phase": work["phase"],
            "rows_done": work["rows_done"],
        }
        if self.platform == "vitess":
            state.update({"branch": f"sb-{context}", "deploy_request": 1})
        return state

    def _tables(self, request: ProgressRequest, state: EngineState, work: Any) -> list[TableProgress]:
        total, done = work["rows_total"], work["rows_done"]
        return [
            TableProgress(
                namespace=ns.namespace,
                table=t.table,
                state=state,
                rows_copied=done,
                rows_total=total,
                percent=round(100.0 * done / total, 1) if total else 100.0,
                eta_seconds=max(0, total - done),
            )
            for ns in request.changes
            for t in ns.tables
        ]

    # -- contract ------------------------------------------------------------------------------

    def apply(self, request: ApplyRequest) -> ApplyResult:
        self._record(request, "apply")
        fault = self._fault("apply")
        if fault == "busy":
            return ApplyResult(accepted=False, message="busy: lock held elsewhere")
        work = self.store.work(request.context)
        if work is not None and self.platform == "vitess" and not request.resume_state and work["rows_done"]:
            # Like a real Vitess engine handed no state past branch preparation: it cannot find
            # the deploy request it opened and opens a second one (what fail-closed prevents).
            self.store.execute(
                "UPDATE works SET created = created + 1, rows_done = 0, phase = 'copy' WHERE context = ?",
                request.context,
            )
            return ApplyResult(accepted=True, resume_state=self._state(request.context), message="created")
        if work is not None:
            if request.options.defer_cutover and work["phase"] == "waiting_for_cutover":
                self.store.execute(
                    "UPDATE works SET recovering_steps = ? WHERE context = ?",
                    self.store.knob("ready_after_reattach"),
                    request.context,
                )
            state = None if fault == "no_state" else self._state(request.context)
            if fault == "empty_state":
                state = {}
            return ApplyResult(
                accepted=True,
                resume_state=state,
                reattached=True,
                resume_point=f"row {work['rows_done']} of {work['rows_total']}",
            )
        self.store.execute(
            "INSERT INTO works(context, created, rows_done, rows_total, phase) VALUES (?, 1, 0, ?, 'copy')",
            request.context,
            self.store.knob("rows_total"),
        )
        state = None if fault == "no_state" else self._state(request.context)
        return ApplyResult(accepted=True, resume_state=state, message="created")

    def progress(self, request: ProgressRequest) -> ProgressResult:
        self.store.enter(request.context)
        try:
            return self._progress(request)
        finally:
            self.store.leave(request.context)

    def _progress(self, request: ProgressRequest) -> ProgressResult:
        self._record(request, "progress")
        doomed = self.store.knob("kill_on_table")
        if doomed and any(t.table == doomed for ns in request.changes for t in ns.tables):
            os.kill(os.getpid(), signal.SIGKILL)
        self._fault("progress")
        if request.resume_state is None and self.platform == "vitess":
            raise ResumeStateNotFound("no resume state handed to progress")
        if request.resume_state is not None and "format" not in request.resume_state:
            # What the planetscale engine answers to a state that names nothing.
            raise PermanentEngineError(f"unsupported resume state {request.resume_state!r}")
        work = self.store.work(request.context)
        if work is None:
            raise ResumeStateNotFound(f"no work for {request.context}")
        time.sleep(float(self.store.knob("step_sleep")))
        phase, events = work["phase"], []
        if work["stopped"]:
            state = EngineState.STOPPED
        elif phase == "copy":
            done = min(work["rows_total"], work["rows_done"] + int(self.store.knob("rows_per_step")))
            self.store.execute("UPDATE works SET rows_done = ? WHERE context = ?", done, request.context)
            if done >= work["rows_total"]:
                phase = "waiting_for_cutover" if request.options.defer_cutover else "cutting_over"
                self.store.execute("UPDATE works SET phase = ? WHERE context = ?", phase, request.context)
                events.append(f"copy finished at row {done}")
            state = EngineState.RUNNING
        elif phase == "waiting_for_cutover":
            if work["recovering_steps"] > 0:
                self.store.execute(
                    "UPDATE works SET recovering_steps = recovering_steps - 1 WHERE context = ?",
                    request.context,
                )
                state = EngineState.RUNNING
            elif work["cutover_requested"] or not request.options.defer_cutover:
                self.store.execute(
                    "UPDATE works SET phase = 'cutting_over' WHERE context = ?", request.context
                )
                state = EngineState.CUTTING_OVER
            else:
                state = EngineState.WAITING_FOR_CUTOVER
        elif phase == "cutting_over":
            next_phase = (
                "revert_window" if self.has_revert_window and not request.options.skip_revert else "completed"
            )
            self.store.execute("UPDATE works SET phase = ? WHERE context = ?", next_phase, request.context)
            events.append("cut over")
            state = EngineState.REVERT_WINDOW if next_phase == "revert_window" else EngineState.COMPLETED
        elif phase == "revert_window":
            steps = work["revert_steps"] + 1
            self.store.execute("UPDATE works SET revert_steps = ? WHERE context = ?", steps, request.context)
            if steps >= int(self.store.knob("revert_window_steps")):
                self.store.execute("UPDATE works SET phase = 'completed' WHERE context = ?", request.context)
                state = EngineState.COMPLETED
            else:
                state = EngineState.REVERT_WINDOW
        else:
            state = {
                "completed": EngineState.COMPLETED,
                "reverted": EngineState.REVERTED,
                "cancelled": EngineState.CANCELLED,
            }[phase]
        work = self.store.work(request.context)
        return ProgressResult(
            state=state,
            tables=self._tables(request, state, work),
            resume_state=self._state(request.context),
            message=f"phase {work['phase']}",
            events=events,
        )

    def _control(self, request: ControlRequest, method: str, sql: str | None) -> ControlResult:
        self._record(request, method)
        self._fault(method)
        if sql is not None:
            self.store.execute(sql, request.context)
        return ControlResult(accepted=True, message=f"{method} done")

    def stop(self, request: ControlRequest) -> ControlResult:
        if self.store.knob("stop_cancels"):
            self._control(request, "stop", "UPDATE works SET phase = 'cancelled' WHERE context = ?")
            return ControlResult(
                accepted=True, message="stopping cancels: permanent", state=EngineState.CANCELLED
            )
        return self._control(request, "stop", "UPDATE works SET stopped = 1 WHERE context = ?")

    def start(self, request: ControlRequest) -> ControlResult:
        return self._control(request, "start", "UPDATE works SET stopped = 0 WHERE context = ?")

    def cutover(self, request: ControlRequest) -> ControlResult:
        work = self.store.work(request.context)
        if work is None or work["phase"] != "waiting_for_cutover" or work["recovering_steps"] > 0:
            self._record(request, "cutover")
            return ControlResult(accepted=False, message="not ready for cutover")
        return self._control(request, "cutover", "UPDATE works SET cutover_requested = 1 WHERE context = ?")

    def cancel(self, request: ControlRequest) -> ControlResult:
        return self._control(request, "cancel", "UPDATE works SET phase = 'cancelled' WHERE context = ?")

    def volume(self, request: ControlRequest) -> ControlResult:
        self.store.execute(
            "UPDATE works SET volume = ? WHERE context = ?", int(request.value or 0), request.context
        )
        return self._control(request, "volume", None)

    def revert(self, request: ControlRequest) -> ControlResult:
        if not self.has_revert_window:
            raise ControlNotApplicable("no revert window")
        return self._control(request, "revert", "UPDATE works SET phase = 'reverted' WHERE context = ?")

    def skip_revert(self, request: ControlRequest) -> ControlResult:
        if not self.has_revert_window:
            raise ControlNotApplicable("no revert window")
        return self._control(request, "skip_revert", "UPDATE works SET phase = 'completed' WHERE context = ?")


class FakeVitessEngine(FakeEngine):
    """The same fake with Vitess rules: grouped always, resume state mandatory, revert window."""

    name = "fakevitess"
    platform = "vitess"
    has_revert_window = True


class FakeNativeEngine(FakeEngine):
    """The same fake declaring itself native (like direct: its change is live when its statement
    returns), for orchestration tests of an apply whose tables run on different engines."""

    name = "fakenative"
    native = True
