"""apply_plan: the plan an apply was submitted with (schemabot plan show)

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "apply_plan",
        sa.Column("apply_id", sa.String(length=40), nullable=False),
        sa.Column(
            "plan",
            sa.JSON().with_variant(mysql.JSON(), "mariadb").with_variant(mysql.JSON(), "mysql"),
            nullable=False,
        ),
        sa.Column("requested_by", sa.String(length=191), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql").with_variant(mysql.DATETIME(fsp=6), "mariadb"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("apply_id", name=op.f("pk_apply_plan")),
    )


def downgrade() -> None:
    op.drop_table("apply_plan")
