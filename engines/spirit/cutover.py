"""Cutover: one atomic RENAME TABLE for every table of the operation, and crash recovery of it.

`RENAME TABLE s.t TO s._t_old, s._t_new TO s.t, ...` swaps all tables at once or none: a
grouped apply over several tables (and schemas) switches together. It waits for the metadata
locks of in-flight transactions for at most a short `lock_wait_timeout` (so the application's
queries never queue for long behind it) and is retried with backoff. MariaDB refuses RENAME under
LOCK TABLES, so no LOCK TABLES is used: the triggers keep the shadow equal right up to the swap.

After a crash during cutover the checkpoint says `cutover` but not whether the rename happened.
`decide` reads it from the tables present and their fingerprints, and answers "ambiguous" rather
than guess when they do not tell a consistent story.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import pymysql
from pymysql.cursors import Cursor

from engines.spirit.connection import is_transient
from engines.spirit.naming import TableNames
from engines.spirit.tableinfo import fingerprint_of, show_create, table_exists

Outcome = Literal["not_renamed", "renamed", "ambiguous"]


@dataclass(frozen=True)
class Presence:
    """What exists of one table's trio, and the fingerprints of what exists."""

    table_fingerprint: str | None
    shadow_fingerprint: str | None
    old_present: bool


def read_presence(cur: Cursor, names: TableNames) -> Presence:
    table_sql = show_create(cur, names.schema, names.table)
    shadow_sql = show_create(cur, names.schema, names.shadow)
    return Presence(
        None if table_sql is None else fingerprint_of(table_sql),
        None if shadow_sql is None else fingerprint_of(shadow_sql),
        table_exists(cur, names.schema, names.old),
    )


def decide_one(p: Presence, source_fp: str | None, shadow_fp: str | None) -> Outcome:
    """Whether the rename happened for one table, from what is there now.

    - not renamed: the shadow is still there, nothing was renamed to `_old`, and the table is
      still the source.
    - renamed: the shadow is gone and the table now has the shadow's definition; `_old` is
      either there or already dropped. When the ALTER did not change the definition
      (source_fp == shadow_fp), only `_old` being present can prove the rename.
    """
    if p.table_fingerprint is None:
        return "ambiguous"
    if p.shadow_fingerprint is not None and not p.old_present:
        if p.table_fingerprint == source_fp and p.shadow_fingerprint == shadow_fp:
            return "not_renamed"
        return "ambiguous"
    shadow_became_table = p.shadow_fingerprint is None and p.table_fingerprint == shadow_fp
    if shadow_became_table and (p.old_present or source_fp != shadow_fp):
        return "renamed"
    return "ambiguous"


def decide(outcomes: Sequence[Outcome]) -> Outcome:
    """All tables renamed, or none: anything else cannot come from one atomic RENAME."""
    unique = set(outcomes)
    return unique.pop() if len(unique) == 1 else "ambiguous"


def rename_statement(all_names: Sequence[TableNames]) -> str:
    pairs = []
    for n in all_names:
        pairs.append(f"{n.q()} TO {n.q(n.old)}")
        pairs.append(f"{n.q(n.shadow)} TO {n.q()}")
    return "RENAME TABLE " + ", ".join(pairs)


def rename_with_retries(
    cur: Cursor,
    all_names: Sequence[TableNames],
    *,
    lock_wait_seconds: int,
    deadline: float,
    sleep: Callable[[float], None] = time.sleep,
    min_attempts: int = 2,
) -> int:
    """Run the atomic rename; retry transient failures with backoff until `deadline` (at least
    `min_attempts` times). Returns the number of attempts; re-raises the last failure."""
    statement = rename_statement(all_names)
    cur.execute(f"SET SESSION lock_wait_timeout = {int(lock_wait_seconds)}")
    delay = 0.1
    attempt = 0
    try:
        while True:
            attempt += 1
            try:
                cur.execute(statement)
                return attempt
            except pymysql.MySQLError as error:
                out_of_time = time.monotonic() + delay + lock_wait_seconds > deadline
                if not is_transient(error) or (attempt >= min_attempts and out_of_time):
                    raise
            sleep(delay)
            delay = min(delay * 2, 1.0)
    finally:
        cur.execute("SET SESSION lock_wait_timeout = 5")
