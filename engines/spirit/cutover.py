"""Cutover: one atomic RENAME TABLE for every table of the operation, and crash recovery of it.

`RENAME TABLE s.t TO s._sb_t_old, s._sb_t_new TO s.t, ...` swaps all tables at once or none: a
grouped apply over several tables (and schemas) switches together. It waits for the metadata
locks of in-flight transactions for at most a short `lock_wait_timeout` (so the application's
queries never queue for long behind it) and is retried with backoff.

The last checks must see a table nobody writes to, or a write landing between the check and the
rename escapes them; and the writers held meanwhile must, when released, run against the new
table, never the old one. MariaDB refuses RENAME under LOCK TABLES, so `read_locked_rename` uses
a holder connection per table, the engine's own connection and a peer, for both change sources:

1. each holder H_i takes `LOCK TABLES t_i READ`: writers wait, everyone may read;
2. the last checks run on the engine's own connection: no write the new table refused
   (`_sb_<t>_err`, trigger path), the source's and the shadow's definitions and the triggers
   unchanged, and for the binlog source the last catch-up up to the server's position;
3. only when they pass, and every H_i is seen still alive (its lock is its session's: alive means
   every writer was held from the lock until now), is the RENAME sent, on the peer connection;
4. H_i unlocks only once the RENAME is queued on `t_i` itself: the engine's connection asks for a
   shared-read lock on `t_i` without waiting, which the server refuses only behind a pending
   exclusive request. The pending exclusive lock on `t_i` is then served before the writers'
   requests, which open the new `t_i`.
"Seen waiting for a metadata lock" is not enough for step 4. The RENAME takes its locks in key
order, and `_sb_<t>_new` / `_sb_<t>_old` sort before a lower-case `t`: anything holding the
shadow for a moment when the RENAME is sent (InnoDB's purge or statistics threads, a reader) has
it wait there first; and in a grouped apply it reaches the later tables only after the earlier
ones are granted. Unlocked early, the writers got `t` ahead of it: with the binlog source their
writes landed in the old table after the last catch-up, with triggers a transaction that had
touched another table met the RENAME in a deadlock and failed with 1213
(tests/integration/spirit/binlog/test_binlog_cutover_lock_order.py, test_cutover_window.py).
If the checks fail, or a holder dies before the RENAME is sent, the RENAME is never sent:
nothing is renamed. If the rename does not queue on every table within the wait, its query is
killed before the remaining holders unlock; so is a RENAME found in flight when a holder's
unlock fails because its session died (binlog/test_binlog_cutover_lock_order.py: a writer let in
through the dead holder, the RENAME then waiting on another table of the group). A holder dying
in the instant between its last answer and the RENAME's wait on its table lets writers in ahead
of an unguarded RENAME; the step after the rename finds such writes before dropping anything
(`_sb_<t>_err` for the triggers, the binlog up to the RENAME for the binlog source,
phases/cutting_over.finish) and keeps `_sb_<t>_old` for a person. Another session's DDL pending
on `t` at that instant (an ALTER a person started during the cutover) is also read as the
RENAME's queue; it then runs first, on the table that becomes `_sb_<t>_old`, and its change is
not in the new `t`. The step after the rename finds the old table's definition changed and stops
the same way (test_cutover_window.py).

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

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import pymysql
from pymysql.connections import Connection
from pymysql.cursors import Cursor

from engines.mysql.errors import error_code
from engines.spirit.connection import is_transient
from engines.spirit.naming import TableNames
from engines.spirit.tableinfo import fingerprint_of, show_create, table_exists

Outcome = Literal["not_renamed", "renamed", "ambiguous"]
SENTRY_COMMENT = "schemabot spirit cutover sentry"
ER_LOCK_WAIT_TIMEOUT = 1205
ER_PARSE_ERROR = 1064


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
    holders: Sequence[Cursor],
    peer: Connection,
    all_names: Sequence[TableNames],
    *,
    lock_wait_seconds: int,
    verify: Callable[[], tuple[str, bool] | None],
    probe: Cursor,
) -> None:
    """The rename (see the module docstring): writers held by a READ lock per table, `holders[i]`
    holding `all_names[i]`; `verify` (the last checks, and catch-up for the binlog source, on
    `probe`'s connection) runs meanwhile; the RENAME is sent on `peer` only if they pass and
    every holder is still alive. Each holder unlocks only once `probe` sees the RENAME queued on
    its table. Raises CutoverRefused when `verify` finds a problem, a holder is gone before the
    RENAME is sent, or the RENAME does not queue on every table within the wait; the server's
    error when the rename fails; either way nothing was renamed."""
    if len(holders) != len(all_names) or not holders:
        raise ValueError("one lock holder per table is needed")
    for n in all_names:
        if table_exists(holders[0], n.schema, n.old):
            if not is_sentry(holders[0], n.schema, n.old):
                raise CutoverRefused(
                    f"{n.schema}.{n.old} exists and was not created by the engine", permanent=True
                )
            holders[0].execute(f"DROP TABLE {n.q(n.old)}")
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

    locked: list[int] = []  # the holders whose lock is (as far as known) still held
    thread: threading.Thread | None = None
    problem: tuple[str, bool] | None = None
    try:
        for i, (holder, n) in enumerate(zip(holders, all_names, strict=True)):
            holder.execute(f"SET SESSION lock_wait_timeout = {int(lock_wait_seconds)}")
            holder.execute(f"LOCK TABLES {n.q()} READ")
            locked.append(i)
        problem = verify()
        if problem is None and not all(_still_holding(holders[i]) for i in locked):
            # A lock went with its session: writers may have run since the checks. No RENAME.
            locked = [i for i in locked if holders[i].connection.open]
            problem = (
                "the connection holding the cutover lock was lost before the rename; writes may "
                "have reached the table after the last checks",
                False,
            )
        if problem is None:
            thread = threading.Thread(target=rename, daemon=True)
            thread.start()
            waited_until = time.monotonic() + lock_wait_seconds
            while thread.is_alive() and locked:
                for i in list(locked):
                    if not rename_queued_on(probe, all_names[i]):
                        continue
                    # Every other holder asked (no short cut): a dead one is then marked closed
                    # and is not unlocked below.
                    if not all([_still_holding(holders[j]) for j in locked if j != i]):
                        # Queued on this table, the RENAME holds every table before it in its
                        # order: one of them came to it from a dead holder, not from an unlock
                        # here, and writers may have gone in first. Stop it while this table's
                        # holder still keeps it from completing.
                        problem = (
                            "the connection holding the cutover lock of a table was lost with "
                            "the rename in flight; writes may have reached it after the last checks",
                            False,
                        )
                        _stop_the_rename(thread, probe, holders, peer_id)
                        locked = [j for j in locked if holders[j].connection.open]
                        break
                    holders[i].execute("UNLOCK TABLES")
                    locked.remove(i)
                if not locked or problem is not None:
                    break
                if time.monotonic() > waited_until:
                    problem = ("the rename did not queue behind the cutover lock", False)
                    _stop_the_rename(thread, probe, holders, peer_id)
                    break
                time.sleep(0.002)
    except pymysql.MySQLError:
        if thread is not None and thread.is_alive():
            # A holder or the probe failed with the RENAME in flight: stop it if it still waits,
            # so that writers let in by a lost lock cannot be followed by the swap.
            _stop_the_rename(thread, probe, holders, peer_id)
        locked = [i for i in locked if holders[i].connection.open]
        raise
    finally:
        for i in locked:
            holders[i].execute("UNLOCK TABLES")
        if thread is not None:
            thread.join(timeout=lock_wait_seconds + 30)
        with peer.cursor() as pc:
            pc.execute("SET SESSION lock_wait_timeout = 5")
    renamed = "error" in outcome and outcome["error"] is None
    if problem is not None and not renamed:
        raise CutoverRefused(problem[0], permanent=problem[1])
    # A RENAME that completed although it was to be stopped did swap the tables: that is said
    # as it is, and the step after the rename judges what reached the old tables.
    error = outcome.get("error", TimeoutError("the rename did not return"))
    if error is not None:
        raise error


def rename_queued_on(probe: Cursor, names: TableNames) -> bool:
    """Whether an exclusive metadata lock request (the RENAME's) waits on the table now.

    A shared-read request made without waiting is compatible with the holder's READ lock and
    with the writers' requests, and refused only behind a pending exclusive (or LOCK TABLES
    WRITE) request, which the server serves first. A RENAME seen "waiting for a metadata lock"
    is not enough: it takes its locks in key order, and may be waiting on the shadow (a reader,
    InnoDB's purge or statistics) or on an earlier table of the group, not yet queued on this
    one; unlocking then hands the table to the writers ahead of it.
    """
    try:
        try:
            probe.execute(f"SET STATEMENT lock_wait_timeout = 0 FOR SELECT 1 FROM {names.q()} LIMIT 0")
        except pymysql.MySQLError as error:
            if error_code(error) != ER_PARSE_ERROR:
                raise
            # MySQL has no SET STATEMENT, and waits at least a second.
            probe.execute("SET @sb_lock_wait = @@SESSION.lock_wait_timeout")
            probe.execute("SET SESSION lock_wait_timeout = 1")
            try:
                probe.execute(f"SELECT 1 FROM {names.q()} LIMIT 0")
            finally:
                probe.execute("SET SESSION lock_wait_timeout = @sb_lock_wait")
        probe.fetchall()
    except pymysql.MySQLError as error:
        if error_code(error) == ER_LOCK_WAIT_TIMEOUT:
            return True
        raise
    finally:
        if not probe.connection.get_autocommit():
            probe.connection.commit()  # the probe's own shared lock must not outlive it
    return False


KILLED_RENAME_SECONDS = 5.0
"""How long a killed RENAME is waited for before the remaining holders unlock anyway."""


def _stop_the_rename(
    thread: threading.Thread, probe: Cursor, holders: Sequence[Cursor], peer_id: int
) -> None:
    """Kill the RENAME (`peer_id`'s query, from the first connection still open) and wait for
    its statement to end, before any remaining holder unlocks.

    `KILL QUERY` returns once the flag is set, not once the RENAME has seen it. A RENAME that
    the server has not scheduled yet would see a holder's lock released before its kill, take
    the table and complete the swap (seen under CPU load: the write let in through a dead holder
    ended in `_sb_<t>_old`). While a remaining holder still holds its table, the RENAME cannot
    get past it, so once it has ended it has failed. A server too slow to end it within
    `KILLED_RENAME_SECONDS` is not waited for longer: the holders must not keep the writers out
    for ever, and the check after the rename still finds what reached the old table."""
    _kill_quietly(probe, holders, peer_id)
    thread.join(timeout=KILLED_RENAME_SECONDS)


def _kill_quietly(probe: Cursor, holders: Sequence[Cursor], peer_id: int) -> None:
    for cur in (probe, *holders):
        if cur.connection.open:
            try:
                cur.execute(f"KILL QUERY {peer_id}")
                return
            except pymysql.MySQLError:
                continue


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
    holders: Sequence[Connection] | None = None,
) -> int:
    """Run the atomic rename (read-locked by `holders`, one connection per table, the RENAME on
    `peer`, `verify` and the probes run on `cur`, when the three are given; plainly on `cur`
    otherwise); retry transient failures with backoff until `deadline` (at least `min_attempts`
    times). Returns the number of attempts; re-raises the last failure, at once when a holder's
    connection is gone."""
    statement = rename_statement(all_names)
    cur.execute(f"SET SESSION lock_wait_timeout = {int(lock_wait_seconds)}")
    delay = 0.1
    attempt = 0
    try:
        while True:
            attempt += 1
            try:
                if holders and peer is not None and verify is not None:
                    with contextlib.ExitStack() as cursors:
                        read_locked_rename(
                            [cursors.enter_context(h.cursor()) for h in holders],
                            peer,
                            all_names,
                            lock_wait_seconds=lock_wait_seconds,
                            verify=functools.partial(verify, cur),
                            probe=cur,
                        )
                else:
                    cur.execute(statement)
                return attempt
            except pymysql.MySQLError as error:
                out_of_time = time.monotonic() + delay + lock_wait_seconds > deadline
                if not is_transient(error) or (attempt >= min_attempts and out_of_time):
                    raise
                if holders and not all(h.open for h in holders):
                    raise  # the rename may be in flight without its guard: the caller decides
            sleep(delay)
            delay = min(delay * 2, 1.0)
    finally:
        cur.execute("SET SESSION lock_wait_timeout = 5")
