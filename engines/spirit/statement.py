"""Reading one table change: what kind of statement it is, its table, and what it does to columns.

sqlglot (MySQL dialect) tells the statement type and reads column renames; the ALTER clauses are
cut from the original text rather than regenerated, so the server sees exactly what the user
wrote (sqlglot falls back to `exp.Command` for valid forms like `CONVERT TO CHARACTER SET`, and
regenerating SQL could change meaning). The target server stays the final judge: the clauses are
first run on the empty shadow table.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from engines.base import PermanentEngineError, TableChange
from engines.mysql.ddl_text import HiddenSQL, UnterminatedSQL, strip_comments
from engines.mysql.identifiers import IDENT, unquote_ident
from engines.spirit.naming import quote

StatementKind = Literal["alter", "create", "drop"]

_NAME = rf"(?P<name>{IDENT}(?:\s*\.\s*{IDENT})?)"
_HEADS: Mapping[StatementKind, re.Pattern[str]] = {
    "alter": re.compile(
        rf"^\s*ALTER\s+(?:ONLINE\s+)?(?:IGNORE\s+)?TABLE\s+(?:IF\s+EXISTS\s+)?{_NAME}(?P<rest>.*)$",
        re.IGNORECASE | re.DOTALL,
    ),
    "create": re.compile(
        rf"^\s*CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?{_NAME}(?P<rest>.*)$",
        re.IGNORECASE | re.DOTALL,
    ),
    "drop": re.compile(
        rf"^\s*DROP\s+TABLE\s+(?P<if_exists>IF\s+EXISTS\s+)?{_NAME}(?P<rest>.*)$",
        re.IGNORECASE | re.DOTALL,
    ),
}
_ALGORITHM_OR_LOCK = re.compile(r"(?:^|,)\s*(?:ALGORITHM|LOCK)\s*=?\s*\w+\s*(?=,|$)", re.IGNORECASE)


def _split_name(name: str) -> tuple[str | None, str]:
    parts = re.findall(IDENT, name)
    if len(parts) == 2:
        return unquote_ident(parts[0]), unquote_ident(parts[1])
    return None, unquote_ident(parts[0])


@dataclass(frozen=True)
class Statement:
    """One parsed table change, bound to its schema."""

    kind: StatementKind
    schema: str
    table: str
    ddl: str
    clauses: str = ""
    renames: Mapping[str, str] = field(default_factory=dict)
    changes_primary_key: bool = False
    renames_table: bool = False
    names_algorithm_or_lock: bool = False
    dropped: frozenset[str] = frozenset()
    """Columns the statement drops, lower-cased (identity is case-insensitive): a column added
    again under a dropped name is a new column, not the old one."""
    if_exists: bool = False
    """DROP TABLE IF EXISTS: a table absent at the first attempt is accepted ("already absent");
    without it, that is a permanent error (docs/architecture.md §5.1, DROP of an absent table)."""

    @property
    def digest(self) -> str:
        """Hash of the exact statement: a different statement means a different operation."""
        return hashlib.sha256(self.ddl.encode()).hexdigest()

    def alter_on(self, schema: str, table: str) -> str:
        """The ALTER clauses applied to another table (the shadow)."""
        return f"ALTER TABLE {quote(schema)}.{quote(table)} {self.clauses}"

    def alter_instant(self) -> str:
        """The ALTER on the source itself, allowed only if the server can do it instantly."""
        table = f"{quote(self.schema)}.{quote(self.table)}"
        return f"ALTER TABLE {table} {self.clauses}, ALGORITHM=INSTANT"

    def create_as(self, schema: str, table: str) -> str:
        """The CREATE TABLE statement for a table named `table` in `schema`."""
        return f"CREATE TABLE {quote(schema)}.{quote(table)} {self.clauses}"


def _alter_facts(tree: exp.Expression) -> tuple[dict[str, str], bool, bool, frozenset[str]]:
    renames: dict[str, str] = {}
    changes_pk = False
    renames_table = False
    dropped: set[str] = set()
    for action in tree.args.get("actions") or []:
        if isinstance(action, exp.Drop) and str(action.args.get("kind") or "").upper() == "COLUMN":
            dropped.update(t.name.lower() for t in action.args.get("tables") or [])
        if isinstance(action, exp.RenameColumn):
            renames[action.this.name] = action.args["to"].name
        elif isinstance(action, exp.AlterRename):
            renames_table = True
        elif isinstance(action, exp.DropPrimaryKey):
            changes_pk = True
        if isinstance(action, exp.ModifyColumn) and action.args.get("rename_from") is not None:
            old, new = action.args["rename_from"].name, action.this.name
            if old != new:
                renames[old] = new
        if action.find(exp.PrimaryKey, exp.PrimaryKeyColumnConstraint) is not None:
            changes_pk = True
    return renames, changes_pk, renames_table, frozenset(dropped)


# `RENAME [TO|AS] name` as an ALTER clause renames the table (sqlglot cannot read the AS form).
_RENAME_TABLE = re.compile(
    r"(?:^|,)\s*RENAME\s+(?:TO\s+|AS\s+|(?!(?:COLUMN|INDEX|KEY)\b))", re.IGNORECASE
)
RENAME_REFUSAL = (
    "ALTER TABLE ... RENAME TO/AS renames the table, and renames are not done online; "
    "rename in a separate statement"
)


def parse_change(namespace: str, change: TableChange) -> Statement:
    """Parse and validate one change; PermanentEngineError says why in words one can act on."""
    try:
        # Comments out (quote-aware): clauses are later appended to `rest`, never into a comment.
        ddl = strip_comments(change.ddl).rstrip(";").strip()
    except (HiddenSQL, UnterminatedSQL) as error:
        raise PermanentEngineError(f"{namespace}.{change.table}: {error}") from None
    if not ddl:
        raise PermanentEngineError(f"{namespace}.{change.table}: the change has no statement")
    head = _HEADS["alter"].match(ddl)
    if head is not None and _RENAME_TABLE.search(head["rest"]):
        raise PermanentEngineError(f"{namespace}.{change.table}: {RENAME_REFUSAL}")
    try:
        trees = [t for t in sqlglot.parse(ddl, read="mysql") if t is not None]
    except ParseError as error:
        raise PermanentEngineError(
            f"{namespace}.{change.table}: cannot parse the statement: {error}"
        ) from None
    if len(trees) != 1:
        raise PermanentEngineError(
            f"{namespace}.{change.table}: expected one statement, found {len(trees)}"
        )
    tree = trees[0]
    kind: StatementKind
    if isinstance(tree, exp.Alter) or (
        isinstance(tree, exp.Command) and str(tree.this).upper() == "ALTER"
    ):
        kind = "alter"
    elif isinstance(tree, exp.Create) and str(tree.args.get("kind", "")).upper() == "TABLE":
        kind = "create"
    elif isinstance(tree, exp.Drop) and str(tree.args.get("kind", "")).upper() == "TABLE":
        if len(tree.args.get("tables") or []) > 1:
            raise PermanentEngineError(
                f"{namespace}.{change.table}: DROP TABLE must name exactly one table"
            )
        kind = "drop"
    else:
        raise PermanentEngineError(
            f"{namespace}.{change.table}: unsupported statement (expected ALTER TABLE, "
            f"CREATE TABLE or DROP TABLE): {ddl[:80]}"
        )
    if kind != change.action:
        raise PermanentEngineError(
            f"{namespace}.{change.table}: the change says {change.action} but the statement "
            f"is {kind.upper()} TABLE"
        )
    match = _HEADS[kind].match(ddl)
    if match is None:
        raise PermanentEngineError(f"{namespace}.{change.table}: cannot read the table name")
    qualifier, table = _split_name(match["name"])
    if table != change.table or (qualifier is not None and qualifier != namespace):
        raise PermanentEngineError(
            f"{namespace}.{change.table}: the statement names "
            f"{(qualifier + '.') if qualifier else ''}{table}, not {namespace}.{change.table}"
        )
    rest = match["rest"].strip()
    if kind == "drop":
        return Statement(kind, namespace, table, ddl, if_exists=bool(match["if_exists"]))
    if kind == "create":
        return Statement(kind, namespace, table, ddl, clauses=rest)
    if not rest:
        raise PermanentEngineError(f"{namespace}.{change.table}: ALTER TABLE without a change")
    if isinstance(tree, exp.Command):
        # sqlglot could not read the clauses; refuse what we cannot map safely.
        if re.search(r"\b(CHANGE|RENAME)\b", rest, re.IGNORECASE):
            raise PermanentEngineError(
                f"{namespace}.{change.table}: cannot read the column renames of this statement; "
                "split the rename into its own ALTER"
            )
        renames: dict[str, str] = {}
        changes_pk = bool(re.search(r"PRIMARY\s+KEY", rest, re.I))
        renames_table = False
        dropped: frozenset[str] = frozenset()
        if re.search(r"\bDROP\s+(?:COLUMN\s+)?(?!(?:INDEX|KEY|PRIMARY|FOREIGN|CONSTRAINT|CHECK|"
                     r"PARTITION|UNIQUE|FULLTEXT|SPATIAL|SYSTEM)\b)", rest, re.IGNORECASE):
            raise PermanentEngineError(
                f"{namespace}.{change.table}: cannot read which columns this statement drops; "
                "split the DROP COLUMN into its own ALTER"
            )
    else:
        renames, changes_pk, renames_table, dropped = _alter_facts(tree)
    return Statement(
        kind,
        namespace,
        table,
        ddl,
        clauses=rest,
        renames=renames,
        changes_primary_key=changes_pk,
        renames_table=renames_table,
        names_algorithm_or_lock=bool(_ALGORITHM_OR_LOCK.search(rest)),
        dropped=dropped,
    )
