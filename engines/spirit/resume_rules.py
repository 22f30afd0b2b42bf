"""Reattach or start fresh: the rules (README.md tells them in prose).

A run is continued from its checkpoint unless one of these definitive reasons says the shadow
table can no longer be trusted to become an exact copy, in which case the run starts fresh:

- no checkpoint for this context;
- the checkpoint has another format, or is for another statement;
- set-up had not finished;
- the shadow table is missing, or its definition changed (the shadow without its deferred
  secondary indexes is its expected definition until they are built, deferred.py);
- the source table's definition changed (altered out of band);
- a trigger is missing or changed (writes may have gone uncaptured); with the binlog change
  source, the saved binlog position was purged from the server.

Every other failure (a lost connection, a lock wait, an unexpected server error) fails the step
and keeps everything: the next step re-reads the checkpoint and decides again.
"""

from __future__ import annotations

from dataclasses import dataclass

from pymysql.cursors import Cursor

from engines.spirit import checkpoint
from engines.spirit.changesource import change_source_of
from engines.spirit.checkpoint import Checkpoint, Phase
from engines.spirit.columnmap import ColumnMap, map_columns
from engines.spirit.deferred import Deferred
from engines.spirit.plan import TablePlan
from engines.spirit.tableinfo import TableInfo, read_table


@dataclass(frozen=True)
class RunView:
    """A validated run: its checkpoint and the tables as they are now."""

    checkpoint: Checkpoint
    source: TableInfo
    shadow: TableInfo
    columns: ColumnMap
    lean: bool = False
    """The shadow still lacks its deferred secondary indexes (deferred.py)."""


def instant_alter_happened(cur: Cursor, cp: Checkpoint) -> bool:
    """A run that died in set-up after its instant ALTER: the source already has the definition
    the clauses produced on the empty shadow (and did not have it before)."""
    if cp.phase != Phase.SETUP or cp.shadow_fingerprint is None:
        return False
    if cp.shadow_fingerprint == cp.source_fingerprint:
        return False
    source = read_table(cur, cp.schema, cp.table_name)
    return source is not None and source.fingerprint == cp.shadow_fingerprint


def restart_reason(cur: Cursor, plan: TablePlan, cp: Checkpoint) -> str | RunView:
    """Why the run must start fresh, or the validated view to continue with."""
    if cp.format != checkpoint.FORMAT:
        return f"checkpoint format {cp.format}, this engine writes {checkpoint.FORMAT}"
    if cp.statement_hash != plan.statement.digest:
        return "the checkpoint is for another statement"
    if cp.phase == Phase.SETUP:
        return "set-up had not finished"
    names = plan.names
    source = read_table(cur, names.schema, names.table)
    shadow = read_table(cur, names.schema, names.shadow)
    if shadow is None:
        return f"shadow table {names.shadow} is missing"
    if source is None:
        return f"source table {names.table} is missing"
    if source.fingerprint != cp.source_fingerprint:
        return "the source table was altered out of band"
    deferred = Deferred.load(cp.deferred_keys)
    lean = deferred is not None and shadow.fingerprint == deferred.lean_fingerprint
    if lean and cp.phase not in (Phase.COPY, Phase.INDEX):
        # Past the index build the shadow must have every index the ALTER gave it.
        return f"shadow table {names.shadow} lacks its secondary indexes after they were built"
    if shadow.fingerprint != cp.shadow_fingerprint and not lean:
        return f"shadow table {names.shadow} was altered out of band"
    columns = map_columns(source, shadow, plan.statement.renames, plan.statement.dropped)
    broken = change_source_of(cp, names, columns).verify(cur)
    if broken is not None:
        return broken
    return RunView(cp, source, shadow, columns, lean)
