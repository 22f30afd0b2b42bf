"""Reading `SHOW GRANTS` lines: which privileges the current user has on which schema.

Understands global (`*.*`), schema (`db`.* with LIKE wildcards) and table grants. Role grants
(MySQL 8 `GRANT role TO user`) are not followed: a user whose privileges come only from roles
is reported as missing them, and the message names what is missing so it can be checked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from engines.mysql.identifiers import unquote_ident

_GRANT = re.compile(r"^GRANT\s+(?P<privs>.+?)\s+ON\s+(?P<obj>\S+)\s+TO\s", re.IGNORECASE)


def _like(pattern: str, value: str) -> bool:
    regex = ""
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            regex += re.escape(pattern[i + 1])
            i += 2
            continue
        regex += ".*" if ch == "%" else "." if ch == "_" else re.escape(ch)
        i += 1
    return re.fullmatch(regex, value) is not None


def _privileges(text: str) -> set[str]:
    text = re.sub(r"\([^)]*\)", "", text)  # column lists: GRANT SELECT (a, b) ON ...
    privs = {p.strip().upper() for p in text.split(",") if p.strip()}
    if "ALL" in privs or "ALL PRIVILEGES" in privs:
        privs.add("*")
    return privs


def privileges_on(grants: Iterable[str], schema: str, table: str | None = None) -> set[str]:
    """Privileges that apply to `schema` (and `table`, when given). `*` stands for ALL."""
    held: set[str] = set()
    for line in grants:
        m = _GRANT.match(line.strip())
        if m is None:
            continue
        obj = m["obj"]
        db, _, tbl = obj.partition(".")
        # Wildcards (`_`, `%`) mean something only in schema-level grants; a table grant
        # names its schema literally.
        schema_matches = db == "*" or (
            _like(unquote_ident(db), schema) if tbl == "*" else unquote_ident(db) == schema
        )
        table_matches = tbl == "*" or (table is not None and unquote_ident(tbl) == table)
        if schema_matches and table_matches:
            held |= _privileges(m["privs"])
    return held


def has_global_privilege(grants: Iterable[str], privilege: str) -> bool:
    for line in grants:
        m = _GRANT.match(line.strip())
        if m is not None and m["obj"] == "*.*":
            privs = _privileges(m["privs"])
            if "*" in privs or privilege.upper() in privs:
                return True
    return False
