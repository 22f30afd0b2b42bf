"""Starting a run from nothing: the idempotent set-up that `apply` (or a step that found a
definitive reason to start fresh) performs.

Order, and why:
1. Preflight checks, before anything is created.
2. Whatever an earlier run of this table left is removed, triggers before tables: a trigger
   whose shadow table is gone would make every write to the source fail.
3. The checkpoint row is written first (phase `setup`), so that from here on the target itself
   says which context owns the table, even if the worker dies in the middle of set-up.
4. The shadow is created LIKE the source and altered: the user's clauses meet the server on an
   empty table first, and a rejection is permanent with the server's own message.
5. An ALTER the server can do instantly is done directly (not when the cutover is deferred: the
   change must then wait for the cutover with the others).
6. The change source: the triggers, or (binlogsource.py) the binlog position the replay starts
   from; then phase `copy`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from pymysql.connections import Connection
from pymysql.cursors import Cursor

from engines.base import PermanentEngineError
from engines.spirit import binlogpos, check, checkpoint, fastpath
from engines.spirit.binlogsource import BINLOG, TRIGGERS, table_refusal
from engines.spirit.check.gather import gather
from engines.spirit.checkpoint import Checkpoint, Phase
from engines.spirit.columnmap import ColumnMap, map_columns
from engines.spirit.connection import target_errors, user_ddl_errors
from engines.spirit.cutover import drop_sentries
from engines.spirit.deferred import Deferred, deferrable_keys, drop_keys
from engines.spirit.plan import TablePlan
from engines.spirit.tableinfo import TableInfo, read_table, table_exists
from engines.spirit.triggers import TriggerChangeSource, drop_triggers

INITIAL_CHUNK = 1000


def discard_run(cur: Cursor, plan: TablePlan) -> None:
    """Remove the triggers, then the shadow table and a cutover sentry, of this table's run."""
    drop_triggers(cur, plan.names)
    cur.execute(f"DROP TABLE IF EXISTS {plan.names.q(plan.names.shadow)}")
    drop_sentries(cur, [plan.names])


def names_taken(cur: Cursor, plan: TablePlan) -> list[str]:
    """The engine's names for this table that exist although no run of the engine that could
    have left them is recorded: someone else's objects, which the engine must never drop."""
    names = plan.names
    if checkpoint.may_have_left_objects(cur, names.schema, names.table):
        return []  # a run of ours may have left them: what carries our names is ours to remove
    found = [
        f"table {n}"
        for n in (names.shadow, names.errors)
        if table_exists(cur, names.schema, n)
    ]
    mine = set(names.triggers)
    cur.execute(
        "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s",
        (names.schema,),
    )
    found += [f"trigger {r[0]}" for r in cur.fetchall() if str(r[0]) in mine]
    return found


def _new_checkpoint(
    plan: TablePlan,
    context: str,
    group: tuple[str, ...],
    kind: str,
    phase: Phase,
    source_fp: str | None,
) -> Checkpoint:
    return Checkpoint(
        schema=plan.names.schema,
        table_name=plan.names.table,
        context=context,
        run_id=uuid.uuid4().hex,
        kind=kind,
        statement=plan.statement.ddl,
        statement_hash=plan.statement.digest,
        shadow_name=plan.names.shadow,
        old_name=plan.names.old,
        source_fingerprint=source_fp,
        shadow_fingerprint=None,
        group_tables=group,
        phase=phase,
        chunk_size=INITIAL_CHUNK,
    )


def _direct(cur: Cursor, plan: TablePlan, context: str, group: tuple[str, ...]) -> Checkpoint:
    st = plan.statement
    if st.kind == "create":
        how = fastpath.create_table(cur, st, plan.names)
        cp = _new_checkpoint(plan, context, group, "direct", Phase.DONE, None)
        cp = cp.but(message=f"CREATE TABLE: {how}")
        checkpoint.create(cur, cp)
        return cp
    return _drop(cur, plan, context, group)


def _drop(cur: Cursor, plan: TablePlan, context: str, group: tuple[str, ...]) -> Checkpoint:
    """DROP TABLE, exact across a crash: the checkpoint row (phase `setup`) records the intent
    before the DROP runs, so an attempt that finds the table gone tells "dropped by our own
    earlier attempt" (the row is there) from "absent at the first attempt" (it is not)."""
    names = plan.names
    earlier = checkpoint.load(cur, names.schema, names.table, context)
    ours = (
        earlier is not None
        and earlier.kind == "direct"
        and earlier.phase == Phase.SETUP
        and earlier.statement_hash == plan.statement.digest
    )
    cp = earlier if ours and earlier is not None else None

    def intended() -> None:
        nonlocal cp
        cp = _new_checkpoint(plan, context, group, "direct", Phase.SETUP, None)
        cp = cp.but(message="DROP TABLE: about to drop")
        checkpoint.create(cur, cp)

    how = fastpath.drop_table(cur, plan, intended, ours)
    if cp is None:  # nothing ran: absent, and accepted by IF EXISTS
        cp = _new_checkpoint(plan, context, group, "direct", Phase.SETUP, None)
        checkpoint.create(cur, cp)
    cp = cp.but(phase=Phase.DONE, message=f"DROP TABLE: {how}")
    checkpoint.save(cur, cp)
    return cp


def start_fresh(
    conn: Connection,
    plan: TablePlan,
    context: str,
    group: tuple[str, ...],
    *,
    allow_instant: bool,
    before_first_change: Callable[[], None],
    vouched: bool = False,
    change_source: str = "auto",
) -> Checkpoint:
    """Set the table's run up from nothing. Returns its checkpoint (phase `copy` or `done`).
    `vouched`: the caller holds a resume state of this operation, which proves that objects
    carrying the engine's names were created by it even when the checkpoint is gone.
    `change_source`: `engine_options.change_source` (auto, triggers, binlog)."""
    st = plan.statement
    names = plan.names
    with conn.cursor() as cur:
        with target_errors(f"{plan.label}: reading the table"):
            source = read_table(cur, names.schema, names.table)
            facts = gather(cur, st, source, uses_copy=st.kind == "alter", change_source=change_source)
        direct_facts = check.CheckContext(**{**facts.__dict__, "uses_copy": False})
        check.run(check.Phase.PREFLIGHT, direct_facts)
        copy_problems = check.problems(check.Phase.PREFLIGHT, facts) if st.kind == "alter" else []
        instant = allow_instant and not st.names_algorithm_or_lock
        if copy_problems and not instant:
            check.run(check.Phase.PREFLIGHT, facts)

        # Nothing has been changed so far; the orchestrator may persist what we are about to do.
        before_first_change()
        if st.kind != "alter":
            with target_errors(f"{plan.label}: {st.kind}"):
                return _direct(cur, plan, context, group)
        assert source is not None  # the statement check refuses an ALTER of a missing table
        with target_errors(f"{plan.label}: setting up"):
            taken = [] if vouched else names_taken(cur, plan)
        if taken:
            raise PermanentEngineError(
                f"{plan.label}: preflight failed: {', '.join(taken)} already exist(s) and the "
                "engine cannot prove it created them (no run of its own on this table that "
                "could have left them); rename or drop them first"
            )
        with target_errors(f"{plan.label}: setting up"):
            discard_run(cur, plan)
            cp = _new_checkpoint(plan, context, group, "copy", Phase.SETUP, source.fingerprint)
            checkpoint.create(cur, cp)
        try:
            return _set_up(cur, plan, cp, facts, source, instant, copy_problems)
        except PermanentEngineError:
            # The set-up can never work: leave nothing behind but a clean table.
            with target_errors(f"{plan.label}: removing what set-up created"):
                discard_run(cur, plan)
                _forget(cur, cp)
            raise


def _set_up(
    cur: Cursor,
    plan: TablePlan,
    cp: Checkpoint,
    facts: check.CheckContext,
    source: TableInfo,
    instant: bool,
    copy_problems: list[str],
) -> Checkpoint:
    st, names = plan.statement, plan.names
    with target_errors(f"{plan.label}: setting up"):
        cur.execute(f"CREATE TABLE {names.q(names.shadow)} LIKE {names.q()}")
    try:
        with user_ddl_errors(f"{plan.label}: ALTER"):
            cur.execute(st.alter_on(names.schema, names.shadow))
    except PermanentEngineError:
        # The statement can never work: leave nothing behind but a clean table.
        cur.execute(f"DROP TABLE IF EXISTS {names.q(names.shadow)}")
        _forget(cur, cp)
        raise
    with target_errors(f"{plan.label}: setting up"):
        shadow = read_table(cur, names.schema, names.shadow)
        assert shadow is not None
        cp = cp.but(shadow_fingerprint=shadow.fingerprint)
        checkpoint.save(cur, cp)
    if instant:
        with target_errors(f"{plan.label}: instant ALTER"):
            done = fastpath.try_instant(cur, st)
        if done:
            with target_errors(f"{plan.label}: instant ALTER"):
                cur.execute(f"DROP TABLE IF EXISTS {names.q(names.shadow)}")
                cp = cp.but(kind="direct", phase=Phase.DONE, message="instant ALTER")
                checkpoint.save(cur, cp)
            return cp
        if copy_problems:
            cur.execute(f"DROP TABLE IF EXISTS {names.q(names.shadow)}")
            _forget(cur, cp)
            check.run(check.Phase.PREFLIGHT, facts)
    _post_setup(cur, plan, cp, facts, source, shadow)
    keys = deferrable_keys(shadow)
    if keys:
        with target_errors(f"{plan.label}: deferring the secondary indexes"):
            # The shadow is still empty: dropping its keys now costs nothing, and the copy
            # then fills a table with no secondary index to maintain (deferred.py).
            names_only = Deferred(keys, "")
            drop_keys(cur, names, names_only)
            lean = read_table(cur, names.schema, names.shadow)
            assert lean is not None
            cp = cp.but(deferred_keys=Deferred(keys, lean.fingerprint).dump())
            checkpoint.save(cur, cp)
    with target_errors(f"{plan.label}: choosing the change source"):
        cmap = map_columns(source, shadow, st.renames, st.dropped)
        kind, why = _choose_source(cur, plan, facts, source, shadow, cmap)
    if kind == BINLOG:
        with target_errors(f"{plan.label}: reading the binlog position"):
            # Taken before the first chunk: every change from here on is replayed.
            start = binlogpos.current(cur)
            cp = cp.but(
                phase=Phase.COPY,
                change_source=BINLOG,
                binlog_position=start.dump(),
                message=why,
            )
            checkpoint.save(cur, cp)
        return cp
    with target_errors(f"{plan.label}: creating triggers"):
        TriggerChangeSource(names, cmap).install(cur)
        cp = cp.but(phase=Phase.COPY, change_source=TRIGGERS, message=why)
        checkpoint.save(cur, cp)
    return cp


def _choose_source(
    cur: Cursor,
    plan: TablePlan,
    facts: check.CheckContext,
    source: TableInfo,
    shadow: TableInfo,
    cmap: ColumnMap,
) -> tuple[str, str]:
    """(triggers or binlog, why), from `engine_options.change_source`, the server's binlog
    settings and grants (read at preflight) and the table (binlogsource.table_refusal)."""
    if facts.change_source == TRIGGERS:
        return TRIGGERS, "changes via triggers (engine_options.change_source)"
    refusal = facts.binlog_refusal
    if refusal is None:
        refusal = table_refusal(cur, plan.names, source, shadow, cmap)
    if refusal is None:
        return BINLOG, "changes via the binlog (" + (
            "engine_options.change_source" if facts.change_source == BINLOG
            else "row format, full images and replication grants"
        ) + ")"
    if facts.change_source == BINLOG:
        raise PermanentEngineError(
            f"{plan.label}: preflight failed: engine_options.change_source is binlog, but "
            f"{refusal}"
        )
    return TRIGGERS, f"changes via triggers: the binlog cannot be used: {refusal}"


def _post_setup(
    cur: Cursor,
    plan: TablePlan,
    cp: Checkpoint,
    facts: check.CheckContext,
    source: TableInfo,
    shadow: TableInfo,
) -> None:
    found = check.problems(
        check.Phase.POST_SETUP,
        check.CheckContext(**{**facts.__dict__, "source": source, "shadow": shadow}),
    )
    if found:
        cur.execute(f"DROP TABLE IF EXISTS {plan.names.q(plan.names.shadow)}")
        _forget(cur, cp)
        raise PermanentEngineError(f"{plan.label}: preflight failed: " + "; ".join(found))


def _forget(cur: Cursor, cp: Checkpoint) -> None:
    cur.execute(
        f"DELETE FROM {checkpoint.table_sql(cp.schema)} WHERE table_name = %s AND context = %s",
        (cp.table_name, cp.context),
    )
