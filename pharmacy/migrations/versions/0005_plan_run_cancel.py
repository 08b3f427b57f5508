"""plan runs can be cancelled

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 18:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import pharmacy.db

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('plan_runs', sa.Column('cancel_requested_at', pharmacy.db.UTCDateTime(timezone=True), nullable=True))
    op.add_column('plan_runs', sa.Column('cancelled_by', sa.String(length=160), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('plan_runs') as batch:
        batch.drop_column('cancelled_by')
        batch.drop_column('cancel_requested_at')
