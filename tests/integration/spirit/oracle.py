"""The fidelity oracle (docs/architecture.md §8 invariant 7): what spirit gives must be what a
plain blocking `ALTER TABLE` gives.

`run_case` creates a table, starts writers (inserts, updates, primary key changes, deletes) and
runs spirit with a deferred cutover. When spirit reaches `waiting_for_cutover` the writers stop,
the table is copied into another schema (`CREATE TABLE ... LIKE`, `INSERT ... SELECT`, and the
source's AUTO_INCREMENT counter), the user's ALTER runs there as a blocking ALTER, spirit cuts
over, and the two tables are compared: rows (an order-independent digest of every column of every
row), `SHOW CREATE TABLE` (AUTO_INCREMENT= taken out) and the AUTO_INCREMENT counter.

Where spirit fails instead, the writers stop and the blocking ALTER runs on a copy taken then: it
must fail too, and the table must be exactly as before (its definition unchanged, no triggers,
no shadow or old table, no sentinel, no unfinished checkpoint). Where the case says spirit refuses
the statement by design, the refusal must come before anything was created.

The writers' errors are recorded: an error caused by the engine (the triggers refusing an
application's write) fails the case. Lock waits and deadlocks are counted, not judged (they are
the subject of the copy's gentleness, not of its fidelity).
"""

from __future__ import annotations

import hashlib
import random
import re
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pymysql

from engines.base import (
    ControlRequest,
    EngineState,
    OperationRequest,
    PermanentEngineError,
    RetryableEngineError,
)
from engines.spirit import SpiritEngine
from tests.integration.spirit.support import Worker, checkpoint_row, engine, request, run_until, wait_for
from tests.support.mariadb import connect

Verdict = Literal["identical", "fails", "refused"]
Values = Callable[[random.Random], dict[str, Any]]
TOLERATED_WRITER_ERRORS = frozenset({1205, 1213})  # lock wait, deadlock: not fidelity


@dataclass(frozen=True)
class Case:
    """One table, one ALTER, and what the writers write.

    `values(rng)` gives the non-key columns of an insert or update (the seed rows use it too);
    `make_key(n)` the key of row n (a tuple in `key` order). `seed_sql` runs after the seed
    rows, in the seed session. `sql_mode`/`time_zones` are the writers' (and seed's) session
    settings. `expect` is what spirit must do; `errors` the server error codes a failure may
    carry (the blocking ALTER's, and the equivalent one of a row-by-row write).
    """

    name: str
    create: str
    alter: str
    values: Values
    rows: int = 300
    key: tuple[str, ...] = ("id",)
    make_key: Callable[[int], tuple[Any, ...]] = lambda n: (n + 1,)
    seed_sql: Sequence[str] = ()
    sql_mode: str | None = None
    time_zones: Sequence[str] = ()
    writers: int = 2
    expect: Verdict = "identical"
    errors: frozenset[int] = frozenset()
    auto_key: bool = False
    """Inserts leave the key to AUTO_INCREMENT (the key must be a single integer column)."""
    refused_with: str = ""
    """For `refused`: a phrase the refusal must contain."""
    writer_values: Values | None = None
    """What the writers write, when it differs from the seed's `values`."""


@dataclass
class Outcome:
    verdict: Verdict
    message: str = ""
    blocking_error: tuple[int, str] | None = None
    writes: Counter[str] = field(default_factory=Counter)
    writer_errors: Counter[int] = field(default_factory=Counter)
    killed_in: str | None = None
    """The phase the checkpoint was in when the worker was killed (None: no kill, or the worker
    ended by itself first)."""


class Writers:
    """Threads writing through the case's session settings, each owning its own keys."""

    def __init__(self, schema: str, case: Case) -> None:
        self.schema, self.case = schema, case
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.errors: Counter[int] = Counter()
        self.messages: dict[int, str] = {}
        self.threads = [
            threading.Thread(target=self._run, args=(t,), daemon=True) for t in range(case.writers)
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def join(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def total(self) -> int:
        with self.lock:
            return sum(self.counts.values())

    def _run(self, thread: int) -> None:
        case = self.case
        rng = random.Random(1000 + thread)
        conn = connect(self.schema)
        mine = [case.make_key(n) for n in range(case.rows) if n % case.writers == thread]
        serial = 0
        where = " AND ".join(f"`{c}` = %s" for c in case.key)
        with conn.cursor() as cur:
            session(cur, case, thread)
            cur.execute("SET SESSION innodb_lock_wait_timeout = 2")
            while not self.stop.is_set():
                op = rng.choice(["insert", "update", "update", "delete", "pk_change"])
                if not mine:
                    op = "insert"
                serial += 1
                n = 1_000_000 + thread * 100_000 + serial
                # Keys given by hand never meet the ones AUTO_INCREMENT hands out.
                fresh = (-n,) if case.auto_key else case.make_key(n)
                values = (case.writer_values or case.values)(rng)
                index = rng.randrange(len(mine)) if mine else 0
                try:
                    if op == "insert":
                        cols = list(values) if case.auto_key else [*case.key, *values]
                        params = list(values.values())
                        if not case.auto_key:
                            params = [*fresh, *params]
                        marks = ", ".join(["%s"] * len(cols))
                        names = ", ".join(f"`{c}`" for c in cols)
                        cur.execute(f"INSERT INTO t ({names}) VALUES ({marks})", params)
                        mine.append((cur.lastrowid,) if case.auto_key else fresh)
                    elif op == "update":
                        sets = ", ".join(f"`{c}` = %s" for c in values)
                        cur.execute(
                            f"UPDATE t SET {sets} WHERE {where}", [*values.values(), *mine[index]]
                        )
                    elif op == "delete":
                        cur.execute(f"DELETE FROM t WHERE {where}", list(mine.pop(index)))
                    else:
                        sets = ", ".join(f"`{c}` = %s" for c in case.key)
                        cur.execute(f"UPDATE t SET {sets} WHERE {where}", [*fresh, *mine[index]])
                        mine[index] = fresh
                except pymysql.MySQLError as error:
                    code = int(error.args[0]) if error.args else -1
                    with self.lock:
                        self.errors[code] += 1
                        self.messages.setdefault(code, str(error))
                    continue
                with self.lock:
                    self.counts[op] += 1
        conn.close()

    def engine_caused(self) -> dict[int, str]:
        return {c: self.messages[c] for c in self.errors if c not in TOLERATED_WRITER_ERRORS}


def session(cur: Any, case: Case, thread: int = 0) -> None:
    if case.sql_mode is not None:
        cur.execute("SET SESSION sql_mode = %s", (case.sql_mode,))
    if case.time_zones:
        cur.execute("SET SESSION time_zone = %s", (case.time_zones[thread % len(case.time_zones)],))


def seed(schema: str, case: Case) -> None:
    conn = connect(schema)
    rng = random.Random(7)
    with conn.cursor() as cur:
        session(cur, case)
        cur.execute(case.create)
        rows = []
        for n in range(case.rows):
            values = case.values(rng)
            rows.append((case.make_key(n), values))
        if rows:
            cols = [*case.key, *rows[0][1]]
            names = ", ".join(f"`{c}`" for c in cols)
            marks = ", ".join(["%s"] * len(cols))
            cur.executemany(
                f"INSERT INTO t ({names}) VALUES ({marks})",
                [[*k, *v.values()] for k, v in rows],
            )
        for sql in case.seed_sql:
            cur.execute(sql)
    conn.close()


# -- reading tables -------------------------------------------------------------------------------

_AUTO = re.compile(r" AUTO_INCREMENT=(\d+)")


def show_create(cur: Any, schema: str, table: str = "t") -> str:
    cur.execute(f"SHOW CREATE TABLE `{schema}`.`{table}`")
    return str(cur.fetchone()[1])


def definition(cur: Any, schema: str, table: str = "t") -> str:
    """SHOW CREATE TABLE without the counter and with the table named `t`."""
    sql = _AUTO.sub("", show_create(cur, schema, table))
    return re.sub(r"^CREATE TABLE `(?:[^`]|``)+`", "CREATE TABLE `t`", sql)


def counter(cur: Any, schema: str, table: str = "t") -> int | None:
    match = _AUTO.search(show_create(cur, schema, table))
    return int(match[1]) if match else None


def rows_digest(cur: Any, schema: str, table: str = "t") -> tuple[int, str, Counter[tuple[Any, ...]]]:
    """(rows, an order-independent digest of every column of every row, the rows)."""
    cur.execute(f"SELECT * FROM `{schema}`.`{table}`")
    rows = Counter(tuple(r) for r in cur.fetchall())
    digest = hashlib.sha256()
    for line in sorted(repr(r) for r in rows.elements()):
        digest.update(line.encode())
    return sum(rows.values()), digest.hexdigest(), rows


def leftovers(cur: Any, schema: str) -> list[str]:
    """Anything spirit leaves on a table it no longer works on."""
    found = []
    cur.execute(
        "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s", (schema,)
    )
    found += [f"trigger {r[0]}" for r in cur.fetchall()]
    cur.execute("SHOW TABLES")
    tables = {str(r[0]) for r in cur.fetchall()}
    found += [f"table {n}" for n in sorted(tables - {"t", "_sb_spirit_checkpoint"})]
    if "_sb_spirit_checkpoint" in tables:
        cur.execute(
            f"SELECT table_name, context, phase FROM `{schema}`._sb_spirit_checkpoint "
            "WHERE phase NOT IN ('done', 'cancelled', 'failed')"
        )
        found += [f"unfinished checkpoint {r}" for r in cur.fetchall()]
    return found


def copy_table(cur: Any, source: str, target: str, case: Case) -> None:
    """`target`.t := `source`.t as it is now: definition, rows, AUTO_INCREMENT counter."""
    session(cur, case)
    cur.execute("SET SESSION sql_mode = CONCAT(@@SESSION.sql_mode, ',NO_AUTO_VALUE_ON_ZERO')")
    cur.execute(f"CREATE TABLE `{target}`.t LIKE `{source}`.t")
    cur.execute(
        "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s "
        "AND TABLE_NAME = 't' AND COALESCE(GENERATION_EXPRESSION, '') = '' "
        "ORDER BY ORDINAL_POSITION",
        (source,),
    )
    cols = ", ".join(f"`{r[0]}`" for r in cur.fetchall())
    cur.execute(f"INSERT INTO `{target}`.t ({cols}) SELECT {cols} FROM `{source}`.t")
    value = counter(cur, source)
    if value is not None:
        cur.execute(f"ALTER TABLE `{target}`.t AUTO_INCREMENT = {value}")


def blocking_alter(oracle_schema: str, case: Case) -> tuple[int, str] | None:
    """Run the case's ALTER on the copy as a plain blocking ALTER; the error, if any. It runs
    in a session like the engine's (the server's sql_mode), in UTC."""
    conn = connect(oracle_schema)
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION time_zone = '+00:00'")
            try:
                cur.execute(case.alter)
            except pymysql.MySQLError as error:
                return int(error.args[0]), str(error.args[1])
        return None
    finally:
        conn.close()


# -- the run --------------------------------------------------------------------------------------


def control(req: OperationRequest) -> ControlRequest:
    return ControlRequest(context=req.context, changes=req.changes, options=req.options)


def cut_over_and_compare(
    eng: SpiritEngine, req: OperationRequest, cur: Any, schema: str, oracle_schema: str, case: Case
) -> None:
    """For a run waiting for its cutover (the writers stopped): the same rows through a blocking
    ALTER in `oracle_schema`, then the cutover; the table must end exactly as the oracle's, with
    nothing of the engine's left behind."""
    copy_table(cur, schema, oracle_schema, case)
    assert blocking_alter(oracle_schema, case) is None
    assert eng.cutover(control(req)).accepted
    run_until(eng, req)
    assert leftovers(cur, schema) == []
    assert definition(cur, schema) == definition(cur, oracle_schema)
    assert rows_digest(cur, schema)[1] == rows_digest(cur, oracle_schema)[1]


def _drive(
    eng: SpiritEngine,
    req: OperationRequest,
    kill_mid_copy: bool,
    schema: str,
    outcome: Outcome,
    kill_with: dict[str, Any] | None = None,
) -> str | None:
    """Drive spirit to waiting_for_cutover; the permanent error's message if it failed."""
    if kill_mid_copy:
        # The worker SIGKILLs itself inside the transaction of its 4th copied chunk (or where
        # `kill_with`, a worker.py hook, says).
        hooks = kill_with or {"die_mid_copy_after": 4}
        worker = Worker(schema, req, pause=0.01, stop_when_waiting=True, **hooks)
        code = worker.wait(timeout=60)
        _, err = worker.proc.communicate(timeout=10)
        text = err.decode(errors="replace")
        if code == -9:
            row = checkpoint_row(schema, "t", req.context)
            outcome.killed_in = str(row["phase"]) if row else None
        elif "PermanentEngineError" in text:
            return text.strip().splitlines()[-1]
    try:
        retries = 0
        while True:
            try:
                eng.apply(req)
                break
            except RetryableEngineError:
                retries += 1
                assert retries < 20, "apply kept failing"
        for _ in range(5000):
            try:
                result = eng.progress(req)
            except RetryableEngineError:
                # The orchestrator retries these (a deadlock with the writers, a lock wait).
                retries += 1
                assert retries < 50, "too many retryable failures"
                continue
            if result.state == EngineState.WAITING_FOR_CUTOVER:
                return None
            if result.state in (EngineState.COMPLETED, EngineState.CANCELLED):
                raise AssertionError(f"unexpected {result.state} before the cutover: {result}")
        raise AssertionError("spirit did not reach waiting_for_cutover")
    except PermanentEngineError as error:
        return str(error)


def run_case(
    schema: str,
    oracle_schema: str,
    case: Case,
    *,
    kill_mid_copy: bool = False,
    kill_with: dict[str, Any] | None = None,
    step_budget: float = 0.03,
    options: dict[str, Any] | None = None,
    **more_options: Any,
) -> Outcome:
    """Run `case` through spirit and through a blocking ALTER; assert they agree (see the module
    docstring) and return what happened. `options` and `more_options`: engine options besides the
    oracle's own (small fixed chunks), e.g. `copy_lanes`, `change_source`."""
    seed(schema, case)
    conn = connect(schema)
    cur = conn.cursor()
    original = definition(cur, schema)
    original_counter = counter(cur, schema)
    writers = Writers(schema, case)
    req = request(
        [(schema, "t", case.alter)],
        context=f"fid-{case.name}",
        defer_cutover=True,
        step_budget=step_budget,
        **{"chunk_rows": 25, **(options or {}), **more_options},
    )
    eng = engine(schema)
    outcome = Outcome("identical", writes=writers.counts, writer_errors=writers.errors)
    writers.start()
    try:
        wait_for(lambda: writers.total() >= 20 or case.writers == 0, 30, "the writers to start")
        failure = _drive(eng, req, kill_mid_copy, schema, outcome, kill_with)
    finally:
        writers.join()
    try:
        assert not writers.engine_caused(), f"writes failed during the change: {writers.messages}"
        if failure is not None:
            outcome.message = failure
            _judge_failure(cur, schema, oracle_schema, case, original, outcome)
            return outcome
        assert case.expect == "identical", (
            f"spirit reached waiting_for_cutover; the case expects {case.expect}"
        )
        at_stop_counter = counter(cur, schema)
        copy_table(cur, schema, oracle_schema, case)
        blocked = blocking_alter(oracle_schema, case)
        assert blocked is None, f"the blocking ALTER failed {blocked} but spirit did not"
        assert eng.cutover(control(req)).accepted
        for _ in range(200):
            if eng.progress(req).state == EngineState.COMPLETED:
                break
        else:
            raise AssertionError("no cutover")
        assert leftovers(cur, schema) == []
        assert definition(cur, schema) == definition(cur, oracle_schema)
        got_rows, got_digest, got = rows_digest(cur, schema)
        want_rows, want_digest, want = rows_digest(cur, oracle_schema)
        if got_digest != want_digest:
            missing = list((want - got).elements())[:5]
            extra = list((got - want).elements())[:5]
            raise AssertionError(
                f"rows differ ({got_rows} vs blocking {want_rows}); only in the blocking "
                f"result: {missing}; only in spirit's: {extra}"
            )
        got_counter, want_counter = counter(cur, schema), counter(cur, oracle_schema)
        assert got_counter == want_counter, (got_counter, want_counter)
        if got_counter is not None:
            assert got_counter >= (at_stop_counter or 0) >= (original_counter or 0)
        return outcome
    finally:
        cur.close()
        conn.close()
        eng.close()


def _judge_failure(
    cur: Any, schema: str, oracle_schema: str, case: Case, original: str, outcome: Outcome
) -> None:
    assert case.expect != "identical", f"spirit failed where it should not: {outcome.message}"
    assert leftovers(cur, schema) == [], outcome.message
    assert definition(cur, schema) == original, "the table's definition changed"
    if case.expect == "refused":
        outcome.verdict = "refused"
        assert "preflight" in outcome.message or "refused" in outcome.message, outcome.message
        assert case.refused_with in outcome.message, outcome.message
        return
    outcome.verdict = "fails"
    copy_table(cur, schema, oracle_schema, case)
    outcome.blocking_error = blocking_alter(oracle_schema, case)
    assert outcome.blocking_error is not None, (
        f"spirit failed ({outcome.message}) but the blocking ALTER succeeds"
    )
    codes = {outcome.blocking_error[0], *case.errors}
    assert any(f"({c})" in outcome.message for c in codes), (
        f"spirit's failure does not carry the server's reason {codes}: {outcome.message}; "
        f"blocking ALTER: {outcome.blocking_error}"
    )
    # The table takes writes again, as before the change.
    cur.execute(f"SELECT COUNT(*) FROM `{schema}`.t")
    cur.fetchall()
