"""The destructive-change guard of a plain apply (issue 13 §3: destructive changes need an
explicit --allow-unsafe; docs/architecture.md §5.1 and §5.9).

An apply submitted with raw DDL and a named engine is not planned. The text shows only some
destruction (`planning/destructive.py`); a narrowed type, a shorter VARCHAR or a charset that
cannot hold the data shows only against the live table. So for a MySQL target each ALTER is
rehearsed here exactly as the plan rehearses it (`planner.rehearse_alter` on an empty copy in a
scratch schema), the result diffed with the live table, and the plan's own destructive lint rules
run on the diff, with the target's disabled rules: a plan and a plain apply cannot disagree.

It fails closed: a target it cannot reach, or a change it cannot read, is refused with a message
saying to pass --allow-unsafe. A statement the server rejects on the empty copy is let through:
it would be rejected on the live table too, so it deletes nothing (the engine reports the
server's message). A table that does not exist has no rows to lose. An ALTER made only of ADD
clauses is not rehearsed (`destructive.only_additions` says why no destructive rule can fire).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pymysql

from engines.direct import DirectEngine
from engines.mysql.connections import connect
from engines.mysql.ddl_text import retarget
from engines.targets import Target, redact
from schemabot.planning import lint
from schemabot.planning.destructive import only_additions
from schemabot.planning.differ import diff_table
from schemabot.planning.planner import rehearse_alter
from schemabot.planning.scratch import read_tables, scratch_schema
from schemabot.planning.tabledef import TableDef, UnsupportedTable, quote


@dataclass(frozen=True)
class Alter:
    namespace: str
    table: str
    ddl: str


class GuardUnavailable(Exception):
    """The live check could not run (target unreachable); the caller refuses (fail closed)."""


def live_reasons(
    target: Target, alters: Sequence[Alter], disabled: Sequence[str] = ()
) -> list[tuple[str, str]]:
    """(ddl, why) for each ALTER the plan's destructive rules find destructive on the live table,
    or that cannot be checked. Raises GuardUnavailable when the target cannot be reached."""
    alters = [a for a in alters if not only_additions(a.ddl)]
    if not alters:
        return []
    try:
        # information_schema always exists: the DSN's schema and the namespaces may not.
        conn = connect(target, "information_schema")
    except pymysql.MySQLError as exc:
        message = exc.args[1] if len(exc.args) > 1 else str(exc)
        raise GuardUnavailable(redact(f"cannot reach target {target.name}: {message}")) from None
    found: list[tuple[str, str]] = []
    try:
        with conn.cursor() as cur, scratch_schema(conn) as scratch:
            direct = DirectEngine(target)
            for alter in alters:
                why = _check_one(cur, scratch, alter, direct, disabled)
                if why:
                    found.append((alter.ddl, why))
    except pymysql.MySQLError as exc:  # the scratch schema, or the connection, failed
        message = exc.args[1] if len(exc.args) > 1 else str(exc)
        raise GuardUnavailable(redact(f"cannot check on target {target.name}: {message}")) from None
    finally:
        conn.close()
    return found


def _check_one(cur: Any, scratch: str, alter: Alter, direct: DirectEngine, disabled: Sequence[str]) -> str:
    cur.execute(
        "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s AND TABLE_NAME=%s",
        (alter.namespace, alter.table),
    )
    if cur.fetchone() is None:
        return ""  # no rows to lose; the engine reports the missing table
    try:
        live = read_tables(cur, alter.namespace, [alter.table])[alter.table]
    except ValueError as exc:  # a definition line the reader does not know
        return f"cannot be checked ({exc})"
    try:
        _, after = rehearse_alter(cur, scratch, live, alter.ddl, direct)
    except pymysql.MySQLError:
        try:  # the rehearsal adds an ALGORITHM clause; an engine may run the statement without one
            after = _run_as_given(cur, scratch, live, alter.ddl)
        except pymysql.MySQLError:
            return ""  # rejected on the empty copy: rejected live too, nothing deleted
    # Partitions are not diffed (differ.py); what a partition clause deletes, the text says.
    after = dataclasses.replace(after, partitioning=live.partitioning)
    try:
        diff = diff_table(live, after)
    except (UnsupportedTable, ValueError) as exc:
        return f"cannot be checked ({exc})"
    if diff is None:
        return ""
    subject = lint.LintSubject(alter.namespace, diff)
    findings = lint.run_rules(subject, allow_unsafe=False, disabled=disabled, only_destructive=True)
    return "; ".join(f"{f.rule} {f.name}: {f.message}" for f in findings)


def _run_as_given(cur: Any, scratch: str, live: TableDef, ddl: str) -> TableDef:
    """`ddl` exactly as written, on an empty copy of `live` in `scratch`: the resulting table."""
    cur.execute(f"USE {quote(scratch)}")
    cur.execute("SET SESSION foreign_key_checks=0")
    try:
        cur.execute(f"DROP TABLE IF EXISTS {quote(live.name)}")
        cur.execute(live.text)
        cur.execute(retarget(ddl, live.name))
        after = read_tables(cur, scratch, [live.name])[live.name]
        cur.execute(f"DROP TABLE IF EXISTS {quote(live.name)}")
        return after
    finally:
        cur.execute("SET SESSION foreign_key_checks=1")
