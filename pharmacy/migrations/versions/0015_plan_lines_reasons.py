"""a plan line keeps its reasons as codes and figures, which the pages say in their own language

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 16:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0015'
down_revision: str | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('plan_lines') as batch:
        batch.add_column(sa.Column('reasons', sa.JSON(), nullable=True))
    op.execute("UPDATE plan_lines SET reasons = '[]'")  # lines from before say their why in English only


def downgrade() -> None:
    with op.batch_alter_table('plan_lines') as batch:
        batch.drop_column('reasons')
