"""The state database's tables (docs/architecture.md §2), as SQLAlchemy 2.0 models.

The same models run on SQLite (embedded default) and on MySQL/MariaDB through pymysql. Times that
take part in ownership decisions (heartbeat, lease expiry, retry_after) are always written in
*database* time (see `schemabot.storage.clock`), so clocks of worker hosts never matter.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from schemabot.states import State

# Microsecond precision on MySQL/MariaDB (DATETIME defaults to whole seconds there).
Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
LongText = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")
JsonDoc = sa.JSON().with_variant(mysql.JSON(), "mysql", "mariadb")
# An apply's or a task's state: stored as its value in a VARCHAR(32) (no database enum and no
# CHECK constraint, so the schema of migrations 0001..0005 is unchanged and a new state needs no
# migration), read back as a `State`, and refused on write when it is not one. Callers therefore
# never convert: `apply.state.is_terminal`, `task.state in ACTIVE`.
StateColumn = sa.Enum(
    State,
    name="state",
    native_enum=False,
    create_constraint=False,
    length=32,
    values_callable=lambda states: [s.value for s in states],
    validate_strings=True,
)


class Base(DeclarativeBase):
    metadata = sa.MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class Apply(Base):
    """One execution of a set of changes on one target."""

    __tablename__ = "apply"
    __table_args__ = (
        # The sweep's only access path: non-terminal states with an expired (or no) lease.
        # Its cost follows the number of candidates, not the size of the history.
        sa.Index("ix_apply_state_lease", "state", "lease_expires_at"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    apply_id: Mapped[str] = mapped_column(sa.String(40), unique=True)
    idempotency_key: Mapped[str | None] = mapped_column(sa.String(191), unique=True)
    # Hash of what was asked, so a reused idempotency key with other changes is caught.
    request_hash: Mapped[str] = mapped_column(sa.String(64))
    target: Mapped[str] = mapped_column(sa.String(64))
    database: Mapped[str] = mapped_column(sa.String(128))
    engine: Mapped[str] = mapped_column(sa.String(32))
    state: Mapped[State] = mapped_column(StateColumn)
    options: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    error: Mapped[str | None] = mapped_column(LongText)
    attempt: Mapped[int] = mapped_column(sa.Integer, default=1)
    # Who asked: the API token's name (HTTP), or None (CLI and Python API). Migration 0004.
    submitted_by: Mapped[str | None] = mapped_column(sa.String(64))

    lease_owner: Mapped[str | None] = mapped_column(sa.String(255))
    lease_token: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    poll_seq: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    heartbeat_at: Mapped[datetime | None] = mapped_column(Timestamp)
    lease_expires_at: Mapped[datetime | None] = mapped_column(Timestamp)
    retry_after: Mapped[datetime | None] = mapped_column(Timestamp)
    # Why the apply is not moving on by itself (blocked on the provider, needs attention); None
    # while it progresses. Shown by status, list and the HTTP API (docs/architecture.md §7).
    attention: Mapped[str | None] = mapped_column(LongText)
    # The outcome of the last attach by a later owner: "reattached at X" or "restarted because Y".
    resume_outcome: Mapped[str | None] = mapped_column(LongText)
    # Sweep claims of this apply as an orphan whose driver had begun a tick and died, since an
    # engine report last moved it on; past `orphan_claim_limit` the sweep parks it in
    # needs_attention instead of re-driving it (migration 0007; docs/architecture.md §10 S30).
    orphan_claims: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")

    created_at: Mapped[datetime] = mapped_column(Timestamp)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)
    started_at: Mapped[datetime | None] = mapped_column(Timestamp)
    completed_at: Mapped[datetime | None] = mapped_column(Timestamp)


class ApplyOperation(Base):
    """The unit of engine work; owns the engine's resume state.

    A grouped apply has one operation for all its tasks (context = apply id); a sequential apply
    has one per task (context = task id).
    """

    __tablename__ = "apply_operation"

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    operation_id: Mapped[str] = mapped_column(sa.String(40), unique=True)
    apply_id: Mapped[str] = mapped_column(sa.ForeignKey("apply.apply_id"), index=True)
    seq: Mapped[int] = mapped_column(sa.Integer)
    context: Mapped[str] = mapped_column(sa.String(64))
    resume_context: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc)
    resume_metadata: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)


class Task(Base):
    """One table change (or one VSchema change, which carries no DDL)."""

    __tablename__ = "task"

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    task_id: Mapped[str] = mapped_column(sa.String(40), unique=True)
    apply_id: Mapped[str] = mapped_column(sa.ForeignKey("apply.apply_id"), index=True)
    operation_id: Mapped[str | None] = mapped_column(sa.String(40), index=True)
    seq: Mapped[int] = mapped_column(sa.Integer)
    namespace: Mapped[str] = mapped_column(sa.String(128))
    table_name: Mapped[str] = mapped_column(sa.String(128))
    ddl: Mapped[str | None] = mapped_column(LongText)
    action: Mapped[str] = mapped_column(sa.String(32))
    vschema: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc)
    # The engine that runs this task and why it was chosen (`--engine auto`); NULL engine (rows
    # from before migration 0006) means the apply's engine, NULL reason means the submitter named
    # the engine. `schemabot/engine_mix.py`.
    engine: Mapped[str | None] = mapped_column(sa.String(32))
    engine_reason: Mapped[str | None] = mapped_column(sa.String(255))
    state: Mapped[State] = mapped_column(StateColumn)
    rows_copied: Mapped[int | None] = mapped_column(sa.BigInteger)
    rows_total: Mapped[int | None] = mapped_column(sa.BigInteger)
    percent: Mapped[float | None] = mapped_column(sa.Float)
    eta_seconds: Mapped[int | None] = mapped_column(sa.Integer)
    message: Mapped[str | None] = mapped_column(LongText)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)
    completed_at: Mapped[datetime | None] = mapped_column(Timestamp)


class ControlRequest(Base):
    """Durable user intent. While pending, `pending_kind` equals `kind`, and the unique key on
    (apply_id, pending_kind) keeps one pending request of each kind per apply, so a double click
    cannot queue the same control twice. Processing clears `pending_kind` (NULLs never collide)."""

    __tablename__ = "control_request"
    __table_args__ = (sa.UniqueConstraint("apply_id", "pending_kind"),)

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    apply_id: Mapped[str] = mapped_column(sa.ForeignKey("apply.apply_id"), index=True)
    operation_id: Mapped[str | None] = mapped_column(sa.String(40))
    kind: Mapped[str] = mapped_column(sa.String(32))
    pending_kind: Mapped[str | None] = mapped_column(sa.String(32))
    value: Mapped[str | None] = mapped_column(sa.String(255))
    status: Mapped[str] = mapped_column(sa.String(16))  # pending | done | rejected
    requested_by: Mapped[str | None] = mapped_column(sa.String(64))  # the API token's name (0004)
    message: Mapped[str | None] = mapped_column(LongText)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    processed_at: Mapped[datetime | None] = mapped_column(Timestamp)


class ApplyLog(Base):
    """Append-only audit of transitions and engine events."""

    __tablename__ = "apply_log"
    __table_args__ = (sa.Index("ix_apply_log_apply_id_id", "apply_id", "id"),)

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    apply_id: Mapped[str] = mapped_column(sa.String(40))
    task_id: Mapped[str | None] = mapped_column(sa.String(40))
    event: Mapped[str] = mapped_column(sa.String(32))
    old_state: Mapped[str | None] = mapped_column(sa.String(32))
    new_state: Mapped[str | None] = mapped_column(sa.String(32))
    message: Mapped[str | None] = mapped_column(LongText)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc)
    lease_token: Mapped[int | None] = mapped_column(sa.BigInteger)
    created_at: Mapped[datetime] = mapped_column(Timestamp)


class TableClaim(Base):
    """The one unfinished apply allowed on a table of a target (docs/architecture.md §8
    invariant 9). Written in the submit transaction; the unique key makes two submits racing on
    two hosts unable to both win; deleted in the transaction that makes the apply terminal
    (`schemabot.storage.claims.release_claims`). Names are stored lower-cased."""

    __tablename__ = "table_claim"
    __table_args__ = (sa.UniqueConstraint("target", "namespace", "table_name"),)

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    target: Mapped[str] = mapped_column(sa.String(64))
    namespace: Mapped[str] = mapped_column(sa.String(64))
    table_name: Mapped[str] = mapped_column(sa.String(64))
    apply_id: Mapped[str] = mapped_column(sa.String(40), index=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp)


class TableClaimQueue(Base):
    """A queued apply's place in line for a table (`--after` / `queue: true`). While an apply has
    rows here it is not started by anyone; `id` orders the line (first come, first served)."""

    __tablename__ = "table_claim_queue"
    __table_args__ = (sa.Index("ix_table_claim_queue_key", "target", "namespace", "table_name"),)

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    target: Mapped[str] = mapped_column(sa.String(64))
    namespace: Mapped[str] = mapped_column(sa.String(64))
    table_name: Mapped[str] = mapped_column(sa.String(64))
    apply_id: Mapped[str] = mapped_column(sa.String(40), index=True)
    after_apply_id: Mapped[str | None] = mapped_column(sa.String(40), index=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
