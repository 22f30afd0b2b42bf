"""Small, careful rewrites of DDL text that engines need (and that sqlglot cannot round-trip
without risk of changing what the statement means)."""

from __future__ import annotations

import re

from engines.mysql.identifiers import IDENT, quote_ident

_HEAD = re.compile(
    rf"^(?P<lead>\s*(?:/\*.*?\*/\s*)*(?:CREATE\s+TABLE(?:\s+IF\s+NOT\s+EXISTS)?|"
    rf"ALTER\s+(?:ONLINE\s+)?(?:IGNORE\s+)?TABLE)\s+)(?P<name>(?:{IDENT}\s*\.\s*)?{IDENT})",
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


class HiddenSQL(ValueError):
    """A versioned comment (`/*! ... */`, `/*M! ... */`): text a parser skips and the server runs."""


class UnterminatedSQL(ValueError):
    """A quote or a `/*` comment that never ends."""


def _scan(sql: str) -> list[tuple[str, int, int]]:
    """Split `sql` into ("code" | "quoted" | "comment" | "versioned", start, end) pieces, reading
    quotes the way MySQL does: '...' and "..." (backslash escapes, doubled quotes), `...`
    (doubled backquotes). `-- ` needs a space or control character after the dashes. One pass."""
    pieces: list[tuple[str, int, int]] = []
    n, i, code_start = len(sql), 0, 0

    def flush(upto: int) -> None:
        if upto > code_start:
            pieces.append(("code", code_start, upto))

    while i < n:
        ch = sql[i]
        if ch in "'\"`":
            j = i + 1
            while True:
                if j >= n:
                    raise UnterminatedSQL(f"a {ch} quote opened at character {i} is never closed")
                c = sql[j]
                if c == "\\" and ch != "`":
                    j += 2
                    continue
                if c == ch:
                    if j + 1 < n and sql[j + 1] == ch:
                        j += 2
                        continue
                    break
                j += 1
            flush(i)
            pieces.append(("quoted", i, j + 1))
            i = code_start = j + 1
            continue
        if ch == "/" and sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            if end < 0:
                raise UnterminatedSQL(f"a /* comment opened at character {i} is never closed")
            kind = "versioned" if sql.startswith(("/*!", "/*M!", "/*m!"), i) else "comment"
            flush(i)
            pieces.append((kind, i, end + 2))
            i = code_start = end + 2
            continue
        if ch == "#" or (ch == "-" and sql.startswith("--", i) and (i + 2 >= n or sql[i + 2] <= " ")):
            end = sql.find("\n", i)
            end = n if end < 0 else end
            flush(i)
            pieces.append(("comment", i, end))
            i = code_start = end
            continue
        i += 1
    flush(n)
    return pieces


def strip_comments(sql: str) -> str:
    """`sql` without its comments (each becomes one space), quotes left intact; HiddenSQL when
    it holds a versioned comment, UnterminatedSQL for an open quote or comment."""
    out: list[str] = []
    for kind, start, end in _scan(sql):
        if kind == "versioned":
            raise HiddenSQL(
                f"versioned comment {sql[start:start + 40]!r}: the server runs what it holds while "
                "validation cannot see it; write the statement without /*! ... */ or /*M! ... */"
            )
        out.append(" " if kind == "comment" else sql[start:end])
    return "".join(out).strip()


def mask_quoted(sql: str) -> str:
    """`sql` with the inside of every quoted string and identifier blanked (same length), so a
    keyword search cannot match inside `COMMENT 'ALGORITHM=COPY'` or a `lock` column."""
    out: list[str] = []
    for kind, start, end in _scan(sql):
        piece = sql[start:end]
        out.append(piece[0] + " " * (len(piece) - 2) + piece[-1] if kind == "quoted" else piece)
    return "".join(out)


_ALGORITHM_OR_LOCK = re.compile(
    r"\b(?:ALGORITHM|LOCK)\s*=?\s*(?:DEFAULT|INSTANT|INPLACE|COPY|NOCOPY|NONE|SHARED|EXCLUSIVE)\b",
    re.IGNORECASE,
)
_TABLE_RENAME = re.compile(r"\bRENAME\b(?!\s+(?:COLUMN|INDEX|KEY|CONSTRAINT)\b)", re.IGNORECASE)


def algorithm_or_lock_clause(sql: str) -> str | None:
    """The first user-written `ALGORITHM=` / `LOCK=` clause outside quotes, or None."""
    found = _ALGORITHM_OR_LOCK.search(mask_quoted(sql))
    return found.group(0) if found else None


def renames_table(alter_sql: str) -> bool:
    """Whether an ALTER TABLE renames its table (`RENAME [TO|AS] x`; column and index renames
    are not table renames)."""
    masked = mask_quoted(alter_sql)
    head = _HEAD.match(masked)
    rest = masked[head.end("name") :] if head else masked
    return _TABLE_RENAME.search(rest) is not None


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
    return text[: match.start("name")] + quote_ident(table) + text[match.end("name") :]


def add_algorithm(alter_ddl: str, clause: str) -> str:
    """`ALTER TABLE t <rest>` -> `ALTER TABLE t <clause>, <rest>` (no comma before partitioning)."""
    text = _strip(alter_ddl)
    match = _HEAD.match(text)
    if not match or not re.match(r"\s*ALTER", match["lead"], re.IGNORECASE):
        raise ValueError(f"not an ALTER TABLE statement: {text[:80]!r}")
    rest = text[match.end("name") :]
    separator = " " if _NO_COMMA_BEFORE.match(rest) else ", "
    return f"{text[: match.end('name')]} {clause}{separator}{rest.lstrip()}"


# -- DROP TABLE of an absent table: one rule for every engine (docs/architecture.md §5.1) ----------

_DROP_IF_EXISTS = re.compile(r"^\s*DROP\s+TABLE\s+IF\s+EXISTS\b", re.IGNORECASE)


def drop_if_exists(ddl: str) -> bool:
    """Is this (comment-free, as stored at submit) statement a `DROP TABLE IF EXISTS`?"""
    return bool(_DROP_IF_EXISTS.match(strip_comments(ddl)))


def absent_table_message(label: str) -> str:
    """The permanent error of a plain DROP TABLE whose table is absent at its first attempt."""
    return f"table {label} does not exist; use DROP TABLE IF EXISTS to accept that"


def already_absent_message(label: str) -> str:
    """What status and the audit log say when DROP TABLE IF EXISTS found nothing to drop."""
    return f"{label} was already absent (DROP TABLE IF EXISTS did nothing)"
