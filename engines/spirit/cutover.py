"""Cutover: one atomic RENAME TABLE for every table of the operation, and crash recovery of it.

`RENAME TABLE s.t TO s._sb_t_old, s._sb_t_new TO s.t, ...` swaps all tables at once or none: a
grouped apply over several tables (and schemas) switches together. It waits for the metadata
locks of in-flight transactions for at most a short `lock_wait_timeout` (so the application's
queries never queue for long behind it) and is retried with backoff.

The last checks must see a table nobody writes to, or a write landing between the check and the
rename escapes them; and the writers held meanwhile must, when released, run against the new
table, never the old one. MariaDB refuses RENAME under LOCK TABLES, so `read_locked_rename` uses
three connections, for both change sources:

1. a holder connection H takes `LOCK TABLES t READ, ...`: writers wait, everyone may read;
2. the last checks run on the engine's own connection: no write the new table refused
   (`_sb_<t>_err`, trigger path), the source's and the shadow's definitions and the triggers
   unchanged, and for the binlog source the last catch-up up to the server's position;
3. only when they pass, and H is seen still alive (its lock is its session's: alive means every
   writer was held from the lock until now), is the RENAME sent, on the peer connection; its
   locks on the shadow and the free `_sb_<t>_old` name are granted at once (nobody can hold the
   shadow's lock without `t`'s), and it waits on `t` itself;
4. H sees it waiting and unlocks: the pending exclusive lock on `t` is served before the
   writers' requests, which then open the new `t`.
If the checks fail, or H dies before the RENAME is sent, the RENAME is never sent: nothing is
renamed. If the rename does not queue within the wait, its query is killed before H unlocks.
H dying in the instant between its last answer and the RENAME's wait on `t` lets writers in
ahead of an unguarded RENAME; the step after the rename finds such writes before dropping
anything (`_sb_<t>_err` for the triggers, the binlog up to the RENAME for the binlog source,
phases/cutting_over.finish) and keeps `_sb_<t>_old` for a person.

Why not gh-ost's order (a sentry table under `_sb_<t>_old`, `LOCK TABLES t WRITE` on one
connection, the RENAME queued on a second before the checks, sentry dropped, unlock), which this
engine used before: the RENAME takes its metadata locks in name order, and `_sb_...` sorts before
a lower-case table name, so it queued on the shadow (or the sentry), not on `t`. At the unlock
writers queued on `t` got `t` first. With the binlog source they then wrote the old table after
the last catch-up (rows missing, tests/integration/spirit/binlog/test_binlog_under_load.py).
With triggers the writer also needs the shadow's lock (the trigger writes it), which the
RENAME's pending exclusive lock wins: the two deadlock, and the server picks the writer as the
victim. An autocommit statement backs off and retries on the new table, so no refused write was
lost; but a transaction that had touched another table cannot back off, and the application got
1213 for a valid write (tests/integration/spirit/test_cutover_window.py). Queued on `t`, the
RENAME needs nothing a writer holds, and no writer is failed.

A sentry may be left by an engine that used gh-ost's order: it is dropped before the lock, never
a real `_sb_<t>_old`.

After a crash during cutover the checkpoint says `cutover` but not whether the rename happened.
`decide` reads it from the tables present and their fingerprints, and answers "ambiguous" rather
than guess when they do not tell a consistent story.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import pymysql
from pymysql.connections import Connection
from pymysql.cursors import Cursor

from engines.spirit.connection import is_transient
from engines.spirit.naming import TableNames
from engines.spirit.tableinfo import fingerprint_of, show_create, table_exists

Outcome = Literal["not_renamed", "renamed", "ambiguous"]
SENTRY_COMMENT = "schemabot spirit cutover sentry"


class CutoverRefused(Exception):
    """The last checks under the cutover lock found a reason not to swap; nothing was renamed.
    `permanent`: the apply must fail (a write the new table refused); otherwise the run starts
    fresh (a definition changed out of band, a trigger gone)."""

    def __init__(self, reason: str, permanent: bool) -> None:
        super().__init__(reason)
        self.permanent = permanent


Verify = Callable[[Cursor], "tuple[str, bool] | None"]


def is_sentry(cur: Cursor, schema: str, table: str) -> bool:
    cur.execute(
        "SELECT TABLE_COMMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
        "AND TABLE_NAME = %s",
        (schema, table),
    )
    row = cur.fetchone()
    return row is not None and str(row[0]) == SENTRY_COMMENT


def drop_sentries(cur: Cursor, all_names: Sequence[TableNames]) -> None:
    """Drop the sentries left by an interrupted cutover (never a real `_sb_<t>_old`)."""
    for n in all_names:
        if is_sentry(cur, n.schema, n.old):
            cur.execute(f"DROP TABLE IF EXISTS {n.q(n.old)}")


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
        table_exists(cur, names.schema, names.old) and not is_sentry(cur, names.schema, names.old),
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


def read_locked_rename(
    holder: Cursor,
    peer: Connection,
    all_names: Sequence[TableNames],
    *,
    lock_wait_seconds: int,
    verify: Callable[[], tuple[str, bool] | None],
) -> None:
    """The rename (see the module docstring): writers held by a READ lock on `holder`, `verify`
    (the last checks, and catch-up for the binlog source, on another connection) run meanwhile,
    the RENAME sent on `peer` only if they pass and the holder is still alive, released by the
    unlock. Raises CutoverRefused when `verify` finds a problem or the holder is gone before the
    RENAME is sent, the server's error when the rename fails; either way nothing was renamed."""
    for n in all_names:
        if table_exists(holder, n.schema, n.old):
            if not is_sentry(holder, n.schema, n.old):
                raise CutoverRefused(
                    f"{n.schema}.{n.old} exists and was not created by the engine", permanent=True
                )
            holder.execute(f"DROP TABLE {n.q(n.old)}")
    with peer.cursor() as pc:
        pc.execute("SELECT CONNECTION_ID()")
        peer_id = int(pc.fetchone()[0])  # type: ignore[index]
        pc.execute(f"SET SESSION lock_wait_timeout = {int(lock_wait_seconds) + 10}")
    outcome: dict[str, BaseException | None] = {}

    def rename() -> None:
        try:
            with peer.cursor() as pc:
                pc.execute(rename_statement(all_names))
            outcome["error"] = None
        except BaseException as error:  # handed to the caller below
            outcome["error"] = error

    holder.execute(f"SET SESSION lock_wait_timeout = {int(lock_wait_seconds)}")
    holder.execute("LOCK TABLES " + ", ".join(f"{n.q()} READ" for n in all_names))
    thread: threading.Thread | None = None
    problem: tuple[str, bool] | None = None
    holding = True
    try:
        problem = verify()
        if problem is None and not _still_holding(holder):
            # Its lock went with it: writers may have run since the checks. No RENAME is sent.
            holding = False
            problem = (
                "the connection holding the cutover lock was lost before the rename; writes may "
                "have reached the table after the last checks",
                False,
            )
        if problem is None:
            thread = threading.Thread(target=rename, daemon=True)
            thread.start()
            waited_until = time.monotonic() + lock_wait_seconds
            while thread.is_alive():
                # Runs on the holder: an answer also proves its lock is still held.
                holder.execute(
                    "SELECT COALESCE(STATE, '') FROM information_schema.PROCESSLIST WHERE ID = %s",
                    (peer_id,),
                )
                row = holder.fetchone()
                if row is not None and "metadata lock" in str(row[0]).lower():
                    break
                if time.monotonic() > waited_until:
                    problem = ("the rename did not queue behind the cutover lock", False)
                    holder.execute(f"KILL QUERY {peer_id}")
                    break
                time.sleep(0.002)
    except pymysql.MySQLError:
        holding = holder.connection.open
        raise
    finally:
        if holding:
            holder.execute("UNLOCK TABLES")
        if thread is not None:
            thread.join(timeout=lock_wait_seconds + 30)
        with peer.cursor() as pc:
            pc.execute("SET SESSION lock_wait_timeout = 5")
    if problem is not None:
        raise CutoverRefused(problem[0], permanent=problem[1])
    error = outcome.get("error", TimeoutError("the rename did not return"))
    if error is not None:
        raise error


def _still_holding(holder: Cursor) -> bool:
    """Whether the holder's session, and so its LOCK TABLES, is still there."""
    try:
        holder.execute("SELECT 1")
        holder.fetchall()
    except pymysql.MySQLError:
        return False
    return True


def rename_with_retries(
    cur: Cursor,
    all_names: Sequence[TableNames],
    *,
    lock_wait_seconds: int,
    deadline: float,
    sleep: Callable[[float], None] = time.sleep,
    min_attempts: int = 2,
    peer: Connection | None = None,
    verify: Verify | None = None,
    holder: Connection | None = None,
) -> int:
    """Run the atomic rename (read-locked by a `holder` connection, the RENAME on `peer` and
    `verify` run on `cur`, when the three are given; plainly on `cur` otherwise); retry transient
    failures with backoff until `deadline` (at least `min_attempts` times). Returns the number of
    attempts; re-raises the last failure, at once when the holder's connection is gone."""
    statement = rename_statement(all_names)
    cur.execute(f"SET SESSION lock_wait_timeout = {int(lock_wait_seconds)}")
    delay = 0.1
    attempt = 0
    try:
        while True:
            attempt += 1
            try:
                if holder is not None and peer is not None and verify is not None:
                    with holder.cursor() as hc:
                        read_locked_rename(
                            hc,
                            peer,
                            all_names,
                            lock_wait_seconds=lock_wait_seconds,
                            verify=functools.partial(verify, cur),
                        )
                else:
                    cur.execute(statement)
                return attempt
            except pymysql.MySQLError as error:
                out_of_time = time.monotonic() + delay + lock_wait_seconds > deadline
                if not is_transient(error) or (attempt >= min_attempts and out_of_time):
                    raise
                if holder is not None and not holder.open:
                    raise  # the rename may be in flight without its guard: the caller decides
            sleep(delay)
            delay = min(delay * 2, 1.0)
    finally:
        cur.execute("SET SESSION lock_wait_timeout = 5")
