"""Phase `cutover` (and the step that enters it from `wait_cutover`): the atomic rename of every
copied table of the operation, the clean-up after it, and, after an interruption, deciding from
the tables present whether the rename happened (cutover.py holds the rename itself).

Moved out of engine.py unchanged in logic (issue 12 §5); the step's connection, request, tables
and checkpoints arrive as one `Step`.
"""

from __future__ import annotations

import time
from typing import Any

import pymysql

from engines.base import PermanentEngineError, ProgressResult, RetryableEngineError
from engines.options import SpiritOptions, read_options
from engines.spirit import binlogsource, checkpoint, cutover, resume_rules, sentinel
from engines.spirit.checkpoint import Phase
from engines.spirit.connection import close_quietly, connect, error_text, is_transient, target_errors
from engines.spirit.phases import reporting
from engines.spirit.phases.step import Step, refuse_if_writes_refused
from engines.spirit.resume_rules import RunView
from engines.spirit.tableinfo import auto_increment, fingerprint_of, show_create
from engines.spirit.triggers import drop_triggers, refused_writes

MAX_CUTOVER_ATTEMPTS = 20
CUTOVER_LOCK_WAIT_SECONDS = 2
# The binlog between the last catch-up and the RENAME is a few events; reading it (a replication
# connection, the dump) takes tens of milliseconds; this bounds a server that stalls.
MISSED_WRITES_READ_SECONDS = 10.0


class AmbiguousCutover(PermanentEngineError):
    """The permanent failures after which nothing is removed, so a person must look: nobody
    knows which table is which, or a write refused by the new table is only in the old one."""


def begin(step: Step) -> ProgressResult:
    """Every copied table is ready and consent is given: record phase `cutover` for all of
    them in one transaction (from here a crash is decided by `recover`), then rename."""
    conn, plans, cps = step.conn, step.plans, step.cps
    copy_plans = [p for p in plans if cps[p.label].kind == "copy"]
    with conn.cursor() as cur:
        cur.execute("BEGIN")
        for p in copy_plans:
            cps[p.label] = cps[p.label].but(phase=Phase.CUTOVER)
            checkpoint.save(cur, cps[p.label])
        cur.execute("COMMIT")
    return rename(step)


def rename(step: Step) -> ProgressResult:
    """Carry the AUTO_INCREMENT counter over, catch the binlog source up, then the atomic
    rename with the last checks made under the cutover lock (cutover.rename_with_retries);
    a lock wait that runs out is retried at the next step, up to MAX_CUTOVER_ATTEMPTS."""
    conn, request, plans, cps, events = step.conn, step.request, step.plans, step.cps, step.events
    deadline = step.deadline
    copy_plans = [p for p in plans if cps[p.label].kind == "copy"]
    lock_wait = (
        read_options(SpiritOptions, request.options.extra).cutover_lock_wait_seconds
        or CUTOVER_LOCK_WAIT_SECONDS
    )
    refuse_if_writes_refused(conn, copy_plans)
    with target_errors("carrying the AUTO_INCREMENT counter over"), conn.cursor() as cur:
        for p in copy_plans:
            # The shadow was made LIKE the source, which resets the counter; the blocking
            # ALTER keeps it. Every later insert on the source reaches the shadow through
            # the triggers with its explicit value, which moves the shadow's counter on.
            counter = auto_increment(cur, p.names.schema, p.names.table)
            if counter is not None:
                cur.execute(
                    f"ALTER TABLE {p.names.q(p.names.shadow)} AUTO_INCREMENT = {int(counter)}"
                )
    by_binlog = [p for p in copy_plans if binlogsource.uses_binlog(cps[p.label])]
    for p in by_binlog:
        # Most of the changes are applied before the lock, so that little is left under it.
        cps[p.label] = binlogsource.catch_up_plan(
            conn, step.target, p, cps[p.label], max(deadline, time.monotonic() + 1.0),
            readers=step.readers,
        )

    def verify(cur: Any) -> tuple[str, bool] | None:
        """The last checks, made while the cutover lock holds every writer."""
        try:
            for p in by_binlog:
                # Nothing can be written now: the shadow gets the last changes.
                cps[p.label] = binlogsource.catch_up_plan(
                    conn, step.target, p, cps[p.label], time.monotonic() + 30,
                    readers=step.readers, complete=True,
                )
                binlogsource.carry_counter(cur, p.names)
        except PermanentEngineError as error:
            return str(error), True
        except RetryableEngineError as error:
            return f"the last catch-up from the binlog failed: {error}", False
        for p in copy_plans:
            refused = refused_writes(cur, p.names)
            if refused is not None:
                return (
                    f"{p.label}: a write made during the change cannot be stored in the "
                    f"new table: {refused}; a blocking ALTER would fail the same way",
                    True,
                )
            check = resume_rules.restart_reason(
                cur, p, cps[p.label].but(phase=Phase.WAIT_CUTOVER)
            )
            if not isinstance(check, RunView):
                return f"{p.label}: {check}", False
        return None

    # The cutover's lock holders, one per table (cutover.read_locked_rename), for both sources.
    holders: list[Any] = []
    try:
        holders.extend(connect(step.target) for _ in copy_plans)
    except BaseException:
        for holder in holders:
            close_quietly(holder)
        raise
    try:
        with conn.cursor() as cur:
            attempts = cutover.rename_with_retries(
                cur,
                [p.names for p in copy_plans],
                lock_wait_seconds=lock_wait,
                deadline=deadline,
                sleep=step.sleep,
                min_attempts=1,
                peer=step.peer(),
                verify=verify,
                holders=holders,
            )
    except cutover.CutoverRefused as refused:
        # Nothing was renamed: back to waiting, so that a failure cleans up and a restart
        # can start the table fresh.
        with target_errors("withholding the cutover"), conn.cursor() as cur:
            for p in copy_plans:
                cps[p.label] = cps[p.label].but(phase=Phase.WAIT_CUTOVER)
                checkpoint.save(cur, cps[p.label])
        if refused.permanent:
            raise PermanentEngineError(str(refused)) from None
        raise RetryableEngineError(f"cutover withheld: {refused}") from None
    except pymysql.MySQLError as error:
        if not is_transient(error):
            raise RetryableEngineError(
                f"cutover: the rename failed: {error_text(error)}; the next step decides "
                "from the tables present"
            ) from error
        with conn.cursor() as cur:
            for p in copy_plans:
                cps[p.label] = cps[p.label].but(
                    cutover_attempts=cps[p.label].cutover_attempts + 1
                )
                checkpoint.save(cur, cps[p.label])
        tries = max(cp.cutover_attempts for cp in cps.values())
        if tries >= MAX_CUTOVER_ATTEMPTS:
            raise RetryableEngineError(
                f"cutover: could not take the metadata locks in {tries} attempts "
                f"({error_text(error)}); tables are intact and the rename is retried"
            ) from error
        events.append(f"cutover attempt {tries} waited too long for locks; retrying")
        return reporting.result(step, "cutting over: waiting for locks")
    finally:
        for holder in holders:
            close_quietly(holder)
    labels = ", ".join(p.label for p in copy_plans)
    events.append(f"cutover: renamed {labels} atomically (attempt {attempts})")
    return finish(step)


def finish(step: Step) -> ProgressResult:
    """After the rename: drop the triggers (now on `_<t>_old`), then the old tables. First
    `_<t>_err` once more: the last checks found it empty, so a row there now is a write that
    reached the old table after them (only possible if the cutover's lock holder died just
    as the RENAME was sent) and is missing from the new table; the same for the binlog source's
    writes, and for another session's ALTER that ran on the old table ahead of the RENAME;
    then nothing is dropped."""
    conn, request, plans, cps = step.conn, step.request, step.plans, step.cps
    with target_errors("reading refused writes"), conn.cursor() as cur:
        for p in plans:
            refused = refused_writes(cur, p.names) if cps[p.label].kind == "copy" else None
            if refused is not None:
                raise AmbiguousCutover(
                    f"{p.label}: the tables were swapped, but a write made during the cutover "
                    f"could not be stored in the new table: {refused}; it is only in "
                    f"{p.names.old}, which is kept with its triggers and {p.names.errors}; "
                    "nothing more is done"
                )
            if cps[p.label].kind == "copy":
                _refuse_if_the_old_table_was_altered(cur, p.names, cps[p.label])
            if cps[p.label].kind == "copy" and binlogsource.uses_binlog(cps[p.label]):
                _refuse_if_the_rename_missed_writes(step, cur, p.names, cps[p.label])
    with conn.cursor() as cur:
        for p in plans:
            if cps[p.label].kind != "copy":
                continue
            drop_triggers(cur, p.names)
            cur.execute(f"DROP TABLE IF EXISTS {p.names.q(p.names.old)}")
            cps[p.label] = cps[p.label].but(phase=Phase.DONE, message="cut over")
            checkpoint.save(cur, cps[p.label])
        sentinel.release(cur, {p.names.schema for p in plans}, request.context)
    return reporting.result(step, "completed")


def _refuse_if_the_old_table_was_altered(cur: Any, names: Any, cp: checkpoint.Checkpoint) -> None:
    """Another session's ALTER queued on `t` during the cutover is also a pending exclusive
    request there, and may run between the unlock and the RENAME, on the table that becomes
    `_sb_<t>_old` (cutover.py's module docstring): its change is then not in the new table. The
    old table still has the source's definition unless that happened (a checkpoint without the
    source's fingerprint cannot tell, and is not judged)."""
    old_sql = show_create(cur, names.schema, names.old)
    if old_sql is None or cp.source_fingerprint is None:
        return
    if fingerprint_of(old_sql) != cp.source_fingerprint:
        raise AmbiguousCutover(
            f"{names.label}: the tables were swapped, but a schema change ran on the table "
            f"during the cutover, ahead of the rename: {names.old} no longer has the definition "
            f"the change started from, and that schema change is not in the new table; "
            f"{names.old} is kept; nothing more is done"
        )


def _refuse_if_the_rename_missed_writes(
    step: Step, cur: Any, names: Any, cp: checkpoint.Checkpoint
) -> None:
    """The binlog source's twin of the `_sb_<t>_err` check above: a write that reached the old
    table between the last catch-up and the RENAME (the lock holder died in that moment) is in
    `_sb_<t>_old` only. Found in the binlog, it stops the run with the old table kept."""
    missed = binlogsource.writes_missed_by_the_rename(
        cur, step.target, names, cp, time.monotonic() + MISSED_WRITES_READ_SECONDS
    )
    if missed:
        shown = ", ".join(str(k[0] if len(k) == 1 else k) for k in sorted(missed, key=str)[:10])
        raise AmbiguousCutover(
            f"{names.label}: the tables were swapped, but {len(missed)} row(s) were written to the "
            f"old table after the last catch-up, ahead of the rename (the cutover lock was lost "
            f"in that instant; keys {shown}); they are only in {names.old}, which is kept; "
            "nothing more is done"
        )
    if missed is None:
        step.events.append(
            f"{names.label}: could not read the binlog up to the rename to confirm that no write "
            "reached the old table after the last catch-up"
        )


def recover(step: Step) -> ProgressResult:
    """A step found phase `cutover`: decide from the tables present whether the rename
    happened (finish), did not (check again, rename again), or cannot be told (stop, keep all)."""
    conn, plans, cps, events = step.conn, step.plans, step.cps, step.events
    copy_plans = [p for p in plans if cps[p.label].kind == "copy"]
    details = []
    outcomes: list[cutover.Outcome] = []
    with conn.cursor() as cur:
        for p in copy_plans:
            cp = cps[p.label]
            presence = cutover.read_presence(cur, p.names)
            outcome = cutover.decide_one(presence, cp.source_fingerprint, cp.shadow_fingerprint)
            outcomes.append(outcome)
            details.append(f"{p.label}: {outcome} ({presence})")
    verdict = cutover.decide(outcomes)
    if verdict == "ambiguous":
        raise AmbiguousCutover(
            "cutover outcome is ambiguous; the tables present do not show whether the rename "
            f"happened, so nothing more is done: {'; '.join(details)}"
        )
    if verdict == "renamed":
        events.append("cutover: the rename had happened before the interruption; finishing")
        return finish(step)
    with conn.cursor() as cur:
        for p in copy_plans:
            check = resume_rules.restart_reason(
                cur, p, cps[p.label].but(phase=Phase.WAIT_CUTOVER)
            )
            if not isinstance(check, RunView):
                # Writes may have escaped the shadow: no cutover on this run. The next step
                # starts the table fresh.
                for q in copy_plans:
                    cps[q.label] = cps[q.label].but(phase=Phase.WAIT_CUTOVER)
                    checkpoint.save(cur, cps[q.label])
                raise RetryableEngineError(f"cutover withheld: {p.label}: {check}")
    events.append("cutover: the rename had not happened; retrying it")
    return rename(step)
