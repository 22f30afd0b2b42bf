"""Destructive statements recognised from their text alone (issue 13, part 3).

The first of the two checks of a plain apply (`schemabot/planning/guard.py` is the second, against
the live table): what the text shows refuses a statement without connecting to the target.
DROP TABLE, DROP COLUMN and DROP PRIMARY KEY come from sqlglot's tree; the clauses no diff of the
table can show come from the text itself (`clause_reasons`): emptying, dropping or exchanging a
partition, and ALTER IGNORE (which deletes the rows a new unique key would refuse). The plan adds
the same clause reasons as findings (rule SB008), so a plan and a plain apply agree on them.

A statement sqlglot does not model is not "safe": `read_text` says it was not understood, and the
caller asks the server (MySQL targets) or refuses it (fail closed).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from engines.mysql.ddl_text import HiddenSQL, UnterminatedSQL, mask_quoted, strip_comments

_ALTER_HEAD = re.compile(r"^\s*ALTER\s+(?P<online>ONLINE\s+)?(?P<ignore>IGNORE\s+)?TABLE\b", re.I)
# The head with the table's name (quoted or not, schema-qualified or not): the clauses follow it.
_TABLE_HEAD = re.compile(
    r"^\s*ALTER\s+(?:ONLINE\s+)?(?P<ignore>IGNORE\s+)?TABLE\s+"
    r"(?:(?:`[^`]*`|\w+)\s*\.\s*)?(?:`[^`]*`|\w+)",
    re.I,
)
_PARTITION_CLAUSES = (
    (re.compile(r"\bTRUNCATE\s+PARTITION\b", re.I), "empties partition(s) (TRUNCATE PARTITION)"),
    (re.compile(r"\bDROP\s+PARTITION\b", re.I), "drops partition(s) with their rows (DROP PARTITION)"),
    (
        re.compile(r"\bEXCHANGE\s+PARTITION\b", re.I),
        "moves a partition's rows out of the table (EXCHANGE PARTITION)",
    ),
)


@dataclass(frozen=True)
class TextVerdict:
    """What a statement's text shows: `reasons` it deletes data, and whether sqlglot modelled it
    (`understood`); an empty `reasons` of a statement not understood proves nothing."""

    reasons: list[str]
    understood: bool


def clause_reasons(statement: str) -> list[str]:
    """Destructive clauses of an ALTER that a diff of the table's definition cannot show."""
    try:
        text = mask_quoted(strip_comments(statement))
    except (HiddenSQL, UnterminatedSQL):
        return ["cannot be read (hidden or unterminated SQL)"]
    head = _ALTER_HEAD.match(text)
    if head is None:
        return []
    reasons = [why for pattern, why in _PARTITION_CLAUSES if pattern.search(text[head.end() :])]
    if head["ignore"]:
        reasons.append("ALTER IGNORE deletes the rows a new unique key would refuse")
    return reasons


def only_additions(statement: str) -> bool:
    """True when every top-level clause of the ALTER begins with ADD (a column, an index, a
    constraint, a partition). The destructive rules look only at dropped, retyped or re-charset
    columns and a dropped primary key, which no ADD clause makes (an added primary key may make
    its columns NOT NULL, which no destructive rule concerns); so the guard need not ask the
    server about such an ALTER, and a plain submit of an ADD COLUMN stays as fast as it was."""
    try:
        text = mask_quoted(strip_comments(statement))
    except (HiddenSQL, UnterminatedSQL):
        return False
    head = _TABLE_HEAD.match(text)
    if head is None or head["ignore"]:
        return False
    depth, start, clauses = 0, head.end(), []
    for i in range(head.end(), len(text)):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
        elif text[i] == "," and depth == 0:
            clauses.append(text[start:i])
            start = i + 1
    clauses.append(text[start:])
    return all(re.match(r"\s*ADD\b", clause, re.I) for clause in clauses)


def read_text(statement: str) -> TextVerdict:
    """Every reason the text gives that `statement` deletes data, and whether it was understood."""
    reasons = clause_reasons(statement)
    # ALTER ONLINE / IGNORE TABLE: sqlglot does not model the words; the clauses are the same.
    parsed_text = _ALTER_HEAD.sub("ALTER TABLE", statement, count=1)
    logger = logging.getLogger("sqlglot")
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        node = sqlglot.parse_one(parsed_text, read="mysql")
    except (ParseError, TokenError):
        return TextVerdict(reasons, False)
    finally:
        logger.setLevel(previous)
    if isinstance(node, exp.Drop) and str(node.args.get("kind", "")).upper() == "TABLE":
        return TextVerdict([f"drops table {_name(node)}", *reasons], True)
    if not isinstance(node, exp.Alter):
        return TextVerdict(reasons, isinstance(node, exp.Create))
    for action in node.args.get("actions") or []:
        if isinstance(action, exp.Drop) and str(action.args.get("kind", "")).upper() == "COLUMN":
            reasons.append(f"drops column {_name(action)}")
        elif isinstance(action, exp.DropPrimaryKey):
            reasons.append("drops the primary key")
    return TextVerdict(reasons, True)


def destructive_reasons(statement: str) -> list[str]:
    """What in `statement` visibly deletes data, in words; [] when the text shows nothing."""
    return read_text(statement).reasons


def _name(drop: exp.Expression) -> str:
    """The dropped object's name (sqlglot keeps it in `this` or in `tables`, by version)."""
    target = drop.this if drop.this is not None else (drop.args.get("tables") or [None])[0]
    return target.name if isinstance(target, exp.Expression) and target.name else "?"
