"""task.engine and task.engine_reason

The engine that runs each task and why it was chosen (issue 13 §2): `apply --engine auto` picks
per table (direct for what the server does online without copying, spirit for what needs a copy),
and one apply may run its tables on different engines. NULL on rows from before this revision
means "the apply's engine" (docs/architecture.md §2).

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("task") as batch:
        batch.add_column(sa.Column("engine", sa.String(32), nullable=True))
        batch.add_column(sa.Column("engine_reason", sa.String(255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("task") as batch:
        batch.drop_column("engine_reason")
        batch.drop_column("engine")
