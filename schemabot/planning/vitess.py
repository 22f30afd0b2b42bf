"""Plans for Vitess (PlanetScale) targets: the deploy request's diff (issue 13 §5; docs/architecture.md §5.9).

There is no server of our own to rehearse on, and what matters is what PlanetScale would deploy,
so the plan asks PlanetScale. The plan branch (`engines/planetscale/preview.py`: name, reuse,
lifetime) is made to hold exactly "main plus the change", then a deploy request from it into main
is opened (or the open one reused) and **never deployed**; its diff, per table and per VSchema,
is the plan. Main is only read.

Making the branch hold "main plus the change", per keyspace, over an admin connection to the
branch (tables on a development branch have no rows, so dropping and creating them is cheap):

- `--ddl`: each statement's table is reset to main's definition, then the statement runs; the
  server's refusal is a blocking finding (SB900), as on MySQL.
- `--schema-dir`: each desired `CREATE TABLE` is loaded in place of its table so the server
  normalises it (a refusal is bad input, exit 2); the differ (`planning/differ.py`) turns main's
  definition into it; the table is reset to main's and the planned statement runs, and the result
  must equal the file's table (else SB901, as on MySQL). Tables of main without a file are dropped
  only with `allow_unsafe` (else reported, SB001 warning). `vschema.json` sets the keyspace's VSchema.
- every other table and VSchema of the branch is reset to main's, so nothing else is in the diff.

The statements the plan shows are the ones an apply submits: the user's for `--ddl`, the
differ's for `--schema-dir`, with the desired VSchemas as the apply's VSchema changes.

Lint: the rules run on the change of each table (main's definition against the branch's). No row
counts are known on a Vitess target (none are read from main), so the data-dependent checks
(NOT NULL on a non-empty table, duplicates under a new UNIQUE key) are not run there. Column
character sets are compared as `SHOW CREATE TABLE` prints them.

A provider that does not answer in time, or refuses, is a `ProviderError` (exit 1, HTTP 503/502):
neither bad input nor a finding.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pymysql

from engines.base import EngineError, RetryableEngineError
from engines.mysql.ddl_text import retarget
from engines.planetscale.branch_sql import classify
from engines.planetscale.budget import OutOfBudget
from engines.planetscale.preview import (
    DeployRequestDiff,
    Expected,
    PlanBranch,
    document_text,
    plan_branch_name,
    same_vschema,
)
from engines.planetscale.target import PlanetScaleTarget
from engines.targets import redact
from schemabot.ddl import ParsedDDL
from schemabot.errors import ProviderError, ValidationError
from schemabot.planning import lint, vschema_lint
from schemabot.planning.differ import TableDiff, diff_table
from schemabot.planning.schema_dir import DesiredTable
from schemabot.planning.tabledef import TableDef, UnsupportedTable, parse_show_create, quote

if TYPE_CHECKING:
    from schemabot.planning.planner import Plan, PlannedStatement, Planner

PLAN_TIMEOUT_SECONDS = 120.0
_AUTO_INCREMENT = re.compile(r"\s+AUTO_INCREMENT=\d+")


def _norm(create: str | None) -> str | None:
    return None if create is None else _AUTO_INCREMENT.sub("", create).strip()


def _server_message(exc: pymysql.MySQLError) -> str:
    return str(exc.args[1]) if len(exc.args) > 1 else str(exc)


def _reraise_connection_problem(exc: pymysql.MySQLError) -> None:
    """A lost connection or a busy server says nothing about the statement: not a finding, but
    the provider failing (`ProviderError`, by way of `_plan`)."""
    if isinstance(classify(exc, "SQL on the plan branch"), RetryableEngineError):
        raise exc


@dataclass
class _Keyspace:
    """One keyspace as the plan sees it: main's tables, and the tables the plan has handled."""

    name: str
    main: dict[str, str]
    main_vschema: str
    handled: set[str] = field(default_factory=set)


class _Branch:
    """SQL on the plan branch, one keyspace at a time."""

    def __init__(self, conn: pymysql.Connection) -> None:
        self.cur = conn.cursor()
        self.keyspace: str | None = None

    def use(self, keyspace: str) -> None:
        if keyspace != self.keyspace:
            self.cur.execute(f"USE {quote(keyspace)}")
            self.cur.execute("SET SESSION foreign_key_checks=0")  # tables come and go in any order
            self.keyspace = keyspace

    def show(self, table: str) -> str | None:
        try:
            self.cur.execute(f"SHOW CREATE TABLE {quote(table)}")
        except pymysql.MySQLError as exc:
            if exc.args and exc.args[0] == 1146:
                return None
            raise
        row = self.cur.fetchone()
        return _norm(str(row[1])) if row else None

    def reset(self, table: str, main_create: str | None) -> None:
        """Make `table` on the branch what it is on main (absent when main has none)."""
        self.cur.execute(f"DROP TABLE IF EXISTS {quote(table)}")
        if main_create is not None:
            self.cur.execute(main_create)

    def close(self) -> None:
        self.cur.close()


def _document(text: str) -> dict[str, Any]:
    """Main's VSchema as a document ({} when it is empty or not an object)."""
    try:
        document = json.loads(text or "{}")
    except json.JSONDecodeError:
        return {}
    return document if isinstance(document, dict) else {}


def _definition(create: str | None) -> TableDef | None:
    return None if create is None else parse_show_create(create)


class VitessPlanner:
    """Plans for one Vitess target, with the planner's options (engine, allow_unsafe, rules)."""

    def __init__(self, planner: Planner, *, timeout: float = PLAN_TIMEOUT_SECONDS) -> None:
        self.planner = planner
        self.ps = PlanetScaleTarget.from_target(planner.target)
        self.timeout = timeout

    # -- entry points ----------------------------------------------------------------------------

    def plan_ddl(self, parsed: Sequence[ParsedDDL], namespace: str | None) -> Plan:
        key = {"source": "ddl", "namespace": namespace, "ddl": [p.statement for p in parsed]}

        def work(branch: _Branch, keyspaces: dict[str, _Keyspace], plan: Plan) -> dict[str, str]:
            names = list(keyspaces)
            if namespace is None and len(names) != 1:
                raise ValidationError(
                    f"--namespace is required: database {self.ps.database} has keyspaces {names}"
                )
            keyspace = keyspaces[namespace or names[0]]
            branch.use(keyspace.name)
            for p in parsed:
                plan.statements.append(self._run_statement(branch, keyspace, p))
            return {}

        return self._plan("ddl", key, [namespace] if namespace else [], work)

    def plan_desired(
        self, desired: dict[str, list[DesiredTable]], vschemas: dict[str, dict[str, Any]]
    ) -> Plan:
        key = {
            "source": "schema_dir",
            "allow_unsafe": self.planner.allow_unsafe,
            "tables": {ns: [(t.table, t.statement) for t in tables] for ns, tables in desired.items()},
            "vschemas": {ns: document_text(doc) for ns, doc in vschemas.items()},
        }

        def work(branch: _Branch, keyspaces: dict[str, _Keyspace], plan: Plan) -> dict[str, str]:
            for ns, tables in desired.items():
                self._plan_keyspace(branch, keyspaces[ns], tables, plan)
            return {ns: document_text(doc) for ns, doc in vschemas.items()}

        return self._plan("schema_dir", key, sorted(set(desired) | set(vschemas)), work)

    # -- the common frame ------------------------------------------------------------------------

    def _plan(
        self,
        source: str,
        key: dict[str, Any],
        namespaces: list[str],
        work: Callable[[_Branch, dict[str, _Keyspace], Plan], dict[str, str]],
    ) -> Plan:
        """Sync the plan branch (`work` handles the change, this the rest), then read the deploy
        request's diff onto the plan."""
        started = time.monotonic()
        plan = self.planner._new_plan(source)
        canonical = json.dumps(
            {"database": self.ps.database, "main": self.ps.main_branch, **key}, sort_keys=True, default=str
        )
        preview = PlanBranch(self.ps, plan_branch_name(canonical), timeout=self.timeout)
        reused, desired_vschemas, keyspaces = False, {}, {}
        try:
            names = preview.main_keyspaces()
            unknown = [ns for ns in namespaces if ns not in names]
            if unknown:
                raise ValidationError(
                    f"keyspace(s) {', '.join(unknown)} do not exist in database {self.ps.database} "
                    f"(it has {', '.join(names)})"
                )
            reused = preview.ensure()
            main = self.ps.main_branch
            keyspaces = {
                ks: _Keyspace(ks, preview.schema(main, ks), preview.vschema(main, ks)) for ks in names
            }
            before = {ks: preview.schema(preview.name, ks) for ks in names}
            before_vschemas = {ks: preview.vschema(preview.name, ks) for ks in names}
            branch = _Branch(preview.connection())
            try:
                desired_vschemas = work(branch, keyspaces, plan)
                for ks in keyspaces.values():  # nothing but the change may differ from main
                    branch.use(ks.name)
                    for table in sorted((set(before[ks.name]) | set(ks.main)) - ks.handled):
                        if _norm(before[ks.name].get(table)) != _norm(ks.main.get(table)):
                            branch.reset(table, ks.main.get(table))
            finally:
                branch.close()
            patched = False
            for ks in keyspaces.values():
                wanted = desired_vschemas.get(ks.name, ks.main_vschema)
                if not same_vschema(before_vschemas[ks.name], wanted):
                    preview.set_vschema(ks.name, wanted)
                    patched = True
            after = {ks: preview.schema(preview.name, ks) for ks in names}
            changed = patched or any(
                {t: _norm(c) for t, c in after[ks].items()} != {t: _norm(c) for t, c in before[ks].items()}
                for ks in names
            )
            expected = Expected(
                frozenset(
                    (ks.name, t)
                    for ks in keyspaces.values()
                    for t in set(after[ks.name]) | set(ks.main)
                    if _norm(after[ks.name].get(t)) != _norm(ks.main.get(t))
                ),
                frozenset(
                    ks.name
                    for ks in keyspaces.values()
                    if not same_vschema(desired_vschemas.get(ks.name, ks.main_vschema), ks.main_vschema)
                ),
            )
            dr = preview.deploy_request(branch_changed=changed, expected=expected)
        except (EngineError, OutOfBudget) as exc:
            transient = getattr(exc, "retryable", True)
            raise ProviderError(redact(f"{self.ps.api_url}: {exc}"), transient=transient) from None
        except pymysql.MySQLError as exc:
            raise ProviderError(
                redact(f"the plan branch {preview.name} failed: {_server_message(exc)}"), transient=True
            ) from None
        finally:
            preview.close()
        for ks in keyspaces.values():
            if ks.name in desired_vschemas:
                plan.findings += vschema_lint.findings(
                    ks.name,
                    _document(ks.main_vschema),
                    json.loads(desired_vschemas[ks.name]),
                    allow_unsafe=self.planner.allow_unsafe,
                    disabled=self.planner.disabled,
                )
        self._attach(plan, preview.name, reused, dr, desired_vschemas)
        plan.elapsed_seconds = time.monotonic() - started
        return plan

    def _attach(
        self, plan: Plan, branch: str, reused: bool, dr: DeployRequestDiff, vschemas: dict[str, str]
    ) -> None:
        """The deploy request's diff onto the plan: each table's diff text on its statement, the
        VSchema changes, and a blocking finding when PlanetScale says it cannot deploy it."""
        by_table = {(e.keyspace, e.name): e for e in dr.entries if e.kind != "vschema"}
        for item in plan.statements:
            entry = by_table.get((item.namespace, item.table))
            item.diff = entry.raw if entry else None
        changes = [
            {"namespace": e.keyspace, "document": json.loads(vschemas[e.keyspace]), "diff": e.raw}
            for e in dr.entries
            if e.kind == "vschema" and e.keyspace in vschemas
        ]
        if dr.state == "error":
            plan.findings.append(
                lint.Finding(
                    "SB904",
                    "provider-refuses",
                    lint.ERROR,
                    f"PlanetScale says deploy request #{dr.number} cannot be deployed: {dr.message}",
                    "",
                )
            )
        plan.vitess = {
            "branch": branch,
            "branch_reused": reused,
            "deploy_request": {
                "number": dr.number,
                "url": dr.url,
                "state": dr.state,
                "reused": dr.reused,
                "deployed": False,
            },
            "vschemas": changes,
        }

    # -- --ddl -------------------------------------------------------------------------------------

    def _run_statement(self, branch: _Branch, keyspace: _Keyspace, p: ParsedDDL) -> PlannedStatement:
        live = keyspace.main.get(p.table)
        item = self._item(keyspace.name, p.table, p.action, p.statement)
        keyspace.handled.add(p.table)
        branch.reset(p.table, live)
        if p.action == "drop" and live is None and p.if_exists:
            return item  # nothing to drop, and nothing refused
        if p.action == "create" and live is not None:
            item.findings.append(self._rejects(p.table, "the table already exists"))
            return item
        if p.action != "create" and live is None:
            item.findings.append(self._rejects(p.table, f"table {keyspace.name}.{p.table} does not exist"))
            return item
        try:
            if p.action == "drop":
                branch.cur.execute(f"DROP TABLE {quote(p.table)}")
            else:
                branch.cur.execute(retarget(p.statement, p.table))
        except pymysql.MySQLError as exc:
            _reraise_connection_problem(exc)
            branch.reset(p.table, live)
            item.findings.append(
                self._rejects(p.table, f"the branch rejects the statement: {_server_message(exc)}")
            )
            return item
        try:
            diff = diff_table(_definition(live), _definition(branch.show(p.table)))
        except UnsupportedTable:
            diff = None
        self._lint(keyspace.name, item, diff)
        return item

    # -- --schema-dir ------------------------------------------------------------------------------

    def _plan_keyspace(
        self, branch: _Branch, keyspace: _Keyspace, tables: list[DesiredTable], plan: Plan
    ) -> None:
        from schemabot.planning.planner import PlanInputError, _only_key_order

        branch.use(keyspace.name)
        desired: dict[str, TableDef] = {}
        for t in tables:  # the server normalises each file's table, in place on the branch
            keyspace.handled.add(t.table)
            try:
                branch.cur.execute(f"DROP TABLE IF EXISTS {quote(t.table)}")
                branch.cur.execute(retarget(t.statement, t.table))
            except pymysql.MySQLError as exc:
                _reraise_connection_problem(exc)
                raise PlanInputError(
                    f"{t.origin}: the server refuses the statement: {_server_message(exc)}"
                ) from None
            loaded = _definition(branch.show(t.table))
            assert loaded is not None
            desired[t.table] = loaded
        for t in tables:
            live = keyspace.main.get(t.table)
            try:
                diff = diff_table(_definition(live), desired[t.table])
            except UnsupportedTable as exc:
                raise PlanInputError(str(exc)) from None
            if diff is None:
                if _norm(desired[t.table].text) != _norm(live):  # alike, but not as printed
                    branch.reset(t.table, live)
                continue
            item = self._item(keyspace.name, t.table, diff.action, diff.statement)
            branch.reset(t.table, live)  # then what the apply will run, which must give the file's table
            try:
                branch.cur.execute(diff.statement)
                after = _definition(branch.show(t.table))
                wanted = desired[t.table]
                if after is None or (
                    after.create_statement() != wanted.create_statement()
                    and not _only_key_order(after, wanted)
                ):
                    item.findings.append(
                        lint.Finding(
                            "SB901",
                            "plan-mismatch",
                            lint.ERROR,
                            "the planned statement does not give the table of the schema file on the plan "
                            "branch; write this change by hand with --ddl",
                            t.table,
                        )
                    )
            except pymysql.MySQLError as exc:
                _reraise_connection_problem(exc)
                item.findings.append(self._rejects(t.table, f"the branch rejects it: {_server_message(exc)}"))
            self._lint(keyspace.name, item, diff)
            plan.statements.append(item)
        wanted_names = {t.table for t in tables}
        for name in sorted(set(keyspace.main) - wanted_names):
            if not self.planner.allow_unsafe:
                plan.findings.append(
                    lint.Finding(
                        "SB001",
                        "drop-table",
                        lint.WARNING,
                        f"{keyspace.name}.{name} exists but has no schema file: not dropped "
                        "(pass --allow-unsafe to drop it)",
                        name,
                        destructive=True,
                    )
                )
                continue  # reset to main's with the untouched tables
            keyspace.handled.add(name)
            branch.cur.execute(f"DROP TABLE IF EXISTS {quote(name)}")
            drop = diff_table(_definition(keyspace.main[name]), None)
            assert drop is not None
            item = self._item(keyspace.name, name, "drop", drop.statement)
            self._lint(keyspace.name, item, drop)
            plan.statements.append(item)

    # -- helpers -----------------------------------------------------------------------------------

    def _item(self, namespace: str, table: str, action: str, ddl: str) -> PlannedStatement:
        from schemabot.planning.engine_choice import choose_engine
        from schemabot.planning.planner import PlannedStatement

        engine, reason = choose_engine("vitess", action, None)
        if self.planner.engine != "auto":
            engine, reason = self.planner.engine, "asked for"
        return PlannedStatement(namespace, table, action, ddl, None, engine, reason)

    def _lint(self, namespace: str, item: PlannedStatement, diff: TableDiff | None) -> None:
        if diff is not None:
            subject = lint.LintSubject(namespace, diff, 0, query=None)
            item.findings += lint.run_rules(
                subject, allow_unsafe=self.planner.allow_unsafe, disabled=self.planner.disabled
            )

    @staticmethod
    def _rejects(table: str, message: str) -> lint.Finding:
        return lint.Finding("SB900", "server-rejects", lint.ERROR, message, table)
