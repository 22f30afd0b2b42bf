"""Cutover: one atomic RENAME TABLE for every table of the operation, and crash recovery of it.

`RENAME TABLE s.t TO s._sb_t_old, s._sb_t_new TO s.t, ...` swaps all tables at once or none: a
grouped apply over several tables (and schemas) switches together. It waits for the metadata
locks of in-flight transactions for at most a short `lock_wait_timeout` (so the application's
queries never queue for long behind it) and is retried with backoff.

The last checks must see a table nobody writes to, or a write landing between the check and the
rename escapes them. MariaDB refuses RENAME under LOCK TABLES, so the rename is guarded the way
gh-ost does it, with two connections (`guarded_rename`):

1. a *sentry* table is created under the name the source will be renamed to (`_sb_<t>_old`), so
   the rename cannot succeed while it exists;
2. connection A takes `LOCK TABLES t WRITE, _sb_<t>_old WRITE, ...`: writers wait;
3. connection B sends the RENAME, which queues behind A's locks (A sees it waiting);
4. under the lock, A runs the last checks (no write the new table refused, the source's and the
   shadow's definitions and the triggers unchanged); if they pass, A drops the sentry;
5. A unlocks: the queued RENAME goes first (a pending exclusive metadata lock is served before
   the writers' requests); if the checks failed, the sentry is still there and the RENAME fails.

If A dies, its locks go and the sentry stays: the RENAME fails. Crash recovery tells the sentry
(marked by its comment) from a real `_sb_<t>_old`.

The RENAME takes its metadata locks in name order, and `_sb_...` sorts before a lower-case table
name: it waits on the shadow (or the sentry), not on `t`, so when A unlocks, writers queued on `t`
may get in before it. Measured with the binlog change source (tests/integration/spirit/binlog/
test_binlog_under_load.py): a few transactions reached the old table after the last checks. With
triggers that is harmless (the triggers carry them to the shadow); the binlog source cannot
accept it, so it cuts over with `read_locked_rename`:

1. a holder connection H takes `LOCK TABLES t READ, ...`: writers wait, everyone may read;
2. the last catch-up and checks run on the engine's own connection (reading `t`, writing the
   shadow and the checkpoint in ordinary transactions);
3. only when they pass is the RENAME sent, on the peer connection; its locks on the shadow and
   the free `_sb_<t>_old` name are granted at once, and it waits on `t` itself;
4. H sees it waiting and unlocks: the pending exclusive lock on `t` is served before the
   writers' (the same rule the guarded rename relies on, now with the RENAME queued on `t`).
No sentry is needed: the RENAME does not exist until the checks have passed. If the rename does
not queue within the wait, its query is killed before H unlocks.

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


def guarded_rename(
    cur: Cursor,
    peer: Connection,
    all_names: Sequence[TableNames],
    *,
    lock_wait_seconds: int,
    verify: Verify,
) -> None:
    """The rename, with the last checks made while writes are held (see the module docstring).
    Raises CutoverRefused when `verify` finds a problem, the server's error when the rename
    fails; either way nothing was renamed."""
    for n in all_names:
        cur.execute(
            f"CREATE TABLE IF NOT EXISTS {n.q(n.old)} (sentry INT) ENGINE=InnoDB "
            f"COMMENT='{SENTRY_COMMENT}'"
        )
        if not is_sentry(cur, n.schema, n.old):
            raise CutoverRefused(
                f"{n.schema}.{n.old} exists and was not created by the engine", permanent=True
            )
    locks = []
    for n in all_names:
        locks += [f"{n.q()} WRITE", f"{n.q(n.old)} WRITE", f"{n.q(n.shadow)} READ"]
        if table_exists(cur, n.schema, n.errors):
            locks.append(f"{n.q(n.errors)} WRITE")
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

    problem: tuple[str, bool] | None = None
    cur.execute(f"LOCK TABLES {', '.join(locks)}")
    thread = threading.Thread(target=rename, daemon=True)
    try:
        thread.start()
        waited_until = time.monotonic() + lock_wait_seconds
        while True:
            cur.execute(
                "SELECT COALESCE(STATE, '') FROM information_schema.PROCESSLIST WHERE ID = %s",
                (peer_id,),
            )
            row = cur.fetchone()
            if row is not None and "metadata lock" in str(row[0]).lower():
                break
            if not thread.is_alive() or time.monotonic() > waited_until:
                problem = ("the rename did not queue behind the cutover lock", False)
                break
            time.sleep(0.002)
        if problem is None:
            problem = verify(cur)
        if problem is None:
            for n in all_names:
                cur.execute(f"DROP TABLE {n.q(n.old)}")  # the sentry: the rename may go
    finally:
        cur.execute("UNLOCK TABLES")
        thread.join(timeout=lock_wait_seconds + 30)
        with peer.cursor() as pc:
            pc.execute("SET SESSION lock_wait_timeout = 5")
    if problem is not None:
        drop_sentries(cur, all_names)
        raise CutoverRefused(problem[0], permanent=problem[1])
    error = outcome.get("error", TimeoutError("the rename did not return"))
    if error is not None:
        drop_sentries(cur, all_names)
        raise error


def read_locked_rename(
    holder: Cursor,
    peer: Connection,
    all_names: Sequence[TableNames],
    *,
    lock_wait_seconds: int,
    verify: Callable[[], tuple[str, bool] | None],
) -> None:
    """The rename for the binlog change source (see the module docstring): writers held by a
    READ lock on `holder`, `verify` (the last catch-up and checks, on another connection) run
    meanwhile, the RENAME sent on `peer` only if they pass and released by the unlock. Raises
    CutoverRefused when `verify` finds a problem, the server's error when the rename fails;
    either way nothing was renamed."""
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
    try:
        problem = verify()
        if problem is None:
            thread = threading.Thread(target=rename, daemon=True)
            thread.start()
            waited_until = time.monotonic() + lock_wait_seconds
            while True:
                holder.execute(
                    "SELECT COALESCE(STATE, '') FROM information_schema.PROCESSLIST WHERE ID = %s",
                    (peer_id,),
                )
                row = holder.fetchone()
                if row is not None and "metadata lock" in str(row[0]).lower():
                    break
                if not thread.is_alive() or time.monotonic() > waited_until:
                    problem = ("the rename did not queue behind the cutover lock", False)
                    if thread.is_alive():
                        holder.execute(f"KILL QUERY {peer_id}")
                    break
                time.sleep(0.002)
    finally:
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
    """Run the atomic rename (guarded, when a `peer` connection and `verify` are given; read-
    locked by a `holder` connection, `verify` then run on `cur`, for the binlog change source);
    retry transient failures with backoff until `deadline` (at least `min_attempts` times).
    Returns the number of attempts; re-raises the last failure."""
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
                elif peer is not None and verify is not None:
                    guarded_rename(
                        cur, peer, all_names, lock_wait_seconds=lock_wait_seconds, verify=verify
                    )
                else:
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
