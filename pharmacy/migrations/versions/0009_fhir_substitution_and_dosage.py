"""a prescription item keeps FHIR's substitution concept and structured dosage as sent; webhooks bound to
another consortium's site are switched off

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 03:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('prescription_items', sa.Column('substitution_concept', sa.JSON(), nullable=True))
    op.add_column('prescription_items', sa.Column('dosage_structured', sa.JSON(), nullable=True))
    # Subscribing used to accept another consortium's site: such a subscription heard that consortium's
    # prescriptions. It is kept on record, switched off.
    op.execute(
        "UPDATE webhook_subscriptions SET active = false WHERE site_id IN ("
        " SELECT sites.id FROM sites WHERE sites.consortium_id <> webhook_subscriptions.consortium_id)")


def downgrade() -> None:
    with op.batch_alter_table('prescription_items') as batch:
        batch.drop_column('dosage_structured')
        batch.drop_column('substitution_concept')
