"""The checkpoint: one row per (table, context) in `_sb_spirit_checkpoint` of the table's schema.

It is the truth about an operation in flight: which statement, which run of it, how far the copy
and the checksum went, and what the source looked like when the run began. Progress columns are
rewritten by one UPDATE (atomic), in the same transaction as the chunk they account for, so the
copy watermark never runs ahead of or behind the rows in the shadow. Control columns (`stopped`,
`volume`) are written by controls only and never by progress, so neither overwrites the other.

Rows of finished operations stay as small tombstones (phase `done`, `cancelled` or `failed`) so a late
`apply` with the same context learns the outcome instead of running the statement again; they
are purged after `TOMBSTONE_DAYS`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from typing import Any

from pymysql.cursors import Cursor

from engines.base import RetryableEngineError
from engines.spirit.keyset import Key, dump_key, load_key
from engines.spirit.naming import CHECKPOINT_TABLE, quote

FORMAT = 1
TOMBSTONE_DAYS = 7

class Phase(StrEnum):
    """Where a table's run stands, in order. The values are what the `phase` column stores, so
    rows written by any version of the engine read back as the same member."""

    SETUP = "setup"  # the run was begun but not finished setting up
    COPY = "copy"
    INDEX = "index"  # building the deferred secondary indexes (deferred.py)
    CHECKSUM = "checksum"
    WAIT_CUTOVER = "wait_cutover"
    CUTOVER = "cutover"
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"


FINISHED = (Phase.DONE, Phase.CANCELLED, Phase.FAILED)

DDL = f"""CREATE TABLE IF NOT EXISTS {{schema}}.{quote(CHECKPOINT_TABLE)} (
  table_name VARCHAR(64) NOT NULL,
  context VARCHAR(191) NOT NULL,
  format INT NOT NULL,
  run_id VARCHAR(64) NOT NULL,
  kind VARCHAR(16) NOT NULL,
  statement LONGTEXT NOT NULL,
  statement_hash CHAR(64) NOT NULL,
  shadow_name VARCHAR(64) NOT NULL,
  old_name VARCHAR(64) NOT NULL,
  source_fingerprint CHAR(64) NULL,
  shadow_fingerprint CHAR(64) NULL,
  group_tables TEXT NOT NULL,
  phase VARCHAR(16) NOT NULL,
  copy_watermark TEXT NULL,
  checksum_watermark TEXT NULL,
  rows_copied BIGINT NOT NULL DEFAULT 0,
  rows_checksummed BIGINT NOT NULL DEFAULT 0,
  chunk_size INT NOT NULL DEFAULT 1000,
  checksum_pass INT NOT NULL DEFAULT 1,
  repaired_chunks INT NOT NULL DEFAULT 0,
  cutover_attempts INT NOT NULL DEFAULT 0,
  deferred_keys TEXT NULL,
  copy_lanes TEXT NULL,
  change_source VARCHAR(16) NULL,
  binlog_position VARCHAR(512) NULL,
  message TEXT NULL,
  stopped TINYINT NOT NULL DEFAULT 0,
  volume TINYINT NULL,
  created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (table_name, context)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"""


@dataclass(frozen=True)
class Checkpoint:
    table_name: str
    context: str
    run_id: str
    kind: str
    statement: str
    statement_hash: str
    shadow_name: str
    old_name: str
    source_fingerprint: str | None
    shadow_fingerprint: str | None
    group_tables: tuple[str, ...]
    phase: Phase
    format: int = FORMAT
    copy_watermark: Key | None = None
    checksum_watermark: Key | None = None
    rows_copied: int = 0
    rows_checksummed: int = 0
    chunk_size: int = 1000
    checksum_pass: int = 1
    repaired_chunks: int = 0
    cutover_attempts: int = 0
    deferred_keys: str | None = None
    """deferred.Deferred as JSON: secondary keys built after the copy, the shadow's lean
    fingerprint (None: nothing deferred)."""
    copy_lanes: str | None = None
    """lanes.LanePlan as JSON: how many copy lanes were chosen and why, and each lane's key
    range and copy and checksum watermarks (None: not chosen yet, a run of an older engine)."""
    change_source: str | None = None
    """What keeps the shadow current: `triggers` (None in rows of older engines) or `binlog`
    (binlogsource.py)."""
    binlog_position: str | None = None
    """With the binlog source: `file:offset` up to which the source's changes are in the
    shadow, written in the same transaction as the shadow rows it accounts for."""
    message: str | None = None
    stopped: bool = False
    volume: int | None = None
    schema: str = field(default="", compare=False)

    def but(self, **changes: Any) -> Checkpoint:
        return replace(self, **changes)


_COLUMNS = [f.name for f in fields(Checkpoint) if f.name != "schema"]
_PROGRESS = (
    "kind",
    "phase",
    "copy_watermark",
    "checksum_watermark",
    "rows_copied",
    "rows_checksummed",
    "chunk_size",
    "checksum_pass",
    "repaired_chunks",
    "cutover_attempts",
    "deferred_keys",
    "copy_lanes",
    "change_source",
    "binlog_position",
    "message",
    "shadow_fingerprint",
)


def _to_db(cp: Checkpoint, name: str) -> Any:
    value = getattr(cp, name)
    if name in ("copy_watermark", "checksum_watermark"):
        return dump_key(value)
    if name == "group_tables":
        return json.dumps(list(value))
    if name == "stopped":
        return int(value)
    if name == "phase":
        return str(value)
    return value


def _from_row(schema: str, row: dict[str, Any]) -> Checkpoint:
    values = dict(row)
    values["copy_watermark"] = load_key(values["copy_watermark"])
    values["checksum_watermark"] = load_key(values["checksum_watermark"])
    values["group_tables"] = tuple(json.loads(values["group_tables"]))
    values["stopped"] = bool(values["stopped"])
    values["phase"] = Phase(values["phase"])
    return Checkpoint(schema=schema, **values)


def table_sql(schema: str) -> str:
    return f"{quote(schema)}.{quote(CHECKPOINT_TABLE)}"


def ensure_table(cur: Cursor, schema: str) -> None:
    cur.execute(DDL.format(schema=quote(schema)))
    _add_new_columns(cur, schema)


# Columns added after the table's first version; a table made by an older engine gets them when
# it is first read (NULL means what the older engine did: nothing deferred).
_ADDED = {
    "deferred_keys": "TEXT NULL",
    "copy_lanes": "TEXT NULL",
    "change_source": "VARCHAR(16) NULL",
    "binlog_position": "VARCHAR(512) NULL",
}
_UPGRADED: set[str] = set()


def _add_new_columns(cur: Cursor, schema: str) -> None:
    if schema in _UPGRADED:
        return
    cur.execute(
        "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s "
        "AND TABLE_NAME = %s",
        (schema, CHECKPOINT_TABLE),
    )
    present = {str(r[0]).lower() for r in cur.fetchall()}
    for name, definition in _ADDED.items():
        if name not in present:
            cur.execute(f"ALTER TABLE {table_sql(schema)} ADD COLUMN {name} {definition}")
    _UPGRADED.add(schema)


def _has_table(cur: Cursor, schema: str) -> bool:
    cur.execute(
        "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
        (schema, CHECKPOINT_TABLE),
    )
    return cur.fetchone() is not None


def load(cur: Cursor, schema: str, table: str, context: str) -> Checkpoint | None:
    if not _has_table(cur, schema):
        return None
    _add_new_columns(cur, schema)
    cols = ", ".join(_COLUMNS)
    cur.execute(
        f"SELECT {cols} FROM {table_sql(schema)} WHERE table_name = %s AND context = %s",
        (table, context),
    )
    row = cur.fetchone()
    if row is None:
        return None
    return _from_row(schema, dict(zip(_COLUMNS, row, strict=True)))


def may_have_left_objects(cur: Cursor, schema: str, table: str) -> bool:
    """Whether a run of the engine on the table (any context) may have left objects under the
    engine's names: one not finished, or one cancelled or failed (the intent is recorded before
    the clean-up, which may have been cut short). A `done` run removed everything before it
    recorded `done` (phases/cutting_over.finish), so it vouches for nothing found later."""
    if not _has_table(cur, schema):
        return False
    cur.execute(
        f"SELECT 1 FROM {table_sql(schema)} WHERE table_name = %s AND phase <> %s LIMIT 1",
        (table, Phase.DONE),
    )
    return cur.fetchone() is not None


def others_in_flight(cur: Cursor, schema: str, table: str, context: str) -> list[tuple[str, str]]:
    """(context, phase) of unfinished operations of other contexts on this table."""
    if not _has_table(cur, schema):
        return []
    cur.execute(
        f"SELECT context, phase FROM {table_sql(schema)} WHERE table_name = %s "
        "AND context <> %s AND phase NOT IN (%s, %s, %s)",
        (table, context, *FINISHED),
    )
    return [(str(c), str(p)) for c, p in cur.fetchall()]


def create(cur: Cursor, cp: Checkpoint) -> None:
    """Write the first row of a run (replacing any row of an earlier run of this context)."""
    ensure_table(cur, cp.schema)
    cur.execute(
        f"DELETE FROM {table_sql(cp.schema)} WHERE phase IN (%s, %s, %s) "
        f"AND updated_at < NOW(6) - INTERVAL {TOMBSTONE_DAYS} DAY",
        FINISHED,
    )
    cols = ", ".join(_COLUMNS)
    marks = ", ".join(["%s"] * len(_COLUMNS))
    cur.execute(
        f"REPLACE INTO {table_sql(cp.schema)} ({cols}, created_at, updated_at) "
        f"VALUES ({marks}, NOW(6), NOW(6))",
        [_to_db(cp, c) for c in _COLUMNS],
    )


def save(cur: Cursor, cp: Checkpoint) -> None:
    """Rewrite the progress columns of this run's row in one statement.

    The `run_id` guard makes a write from a run that was since restarted (a stale process that
    somehow still runs) change nothing; that is reported as a retryable error.
    """
    sets = ", ".join(f"{c} = %s" for c in _PROGRESS)
    cur.execute(
        f"UPDATE {table_sql(cp.schema)} SET {sets}, updated_at = NOW(6) "
        "WHERE table_name = %s AND context = %s AND run_id = %s",
        [*(_to_db(cp, c) for c in _PROGRESS), cp.table_name, cp.context, cp.run_id],
    )
    if cur.rowcount != 1:
        raise RetryableEngineError(
            f"checkpoint of {cp.schema}.{cp.table_name} was replaced by another run; "
            "this step stops without writing"
        )


def set_controls(
    cur: Cursor,
    schema: str,
    table: str,
    context: str,
    *,
    stopped: bool | None = None,
    volume: int | None = None,
) -> int:
    """Write control columns only. Returns the number of rows matched."""
    sets: list[str] = []
    params: list[Any] = []
    if stopped is not None:
        sets.append("stopped = %s")
        params.append(int(stopped))
    if volume is not None:
        sets.append("volume = %s")
        params.append(volume)
    if not sets or not _has_table(cur, schema):
        return 0
    cur.execute(
        f"UPDATE {table_sql(schema)} SET {', '.join(sets)} WHERE table_name = %s AND context = %s",
        [*params, table, context],
    )
    return int(cur.rowcount)
