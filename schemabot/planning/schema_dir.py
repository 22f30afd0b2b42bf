"""Reading a declarative schema directory: one `.sql` file per table, holding its CREATE TABLE.

    DIR/orders.sql, DIR/customers.sql          the target's default namespace
    DIR/<namespace>/orders.sql ...             one subdirectory per namespace (several schemas)

Files hold CREATE TABLE statements only (a file may hold more than one; comments are fine).
Anything else is refused, naming the file, before the target is touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from schemabot.ddl import check_namespace, parse_ddl
from schemabot.errors import ValidationError


@dataclass(frozen=True)
class DesiredTable:
    namespace: str
    table: str
    statement: str
    origin: str  # the file, for messages


def split_statements(text: str) -> list[str]:
    """Split SQL text on `;` outside quotes, backquotes and comments."""
    statements: list[str] = []
    current: list[str] = []
    i, quote = 0, ""
    while i < len(text):
        ch = text[i]
        if quote:
            current.append(ch)
            if ch == "\\" and quote != "`" and i + 1 < len(text):
                current.append(text[i + 1])
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "'\"`":
            quote = ch
            current.append(ch)
        elif text.startswith("--", i) or ch == "#":
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = len(text) if end < 0 else end + 2
            continue
        elif ch == ";":
            statements.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
        i += 1
    statements.append("".join(current).strip())
    return [s for s in statements if s]


def read_schema_dir(path: str | Path, default_namespace: str | None) -> dict[str, list[DesiredTable]]:
    """{namespace: [DesiredTable...]}. Raises ValidationError for anything not a CREATE TABLE."""
    root = Path(path)
    if not root.is_dir():
        raise ValidationError(f"schema directory {str(root)!r} does not exist")
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    top_files = sorted(root.glob("*.sql"))
    if subdirs and top_files:
        raise ValidationError(
            f"{root}: put .sql files either at the top (one namespace) or in one subdirectory per "
            "namespace, not both"
        )
    groups: dict[str, list[Path]] = {}
    if subdirs:
        for sub in subdirs:
            groups[sub.name] = sorted(sub.glob("*.sql"))
    else:
        if not default_namespace:
            raise ValidationError("no namespace given and the target's DSN names no schema")
        groups[default_namespace] = top_files
    result: dict[str, list[DesiredTable]] = {}
    for namespace, files in groups.items():
        seen: dict[str, str] = {}
        tables: list[DesiredTable] = []
        for file in files:
            for statement in split_statements(file.read_text()):
                try:
                    parsed = parse_ddl(statement)
                except ValidationError as exc:
                    raise ValidationError(f"{file}: {exc}") from None
                if parsed.action != "create":
                    kind = parsed.action.upper()
                    raise ValidationError(f"{file}: holds a {kind} TABLE statement; only CREATE TABLE")
                try:
                    check_namespace(parsed, namespace)
                except ValidationError as exc:
                    raise ValidationError(f"{file}: {exc}") from None
                if parsed.table in seen:
                    other = seen[parsed.table]
                    raise ValidationError(f"{file}: table {parsed.table} is also defined in {other}")
                seen[parsed.table] = str(file)
                tables.append(DesiredTable(namespace, parsed.table, parsed.statement, str(file)))
        result[namespace] = tables
    return result
