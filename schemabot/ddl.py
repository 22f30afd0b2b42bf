"""Validation of the DDL a producer submits, before anything is stored (docs/architecture.md §5
and §8 invariant 10: a statement does exactly what its text says, no more).

The rule is narrow on purpose: exactly one CREATE TABLE, ALTER TABLE or DROP TABLE statement on
one named table. Before parsing, comments are removed with a quote-aware scanner
(`engines.mysql.ddl_text.strip_comments`), and the stored statement is that stripped text, so engines
never see a comment they could append a clause into. Refused, with the reason:
- versioned comments `/*! ... */`, `/*M! ... */` (the parser skips them, the server runs them);
- a statement over the size cap (`SCHEMABOT_MAX_DDL_BYTES`), text that is not UTF-8, NUL bytes;
- `CREATE OR REPLACE TABLE` (drops the existing table), `CREATE TEMPORARY`, `CREATE ... SELECT`;
- `ALTER TABLE IF EXISTS` (could silently do nothing), a table rename inside an ALTER,
  user-written `ALGORITHM=` / `LOCK=` clauses (the engine chooses them and says which it used);
- an ALTER that sqlglot only reads as a generic Command, unless every clause starts with a
  keyword of MySQL's ALTER TABLE grammar (`ADDD COLUMN` is refused here, not retried later);
- table or schema names longer than 64 characters;
- a form that names a second table (`EXCHANGE PARTITION ... WITH TABLE`, `CONVERT PARTITION/TABLE`,
  `UNION=(...)`, `SELECT`), and any qualified name whose schema is not the apply's namespace, read
  from the tokens so that forms sqlglot does not model are covered (`schemabot/ddl_scope.py`;
  the caller compares `ParsedDDL.schemas` with the namespace through `check_namespace`).
sqlglot (MySQL dialect) reads most statements; for valid forms it does not model (`CONVERT TO
CHARACTER SET`, `PARTITION BY`) it falls back to a generic `Command`. The target server stays the
final judge: engines apply the statement to an empty copy of the table before the real run.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from typing import Any, Literal

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from engines.mysql.ddl_text import (
    HiddenSQL,
    UnterminatedSQL,
    algorithm_or_lock_clause,
    mask_quoted,
    renames_table,
    strip_comments,
)
from engines.mysql.identifiers import IDENT, unquote_ident
from schemabot.ddl_scope import refuse_second_table, scope_schemas
from schemabot.errors import ValidationError

Action = Literal["create", "alter", "drop"]

_COMMAND_ALTER = re.compile(
    rf"^\s*ALTER\s+(?:ONLINE\s+)?(?:IGNORE\s+)?TABLE\s+(?:(?P<db>{IDENT})\s*\.\s*)?(?P<table>{IDENT})"
    rf"(?P<rest>.*)$",
    re.IGNORECASE | re.DOTALL,
)
_PARTITION_WORD = re.compile(r"\bPARTITION\b", re.IGNORECASE)
_MAX_QUOTE = 200
MAX_NAME = 64  # the server's limit for table and schema names
DEFAULT_MAX_DDL_BYTES = 256 * 1024
# First words of the clauses of MySQL's and MariaDB's ALTER TABLE grammar.
_ALTER_CLAUSE_WORDS = frozenset(
    """ADD ALTER CHANGE CONVERT DISABLE ENABLE DISCARD IMPORT DROP FORCE MODIFY ORDER WITH WITHOUT
    AUTO_INCREMENT AVG_ROW_LENGTH CHARACTER CHARSET DEFAULT CHECKSUM COLLATE COMMENT COMPRESSION
    CONNECTION DATA INDEX DELAY_KEY_WRITE ENCRYPTION ENCRYPTION_KEY_ID ENGINE INSERT_METHOD
    KEY_BLOCK_SIZE MAX_ROWS MIN_ROWS PACK_KEYS PASSWORD ROW_FORMAT STATS_AUTO_RECALC STATS_PERSISTENT
    STATS_SAMPLE_PAGES TABLESPACE UNION PARTITION REMOVE COALESCE REORGANIZE EXCHANGE ANALYZE CHECK
    OPTIMIZE REBUILD REPAIR TRUNCATE UPGRADE PAGE_CHECKSUM PAGE_COMPRESSED PAGE_COMPRESSION_LEVEL
    TRANSACTIONAL IETF_QUOTES SECONDARY_ENGINE ENGINE_ATTRIBUTE""".split()  # noqa: SIM905
)


@dataclass(frozen=True)
class ParsedDDL:
    """A validated statement. `statement` is the input without surrounding space or `;`."""

    statement: str
    action: Action
    table: str
    schema: str | None
    # Every schema the statement names: its table's, a LIKE source's, a foreign key's parent's, and
    # any qualifier that cannot be the table itself (schemabot/ddl_scope.py).
    schemas: frozenset[str] = frozenset()
    if_exists: bool = False  # DROP TABLE IF EXISTS: an absent table is not an error


def quote_for_error(statement: str) -> str:
    """The statement as an error message quotes it: one line, bounded length."""
    flat = " ".join(statement.split())
    if len(flat) > _MAX_QUOTE:
        flat = flat[: _MAX_QUOTE - 3] + "..."
    return f'"{flat}"'


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


def check_text(value: str, what: str) -> None:
    """Refuse text the server would not read as it reads here: not UTF-8, or with NUL bytes."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(f"{what} is not valid UTF-8 text") from None
    if "\x00" in value:
        raise ValidationError(f"{what} holds a NUL character")


def check_name(name: str, what: str) -> None:
    check_text(name, f"{what} {name[:80]!r}")
    if len(name) > MAX_NAME:
        raise ValidationError(
            f"{what} {name[:40]!r}... is {len(name)} characters; the server allows at most {MAX_NAME}"
        )


def _schemas_of(node: exp.Expression) -> frozenset[str]:
    return frozenset(t.db for t in node.find_all(exp.Table) if t.db)


def _check_alter_text(body: str, quoted: str) -> None:
    clause = algorithm_or_lock_clause(body)
    if clause:
        raise ValidationError(
            f"DDL {quoted} sets {clause}: the engine chooses the algorithm and lock, uses only "
            "ones that keep the table writable, and reports which; remove the clause"
        )
    if renames_table(body):
        raise ValidationError(
            f"DDL {quoted} renames the table; an apply changes the table it names (rename it outside "
            "schemabot, or create the new table and drop the old one)"
        )


def _check_clauses(rest: str, quoted: str) -> None:
    """Every top-level clause of an ALTER sqlglot could not read starts with a grammar keyword."""
    depth, start, clauses = 0, 0, []
    for i, ch in enumerate(rest):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            clauses.append(rest[start:i])
            start = i + 1
    clauses.append(rest[start:])
    for clause in clauses:
        word = re.match(r"\s*([A-Za-z_]+)", clause)
        if word is None or word.group(1).upper() not in _ALTER_CLAUSE_WORDS:
            bad = clause.strip().split()[0] if clause.strip() else "(empty)"
            raise ValidationError(f"DDL {quoted}: {bad[:40]!r} does not begin an ALTER TABLE clause")


def parse_ddl(statement: str, *, max_bytes: int = DEFAULT_MAX_DDL_BYTES) -> ParsedDDL:
    """Validate one DDL statement; raise ValidationError quoting it when it is not acceptable.

    The returned `statement` is the text without comments, surrounding space or `;`: what the
    engines run."""
    raw = statement or ""
    check_text(raw, "the DDL")
    size = len(raw.encode("utf-8"))
    if size > max_bytes:
        raise ValidationError(
            f"DDL {quote_for_error(raw[:100])} is {size} bytes; at most {max_bytes} bytes per statement "
            "(SCHEMABOT_MAX_DDL_BYTES)"
        )
    try:
        text = _strip(strip_comments(raw))
    except HiddenSQL as exc:
        raise ValidationError(f"DDL {quote_for_error(raw)}: {exc}") from None
    except UnterminatedSQL as exc:
        raise ValidationError(f"cannot parse DDL {quote_for_error(raw)}: {exc}") from None
    if not text:
        raise ValidationError("empty DDL: give one CREATE TABLE, ALTER TABLE or DROP TABLE statement")
    quoted = quote_for_error(text)
    try:
        nodes = _parse(text)
    except (ParseError, TokenError) as exc:
        masked = mask_quoted(text)
        partition = _PARTITION_WORD.search(masked) and ";" not in masked
        if isinstance(exc, ParseError) and _COMMAND_ALTER.match(masked) and partition:
            # A partition clause sqlglot cannot parse (DROP PARTITION p0): read it as it reads the
            # clauses it does not model, by the grammar's first words.
            nodes = [exp.Command(this="ALTER", expression=text)]
        else:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ValidationError(f"cannot parse DDL {quoted}: {first}") from None
    if not nodes:
        raise ValidationError(f"empty DDL {quoted}")
    if len(nodes) > 1:
        raise ValidationError(
            f"DDL {quoted} holds {len(nodes)} statements; submit each statement as its own DDL"
        )
    refuse_second_table(text, quoted)
    parsed = _classify(nodes[0], text, quoted)
    # The tree misses names in forms sqlglot does not model; the tokens do not (schemabot/ddl_scope.py).
    parsed = replace(parsed, schemas=parsed.schemas | scope_schemas(text, parsed.table, quoted))
    check_name(parsed.table, "table name")
    for schema in parsed.schemas:
        check_name(schema, "schema name")
    return parsed


def check_namespace(parsed: ParsedDDL, namespace: str) -> None:
    """Refuse a statement that names a schema other than the apply's namespace: an apply touches
    only its namespace (docs/architecture.md §5.1)."""
    for schema in sorted(parsed.schemas):
        if schema != namespace:
            raise ValidationError(
                f"DDL {quote_for_error(parsed.statement)} names schema {schema!r} "
                f"but is submitted for namespace {namespace!r}; an apply touches only its namespace"
            )


def _classify(node: exp.Expression, text: str, quoted: str) -> ParsedDDL:
    body = text
    if isinstance(node, exp.Create) and str(node.args.get("kind", "")).upper() == "TABLE":
        if node.args.get("replace"):
            raise ValidationError(
                f"DDL {quoted} is CREATE OR REPLACE TABLE, which drops the existing table and its rows; "
                "drop it with its own DROP TABLE if that is what you mean"
            )
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
        return ParsedDDL(text, "create", *named, schemas=_schemas_of(node))

    if isinstance(node, exp.Alter) and str(node.args.get("kind", "")).upper() == "TABLE":
        if node.args.get("exists"):
            raise ValidationError(
                f"DDL {quoted} is ALTER TABLE IF EXISTS, which would silently do nothing on a missing "
                "table; name the table without IF EXISTS"
            )
        named = _table_of(node.this)
        if named is None:
            raise ValidationError(f"DDL {quoted} does not name its table")
        if any(isinstance(a, exp.AlterRename) for a in node.args.get("actions") or []):
            raise ValidationError(
                f"DDL {quoted} renames the table; an apply changes the table it names (rename it "
                "outside schemabot, or create the new table and drop the old one)"
            )
        _check_alter_text(body, quoted)
        return ParsedDDL(text, "alter", *named, schemas=_schemas_of(node))

    if isinstance(node, exp.Drop) and str(node.args.get("kind", "")).upper() == "TABLE":
        tables = node.args.get("tables") or ([node.this] if node.this is not None else [])
        if len(tables) != 1:
            raise ValidationError(f"DDL {quoted} drops {len(tables)} tables; drop one table per DDL")
        if re.match(r"DROP\s+TEMPORARY\b", body, re.IGNORECASE):
            raise ValidationError(f"DDL {quoted} drops a temporary table, which is not a schema change")
        named = _table_of(tables[0])
        if named is None:
            raise ValidationError(f"DDL {quoted} does not name its table")
        return ParsedDDL(
            text, "drop", *named, schemas=_schemas_of(node), if_exists=bool(node.args.get("exists"))
        )

    if isinstance(node, exp.Command):
        # A form sqlglot does not model. Accept only ALTER TABLE <name> <clauses of the grammar>.
        if re.match(r"ALTER\s+(?:ONLINE\s+)?(?:IGNORE\s+)?TABLE\s+IF\s+EXISTS\b", body, re.IGNORECASE):
            raise ValidationError(
                f"DDL {quoted} is ALTER TABLE IF EXISTS, which would silently do nothing on a missing "
                "table; name the table without IF EXISTS"
            )
        match = _COMMAND_ALTER.match(body)
        if match and match["rest"].strip():
            db = unquote_ident(match["db"]) if match["db"] else None
            _check_alter_text(body, quoted)
            _check_clauses(mask_quoted(match["rest"]), quoted)
            return ParsedDDL(
                text, "alter", unquote_ident(match["table"]), db, schemas=frozenset({db} if db else ())
            )
        if match:
            raise ValidationError(f"DDL {quoted} names a table but no change to make")

    if isinstance(node, exp.Create) and str(node.args.get("kind", "")).upper() == "INDEX":
        raise ValidationError(f"DDL {quoted} is CREATE INDEX; write it as ALTER TABLE <table> ADD INDEX ...")
    raise ValidationError(f"DDL {quoted} is not a CREATE TABLE, ALTER TABLE or DROP TABLE statement")
