"""apply.attention and apply.resume_outcome

Why an apply is not moving on by itself (blocked on the provider, needs attention), and the
outcome of its last resume, both shown by status, list and the HTTP API.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TEXT = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mariadb").with_variant(mysql.MEDIUMTEXT(), "mysql")


def upgrade() -> None:
    with op.batch_alter_table("apply") as batch:
        batch.add_column(sa.Column("attention", _TEXT, nullable=True))
        batch.add_column(sa.Column("resume_outcome", _TEXT, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("apply") as batch:
        batch.drop_column("resume_outcome")
        batch.drop_column("attention")
