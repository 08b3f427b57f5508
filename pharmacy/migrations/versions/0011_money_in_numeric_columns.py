"""money is Decimal in Numeric columns: an offer's price tiers and per-site delivery costs become rows of their own,
and the offers', plans' and purchase orders' amounts leave floating point

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 16:00:00.000000
"""

import json
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PRICE = Decimal("0.0001")


def _price(value: object) -> Decimal:
    return Decimal(str(value)).quantize(PRICE, ROUND_HALF_UP)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def upgrade() -> None:
    tiers = op.create_table(
        'offer_tiers',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('offer_id', sa.Integer(), nullable=False),
        sa.Column('min_packs', sa.Integer(), nullable=False),
        sa.Column('price_per_pack', sa.Numeric(precision=14, scale=4), nullable=False),
        sa.Column('consortium_id', sa.Integer(), nullable=False),
        sa.CheckConstraint('price_per_pack > 0', name=op.f('ck_offer_tiers_price_positive')),
        sa.CheckConstraint('min_packs >= 0', name=op.f('ck_offer_tiers_min_packs_not_negative')),
        sa.ForeignKeyConstraint(['consortium_id'], ['consortia.id'],
                                name=op.f('fk_offer_tiers_consortium_id_consortia')),
        sa.ForeignKeyConstraint(['offer_id'], ['offers.id'], name=op.f('fk_offer_tiers_offer_id_offers')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_offer_tiers')),
        sa.UniqueConstraint('offer_id', 'min_packs', name='uq_offer_tiers_offer_min_packs'),
    )
    with op.batch_alter_table('offer_tiers') as batch:
        batch.create_index(batch.f('ix_offer_tiers_offer_id'), ['offer_id'], unique=False)
        batch.create_index(batch.f('ix_offer_tiers_consortium_id'), ['consortium_id'], unique=False)
    costs = op.create_table(
        'offer_delivery_costs',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('offer_id', sa.Integer(), nullable=False),
        sa.Column('site_id', sa.Integer(), nullable=False),
        sa.Column('cost_per_pack', sa.Numeric(precision=14, scale=4), nullable=False),
        sa.Column('consortium_id', sa.Integer(), nullable=False),
        sa.CheckConstraint('cost_per_pack >= 0', name=op.f('ck_offer_delivery_costs_cost_not_negative')),
        sa.ForeignKeyConstraint(['consortium_id'], ['consortia.id'],
                                name=op.f('fk_offer_delivery_costs_consortium_id_consortia')),
        sa.ForeignKeyConstraint(['offer_id'], ['offers.id'], name=op.f('fk_offer_delivery_costs_offer_id_offers')),
        sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_offer_delivery_costs_site_id_sites')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_offer_delivery_costs')),
        sa.UniqueConstraint('offer_id', 'site_id', name='uq_offer_delivery_costs_offer_site'),
    )
    with op.batch_alter_table('offer_delivery_costs') as batch:
        batch.create_index(batch.f('ix_offer_delivery_costs_offer_id'), ['offer_id'], unique=False)
        batch.create_index(batch.f('ix_offer_delivery_costs_consortium_id'), ['consortium_id'], unique=False)

    connection = op.get_bind()
    tier_rows, cost_rows = [], []
    for offer_id, consortium_id, offer_tiers, delivery in connection.execute(sa.text(
            "SELECT id, consortium_id, tiers, delivery_costs FROM offers")):
        for tier in _json(offer_tiers) or []:
            tier_rows.append({"offer_id": offer_id, "consortium_id": consortium_id,
                              "min_packs": int(tier["min_packs"]), "price_per_pack": _price(tier["price_per_pack"])})
        for site_id, cost in (_json(delivery) or {}).items():
            cost_rows.append({"offer_id": offer_id, "consortium_id": consortium_id, "site_id": int(site_id),
                              "cost_per_pack": _price(cost)})
    if tier_rows:
        op.bulk_insert(tiers, tier_rows)
    if cost_rows:
        op.bulk_insert(costs, cost_rows)

    with op.batch_alter_table('offers') as batch:
        batch.drop_column('tiers')
        batch.drop_column('delivery_costs')
        batch.alter_column('order_cost', type_=sa.Numeric(precision=14, scale=2), existing_nullable=False)
        batch.alter_column('default_delivery_cost', type_=sa.Numeric(precision=14, scale=4), existing_nullable=True)
    with op.batch_alter_table('plan_runs') as batch:
        batch.alter_column('budget', type_=sa.Numeric(precision=14, scale=2), existing_nullable=True)
    with op.batch_alter_table('plan_lines') as batch:
        batch.alter_column('price_per_pack', type_=sa.Numeric(precision=14, scale=4), existing_nullable=True)
        batch.alter_column('cost', type_=sa.Numeric(precision=14, scale=2), existing_nullable=False)
    with op.batch_alter_table('purchase_orders') as batch:
        batch.alter_column('total', type_=sa.Numeric(precision=14, scale=2), existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('purchase_orders') as batch:
        batch.alter_column('total', type_=sa.Float(), existing_nullable=False)
    with op.batch_alter_table('plan_lines') as batch:
        batch.alter_column('cost', type_=sa.Float(), existing_nullable=False)
        batch.alter_column('price_per_pack', type_=sa.Float(), existing_nullable=True)
    with op.batch_alter_table('plan_runs') as batch:
        batch.alter_column('budget', type_=sa.Float(), existing_nullable=True)
    with op.batch_alter_table('offers') as batch:
        batch.alter_column('default_delivery_cost', type_=sa.Float(), existing_nullable=True)
        batch.alter_column('order_cost', type_=sa.Float(), existing_nullable=False)
        batch.add_column(sa.Column('tiers', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('delivery_costs', sa.JSON(), nullable=True))
    connection = op.get_bind()
    offers: dict[int, tuple[list[dict[str, Any]], dict[str, float]]] = {
        offer_id: ([], {}) for (offer_id,) in connection.execute(sa.text("SELECT id FROM offers"))}
    for offer_id, min_packs, price in connection.execute(sa.text(
            "SELECT offer_id, min_packs, price_per_pack FROM offer_tiers ORDER BY offer_id, min_packs")):
        offers[offer_id][0].append({"min_packs": min_packs, "price_per_pack": float(price)})
    for offer_id, site_id, cost in connection.execute(sa.text(
            "SELECT offer_id, site_id, cost_per_pack FROM offer_delivery_costs")):
        offers[offer_id][1][str(site_id)] = float(cost)
    for offer_id, (offer_tiers, delivery) in offers.items():
        connection.execute(sa.text("UPDATE offers SET tiers = :t, delivery_costs = :d WHERE id = :id"),
                           {"t": json.dumps(offer_tiers), "d": json.dumps(delivery), "id": offer_id})
    op.drop_table('offer_delivery_costs')
    op.drop_table('offer_tiers')
