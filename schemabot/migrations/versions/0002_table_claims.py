"""table claims: one unfinished apply per table of a target, and the queue of those waiting

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = (
    sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mariadb").with_variant(mysql.DATETIME(fsp=6), "mysql")
)


def upgrade() -> None:
    op.create_table(
        "table_claim",
        sa.Column("id", _ID, nullable=False),
        sa.Column("target", sa.String(length=64), nullable=False),
        sa.Column("namespace", sa.String(length=64), nullable=False),
        sa.Column("table_name", sa.String(length=64), nullable=False),
        sa.Column("apply_id", sa.String(length=40), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_table_claim")),
        sa.UniqueConstraint(
            "target", "namespace", "table_name", name=op.f("uq_table_claim_target_namespace_table_name")
        ),
    )
    with op.batch_alter_table("table_claim", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_table_claim_apply_id"), ["apply_id"], unique=False)
    op.create_table(
        "table_claim_queue",
        sa.Column("id", _ID, nullable=False),
        sa.Column("target", sa.String(length=64), nullable=False),
        sa.Column("namespace", sa.String(length=64), nullable=False),
        sa.Column("table_name", sa.String(length=64), nullable=False),
        sa.Column("apply_id", sa.String(length=40), nullable=False),
        sa.Column("after_apply_id", sa.String(length=40), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_table_claim_queue")),
    )
    with op.batch_alter_table("table_claim_queue", schema=None) as batch_op:
        batch_op.create_index("ix_table_claim_queue_key", ["target", "namespace", "table_name"], unique=False)
        batch_op.create_index(batch_op.f("ix_table_claim_queue_apply_id"), ["apply_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_table_claim_queue_after_apply_id"), ["after_apply_id"], unique=False
        )


    # Applies unfinished at upgrade time claim their tables now (the oldest one when several
    # already overlap), so a new submit cannot overlap them either.
    op.execute(
        "INSERT INTO table_claim (target, namespace, table_name, apply_id, created_at) "
        "SELECT LOWER(a.target), LOWER(t.namespace), LOWER(t.table_name), MIN(a.apply_id), MIN(a.created_at) "
        "FROM task t JOIN apply a ON a.apply_id = t.apply_id "
        "WHERE a.state NOT IN ('completed', 'failed', 'cancelled', 'reverted') AND t.table_name <> '' "
        "AND LENGTH(t.namespace) <= 64 AND LENGTH(t.table_name) <= 64 "
        "GROUP BY LOWER(a.target), LOWER(t.namespace), LOWER(t.table_name)"
    )


def downgrade() -> None:
    op.drop_table("table_claim_queue")
    op.drop_table("table_claim")
