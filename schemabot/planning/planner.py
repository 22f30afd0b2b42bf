"""Building a plan (issue 13): what an apply would do, without doing it.

For each statement the plan gives the table, the normalised DDL, how the server would run it
(INSTANT, INPLACE without lock, or COPY, learned by rehearsing it on an empty copy of the table in
a scratch schema), the engine `auto` picks and why, a row estimate and, for a copy, a duration
estimate, the chosen engine's preflight verdicts, and lint findings. The target's schemas are
only read; every scratch schema is dropped when the plan ends, whatever happened.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymysql

from engines.base import PermanentEngineError, TableChange
from engines.direct import _REBUILDING_PARTITION_CLAUSES, DirectEngine
from engines.mysql.connections import connect
from engines.mysql.ddl_text import add_algorithm, retarget, strip_comments
from engines.targets import Target, redact
from schemabot.ddl import check_namespace, parse_ddl
from schemabot.errors import ValidationError
from schemabot.planning import lint
from schemabot.planning.differ import TableDiff, diff_table
from schemabot.planning.engine_choice import COPY, INPLACE, INSTANT, choose_engine
from schemabot.planning.schema_dir import DesiredTable, read_schema_dir
from schemabot.planning.scratch import (
    DesiredSchemaError,
    load_desired,
    read_tables,
    row_estimates,
    scratch_schema,
)
from schemabot.planning.tabledef import TableDef, UnsupportedTable, quote
from schemabot.planning.vschema_files import VSCHEMA_FILE, read_vschemas

PLAN_VERSION = 1
ENGINES = ("auto", "direct", "spirit", "planetscale")


@dataclass
class PlannedStatement:
    namespace: str
    table: str
    action: str
    ddl: str
    algorithm: str | None = None
    engine: str | None = None
    engine_reason: str | None = None
    rows_estimate: int | None = None
    duration_seconds: float | None = None
    preflight: list[dict[str, str]] = field(default_factory=list)
    findings: list[lint.Finding] = field(default_factory=list)
    diff: str | None = None  # Vitess: the deploy request's diff of this table (lines -, + or space)

    def to_dict(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "table": self.table,
            "action": self.action,
            "ddl": self.ddl,
            "algorithm": self.algorithm,
            "engine": self.engine,
            "engine_reason": self.engine_reason,
            "rows_estimate": self.rows_estimate,
            "duration_seconds": self.duration_seconds,
            "preflight": self.preflight,
            "findings": [f.to_dict() for f in self.findings],
            "diff": self.diff,
        }


@dataclass
class Plan:
    target: str
    platform: str
    engine: str
    source: str  # ddl | schema_dir
    allow_unsafe: bool
    copy_rate: float
    copy_rate_source: str
    statements: list[PlannedStatement] = field(default_factory=list)
    findings: list[lint.Finding] = field(default_factory=list)  # not tied to a statement
    disabled_rules: list[str] = field(default_factory=list)
    elapsed_seconds: float = 0.0
    # Vitess only (planning/vitess.py): the plan branch, its deploy request (never deployed) and
    # the VSchema changes [{"namespace", "document", "diff"}].
    vitess: dict[str, Any] | None = None

    @property
    def all_findings(self) -> list[lint.Finding]:
        return self.findings + [f for s in self.statements for f in s.findings]

    @property
    def blocking(self) -> bool:
        return any(f.blocking for f in self.all_findings)

    @property
    def unsafe(self) -> list[lint.Finding]:
        """Destructive findings (let through only with allow_unsafe)."""
        return [f for f in self.all_findings if f.destructive]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": PLAN_VERSION,
            "target": self.target,
            "platform": self.platform,
            "engine": self.engine,
            "source": self.source,
            "allow_unsafe": self.allow_unsafe,
            "blocking": self.blocking,
            "copy_rate": {"rows_per_second": round(self.copy_rate, 1), "source": self.copy_rate_source},
            "statements": [s.to_dict() for s in self.statements],
            "findings": [f.to_dict() for f in self.findings],
            "disabled_rules": self.disabled_rules,
            "elapsed_seconds": round(self.elapsed_seconds, 3),
            "vitess": self.vitess,
        }

    @property
    def vschemas(self) -> dict[str, dict[str, Any]]:
        """{keyspace: desired VSchema} of a Vitess plan: the apply's VSchema changes."""
        return {v["namespace"]: v["document"] for v in (self.vitess or {}).get("vschemas", [])}


class PlanInputError(ValidationError):
    """Bad input to the plan (exit code 2): unreadable files, a desired statement the server
    refuses, a change the differ does not plan."""


def _algorithm_label(clause: str) -> str:
    return INSTANT if "INSTANT" in clause else INPLACE


def rehearse_alter(
    cur: Any, scratch: str, live: TableDef, ddl: str, direct: DirectEngine
) -> tuple[str, TableDef]:
    """Run `ddl` on an empty copy of `live` in `scratch`: (algorithm, resulting definition).

    Uses the direct engine's own probe (INSTANT, then INPLACE with LOCK=NONE); when the server
    refuses both, runs it with ALGORITHM=COPY. A statement the server rejects raises
    pymysql.MySQLError with the server's message."""
    cur.execute(f"USE {quote(scratch)}")
    cur.execute("SET SESSION foreign_key_checks=0")
    try:
        cur.execute(f"DROP TABLE IF EXISTS {quote(live.name)}")
        cur.execute(live.text)
        if _REBUILDING_PARTITION_CLAUSES.search(ddl):
            cur.execute(retarget(ddl, live.name))
            algorithm = COPY
        else:
            try:
                clause = direct._cheapest_algorithm(cur, live.name, live.name, strip_comments(ddl))
                algorithm = _algorithm_label(clause)
            except PermanentEngineError:
                cur.execute(add_algorithm(retarget(ddl, live.name), "ALGORITHM=COPY"))
                algorithm = COPY
        after = read_tables(cur, scratch, [live.name])[live.name]
        cur.execute(f"DROP TABLE IF EXISTS {quote(live.name)}")
        return algorithm, after
    finally:
        cur.execute("SET SESSION foreign_key_checks=1")


def _server_message(exc: pymysql.MySQLError) -> str:
    return str(exc.args[1]) if len(exc.args) > 1 else str(exc)


def _rejected(table: str, exc: pymysql.MySQLError) -> lint.Finding:
    return lint.Finding(
        "SB900",
        "server-rejects",
        lint.ERROR,
        f"the server rejects the statement on an empty copy of {table}: {_server_message(exc)}",
        table,
    )


class Planner:
    def __init__(
        self,
        target: Target,
        *,
        engine: str = "auto",
        allow_unsafe: bool = False,
        disabled_rules: Sequence[str] = (),
        copy_rate: tuple[float, str] = (50_000.0, "default"),
    ) -> None:
        if engine not in ENGINES:
            raise ValidationError(f"unknown engine {engine!r} for a plan; use one of {', '.join(ENGINES)}")
        unknown = [r for r in disabled_rules if lint.lookup(r) is None]
        if unknown:
            raise ValidationError(f"unknown lint rule(s) disabled for {target.name}: {', '.join(unknown)}")
        self.target = target
        self.engine = engine
        self.allow_unsafe = allow_unsafe
        self.disabled = list(disabled_rules)
        self.rate, self.rate_source = copy_rate
        self.platform = "vitess" if target.scheme == "planetscale" else "mysql"
        self.direct = DirectEngine(target)  # its probe of the cheapest algorithm is the rehearsal
        if engine != "auto" and (engine == "planetscale") != (self.platform == "vitess"):
            raise ValidationError(f"engine {engine!r} cannot apply to target {target.name!r} ({target.scheme}://)")

    def _new_plan(self, source: str) -> Plan:
        return Plan(
            target=self.target.name,
            platform=self.platform,
            engine=self.engine,
            source=source,
            allow_unsafe=self.allow_unsafe,
            copy_rate=self.rate,
            copy_rate_source=self.rate_source,
            disabled_rules=self.disabled,
        )

    @contextmanager
    def _connection(self) -> Iterator[pymysql.Connection]:
        try:
            conn = connect(self.target)
        except pymysql.MySQLError as exc:
            raise PlanInputError(
                redact(f"cannot reach target {self.target.name}: {_server_message(exc)}")
            ) from None
        try:
            yield conn
        finally:
            conn.close()

    def default_namespace(self) -> str | None:
        from engines.targets import parse_mysql_dsn

        return parse_mysql_dsn(self.target.dsn).schema if self.platform == "mysql" else None

    # -- from DDL statements ----------------------------------------------------------------------

    def plan_ddl(self, statements: Sequence[str], namespace: str | None = None) -> Plan:
        started = time.monotonic()
        parsed = [parse_ddl(s) for s in statements]
        if not parsed:
            raise ValidationError("no DDL given: pass at least one statement")
        seen: set[str] = set()
        for p in parsed:
            if p.table.lower() in seen:
                raise ValidationError(
                    f"table {p.table} is changed twice; combine the changes into one statement"
                )
            seen.add(p.table.lower())
        if self.platform == "vitess":  # the deploy request's diff of a plan branch
            from schemabot.planning.vitess import VitessPlanner

            return VitessPlanner(self).plan_ddl(parsed, namespace)
        plan = self._new_plan("ddl")
        namespace = namespace or self.default_namespace()
        if not namespace:
            raise ValidationError("no namespace given and the target's DSN names no schema")
        for p in parsed:  # the rehearsal runs the statement: it must stay in the namespace
            check_namespace(p, namespace)
        with self._connection() as conn, conn.cursor() as cur, scratch_schema(conn, namespace) as scratch:
            rows = row_estimates(cur, namespace)
            for p in parsed:
                live = read_tables(cur, namespace, [p.table]).get(p.table) if p.table in rows else None
                item = PlannedStatement(namespace, p.table, p.action, p.statement)
                diff: TableDiff | None = None
                try:
                    if p.action == "create":
                        if live is not None:
                            item.findings.append(
                                lint.Finding(
                                    "SB900", "server-rejects", lint.ERROR, "the table already exists", p.table
                                )
                            )
                        cur.execute(f"USE {quote(scratch)}")
                        cur.execute(retarget(p.statement, p.table))
                        desired = read_tables(cur, scratch, [p.table])[p.table]
                        diff = diff_table(None, desired)
                    elif live is None:
                        item.findings.append(
                            lint.Finding(
                                "SB900",
                                "server-rejects",
                                lint.ERROR,
                                f"table {namespace}.{p.table} does not exist",
                                p.table,
                            )
                        )
                    elif p.action == "drop":
                        diff = diff_table(live, None)
                    else:
                        item.algorithm, after = rehearse_alter(cur, scratch, live, p.statement, self.direct)
                        diff = diff_table(live, after)
                        item.algorithm = _with_foreign_keys(diff, item.algorithm)
                except pymysql.MySQLError as exc:
                    item.findings.append(_rejected(p.table, exc))
                except UnsupportedTable:
                    diff = None  # a partition change: planned as given, not diffed
                if p.action == "alter":
                    item.findings += lint.clause_findings(
                        p.table, p.statement, allow_unsafe=self.allow_unsafe, disabled=self.disabled
                    )
                self._finish(cur, namespace, item, diff, rows)
                plan.statements.append(item)
        plan.elapsed_seconds = time.monotonic() - started
        return plan

    # -- from a schema directory --------------------------------------------------------------------

    def plan_schema_dir(self, path: str | Path, namespace: str | None = None) -> Plan:
        started = time.monotonic()
        desired_by_ns = read_schema_dir(path, namespace or self.default_namespace())
        vschemas = read_vschemas(path, namespace or self.default_namespace())
        if self.platform == "vitess":  # the deploy request's diff of a plan branch
            from schemabot.planning.vitess import VitessPlanner

            return VitessPlanner(self).plan_desired(desired_by_ns, vschemas)
        if vschemas:
            raise ValidationError(
                f"{VSCHEMA_FILE} is a Vitess VSchema; target {self.target.name} is MySQL ({self.target.scheme}://)"
            )
        plan = self._new_plan("schema_dir")
        with self._connection() as conn, conn.cursor() as cur:
            for ns, desired_tables in desired_by_ns.items():
                self._plan_namespace(conn, cur, ns, desired_tables, plan)
        plan.elapsed_seconds = time.monotonic() - started
        return plan

    def _plan_namespace(
        self, conn: pymysql.Connection, cur: Any, namespace: str, tables: list[DesiredTable], plan: Plan
    ) -> None:
        cur.execute("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME=%s", (namespace,))
        if cur.fetchone() is None:
            raise PlanInputError(f"namespace {namespace!r} does not exist on target {self.target.name}")
        with ExitStack() as stack:
            desired_schema = stack.enter_context(scratch_schema(conn, namespace))
            rehearsal_schema = stack.enter_context(scratch_schema(conn, namespace))
            try:
                load_desired(cur, desired_schema, [(t.origin, t.statement) for t in tables])
            except DesiredSchemaError as exc:
                raise PlanInputError(str(exc)) from None
            desired = read_tables(cur, desired_schema)
            live = read_tables(cur, namespace)
            rows = row_estimates(cur, namespace)
            names = [t.table for t in tables] + sorted(set(live) - {t.table for t in tables})
            for name in names:
                try:
                    diff = diff_table(live.get(name), desired.get(name))
                except UnsupportedTable as exc:
                    raise PlanInputError(str(exc)) from None
                if diff is None:
                    continue
                if diff.action == "drop" and not self.allow_unsafe:
                    plan.findings.append(
                        lint.Finding(
                            "SB001",
                            "drop-table",
                            lint.WARNING,
                            f"{namespace}.{name} exists but has no schema file: not dropped "
                            "(pass --allow-unsafe to drop it)",
                            name,
                            destructive=True,
                        )
                    )
                    continue
                item = PlannedStatement(namespace, name, diff.action, diff.statement)
                if diff.action == "alter":
                    assert diff.live is not None and diff.desired is not None
                    try:
                        item.algorithm, after = rehearse_alter(
                            cur, rehearsal_schema, diff.live, diff.statement, self.direct
                        )
                        if (
                            after.create_statement() != diff.desired.create_statement()
                            and not _only_key_order(after, diff.desired)
                        ):
                            item.findings.append(
                                lint.Finding(
                                    "SB901",
                                    "plan-mismatch",
                                    lint.ERROR,
                                    "a rehearsal of the planned ALTER does not give the table of the schema "
                                    "file; "
                                    "write this change by hand with --ddl",
                                    name,
                                )
                            )
                    except pymysql.MySQLError as exc:
                        item.findings.append(_rejected(name, exc))
                    item.algorithm = _with_foreign_keys(diff, item.algorithm)
                self._finish(cur, namespace, item, diff, rows)
                plan.statements.append(item)

    # -- common ---------------------------------------------------------------------------------------

    def _finish(
        self, cur: Any, namespace: str, item: PlannedStatement, diff: TableDiff | None, rows: dict[str, int]
    ) -> None:
        item.rows_estimate = _rows(cur, namespace, item.table, rows) if item.action != "create" else 0
        auto_engine, reason = choose_engine(self.platform, item.action, item.algorithm)
        if self.engine == "auto":
            item.engine, item.engine_reason = auto_engine, reason
        else:
            item.engine, item.engine_reason = self.engine, "asked for"
            if self.engine == "direct" and item.algorithm == COPY:
                item.findings.append(
                    lint.Finding(
                        "SB902",
                        "engine-cannot",
                        lint.ERROR,
                        "the direct engine refuses this ALTER: the server would copy the table; "
                        "use --engine spirit or auto",
                        item.table,
                    )
                )
        if item.algorithm == COPY:
            item.duration_seconds = round(item.rows_estimate / self.rate, 1) if self.rate > 0 else None
        if item.engine == "spirit" and item.action == "alter":
            item.preflight = _spirit_preflight(cur, namespace, item)
            item.findings += [
                lint.Finding("SB903", "preflight", lint.ERROR, p["message"], item.table)
                for p in item.preflight
                if p["verdict"] == "fail"
            ]
        if diff is not None:
            subject = lint.LintSubject(
                namespace, diff, item.rows_estimate or 0, query=_bounded_query(cur, namespace)
            )
            item.findings += lint.run_rules(subject, allow_unsafe=self.allow_unsafe, disabled=self.disabled)


ROW_COUNT_CAP = 100_000


def _with_foreign_keys(diff: TableDiff | None, algorithm: str | None) -> str | None:
    """The rehearsal runs without foreign key checks (the referenced tables are not in the scratch
    schema); with them, as on the live run, adding a foreign key copies the table."""
    if diff is not None and algorithm and any(k.kind == "FOREIGN KEY" for k in diff.added_keys):
        return COPY
    return algorithm


def _rows(cur: Any, namespace: str, table: str, estimates: dict[str, int]) -> int:
    """InnoDB's estimate; when it says 0 (statistics not yet gathered, as after a copy's cutover),
    a count bounded to ROW_COUNT_CAP rows."""
    estimate = estimates.get(table, 0)
    if estimate > 0 or table not in estimates:
        return estimate
    name = f"{quote(namespace)}.{quote(table)}"
    cur.execute(f"SELECT COUNT(*) FROM (SELECT 1 FROM {name} LIMIT {ROW_COUNT_CAP}) AS bounded")
    row = cur.fetchone()
    return int(row[0]) if row else 0


def _only_key_order(a: TableDef, b: TableDef) -> bool:
    def norm(t: TableDef) -> tuple[str, list[str]]:
        lines = t.create_statement().split("\n")
        keys = sorted(line.rstrip(",") for line in lines if line.startswith("  KEY "))
        return "\n".join("  KEY" if line.startswith("  KEY ") else line for line in lines), keys

    return norm(a) == norm(b)


def _bounded_query(cur: Any, namespace: str) -> Any:
    """A read-only query on the live schema, stopped by the server after 10 s (MariaDB's
    max_statement_time, else MySQL's MAX_EXECUTION_TIME hint). Raises lint.QueryTimeout then."""

    def query(sql: str) -> tuple[Any, ...] | None:
        cur.execute(f"USE {quote(namespace)}")
        try:
            cur.execute("SET STATEMENT max_statement_time=10 FOR " + sql)
        except pymysql.MySQLError as exc:
            if exc.args and exc.args[0] != 1064:  # interrupted, or any other refusal: not checked
                raise lint.QueryTimeout(_server_message(exc)) from None
            try:  # not MariaDB
                cur.execute(sql.replace("SELECT ", "SELECT /*+ MAX_EXECUTION_TIME(10000) */ ", 1))
            except pymysql.MySQLError as second:
                raise lint.QueryTimeout(_server_message(second)) from None
        row = cur.fetchone()
        return tuple(row) if row is not None else None

    return query


def _spirit_preflight(cur: Any, namespace: str, item: PlannedStatement) -> list[dict[str, str]]:
    """The spirit engine's preflight checks for this statement, with their verdicts."""
    try:
        from engines.spirit import check
        from engines.spirit.check.changesource import summary as change_source_summary
        from engines.spirit.check.gather import gather
        from engines.spirit.statement import parse_change
        from engines.spirit.tableinfo import read_table

        statement = parse_change(namespace, TableChange(table=item.table, ddl=item.ddl, action="alter"))
        facts = gather(cur, statement, read_table(cur, namespace, item.table), uses_copy=True)
        results = []
        for name, registered in sorted(check.registered().items()):
            if check.Phase.PREFLIGHT not in registered.phases:
                continue
            problem = registered.func(facts)
            message = problem or ""
            if name == "change_source" and not problem:
                message = change_source_summary(facts)  # which source the copy would use
            results.append(
                {"check": name, "verdict": "fail" if problem else "pass", "message": message}
            )
        return results
    except (PermanentEngineError, pymysql.MySQLError) as exc:
        return [{"check": "spirit", "verdict": "fail", "message": str(exc)}]
