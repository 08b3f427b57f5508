"""a prescription's status reason kept as facts too

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 10:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('prescriptions', sa.Column('status_facts', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('prescriptions') as batch:
        batch.drop_column('status_facts')
