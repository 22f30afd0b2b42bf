"""Lint rules for planned changes (issue 13, part 3).

Every rule has a stable id, a name, a severity (`error` blocks the plan, `warning` informs) and a
one-line reason. *Destructive* rules (data can be lost) are errors that an explicit
`--allow-unsafe` (API `allow_unsafe: true`) lets through; the override is then recorded in the
audit log of the apply. Rules can be disabled per target (`schemabot.planning.config`).

A rule is a function of one `LintSubject` (the structured change of one table, its row estimate,
and a way to ask the live table a bounded question) returning messages; it never changes anything.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from schemabot.planning.differ import TableDiff
from schemabot.planning.tabledef import Column, Key, TableDef, split_type

ERROR = "error"
WARNING = "warning"

# How many bytes one character can take, by character set (anything else: one byte).
CHARSET_BYTES = {"utf8mb4": 4, "utf16": 4, "utf16le": 4, "utf32": 4, "utf8mb3": 3, "utf8": 3, "ucs2": 2}
# Which characters a character set can hold, as nested repertoires: ASCII (0) within Latin-1 (1)
# within the Basic Multilingual Plane (2) within all of Unicode (3). Not bytes per character:
# latin1 and ascii both take one byte, yet ascii cannot hold 'é'. A change of character set is
# safe only when the new one's repertoire holds the old one's; a charset not listed here is safe
# only into full Unicode (or itself).
REPERTOIRE = {
    "ascii": 0,
    "latin1": 1,
    "ucs2": 2,
    "utf8mb3": 2,
    "utf8": 2,
    "utf8mb4": 3,
    "utf16": 3,
    "utf16le": 3,
    "utf32": 3,
}
FULL_UNICODE = 3
# The most characters an integer type prints ("-2147483648" is 11): a shorter string cannot hold it.
INTEGER_CHARS = {"tinyint": 4, "smallint": 6, "mediumint": 8, "int": 11, "integer": 11, "bigint": 20}
UNSIGNED_CHARS = {"tinyint": 3, "smallint": 5, "mediumint": 8, "int": 10, "integer": 10, "bigint": 20}
LEGACY_CHARSETS = ("utf8mb3", "utf8", "latin1")
WIDE_INDEX_BYTES = 767
UNIQUE_CHECK_MAX_ROWS = 1_000_000
MONEY_NAME = re.compile(r"(price|amount|cost|total|balance|money|fee|salary|tax|paid|refund)", re.I)
_INTEGERS = ["tinyint", "smallint", "mediumint", "int", "bigint"]
_TEXTS = ["tinytext", "text", "mediumtext", "longtext"]
_BLOBS = ["tinyblob", "blob", "mediumblob", "longblob"]


class QueryTimeout(Exception):
    """A lint query the server stopped (or refused): the rule reports "not checked"."""


@dataclass(frozen=True)
class Finding:
    rule: str
    name: str
    severity: str
    message: str
    table: str
    destructive: bool = False
    allowed: bool = False  # a destructive finding let through by --allow-unsafe

    @property
    def blocking(self) -> bool:
        return self.severity == ERROR and not self.allowed

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "name": self.name,
            "severity": self.severity,
            "table": self.table,
            "message": self.message,
            "destructive": self.destructive,
            "allowed": self.allowed,
            "blocking": self.blocking,
        }


@dataclass
class LintSubject:
    namespace: str
    diff: TableDiff
    rows: int = 0
    # Runs a bounded read-only query on the live table and returns the first row (None: no row).
    query: Callable[[str], tuple[Any, ...] | None] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def table(self) -> str:
        return self.diff.table


RuleFunc = Callable[[LintSubject], Iterable[str | tuple[str, str]]]
"""A rule yields messages; a (severity, message) pair overrides the rule's severity."""


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    severity: str
    reason: str
    destructive: bool
    func: RuleFunc


RULES: dict[str, Rule] = {}


def rule(
    id_: str, name: str, severity: str, reason: str, *, destructive: bool = False
) -> Callable[[RuleFunc], RuleFunc]:
    def register(func: RuleFunc) -> RuleFunc:
        RULES[id_] = Rule(id_, name, severity, reason, destructive, func)
        return func

    return register


def lookup(name_or_id: str) -> Rule | None:
    for r in RULES.values():
        if name_or_id in (r.id, r.name):
            return r
    return None


def run_rules(
    subject: LintSubject, *, allow_unsafe: bool, disabled: Iterable[str] = (), only_destructive: bool = False
) -> list[Finding]:
    """Every enabled rule's findings; `only_destructive`: the destructive rules alone (the guard of a
    plain apply, planning/guard.py, which must agree with the plan on exactly these)."""
    off = {r.id for name in disabled if (r := lookup(name)) is not None}
    findings = []
    for r in RULES.values():
        if r.id in off or (only_destructive and not r.destructive):
            continue
        for result in r.func(subject):
            severity, message = result if isinstance(result, tuple) else (r.severity, result)
            findings.append(
                Finding(
                    r.id,
                    r.name,
                    severity,
                    message,
                    subject.table,
                    destructive=r.destructive,
                    allowed=r.destructive and allow_unsafe,
                )
            )
    return findings


# -- helpers ------------------------------------------------------------------------------------


def _base_type(column: Column) -> tuple[str, list[int], bool]:
    """('varchar', [20], unsigned?) of a column definition."""
    type_, _ = split_type(column.definition)
    m = re.match(r"(\w+)(?:\(([^)]*)\))?", type_)
    assert m is not None
    args = [int(a) for a in (m.group(2) or "").split(",") if a.strip().isdigit()]
    return m.group(1).lower(), args, "unsigned" in type_


def _char_bytes(column: Column) -> int:
    return CHARSET_BYTES.get((column.charset or "").lower(), 1)


def _narrowing(old: Column, new: Column) -> str | None:
    (t0, a0, u0), (t1, a1, u1) = _base_type(old), _base_type(new)
    for family in (_INTEGERS, _TEXTS, _BLOBS):
        if t0 in family and t1 in family:
            if family.index(t1) < family.index(t0) or (family is _INTEGERS and t1 == t0 and u0 != u1):
                return f"{old.name}: {split_type(old.definition)[0]} -> {split_type(new.definition)[0]}"
            return None
    if t0 in ("decimal", "numeric") and t1 == t0 and a0 and a1:
        p0, s0 = a0[0], (a0[1] if len(a0) > 1 else 0)
        p1, s1 = a1[0], (a1[1] if len(a1) > 1 else 0)
        if p1 - s1 < p0 - s0 or s1 < s0:
            return f"{old.name}: decimal({p0},{s0}) -> decimal({p1},{s1})"
        return None
    if t0 in ("double", "decimal", "bigint") and t1 in ("float", "int", "smallint", "tinyint"):
        return f"{old.name}: {t0} -> {t1}"
    if t0 in _TEXTS and t1 in ("varchar", "char"):
        return f"{old.name}: {t0} -> {t1}({a1[0] if a1 else '?'})"
    if t1 in ("varchar", "char") and a1:
        needed = _printed_width(t0, a0, u0)
        if needed is not None and a1[0] < needed:
            return f"{old.name}: {t0} -> {t1}({a1[0]}) (its values need up to {needed} characters)"
    return None


def _printed_width(base: str, args: list[int], unsigned: bool) -> int | None:
    """The most characters a value of a numeric type takes as text; None for other types."""
    if base in INTEGER_CHARS:
        return (UNSIGNED_CHARS if unsigned else INTEGER_CHARS)[base]
    if base in ("decimal", "numeric") and args:
        precision, scale = args[0], (args[1] if len(args) > 1 else 0)
        return precision + (1 if scale else 0) + (0 if unsigned else 1)  # digits, point, sign
    return None


def _charset_holds(new: str, old: str) -> bool:
    """Whether every character of `old` exists in `new` (REPERTOIRE)."""
    new, old = new.lower(), old.lower()
    if new == old or REPERTOIRE.get(new) == FULL_UNICODE:
        return True
    if new not in REPERTOIRE or old not in REPERTOIRE:
        return False
    return REPERTOIRE[new] >= REPERTOIRE[old]


# -- destructive rules (errors that --allow-unsafe lets through) ---------------------------------


@rule("SB001", "drop-table", ERROR, "dropping a table deletes all its rows", destructive=True)
def _drop_table(s: LintSubject) -> Iterable[str]:
    if s.diff.action == "drop":
        yield f"DROP TABLE {s.table} deletes its {s.rows} row(s) (estimate)"


@rule("SB002", "drop-column", ERROR, "dropping a column deletes its data", destructive=True)
def _drop_column(s: LintSubject) -> Iterable[str]:
    for col in s.diff.dropped_columns:
        yield f"column {s.table}.{col.name} is dropped with its data (a rename is a drop and an add)"


@rule("SB003", "narrow-type", ERROR, "a narrower type truncates or refuses existing values", destructive=True)
def _narrow_type(s: LintSubject) -> Iterable[str]:
    for old, new in s.diff.modified_columns:
        text = _narrowing(old, new)
        if text:
            yield f"{s.table}.{text} narrows the type"


@rule("SB004", "shrink-varchar", ERROR, "a shorter VARCHAR/CHAR truncates longer values", destructive=True)
def _shrink_varchar(s: LintSubject) -> Iterable[str]:
    for old, new in s.diff.modified_columns:
        (t0, a0, _), (t1, a1, _) = _base_type(old), _base_type(new)
        if t0 in ("varchar", "char") and t1 in ("varchar", "char") and a0 and a1 and a1[0] < a0[0]:
            yield f"{s.table}.{old.name}: {t0}({a0[0]}) -> {t1}({a1[0]})"


@rule("SB005", "narrow-charset", ERROR, "the new character set cannot hold every character", destructive=True)
def _narrow_charset(s: LintSubject) -> Iterable[str]:
    for old, new in s.diff.modified_columns:
        if not (old.charset and new.charset) or new.charset == "binary":  # binary keeps the bytes
            continue
        if not _charset_holds(new.charset, old.charset):
            yield f"{s.table}.{old.name}: {old.charset} -> {new.charset} cannot hold every character"


@rule("SB006", "drop-primary-key", ERROR, "without a primary key rows lose their identity", destructive=True)
def _drop_primary_key(s: LintSubject) -> Iterable[str]:
    live, desired = s.diff.live, s.diff.desired
    if s.diff.action == "alter" and live and desired and live.primary_key and not desired.primary_key:
        yield f"the primary key of {s.table} is dropped"


@rule(
    "SB007",
    "vschema-removal",
    ERROR,
    "removing or redefining a vindex or a table's routing changes Vitess query routing at once",
    destructive=True,
)
def _vschema_removal(s: LintSubject) -> Iterable[str]:
    """A VSchema change, not a table's: checked by planning/vschema_lint.py on a Vitess plan."""
    return ()


@rule(
    "SB008",
    "data-clause",
    ERROR,
    "a partition emptied, dropped or exchanged, or ALTER IGNORE, deletes rows the definition does not show",
    destructive=True,
)
def _data_clause(s: LintSubject) -> Iterable[str]:
    """Seen in the statement's text, not in a diff: `clause_findings` reports it."""
    return ()


def clause_findings(
    table: str, ddl: str, *, allow_unsafe: bool, disabled: Iterable[str] = ()
) -> list[Finding]:
    """SB008 for the clauses of `ddl` that delete rows without changing the definition (the same
    words refuse a plain apply: planning/destructive.py)."""
    from schemabot.planning.destructive import clause_reasons

    r = RULES["SB008"]
    if any(lookup(name) is r for name in disabled):
        return []
    return [
        Finding(r.id, r.name, r.severity, f"{table}: {why}", table, destructive=True, allowed=allow_unsafe)
        for why in clause_reasons(ddl)
    ]


# -- risky rules ---------------------------------------------------------------------------------


def _not_null_without_default(column: Column) -> bool:
    d = column.definition
    return (
        "NOT NULL" in d
        and " DEFAULT " not in f" {d} "
        and "AUTO_INCREMENT" not in d
        and "GENERATED ALWAYS" not in d
    )


@rule(
    "SB101", "not-null-without-default", WARNING, "existing rows get an implicit value, or the change fails"
)
def _not_null(s: LintSubject) -> Iterable[str]:
    if s.diff.action != "alter" or s.rows <= 0:
        return
    for col in s.diff.added_columns:
        if _not_null_without_default(col):
            yield f"{s.table}.{col.name} is added NOT NULL without a default; existing rows get 0 or ''"
    for old, new in s.diff.modified_columns:
        became_not_null = "NOT NULL" not in old.definition and "NOT NULL" in new.definition
        if became_not_null and " DEFAULT " not in new.definition:
            yield f"{s.table}.{new.name} becomes NOT NULL without a default; NULLs in it make the change fail"


@rule("SB102", "unique-on-duplicates", ERROR, "a UNIQUE key cannot be built over duplicate values")
def _unique_duplicates(s: LintSubject) -> Iterable[str | tuple[str, str]]:
    if s.diff.action != "alter":
        return
    live_cols = {c.name for c in (s.diff.live.columns if s.diff.live else [])}
    for key in s.diff.added_keys:
        if key.kind not in ("UNIQUE KEY", "PRIMARY KEY") or not key.columns:
            continue
        if not set(key.columns) <= live_cols or s.rows <= 0:
            continue  # new columns: no data to check
        if s.query is None or s.rows > UNIQUE_CHECK_MAX_ROWS:
            yield (WARNING, f"{s.table}: {key.kind} {key.name} not checked for duplicates ({s.rows} rows)")
            continue
        cols = ", ".join("`" + c.replace("`", "``") + "`" for c in key.columns)
        null_free = " AND ".join(f"{c} IS NOT NULL" for c in cols.split(", "))
        try:
            row = s.query(
                f"SELECT {cols}, COUNT(*) FROM `{s.table}` WHERE {null_free} GROUP BY {cols} "
                "HAVING COUNT(*) > 1 LIMIT 1"
            )
        except QueryTimeout as exc:
            yield (WARNING, f"{s.table}: {key.kind} {key.name} not checked for duplicates ({exc})")
            continue
        if row is not None:
            sample = ", ".join(str(v) for v in row[:-1])
            names = ", ".join(key.columns)
            yield f"{s.table}: {key.kind} {key.name} ({names}) has duplicates, e.g. ({sample})"


@rule("SB103", "no-primary-key", WARNING, "tables without a primary key cannot be changed online")
def _no_primary_key(s: LintSubject) -> Iterable[str]:
    if s.diff.action in ("create", "alter") and s.diff.desired and not s.diff.desired.primary_key:
        yield f"{s.table} has no primary key (the online copy needs one)"


@rule("SB104", "foreign-key", WARNING, "foreign keys block online copies and couple tables")
def _foreign_key(s: LintSubject) -> Iterable[str]:
    for key in s.diff.added_keys:
        if key.kind == "FOREIGN KEY":
            yield f"{s.table}: foreign key {key.name} is added"


def _index_bytes(key: Key, table: TableDef) -> list[tuple[str, int]]:
    wide = []
    for name in key.columns:
        col = table.column(name)
        if col is None or f"`{name}`(" in key.body:
            continue
        base, args, _ = _base_type(col)
        if base in ("varchar", "char", "varbinary", "binary") and args:
            size = args[0] * (_char_bytes(col) if base in ("varchar", "char") else 1)
            if size > WIDE_INDEX_BYTES:
                wide.append((name, size))
    return wide


@rule("SB105", "wide-index", WARNING, "an index on a very wide column is large and slow")
def _wide_index(s: LintSubject) -> Iterable[str]:
    if s.diff.desired is None:
        return
    for key in s.diff.added_keys:
        if key.kind in ("FULLTEXT KEY", "SPATIAL KEY") or key.is_constraint:
            continue
        for name, size in _index_bytes(key, s.diff.desired):
            yield f"{s.table}: {key.name} indexes {name} whole (up to {size} bytes); index a prefix"


def _index_columns(key: Key) -> list[str]:
    return key.columns


@rule("SB106", "redundant-index", WARNING, "a duplicate or left-prefix index costs writes for nothing")
def _redundant_index(s: LintSubject) -> Iterable[str]:
    if s.diff.desired is None:
        return
    added = {k.name for k in s.diff.added_keys} if s.diff.action == "alter" else None
    keys = [k for k in s.diff.desired.keys if k.kind in ("KEY", "UNIQUE KEY", "PRIMARY KEY")]
    for a in keys:
        for b in keys:
            if a is b or a.kind != "KEY":
                continue
            if added is not None and a.name not in added and b.name not in added:
                continue
            ca, cb = _index_columns(a), _index_columns(b)
            if ca and ca == cb[: len(ca)] and (ca != cb or keys.index(a) > keys.index(b)):
                yield f"{s.table}: index {a.name} ({', '.join(ca)}) is covered by {b.name} ({', '.join(cb)})"
                break


@rule("SB107", "legacy-charset", WARNING, "utf8mb3 and latin1 cannot store every character; use utf8mb4")
def _legacy_charset(s: LintSubject) -> Iterable[str]:
    desired = s.diff.desired
    if desired is None:
        return
    if s.diff.action == "create":
        charset = desired.options.get("DEFAULT CHARSET", "")
        if charset in LEGACY_CHARSETS:
            yield f"new table {s.table} uses {charset}"
        columns = desired.columns
    else:
        columns = s.diff.added_columns + [new for _, new in s.diff.modified_columns]
    table_default = desired.options.get("DEFAULT CHARSET") if s.diff.action == "create" else None
    for col in columns:
        if col.charset in LEGACY_CHARSETS and col.charset != table_default:
            yield f"{s.table}.{col.name} uses {col.charset}"


@rule("SB108", "float-money", WARNING, "FLOAT/DOUBLE round money; use DECIMAL")
def _float_money(s: LintSubject) -> Iterable[str]:
    columns = (
        s.diff.desired.columns
        if s.diff.action == "create" and s.diff.desired
        else s.diff.added_columns + [new for _, new in s.diff.modified_columns]
    )
    for col in columns:
        if _base_type(col)[0] in ("float", "double", "real") and MONEY_NAME.search(col.name):
            yield f"{s.table}.{col.name} holds money in {_base_type(col)[0].upper()}; use DECIMAL"
