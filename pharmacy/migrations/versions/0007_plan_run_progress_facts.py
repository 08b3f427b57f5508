"""a plan run's progress note kept as facts too

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 11:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('plan_runs', sa.Column('progress_facts', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('plan_runs') as batch:
        batch.drop_column('progress_facts')
