"""Validation of the DDL a producer submits, before anything is stored.

The rule is narrow on purpose: exactly one CREATE TABLE, ALTER TABLE or DROP TABLE statement on
one named table. sqlglot (MySQL dialect) reads most statements; for valid forms it does not model
(`ALTER TABLE t CONVERT TO CHARACTER SET ...`, `... PARTITION BY ...`) it falls back to a generic
`Command`, which we accept when the table name can be read from the text. The target server stays
the final judge: engines apply the statement to an empty copy of the table before the real run.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Literal

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from schemabot.errors import ValidationError

Action = Literal["create", "alter", "drop"]

# One identifier: `back quoted` (doubled backquotes escape) or a bare MySQL name.
_IDENT = r"(?:`(?:[^`]|``)+`|[A-Za-z0-9_$]+)"
_COMMAND_ALTER = re.compile(
    rf"^\s*ALTER\s+(?:ONLINE\s+)?(?:IGNORE\s+)?TABLE\s+(?:(?P<db>{_IDENT})\s*\.\s*)?(?P<table>{_IDENT})"
    rf"(?P<rest>.*)$",
    re.IGNORECASE | re.DOTALL,
)
_LEADING_COMMENTS = re.compile(r"^\s*(?:(?:/\*.*?\*/|--[^\n]*\n|#[^\n]*\n)\s*)*", re.DOTALL)
_MAX_QUOTE = 200


@dataclass(frozen=True)
class ParsedDDL:
    """A validated statement. `statement` is the input without surrounding space or `;`."""

    statement: str
    action: Action
    table: str
    schema: str | None


def quote_for_error(statement: str) -> str:
    """The statement as an error message quotes it: one line, bounded length."""
    flat = " ".join(statement.split())
    if len(flat) > _MAX_QUOTE:
        flat = flat[: _MAX_QUOTE - 3] + "..."
    return f'"{flat}"'


def _unquote(identifier: str) -> str:
    if identifier.startswith("`") and identifier.endswith("`"):
        return identifier[1:-1].replace("``", "`")
    return identifier


def _strip(statement: str) -> str:
    text = statement.strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    return text


def _parse(text: str) -> list[Any]:
    # sqlglot logs a warning for every Command fallback; those are expected here.
    sqlglot_logger = logging.getLogger("sqlglot")
    previous = sqlglot_logger.level
    sqlglot_logger.setLevel(logging.ERROR)
    try:
        return [e for e in sqlglot.parse(text, read="mysql") if e is not None]
    finally:
        sqlglot_logger.setLevel(previous)


def _table_of(node: exp.Expression | None) -> tuple[str, str | None] | None:
    if isinstance(node, exp.Schema):
        node = node.this
    if isinstance(node, exp.Table) and node.name:
        return node.name, (node.db or None)
    return None


def parse_ddl(statement: str) -> ParsedDDL:
    """Validate one DDL statement; raise ValidationError quoting it when it is not acceptable."""
    text = _strip(statement or "")
    if not text:
        raise ValidationError("empty DDL: give one CREATE TABLE, ALTER TABLE or DROP TABLE statement")
    quoted = quote_for_error(text)
    try:
        nodes = _parse(text)
    except (ParseError, TokenError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValidationError(f"cannot parse DDL {quoted}: {first}") from None
    if not nodes:
        raise ValidationError(f"empty DDL {quoted}")
    if len(nodes) > 1:
        raise ValidationError(
            f"DDL {quoted} holds {len(nodes)} statements; submit each statement as its own DDL"
        )
    node = nodes[0]
    body = _LEADING_COMMENTS.sub("", text)

    if isinstance(node, exp.Create) and str(node.args.get("kind", "")).upper() == "TABLE":
        if re.match(r"CREATE\s+TEMPORARY\b", body, re.IGNORECASE):
            raise ValidationError(f"DDL {quoted} creates a temporary table, which is not a schema change")
        if node.args.get("expression") is not None:
            raise ValidationError(
                f"DDL {quoted} is CREATE TABLE ... AS SELECT, which copies data; create the table, "
                "then load it"
            )
        named = _table_of(node.this)
        if named is None:
            raise ValidationError(f"DDL {quoted} does not name its table")
        return ParsedDDL(text, "create", *named)

    if isinstance(node, exp.Alter) and str(node.args.get("kind", "")).upper() == "TABLE":
        named = _table_of(node.this)
        if named is None:
            raise ValidationError(f"DDL {quoted} does not name its table")
        return ParsedDDL(text, "alter", *named)

    if isinstance(node, exp.Drop) and str(node.args.get("kind", "")).upper() == "TABLE":
        tables = node.args.get("tables") or ([node.this] if node.this is not None else [])
        if len(tables) != 1:
            raise ValidationError(f"DDL {quoted} drops {len(tables)} tables; drop one table per DDL")
        named = _table_of(tables[0])
        if named is None:
            raise ValidationError(f"DDL {quoted} does not name its table")
        return ParsedDDL(text, "drop", *named)

    if isinstance(node, exp.Command):
        # A form sqlglot does not model. Accept only ALTER TABLE <name> <something>.
        match = _COMMAND_ALTER.match(body)
        if match and match["rest"].strip():
            db = _unquote(match["db"]) if match["db"] else None
            return ParsedDDL(text, "alter", _unquote(match["table"]), db)
        if match:
            raise ValidationError(f"DDL {quoted} names a table but no change to make")

    if isinstance(node, exp.Create) and str(node.args.get("kind", "")).upper() == "INDEX":
        raise ValidationError(f"DDL {quoted} is CREATE INDEX; write it as ALTER TABLE <table> ADD INDEX ...")
    raise ValidationError(f"DDL {quoted} is not a CREATE TABLE, ALTER TABLE or DROP TABLE statement")
