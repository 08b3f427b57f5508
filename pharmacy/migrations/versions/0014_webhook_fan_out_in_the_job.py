"""an event is made into webhook deliveries by the delivery job, not by the request that writes it

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 15:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('prescription_events') as batch:
        batch.add_column(sa.Column('fanned_out', sa.Boolean(), server_default=sa.false(), nullable=False))
    # Every event so far had its deliveries made when it was written.
    op.execute("UPDATE prescription_events SET fanned_out = TRUE")
    op.create_index('ix_prescription_events_to_fan_out', 'prescription_events', ['id'], unique=False,
                    postgresql_where=sa.text('NOT fanned_out'), sqlite_where=sa.text('NOT fanned_out'))


def downgrade() -> None:
    op.drop_index('ix_prescription_events_to_fan_out', table_name='prescription_events')
    with op.batch_alter_table('prescription_events') as batch:
        batch.drop_column('fanned_out')
