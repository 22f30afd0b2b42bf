"""who asked (token names on applies and controls); utf8mb4 state tables on any server

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("apply", sa.Column("submitted_by", sa.String(length=64), nullable=True))
    op.add_column("control_request", sa.Column("requested_by", sa.String(length=64), nullable=True))
    # The state tables are always utf8mb4 (schemabot/migrations/env.py converts any table that is
    # not, after every upgrade), so DDL text and messages in any language are stored as given.


def downgrade() -> None:
    with op.batch_alter_table("control_request") as batch:
        batch.drop_column("requested_by")
    with op.batch_alter_table("apply") as batch:
        batch.drop_column("submitted_by")
