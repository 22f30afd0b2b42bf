"""apply.orphan_claims

How many times in a row the recovery sweep took an apply over from a driver that died mid-tick
without the apply moving on. Past `orphan_claim_limit` the sweep parks the apply in
needs_attention rather than hand it to the next worker, which would die the same way
(docs/architecture.md §10 S30).

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("apply") as batch:
        batch.add_column(sa.Column("orphan_claims", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("apply") as batch:
        batch.drop_column("orphan_claims")
