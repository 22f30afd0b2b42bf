"""The `direct` engine: native DDL, only where the server does it without copying the table.

CREATE TABLE and DROP TABLE run as they are. An ALTER runs only if the server can do it with
`ALGORITHM=INSTANT`, or else `ALGORITHM=INPLACE, LOCK=NONE`; one that would copy the table is
refused with a message that names the online engine (spirit).

How it stays honest and idempotent without a shadow table:
- `apply` rehearses every statement on an empty scratch copy of its table (`CREATE TABLE ...
  LIKE`), which lets the target judge the DDL (a typo fails here, before anything changes), finds
  the cheapest algorithm the server accepts, and records the table definition the statement will
  produce (a fingerprint of SHOW CREATE TABLE).
- `progress` runs each statement once; before running it, it compares the live table with the
  expected fingerprint, so a statement that ran just before a crash is recognised as done rather
  than run twice (ADD COLUMN twice would fail; DROP TABLE twice would be worse).
- With `defer_cutover` (a grouped apply) it rehearses everything, waits at
  `waiting_for_cutover`, and runs the statements when the cutover control arrives.
"""

from __future__ import annotations

import hashlib
import re
import time
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import pymysql

from engines.base import (
    ApplyRequest,
    ApplyResult,
    ControlRequest,
    ControlResult,
    Engine,
    EngineError,
    EngineState,
    PermanentEngineError,
    ProgressRequest,
    ProgressResult,
    ResumeState,
    TableChange,
    TableProgress,
)
from engines.mysql.connections import MysqlErrorKind, classify, connect, error_kind
from engines.mysql.ddl_text import (
    HiddenSQL,
    UnterminatedSQL,
    absent_table_message,
    add_algorithm,
    algorithm_or_lock_clause,
    already_absent_message,
    drop_if_exists,
    renames_table,
    retarget,
    strip_comments,
)
from engines.mysql.identifiers import quote_ident
from engines.options import DirectOptions
from engines.table_guard import spirit_work, take_lock

FORMAT = 1
NOT_SUPPORTED = {1845, 1846}  # ER_ALTER_OPERATION_NOT_SUPPORTED(_REASON)
# Partition changes: MariaDB accepts ALGORITHM=INSTANT for PARTITION BY and then copies the
# table anyway (seen on 10.11), so the algorithm clause cannot be trusted for them.
_REBUILDING_PARTITION_CLAUSES = re.compile(
    r"\b(PARTITION\s+BY|REMOVE\s+PARTITIONING|REORGANIZE\s+PARTITION|COALESCE\s+PARTITION|"
    r"EXCHANGE\s+PARTITION|REBUILD\s+PARTITION)\b",
    re.IGNORECASE,
)
_AUTO_INCREMENT = re.compile(r" AUTO_INCREMENT=\d+")


@dataclass
class _Statement:
    namespace: str
    table: str
    action: str
    ddl: str
    algorithm: str | None  # the clause to add to an ALTER ("ALGORITHM=INSTANT"...)
    expected: str | None  # fingerprint of the table definition after the statement
    done: bool = False
    absent: bool = False  # DROP TABLE IF EXISTS of a table that was not there at the check
    interrupted: int = 0  # times in a row the server dropped the connection while it ran
    outcome: str | None = None  # what running it did ("... was already absent"), for status

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def fingerprint(create_table_sql: str, table: str) -> str:
    """Hash of a SHOW CREATE TABLE text, independent of the table's name and AUTO_INCREMENT."""
    first, _, rest = create_table_sql.partition("\n")
    first = re.sub(r"^CREATE TABLE `(?:[^`]|``)+`", "CREATE TABLE `t`", first)
    body = _AUTO_INCREMENT.sub("", first + "\n" + rest)
    return hashlib.sha256(body.encode()).hexdigest()


# The server dropping the connection while one statement runs is transient once; when it keeps
# happening to the same statement it is the statement (too large, crashing the server): a verdict.
MAX_INTERRUPTIONS = 3


class _Interrupted(Exception):
    """The connection was lost while the statement itself was running."""

    def __init__(self, error: EngineError) -> None:
        super().__init__(str(error))
        self.error = error


class _Busy(Exception):
    """Another process holds the table's advisory lock right now."""


def _clean(namespace: str, change: TableChange) -> str:
    """The statement the engine runs: the user's text without comments (never appended to)."""
    try:
        ddl = strip_comments(change.ddl)
    except (HiddenSQL, UnterminatedSQL) as exc:
        raise PermanentEngineError(f"{namespace}.{change.table}: {exc}") from None
    while ddl.endswith(";"):
        ddl = ddl[:-1].rstrip()
    if change.action == "alter":
        clause = algorithm_or_lock_clause(ddl)
        if clause:
            raise PermanentEngineError(
                f"{namespace}.{change.table}: the statement sets {clause}; the direct engine chooses "
                "INSTANT or INPLACE with LOCK=NONE itself and reports which, so remove the clause"
            )
        if renames_table(ddl):
            raise PermanentEngineError(
                f"{namespace}.{change.table}: the statement renames the table, which the direct engine "
                "refuses (as spirit does)"
            )
    return ddl


def _guard(cur: Any, namespace: str, table: str) -> None:
    """Take the table's advisory lock (shared with spirit) and refuse spirit's unfinished work."""
    if not take_lock(cur, namespace, table):
        raise _Busy(f"another process is changing {namespace}.{table} (its advisory lock is held)")
    found = spirit_work(cur, namespace, table)
    if found:
        raise PermanentEngineError(
            f"{found}; the direct engine does not change a table another engine is changing "
            "(finish or cancel that change first)"
        )


def _quoted(ddl: str) -> str:
    """The statement as an error quotes it: bounded, since the message is stored and shown (a
    statement can be up to SCHEMABOT_MAX_DDL_BYTES long, or more when the engine is called directly)."""
    return repr(ddl if len(ddl) <= 200 else ddl[:197] + "...")


def _scratch_name(context: str, table: str) -> str:
    digest = hashlib.sha256(f"{context}/{table}".encode()).hexdigest()[:12]
    return f"_sb_chk_{digest}"


class DirectEngine(Engine):
    name = "direct"
    options_model = DirectOptions
    native = True  # an INSTANT or in-place change is live when the statement returns

    # -- helpers --------------------------------------------------------------------------------

    def _connect(self, namespace: str | None = None) -> pymysql.Connection:
        try:
            return connect(self.target, namespace)
        except pymysql.MySQLError as exc:
            raise classify(exc, "connecting to the target") from exc

    @staticmethod
    def _show_create(cur: Any, table: str) -> str | None:
        try:
            cur.execute(f"SHOW CREATE TABLE {quote_ident(table)}")
        except pymysql.MySQLError as exc:
            if exc.args and exc.args[0] == 1146:  # no such table
                return None
            raise
        row = cur.fetchone()
        return str(row[1]) if row else None

    def _table_fingerprint(self, cur: Any, table: str) -> str | None:
        text = self._show_create(cur, table)
        return fingerprint(text, table) if text is not None else None

    # -- rehearsal ------------------------------------------------------------------------------

    def _rehearse(self, context: str, namespace: str, change: TableChange) -> _Statement:
        conn = self._connect(namespace)
        scratch = _scratch_name(context, change.table)
        try:
            statement = self._rehearse_on(conn, scratch, namespace, change)
        except BaseException:
            # The rehearsal's verdict stands: a server that refused the statement may have dropped
            # the connection with it (1153, a packet over max_allowed_packet), and the cleanup's
            # lost connection must not replace a permanent error with a retryable one. The next
            # rehearsal drops the scratch table first.
            with suppress(pymysql.MySQLError), conn.cursor() as cur:
                cur.execute(f"DROP TABLE IF EXISTS {quote_ident(scratch)}")
            with suppress(pymysql.MySQLError):
                conn.close()
            raise
        try:
            with conn.cursor() as cur:
                cur.execute(f"DROP TABLE IF EXISTS {quote_ident(scratch)}")
        except pymysql.MySQLError as exc:
            raise classify(exc, f"removing the scratch table {scratch}") from exc
        finally:
            conn.close()
        return statement

    def _rehearse_on(
        self, conn: pymysql.Connection, scratch: str, namespace: str, change: TableChange
    ) -> _Statement:
        ddl = _clean(namespace, change)
        try:
            with conn.cursor() as cur:
                _guard(cur, namespace, change.table)
                cur.execute(f"DROP TABLE IF EXISTS {quote_ident(scratch)}")
                if change.action == "create":
                    cur.execute(retarget(ddl, scratch))
                    expected = self._table_fingerprint(cur, scratch)
                    return _Statement(namespace, change.table, "create", ddl, None, expected)
                if change.action == "drop":
                    # The rule for an absent table is decided here, at the first attempt, and kept
                    # in the resume state (`absent`) before anything runs: a later attempt that
                    # finds the table gone after our own DROP says "dropped", never "absent".
                    if self._show_create(cur, change.table) is not None:
                        return _Statement(namespace, change.table, "drop", ddl, None, None)
                    if not drop_if_exists(ddl):
                        raise PermanentEngineError(absent_table_message(f"{namespace}.{change.table}"))
                    return _Statement(namespace, change.table, "drop", ddl, None, None, absent=True)
                if _REBUILDING_PARTITION_CLAUSES.search(ddl):
                    raise PermanentEngineError(
                        f"{namespace}.{change.table}: repartitioning rebuilds the whole table; "
                        "use the spirit engine (--engine spirit) for an online change"
                    )
                if self._show_create(cur, change.table) is None:
                    raise PermanentEngineError(f"table {namespace}.{change.table} does not exist")
                cur.execute(f"CREATE TABLE {quote_ident(scratch)} LIKE {quote_ident(change.table)}")
                algorithm = self._cheapest_algorithm(cur, scratch, change.table, ddl)
                expected = self._table_fingerprint(cur, scratch)
                return _Statement(namespace, change.table, "alter", ddl, algorithm, expected)
        except pymysql.MySQLError as exc:
            raise classify(exc, f"checking {_quoted(change.ddl)} on {namespace}.{change.table}") from exc

    def _cheapest_algorithm(self, cur: Any, scratch: str, table: str, ddl: str) -> str:
        reasons = []
        for clause in ("ALGORITHM=INSTANT", "ALGORITHM=INPLACE, LOCK=NONE"):
            try:
                cur.execute(add_algorithm(retarget(ddl, scratch), clause))
                return clause
            except pymysql.MySQLError as exc:
                if not (exc.args and exc.args[0] in NOT_SUPPORTED):
                    raise
                reasons.append(str(exc.args[1]) if len(exc.args) > 1 else str(exc))
        raise PermanentEngineError(
            f"{table}: this ALTER would copy the table ({reasons[-1]}); "
            "use the spirit engine (--engine spirit) for an online copy"
        )

    # -- contract -------------------------------------------------------------------------------

    def apply(self, request: ApplyRequest) -> ApplyResult:
        state = request.resume_state
        if state and state.get("format") == FORMAT and state.get("context") == request.context:
            done = sum(1 for s in state["statements"] if s["done"])
            return ApplyResult(
                accepted=True,
                resume_state=state,
                reattached=True,
                resume_point=f"{done} of {len(state['statements'])} statements done",
                message="reattached",
            )
        try:
            statements = [
                self._rehearse(request.context, ns.namespace, change)
                for ns in request.changes
                for change in ns.tables
            ]
        except _Busy as busy:
            return ApplyResult(accepted=False, message=str(busy))
        new_state: ResumeState = {
            "format": FORMAT,
            "engine": self.name,
            "context": request.context,
            "cutover_requested": False,
            "stopped": False,
            "statements": [s.to_json() for s in statements],
        }
        return ApplyResult(
            accepted=True, resume_state=new_state, message=f"{len(statements)} statement(s) checked"
        )

    def progress(self, request: ProgressRequest) -> ProgressResult:
        state = self._state(request)
        statements = [_Statement(**s) for s in state["statements"]]
        if state.get("stopped"):
            return self._report(statements, EngineState.STOPPED, state, "stopped")
        if request.options.defer_cutover and not state.get("cutover_requested"):
            return self._report(statements, EngineState.WAITING_FOR_CUTOVER, state, "waiting for cutover")
        deadline = time.monotonic() + request.step_budget
        events: list[str] = []
        for statement in statements:
            if statement.done:
                continue
            if time.monotonic() >= deadline:
                break
            try:
                outcome = self._run(statement, request.step_budget)
            except _Interrupted as lost:
                statement.interrupted += 1
                request.save_state({**state, "statements": [s.to_json() for s in statements]})
                if statement.interrupted >= MAX_INTERRUPTIONS:
                    raise PermanentEngineError(
                        f"{lost.error} -- the server dropped the connection {statement.interrupted} times "
                        "in a row while running this statement, so it is the statement, not the network; "
                        "not retried again"
                    ) from lost.error
                raise lost.error from None
            if outcome is None:  # metadata lock busy: try again next step
                return self._report(
                    statements,
                    EngineState.RUNNING,
                    state,
                    f"waiting for a metadata lock on {statement.namespace}.{statement.table}",
                )
            statement.done = True
            statement.outcome = outcome
            events.append(outcome)
            state = {**state, "statements": [s.to_json() for s in statements]}
            request.save_state(state)  # persist after each statement, so it is never re-run
        finished = all(s.done for s in statements)
        overall = EngineState.COMPLETED if finished else EngineState.RUNNING
        return self._report(statements, overall, state, "done" if finished else "running", events)

    def _state(self, request: ProgressRequest | ControlRequest) -> ResumeState:
        state = request.resume_state
        if not state or state.get("format") != FORMAT:
            raise PermanentEngineError("the direct engine has no resume state for this operation")
        return state

    def _run(self, statement: _Statement, budget: float) -> str | None:
        """Run one statement unless the table already shows its effect; None if lock-busy."""
        conn = self._connect(statement.namespace)
        try:
            with conn.cursor() as cur:
                try:
                    _guard(cur, statement.namespace, statement.table)
                except _Busy:
                    return None  # try again next step
                current = self._table_fingerprint(cur, statement.table)
                if statement.action == "drop" and current is None:
                    if statement.absent:
                        return already_absent_message(f"{statement.namespace}.{statement.table}")
                    return f"{statement.table}: dropped (by an earlier attempt of this operation)"
                if statement.action in ("create", "alter") and current == statement.expected:
                    return f"{statement.table}: already applied"
                if statement.action == "create" and current is not None:
                    raise PermanentEngineError(
                        f"table {statement.namespace}.{statement.table} already exists "
                        "with another definition"
                    )
                # A DDL waits for every open transaction on the table; wait at most one step.
                cur.execute(f"SET SESSION lock_wait_timeout = {max(1, int(budget))}")
                ddl = statement.ddl
                if statement.action == "alter" and statement.algorithm:
                    ddl = add_algorithm(ddl, statement.algorithm)
                try:
                    cur.execute(ddl)
                except pymysql.MySQLError as exc:
                    if error_kind(exc) is MysqlErrorKind.CONNECTION:
                        raise _Interrupted(classify(exc, f"running {_quoted(statement.ddl)}")) from exc
                    raise
                return f"{statement.table}: {statement.action} done" + (
                    f" ({statement.algorithm})" if statement.algorithm else ""
                )
        except pymysql.MySQLError as exc:
            if error_kind(exc) is MysqlErrorKind.LOCK_WAIT:
                return None
            if exc.args and exc.args[0] in NOT_SUPPORTED:
                raise PermanentEngineError(
                    f"{statement.table}: the server now refuses {statement.algorithm} ({exc.args[-1]}); "
                    "use the spirit engine (--engine spirit)"
                ) from exc
            raise classify(exc, f"running {_quoted(statement.ddl)}") from exc
        finally:
            conn.close()

    def _report(
        self,
        statements: list[_Statement],
        overall: EngineState,
        state: ResumeState,
        message: str,
        events: list[str] | None = None,
    ) -> ProgressResult:
        tables = [
            TableProgress(
                namespace=s.namespace,
                table=s.table,
                state=EngineState.COMPLETED if s.done else overall,
                percent=100.0 if s.done else 0.0,
                message=s.outcome or "",
            )
            for s in statements
        ]
        return ProgressResult(
            state=overall, tables=tables, resume_state=state, message=message, events=events or []
        )

    # -- controls -------------------------------------------------------------------------------

    def _set(self, request: ControlRequest, **flags: bool) -> ControlResult:
        state = {**self._state(request), **flags}
        request.save_state(state)
        return ControlResult(accepted=True, resume_state=state)

    def cutover(self, request: ControlRequest) -> ControlResult:
        return self._set(request, cutover_requested=True)

    def stop(self, request: ControlRequest) -> ControlResult:
        return self._set(request, stopped=True)

    def start(self, request: ControlRequest) -> ControlResult:
        return self._set(request, stopped=False)

    def cancel(self, request: ControlRequest) -> ControlResult:
        state = self._state(request)
        done = [s["table"] for s in state["statements"] if s["done"]]
        note = f"; already applied and kept: {', '.join(done)}" if done else ""
        return ControlResult(accepted=True, resume_state=state, message=f"cancelled{note}")
