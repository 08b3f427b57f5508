"""catalog and inventory

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 05:20:37.807533
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import pharmacy.db
from pharmacy.audit import append_only_trigger_sql

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('drugs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('national_code', sa.String(length=40), nullable=True),
    sa.Column('atc_code', sa.String(length=10), nullable=True),
    sa.Column('generic_name', sa.String(length=200), nullable=False),
    sa.Column('pinyin_initials', sa.String(length=200), nullable=False),
    sa.Column('pinyin_full', sa.String(length=400), nullable=False),
    sa.Column('search_key', sa.Text(), nullable=False),
    sa.Column('brand_name', sa.String(length=200), nullable=True),
    sa.Column('manufacturer', sa.String(length=200), nullable=True),
    sa.Column('dosage_form', sa.String(length=60), nullable=False),
    sa.Column('strength_amount', sa.Numeric(precision=14, scale=4), nullable=False),
    sa.Column('strength_unit', sa.String(length=20), nullable=False),
    sa.Column('dispensing_unit', sa.String(length=20), nullable=False),
    sa.Column('pack_size', sa.Integer(), nullable=False),
    sa.Column('essential', sa.Boolean(), nullable=False),
    sa.Column('insurance_class', sa.String(length=10), nullable=False),
    sa.Column('controlled_class', sa.String(length=20), nullable=False),
    sa.Column('special_storage', sa.String(length=20), nullable=False),
    sa.Column('equivalence_group', sa.String(length=60), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('updated_at', pharmacy.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('consortium_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['consortium_id'], ['consortia.id'], name=op.f('fk_drugs_consortium_id_consortia')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_drugs')),
    sa.UniqueConstraint('consortium_id', 'code', name='uq_drugs_consortium_code')
    )
    with op.batch_alter_table('drugs', schema=None) as batch_op:
        batch_op.create_index('ix_drugs_consortium_equivalence', ['consortium_id', 'equivalence_group'], unique=False)
        batch_op.create_index(batch_op.f('ix_drugs_consortium_id'), ['consortium_id'], unique=False)
        batch_op.create_index('ix_drugs_consortium_national_code', ['consortium_id', 'national_code'], unique=False)

    op.create_table('formulary_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('drug_id', sa.Integer(), nullable=False),
    sa.Column('note', sa.String(length=200), nullable=False),
    sa.Column('created_at', pharmacy.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('consortium_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['consortium_id'], ['consortia.id'], name=op.f('fk_formulary_entries_consortium_id_consortia')),
    sa.ForeignKeyConstraint(['drug_id'], ['drugs.id'], name=op.f('fk_formulary_entries_drug_id_drugs')),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_formulary_entries_site_id_sites')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_formulary_entries')),
    sa.UniqueConstraint('site_id', 'drug_id', name='uq_formulary_entries_site_drug')
    )
    with op.batch_alter_table('formulary_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_formulary_entries_consortium_id'), ['consortium_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_formulary_entries_drug_id'), ['drug_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_formulary_entries_site_id'), ['site_id'], unique=False)

    op.create_table('local_codes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('local_code', sa.String(length=60), nullable=False),
    sa.Column('drug_id', sa.Integer(), nullable=False),
    sa.Column('consortium_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['consortium_id'], ['consortia.id'], name=op.f('fk_local_codes_consortium_id_consortia')),
    sa.ForeignKeyConstraint(['drug_id'], ['drugs.id'], name=op.f('fk_local_codes_drug_id_drugs')),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_local_codes_site_id_sites')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_local_codes')),
    sa.UniqueConstraint('site_id', 'local_code', name='uq_local_codes_site_code')
    )
    with op.batch_alter_table('local_codes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_local_codes_consortium_id'), ['consortium_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_local_codes_drug_id'), ['drug_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_local_codes_site_id'), ['site_id'], unique=False)

    op.create_table('lots',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('drug_id', sa.Integer(), nullable=False),
    sa.Column('lot_number', sa.String(length=60), nullable=False),
    sa.Column('expiry_date', sa.Date(), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('reserved', sa.Integer(), nullable=False),
    sa.Column('created_at', pharmacy.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('consortium_id', sa.Integer(), nullable=False),
    sa.CheckConstraint('quantity >= 0', name=op.f('ck_lots_quantity_not_negative')),
    sa.CheckConstraint('reserved <= quantity', name=op.f('ck_lots_reserved_within_quantity')),
    sa.CheckConstraint('reserved >= 0', name=op.f('ck_lots_reserved_not_negative')),
    sa.ForeignKeyConstraint(['consortium_id'], ['consortia.id'], name=op.f('fk_lots_consortium_id_consortia')),
    sa.ForeignKeyConstraint(['drug_id'], ['drugs.id'], name=op.f('fk_lots_drug_id_drugs')),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_lots_site_id_sites')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lots')),
    sa.UniqueConstraint('site_id', 'drug_id', 'lot_number', name='uq_lots_site_drug_lot_number')
    )
    with op.batch_alter_table('lots', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_lots_consortium_id'), ['consortium_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_lots_drug_id'), ['drug_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_lots_expiry_date'), ['expiry_date'], unique=False)
        batch_op.create_index('ix_lots_site_drug_expiry', ['site_id', 'drug_id', 'expiry_date'], unique=False)

    op.create_table('stocktakes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('counted_by', sa.String(length=160), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('lines_counted', sa.Integer(), nullable=False),
    sa.Column('lines_adjusted', sa.Integer(), nullable=False),
    sa.Column('at', pharmacy.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('consortium_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['consortium_id'], ['consortia.id'], name=op.f('fk_stocktakes_consortium_id_consortia')),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_stocktakes_site_id_sites')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stocktakes'))
    )
    with op.batch_alter_table('stocktakes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_stocktakes_consortium_id'), ['consortium_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_stocktakes_site_id'), ['site_id'], unique=False)

    op.create_table('movements',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('lot_id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('drug_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=30), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('reason_code', sa.String(length=40), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('actor', sa.String(length=160), nullable=False),
    sa.Column('cause_type', sa.String(length=30), nullable=True),
    sa.Column('cause_id', sa.String(length=60), nullable=True),
    sa.Column('reverses_id', sa.Integer(), nullable=True),
    sa.Column('at', pharmacy.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('consortium_id', sa.Integer(), nullable=False),
    sa.CheckConstraint('quantity <> 0', name=op.f('ck_movements_quantity_not_zero')),
    sa.ForeignKeyConstraint(['consortium_id'], ['consortia.id'], name=op.f('fk_movements_consortium_id_consortia')),
    sa.ForeignKeyConstraint(['drug_id'], ['drugs.id'], name=op.f('fk_movements_drug_id_drugs')),
    sa.ForeignKeyConstraint(['lot_id'], ['lots.id'], name=op.f('fk_movements_lot_id_lots')),
    sa.ForeignKeyConstraint(['reverses_id'], ['movements.id'], name=op.f('fk_movements_reverses_id_movements')),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_movements_site_id_sites')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_movements')),
    sa.UniqueConstraint('reverses_id', name=op.f('uq_movements_reverses_id'))
    )
    with op.batch_alter_table('movements', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_movements_at'), ['at'], unique=False)
        batch_op.create_index('ix_movements_cause', ['cause_type', 'cause_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_movements_consortium_id'), ['consortium_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_movements_drug_id'), ['drug_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_movements_lot_id'), ['lot_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_movements_site_id'), ['site_id'], unique=False)

    op.create_table('reservations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('lot_id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('drug_id', sa.Integer(), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('cause_type', sa.String(length=30), nullable=False),
    sa.Column('cause_id', sa.String(length=60), nullable=False),
    sa.Column('supply_until', sa.Date(), nullable=False),
    sa.Column('created_at', pharmacy.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('closed_at', pharmacy.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('consortium_id', sa.Integer(), nullable=False),
    sa.CheckConstraint('quantity > 0', name=op.f('ck_reservations_quantity_positive')),
    sa.ForeignKeyConstraint(['consortium_id'], ['consortia.id'], name=op.f('fk_reservations_consortium_id_consortia')),
    sa.ForeignKeyConstraint(['drug_id'], ['drugs.id'], name=op.f('fk_reservations_drug_id_drugs')),
    sa.ForeignKeyConstraint(['lot_id'], ['lots.id'], name=op.f('fk_reservations_lot_id_lots')),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_reservations_site_id_sites')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reservations'))
    )
    with op.batch_alter_table('reservations', schema=None) as batch_op:
        batch_op.create_index('ix_reservations_cause', ['cause_type', 'cause_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_reservations_consortium_id'), ['consortium_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_reservations_lot_id'), ['lot_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_reservations_site_id'), ['site_id'], unique=False)

    # The ledger is append-only: a mistake is undone by a reversing movement, never by an edit.
    for statement in append_only_trigger_sql(op.get_bind().dialect.name, "movements"):
        op.execute(statement)



def downgrade() -> None:
    with op.batch_alter_table('reservations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reservations_site_id'))
        batch_op.drop_index(batch_op.f('ix_reservations_lot_id'))
        batch_op.drop_index(batch_op.f('ix_reservations_consortium_id'))
        batch_op.drop_index('ix_reservations_cause')

    op.drop_table('reservations')
    with op.batch_alter_table('movements', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_movements_site_id'))
        batch_op.drop_index(batch_op.f('ix_movements_lot_id'))
        batch_op.drop_index(batch_op.f('ix_movements_drug_id'))
        batch_op.drop_index(batch_op.f('ix_movements_consortium_id'))
        batch_op.drop_index('ix_movements_cause')
        batch_op.drop_index(batch_op.f('ix_movements_at'))

    op.drop_table('movements')
    with op.batch_alter_table('stocktakes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_stocktakes_site_id'))
        batch_op.drop_index(batch_op.f('ix_stocktakes_consortium_id'))

    op.drop_table('stocktakes')
    with op.batch_alter_table('lots', schema=None) as batch_op:
        batch_op.drop_index('ix_lots_site_drug_expiry')
        batch_op.drop_index(batch_op.f('ix_lots_expiry_date'))
        batch_op.drop_index(batch_op.f('ix_lots_drug_id'))
        batch_op.drop_index(batch_op.f('ix_lots_consortium_id'))

    op.drop_table('lots')
    with op.batch_alter_table('local_codes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_local_codes_site_id'))
        batch_op.drop_index(batch_op.f('ix_local_codes_drug_id'))
        batch_op.drop_index(batch_op.f('ix_local_codes_consortium_id'))

    op.drop_table('local_codes')
    with op.batch_alter_table('formulary_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_formulary_entries_site_id'))
        batch_op.drop_index(batch_op.f('ix_formulary_entries_drug_id'))
        batch_op.drop_index(batch_op.f('ix_formulary_entries_consortium_id'))

    op.drop_table('formulary_entries')
    with op.batch_alter_table('drugs', schema=None) as batch_op:
        batch_op.drop_index('ix_drugs_consortium_national_code')
        batch_op.drop_index(batch_op.f('ix_drugs_consortium_id'))
        batch_op.drop_index('ix_drugs_consortium_equivalence')

    op.drop_table('drugs')
