"""a plan's transfer line names the stock it moves (a lot, packs the plan buys, or stock on its way), and a transfer
may wait for its stock to reach the sender

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 13:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('plan_lines') as batch:
        batch.add_column(sa.Column('source', sa.String(length=30), nullable=True))
    op.execute("UPDATE plan_lines SET source = 'L' || CAST(lot_id AS VARCHAR(20)) WHERE lot_id IS NOT NULL")
    op.execute("UPDATE plan_lines SET source = 'O' || CAST(offer_id AS VARCHAR(20)) "
               "WHERE kind = 'purchase' AND offer_id IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table('plan_lines') as batch:
        batch.drop_column('source')
