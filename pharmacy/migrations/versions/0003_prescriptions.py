"""prescriptions

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 05:35:08.895723
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import pharmacy.db

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('prescriptions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=60), nullable=False),
    sa.Column('prescriber_site_id', sa.Integer(), nullable=False),
    sa.Column('prescriber', sa.String(length=120), nullable=False),
    sa.Column('patient_ref', sa.String(length=80), nullable=False),
    sa.Column('patient_district', sa.String(length=100), nullable=True),
    sa.Column('patient_latitude', sa.Double(), nullable=True),
    sa.Column('patient_longitude', sa.Double(), nullable=True),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('issued_on', sa.Date(), nullable=False),
    sa.Column('valid_until', sa.Date(), nullable=False),
    sa.Column('status', sa.String(length=30), nullable=False),
    sa.Column('status_reason', sa.Text(), nullable=False),
    sa.Column('nominated_site_id', sa.Integer(), nullable=True),
    sa.Column('pharmacy_site_id', sa.Integer(), nullable=True),
    sa.Column('routing', sa.JSON(), nullable=False),
    sa.Column('returned_from', sa.JSON(), nullable=False),
    sa.Column('issues_total', sa.Integer(), nullable=False),
    sa.Column('current_issue', sa.Integer(), nullable=False),
    sa.Column('interval_days', sa.Integer(), nullable=True),
    sa.Column('next_due_on', sa.Date(), nullable=True),
    sa.Column('idempotency_key', sa.String(length=120), nullable=True),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=10), nullable=False),
    sa.Column('created_at', pharmacy.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', pharmacy.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('consortium_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['consortium_id'], ['consortia.id'], name=op.f('fk_prescriptions_consortium_id_consortia')),
    sa.ForeignKeyConstraint(['nominated_site_id'], ['sites.id'], name=op.f('fk_prescriptions_nominated_site_id_sites')),
    sa.ForeignKeyConstraint(['pharmacy_site_id'], ['sites.id'], name=op.f('fk_prescriptions_pharmacy_site_id_sites')),
    sa.ForeignKeyConstraint(['prescriber_site_id'], ['sites.id'], name=op.f('fk_prescriptions_prescriber_site_id_sites')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_prescriptions')),
    sa.UniqueConstraint('prescriber_site_id', 'idempotency_key', name='uq_prescriptions_site_idempotency_key'),
    sa.UniqueConstraint('prescriber_site_id', 'number', name='uq_prescriptions_site_number')
    )
    with op.batch_alter_table('prescriptions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_prescriptions_consortium_id'), ['consortium_id'], unique=False)
        batch_op.create_index('ix_prescriptions_pharmacy_status', ['pharmacy_site_id', 'status'], unique=False)
        batch_op.create_index('ix_prescriptions_status_valid_until', ['status', 'valid_until'], unique=False)

    op.create_table('webhook_subscriptions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('url', sa.String(length=500), nullable=False),
    sa.Column('secret', sa.String(length=100), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', pharmacy.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('consortium_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['consortium_id'], ['consortia.id'], name=op.f('fk_webhook_subscriptions_consortium_id_consortia')),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_webhook_subscriptions_site_id_sites')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_subscriptions'))
    )
    with op.batch_alter_table('webhook_subscriptions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhook_subscriptions_consortium_id'), ['consortium_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_webhook_subscriptions_site_id'), ['site_id'], unique=False)

    op.create_table('prescription_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('prescription_id', sa.Integer(), nullable=False),
    sa.Column('prescriber_site_id', sa.Integer(), nullable=False),
    sa.Column('pharmacy_site_id', sa.Integer(), nullable=True),
    sa.Column('type', sa.String(length=40), nullable=False),
    sa.Column('status', sa.String(length=30), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('at', pharmacy.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('consortium_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['consortium_id'], ['consortia.id'], name=op.f('fk_prescription_events_consortium_id_consortia')),
    sa.ForeignKeyConstraint(['pharmacy_site_id'], ['sites.id'], name=op.f('fk_prescription_events_pharmacy_site_id_sites')),
    sa.ForeignKeyConstraint(['prescriber_site_id'], ['sites.id'], name=op.f('fk_prescription_events_prescriber_site_id_sites')),
    sa.ForeignKeyConstraint(['prescription_id'], ['prescriptions.id'], name=op.f('fk_prescription_events_prescription_id_prescriptions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_prescription_events')),
    sa.UniqueConstraint('event_id', name=op.f('uq_prescription_events_event_id'))
    )
    with op.batch_alter_table('prescription_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_prescription_events_consortium_id'), ['consortium_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_prescription_events_pharmacy_site_id'), ['pharmacy_site_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_prescription_events_prescriber_site_id'), ['prescriber_site_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_prescription_events_prescription_id'), ['prescription_id'], unique=False)

    op.create_table('prescription_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('prescription_id', sa.Integer(), nullable=False),
    sa.Column('drug_id', sa.Integer(), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('supply_days', sa.Integer(), nullable=False),
    sa.Column('substitution_allowed', sa.Boolean(), nullable=False),
    sa.Column('dosage', sa.Text(), nullable=False),
    sa.Column('external_id', sa.String(length=120), nullable=True),
    sa.Column('consortium_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['consortium_id'], ['consortia.id'], name=op.f('fk_prescription_items_consortium_id_consortia')),
    sa.ForeignKeyConstraint(['drug_id'], ['drugs.id'], name=op.f('fk_prescription_items_drug_id_drugs')),
    sa.ForeignKeyConstraint(['prescription_id'], ['prescriptions.id'], name=op.f('fk_prescription_items_prescription_id_prescriptions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_prescription_items'))
    )
    with op.batch_alter_table('prescription_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_prescription_items_consortium_id'), ['consortium_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_prescription_items_prescription_id'), ['prescription_id'], unique=False)

    op.create_table('shortages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('drug_id', sa.Integer(), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('prescription_id', sa.Integer(), nullable=True),
    sa.Column('created_at', pharmacy.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('consortium_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['consortium_id'], ['consortia.id'], name=op.f('fk_shortages_consortium_id_consortia')),
    sa.ForeignKeyConstraint(['drug_id'], ['drugs.id'], name=op.f('fk_shortages_drug_id_drugs')),
    sa.ForeignKeyConstraint(['prescription_id'], ['prescriptions.id'], name=op.f('fk_shortages_prescription_id_prescriptions')),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_shortages_site_id_sites')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shortages'))
    )
    with op.batch_alter_table('shortages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_shortages_consortium_id'), ['consortium_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_shortages_drug_id'), ['drug_id'], unique=False)

    op.create_table('transfer_requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('from_site_id', sa.Integer(), nullable=False),
    sa.Column('to_site_id', sa.Integer(), nullable=False),
    sa.Column('drug_id', sa.Integer(), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('prescription_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('created_at', pharmacy.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('consortium_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['consortium_id'], ['consortia.id'], name=op.f('fk_transfer_requests_consortium_id_consortia')),
    sa.ForeignKeyConstraint(['drug_id'], ['drugs.id'], name=op.f('fk_transfer_requests_drug_id_drugs')),
    sa.ForeignKeyConstraint(['from_site_id'], ['sites.id'], name=op.f('fk_transfer_requests_from_site_id_sites')),
    sa.ForeignKeyConstraint(['prescription_id'], ['prescriptions.id'], name=op.f('fk_transfer_requests_prescription_id_prescriptions')),
    sa.ForeignKeyConstraint(['to_site_id'], ['sites.id'], name=op.f('fk_transfer_requests_to_site_id_sites')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_transfer_requests'))
    )
    with op.batch_alter_table('transfer_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_transfer_requests_consortium_id'), ['consortium_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_transfer_requests_prescription_id'), ['prescription_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_transfer_requests_to_site_id'), ['to_site_id'], unique=False)

    op.create_table('dispenses',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('prescription_id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('issue', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('drug_id', sa.Integer(), nullable=False),
    sa.Column('lot_id', sa.Integer(), nullable=False),
    sa.Column('lot_number', sa.String(length=60), nullable=False),
    sa.Column('expiry_date', sa.Date(), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('substituted', sa.Boolean(), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('movement_id', sa.Integer(), nullable=False),
    sa.Column('actor', sa.String(length=160), nullable=False),
    sa.Column('at', pharmacy.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('handed_over_at', pharmacy.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('consortium_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['consortium_id'], ['consortia.id'], name=op.f('fk_dispenses_consortium_id_consortia')),
    sa.ForeignKeyConstraint(['drug_id'], ['drugs.id'], name=op.f('fk_dispenses_drug_id_drugs')),
    sa.ForeignKeyConstraint(['item_id'], ['prescription_items.id'], name=op.f('fk_dispenses_item_id_prescription_items')),
    sa.ForeignKeyConstraint(['lot_id'], ['lots.id'], name=op.f('fk_dispenses_lot_id_lots')),
    sa.ForeignKeyConstraint(['movement_id'], ['movements.id'], name=op.f('fk_dispenses_movement_id_movements')),
    sa.ForeignKeyConstraint(['prescription_id'], ['prescriptions.id'], name=op.f('fk_dispenses_prescription_id_prescriptions')),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_dispenses_site_id_sites')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dispenses'))
    )
    with op.batch_alter_table('dispenses', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dispenses_consortium_id'), ['consortium_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_dispenses_prescription_id'), ['prescription_id'], unique=False)

    op.create_table('webhook_deliveries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('subscription_id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', pharmacy.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=False),
    sa.Column('delivered_at', pharmacy.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('consortium_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['consortium_id'], ['consortia.id'], name=op.f('fk_webhook_deliveries_consortium_id_consortia')),
    sa.ForeignKeyConstraint(['event_id'], ['prescription_events.id'], name=op.f('fk_webhook_deliveries_event_id_prescription_events')),
    sa.ForeignKeyConstraint(['subscription_id'], ['webhook_subscriptions.id'], name=op.f('fk_webhook_deliveries_subscription_id_webhook_subscriptions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_deliveries'))
    )
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhook_deliveries_consortium_id'), ['consortium_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_webhook_deliveries_event_id'), ['event_id'], unique=False)
        batch_op.create_index('ix_webhook_deliveries_pending', ['status', 'next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_webhook_deliveries_subscription_id'), ['subscription_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhook_deliveries_subscription_id'))
        batch_op.drop_index('ix_webhook_deliveries_pending')
        batch_op.drop_index(batch_op.f('ix_webhook_deliveries_event_id'))
        batch_op.drop_index(batch_op.f('ix_webhook_deliveries_consortium_id'))

    op.drop_table('webhook_deliveries')
    with op.batch_alter_table('dispenses', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dispenses_prescription_id'))
        batch_op.drop_index(batch_op.f('ix_dispenses_consortium_id'))

    op.drop_table('dispenses')
    with op.batch_alter_table('transfer_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_transfer_requests_to_site_id'))
        batch_op.drop_index(batch_op.f('ix_transfer_requests_prescription_id'))
        batch_op.drop_index(batch_op.f('ix_transfer_requests_consortium_id'))

    op.drop_table('transfer_requests')
    with op.batch_alter_table('shortages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_shortages_drug_id'))
        batch_op.drop_index(batch_op.f('ix_shortages_consortium_id'))

    op.drop_table('shortages')
    with op.batch_alter_table('prescription_items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_prescription_items_prescription_id'))
        batch_op.drop_index(batch_op.f('ix_prescription_items_consortium_id'))

    op.drop_table('prescription_items')
    with op.batch_alter_table('prescription_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_prescription_events_prescription_id'))
        batch_op.drop_index(batch_op.f('ix_prescription_events_prescriber_site_id'))
        batch_op.drop_index(batch_op.f('ix_prescription_events_pharmacy_site_id'))
        batch_op.drop_index(batch_op.f('ix_prescription_events_consortium_id'))

    op.drop_table('prescription_events')
    with op.batch_alter_table('webhook_subscriptions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhook_subscriptions_site_id'))
        batch_op.drop_index(batch_op.f('ix_webhook_subscriptions_consortium_id'))

    op.drop_table('webhook_subscriptions')
    with op.batch_alter_table('prescriptions', schema=None) as batch_op:
        batch_op.drop_index('ix_prescriptions_status_valid_until')
        batch_op.drop_index('ix_prescriptions_pharmacy_status')
        batch_op.drop_index(batch_op.f('ix_prescriptions_consortium_id'))

    op.drop_table('prescriptions')
