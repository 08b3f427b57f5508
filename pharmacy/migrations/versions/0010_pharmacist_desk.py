"""a pharmacist's day: clinical facts for review, trace codes, who handed over and who checked, returns kept in
the returning pharmacy's history, alerts acknowledged, a pharmacy's opening hours and phone

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 02:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import pharmacy.db

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('prescriptions') as batch:
        batch.add_column(sa.Column('patient_birth_date', sa.Date(), nullable=True))
        batch.add_column(sa.Column('patient_gender', sa.String(length=10), nullable=True))
        batch.add_column(sa.Column('diagnoses', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('allergies', sa.JSON(), nullable=True))
    with op.batch_alter_table('dispenses') as batch:
        batch.add_column(sa.Column('handed_over_by', sa.String(length=160), nullable=True))
        batch.add_column(sa.Column('checked_by', sa.String(length=160), nullable=True))
        batch.add_column(sa.Column('checked_at', pharmacy.db.UTCDateTime(timezone=True), nullable=True))
    with op.batch_alter_table('sites') as batch:
        batch.add_column(sa.Column('opening_hours', sa.String(length=200), nullable=False, server_default=''))
        batch.add_column(sa.Column('phone', sa.String(length=40), nullable=False, server_default=''))
    with op.batch_alter_table('alerts') as batch:
        batch.add_column(sa.Column('facts', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('acknowledged_at', pharmacy.db.UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('acknowledged_by', sa.String(length=160), nullable=True))

    op.create_table('prescription_returns',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('prescription_id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=60), nullable=False),
    sa.Column('reason_code', sa.String(length=40), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('actor', sa.String(length=160), nullable=False),
    sa.Column('at', pharmacy.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('consortium_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['consortium_id'], ['consortia.id'], name=op.f('fk_prescription_returns_consortium_id_consortia')),
    sa.ForeignKeyConstraint(['prescription_id'], ['prescriptions.id'], name=op.f('fk_prescription_returns_prescription_id_prescriptions')),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_prescription_returns_site_id_sites')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_prescription_returns'))
    )
    with op.batch_alter_table('prescription_returns') as batch:
        batch.create_index(batch.f('ix_prescription_returns_consortium_id'), ['consortium_id'], unique=False)
        batch.create_index(batch.f('ix_prescription_returns_prescription_id'), ['prescription_id'], unique=False)
        batch.create_index('ix_prescription_returns_site_at', ['site_id', 'at'], unique=False)
    # What was returned before this revision is known from the prescriptions' routing: the pharmacies listed in
    # returned_from. Their history starts now, with no reason on record.

    op.create_table('trace_codes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=80), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('gtin', sa.String(length=14), nullable=True),
    sa.Column('serial', sa.String(length=20), nullable=True),
    sa.Column('lot_id', sa.Integer(), nullable=False),
    sa.Column('drug_id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('actor', sa.String(length=160), nullable=False),
    sa.Column('at', pharmacy.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('consortium_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['consortium_id'], ['consortia.id'], name=op.f('fk_trace_codes_consortium_id_consortia')),
    sa.ForeignKeyConstraint(['drug_id'], ['drugs.id'], name=op.f('fk_trace_codes_drug_id_drugs')),
    sa.ForeignKeyConstraint(['lot_id'], ['lots.id'], name=op.f('fk_trace_codes_lot_id_lots')),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_trace_codes_site_id_sites')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_trace_codes')),
    sa.UniqueConstraint('consortium_id', 'code', name='uq_trace_codes_consortium_code')
    )
    with op.batch_alter_table('trace_codes') as batch:
        batch.create_index(batch.f('ix_trace_codes_consortium_id'), ['consortium_id'], unique=False)
        batch.create_index(batch.f('ix_trace_codes_lot_id'), ['lot_id'], unique=False)

    op.create_table('trace_code_dispenses',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('trace_code_id', sa.Integer(), nullable=False),
    sa.Column('movement_id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('actor', sa.String(length=160), nullable=False),
    sa.Column('at', pharmacy.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('consortium_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['consortium_id'], ['consortia.id'], name=op.f('fk_trace_code_dispenses_consortium_id_consortia')),
    sa.ForeignKeyConstraint(['movement_id'], ['movements.id'], name=op.f('fk_trace_code_dispenses_movement_id_movements')),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_trace_code_dispenses_site_id_sites')),
    sa.ForeignKeyConstraint(['trace_code_id'], ['trace_codes.id'], name=op.f('fk_trace_code_dispenses_trace_code_id_trace_codes')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_trace_code_dispenses')),
    sa.UniqueConstraint('trace_code_id', name=op.f('uq_trace_code_dispenses_trace_code_id'))
    )
    with op.batch_alter_table('trace_code_dispenses') as batch:
        batch.create_index(batch.f('ix_trace_code_dispenses_consortium_id'), ['consortium_id'], unique=False)
        batch.create_index(batch.f('ix_trace_code_dispenses_movement_id'), ['movement_id'], unique=False)


def downgrade() -> None:
    op.drop_table('trace_code_dispenses')
    op.drop_table('trace_codes')
    op.drop_table('prescription_returns')
    with op.batch_alter_table('alerts') as batch:
        batch.drop_column('acknowledged_by')
        batch.drop_column('acknowledged_at')
        batch.drop_column('facts')
    with op.batch_alter_table('sites') as batch:
        batch.drop_column('phone')
        batch.drop_column('opening_hours')
    with op.batch_alter_table('dispenses') as batch:
        batch.drop_column('checked_at')
        batch.drop_column('checked_by')
        batch.drop_column('handed_over_by')
    with op.batch_alter_table('prescriptions') as batch:
        batch.drop_column('allergies')
        batch.drop_column('diagnoses')
        batch.drop_column('patient_gender')
        batch.drop_column('patient_birth_date')
