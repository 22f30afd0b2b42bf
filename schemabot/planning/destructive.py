"""Destructive statements recognised from their text alone (issue 13, part 3).

The plan's lint rules see the live table and find every destructive change (narrowed types,
charsets...). An apply submitted with raw DDL and an explicit engine is not planned, so it is
checked here for what the statement's text alone shows: DROP TABLE, DROP COLUMN, DROP PRIMARY KEY.
"""

from __future__ import annotations

import logging

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError


def destructive_reasons(statement: str) -> list[str]:
    """What in `statement` deletes data, in words; [] when nothing visible does."""
    logger = logging.getLogger("sqlglot")
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        node = sqlglot.parse_one(statement, read="mysql")
    except (ParseError, TokenError):
        return []
    finally:
        logger.setLevel(previous)
    if isinstance(node, exp.Drop) and str(node.args.get("kind", "")).upper() == "TABLE":
        return [f"drops table {_name(node)}"]
    reasons = []
    if isinstance(node, exp.Alter):
        for action in node.args.get("actions") or []:
            if isinstance(action, exp.Drop) and str(action.args.get("kind", "")).upper() == "COLUMN":
                reasons.append(f"drops column {_name(action)}")
            elif isinstance(action, exp.DropPrimaryKey):
                reasons.append("drops the primary key")
    return reasons


def _name(drop: exp.Expression) -> str:
    """The dropped object's name (sqlglot keeps it in `this` or in `tables`, by version)."""
    target = drop.this if drop.this is not None else (drop.args.get("tables") or [None])[0]
    return target.name if isinstance(target, exp.Expression) and target.name else "?"
