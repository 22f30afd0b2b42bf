"""MySQL identifiers in SQL text: how one is matched, quoted and unquoted.

One definition, because the validator (schemabot/ddl.py), the engines' statement parsers and the
DDL rewrites must agree on what a table name is: were one of them to accept a name another reads
differently, a statement could be checked against one table and run against another.
"""

from __future__ import annotations

# One identifier: `back quoted` (a doubled backquote escapes one) or a bare MySQL name.
IDENT = r"(?:`(?:[^`]|``)+`|[A-Za-z0-9_$]+)"


def quote_ident(name: str) -> str:
    """Backtick-quote an identifier (MySQL and MariaDB), doubling embedded backticks."""
    return "`" + name.replace("`", "``") + "`"


def unquote_ident(text: str) -> str:
    """The name an identifier as written (`IDENT`) stands for: backticks removed, doubled ones
    made single; a bare name as it is."""
    text = text.strip()
    if len(text) >= 2 and text.startswith("`") and text.endswith("`"):
        return text[1:-1].replace("``", "`")
    return text
