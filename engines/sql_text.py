"""Small, careful rewrites of DDL text that engines need (and that sqlglot cannot round-trip
without risk of changing what the statement means)."""

from __future__ import annotations

import re

_IDENT = r"(?:`(?:[^`]|``)+`|[A-Za-z0-9_$]+)"
_HEAD = re.compile(
    rf"^(?P<lead>\s*(?:/\*.*?\*/\s*)*(?:CREATE\s+TABLE(?:\s+IF\s+NOT\s+EXISTS)?|"
    rf"ALTER\s+(?:ONLINE\s+)?(?:IGNORE\s+)?TABLE)\s+)(?P<name>(?:{_IDENT}\s*\.\s*)?{_IDENT})",
    re.IGNORECASE | re.DOTALL,
)
# Clauses that follow the alter list without a comma in MySQL's grammar.
_NO_COMMA_BEFORE = re.compile(
    r"^\s*(PARTITION\s+BY|REMOVE\s+PARTITIONING|ADD\s+PARTITION|DROP\s+PARTITION|"
    r"COALESCE\s+PARTITION|REORGANIZE\s+PARTITION|EXCHANGE\s+PARTITION|TRUNCATE\s+PARTITION|"
    r"ANALYZE\s+PARTITION|CHECK\s+PARTITION|OPTIMIZE\s+PARTITION|REBUILD\s+PARTITION|"
    r"REPAIR\s+PARTITION|DISCARD\s+PARTITION|IMPORT\s+PARTITION)\b",
    re.IGNORECASE,
)


def _strip(ddl: str) -> str:
    text = ddl.strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    return text


def retarget(ddl: str, table: str) -> str:
    """The same CREATE TABLE / ALTER TABLE statement, on `table` (unqualified) instead."""
    text = _strip(ddl)
    match = _HEAD.match(text)
    if not match:
        raise ValueError(f"cannot find the table name in {text[:80]!r}")
    quoted = "`" + table.replace("`", "``") + "`"
    return text[: match.start("name")] + quoted + text[match.end("name") :]


def add_algorithm(alter_ddl: str, clause: str) -> str:
    """`ALTER TABLE t <rest>` -> `ALTER TABLE t <clause>, <rest>` (no comma before partitioning)."""
    text = _strip(alter_ddl)
    match = _HEAD.match(text)
    if not match or not re.match(r"\s*ALTER", match["lead"], re.IGNORECASE):
        raise ValueError(f"not an ALTER TABLE statement: {text[:80]!r}")
    rest = text[match.end("name") :]
    separator = " " if _NO_COMMA_BEFORE.match(rest) else ", "
    return f"{text[: match.end('name')]} {clause}{separator}{rest.lstrip()}"
