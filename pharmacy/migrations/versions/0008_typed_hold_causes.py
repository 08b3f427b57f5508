"""a hold's cause is typed: a prescription or a transfer order by foreign key, a manual hold by its reference;
requests that change stock remember their Idempotency-Key; a webhook delivery sent again is retried anew; a
transfer's parcel records the units that did not arrive whole; a purchase order's line, the day it is expected

Holds stored before named their cause as text. Those naming a prescription or transfer order that exists are
linked to it; the rest (a manual hold, or a cause no row matches) become manual holds under their old reference,
and those of them still holding stock for a prescription or transfer that does not exist are released, since
nothing will ever release them otherwise.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import pharmacy.db

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ONE_TYPED_CAUSE = (
    "(cause_type = 'prescription' AND prescription_id IS NOT NULL AND transfer_order_id IS NULL "
    "AND reference IS NULL) OR "
    "(cause_type = 'transfer' AND transfer_order_id IS NOT NULL AND prescription_id IS NULL "
    "AND reference IS NULL) OR "
    "(cause_type = 'manual' AND reference IS NOT NULL AND prescription_id IS NULL "
    "AND transfer_order_id IS NULL)")


def upgrade() -> None:
    with op.batch_alter_table('reservations') as batch:
        batch.add_column(sa.Column('prescription_id', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('transfer_order_id', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('reference', sa.String(length=60), nullable=True))

    # Compared as text: a cause id that is not a number must match nothing, not fail the migration.
    op.execute("UPDATE reservations SET prescription_id = (SELECT p.id FROM prescriptions p "
               "WHERE CAST(p.id AS VARCHAR(60)) = reservations.cause_id) WHERE cause_type = 'prescription'")
    op.execute("UPDATE reservations SET transfer_order_id = (SELECT t.id FROM transfer_orders t "
               "WHERE CAST(t.id AS VARCHAR(60)) = reservations.cause_id) WHERE cause_type = 'transfer'")
    orphan = ("(cause_type = 'prescription' AND prescription_id IS NULL) OR "
              "(cause_type = 'transfer' AND transfer_order_id IS NULL)")
    op.execute("UPDATE lots SET reserved = reserved - (SELECT COALESCE(SUM(r.quantity), 0) FROM reservations r "
               f"WHERE r.lot_id = lots.id AND r.status = 'held' AND ({orphan}))")
    op.execute(f"UPDATE reservations SET status = 'released', closed_at = CURRENT_TIMESTAMP "
               f"WHERE status = 'held' AND ({orphan})")
    op.execute("UPDATE reservations SET reference = cause_type || ':' || cause_id, cause_type = 'manual' "
               f"WHERE ({orphan}) OR cause_type NOT IN ('prescription', 'transfer', 'manual')")
    op.execute("UPDATE reservations SET reference = cause_id WHERE cause_type = 'manual' AND reference IS NULL")

    with op.batch_alter_table('reservations') as batch:
        batch.drop_index('ix_reservations_cause')
        batch.drop_column('cause_id')
        batch.create_foreign_key(batch.f('fk_reservations_prescription_id_prescriptions'), 'prescriptions',
                                 ['prescription_id'], ['id'])
        batch.create_foreign_key(batch.f('fk_reservations_transfer_order_id_transfer_orders'), 'transfer_orders',
                                 ['transfer_order_id'], ['id'])
        batch.create_index(batch.f('ix_reservations_prescription_id'), ['prescription_id'], unique=False)
        batch.create_index(batch.f('ix_reservations_transfer_order_id'), ['transfer_order_id'], unique=False)
        batch.create_index('ix_reservations_held_lot', ['status', 'lot_id'], unique=False)
        batch.create_check_constraint(batch.f('ck_reservations_one_typed_cause'), ONE_TYPED_CAUSE)

    op.create_table(
        'idempotent_requests',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('consortium_id', sa.Integer(), nullable=False),
        sa.Column('account', sa.String(length=160), nullable=False),
        sa.Column('operation', sa.String(length=60), nullable=False),
        sa.Column('key', sa.String(length=120), nullable=False),
        sa.Column('request_hash', sa.String(length=64), nullable=False),
        sa.Column('status', sa.Integer(), nullable=True),
        sa.Column('body', sa.JSON(), nullable=True),
        sa.Column('location', sa.String(length=300), nullable=True),
        sa.Column('created_at', pharmacy.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['consortium_id'], ['consortia.id'],
                                name=op.f('fk_idempotent_requests_consortium_id_consortia')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_idempotent_requests')),
        sa.UniqueConstraint('account', 'operation', 'key', name='uq_idempotent_requests_account_operation_key'),
    )
    with op.batch_alter_table('idempotent_requests') as batch:
        batch.create_index(batch.f('ix_idempotent_requests_consortium_id'), ['consortium_id'], unique=False)

    with op.batch_alter_table('webhook_deliveries') as batch:
        batch.add_column(sa.Column('retrying_since', pharmacy.db.UTCDateTime(timezone=True), nullable=True))

    with op.batch_alter_table('purchase_order_lines') as batch:
        batch.add_column(sa.Column('expected_on', sa.Date(), nullable=True))

    with op.batch_alter_table('transfer_parcels') as batch:
        batch.add_column(sa.Column('lost', sa.Integer(), nullable=False, server_default='0'))
        batch.create_check_constraint(batch.f('ck_transfer_parcels_accounted_within_shipped'),
                                      'received + lost <= shipped')


def downgrade() -> None:
    with op.batch_alter_table('purchase_order_lines') as batch:
        batch.drop_column('expected_on')
    with op.batch_alter_table('transfer_parcels') as batch:
        batch.drop_constraint(batch.f('ck_transfer_parcels_accounted_within_shipped'), type_='check')
        batch.drop_column('lost')
    with op.batch_alter_table('webhook_deliveries') as batch:
        batch.drop_column('retrying_since')
    op.drop_table('idempotent_requests')
    with op.batch_alter_table('reservations') as batch:
        batch.add_column(sa.Column('cause_id', sa.String(length=60), nullable=True))
    op.execute("UPDATE reservations SET cause_id = COALESCE(CAST(prescription_id AS VARCHAR(60)), "
               "CAST(transfer_order_id AS VARCHAR(60)), reference)")
    with op.batch_alter_table('reservations') as batch:
        batch.drop_constraint(batch.f('ck_reservations_one_typed_cause'), type_='check')
        batch.drop_index('ix_reservations_held_lot')
        batch.drop_index(batch.f('ix_reservations_transfer_order_id'))
        batch.drop_index(batch.f('ix_reservations_prescription_id'))
        batch.drop_constraint(batch.f('fk_reservations_transfer_order_id_transfer_orders'), type_='foreignkey')
        batch.drop_constraint(batch.f('fk_reservations_prescription_id_prescriptions'), type_='foreignkey')
        batch.drop_column('reference')
        batch.drop_column('transfer_order_id')
        batch.drop_column('prescription_id')
        batch.alter_column('cause_id', nullable=False)
        batch.create_index('ix_reservations_cause', ['cause_type', 'cause_id'], unique=False)
