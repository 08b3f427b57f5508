from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from pharmacy.db import Base, UTCDateTime, utcnow
from pharmacy.tenancy import ConsortiumOwned


class Supplier(ConsortiumOwned, Base):
    """A distribution company the consortium buys from."""

    __tablename__ = "suppliers"
    __table_args__ = (UniqueConstraint("consortium_id", "code", name="uq_suppliers_consortium_code"),)
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Offer(ConsortiumOwned, Base):
    """A supplier's price list for one drug over its validity dates.

    ``tiers`` are all-units volume prices, ascending by their minimum packs; the first tier's minimum is the
    minimum order. Delivery: a cost per pack for each site listed in ``site_delivery``, else
    ``default_delivery_cost``; with neither, only the sites listed are served (none listed: every site, free).
    Money is Decimal, in Numeric columns.
    """

    __tablename__ = "offers"
    __table_args__ = (
        UniqueConstraint("supplier_id", "drug_id", "valid_from", name="uq_offers_supplier_drug_valid_from"),
        CheckConstraint("pack_size > 0", name="pack_size_positive"),
        CheckConstraint("valid_until >= valid_from", name="valid_dates_ordered"),
    )
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    supplier_id: Mapped[int] = mapped_column(ForeignKey("suppliers.id"), index=True)
    drug_id: Mapped[int] = mapped_column(ForeignKey("drugs.id"), index=True)
    pack_size: Mapped[int] = mapped_column(Integer)
    lead_time_days: Mapped[int] = mapped_column(Integer, default=0)
    capacity_packs: Mapped[int | None] = mapped_column(Integer)
    order_cost: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=Decimal(0))
    default_delivery_cost: Mapped[Decimal | None] = mapped_column(Numeric(14, 4))
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date] = mapped_column(Date)
    # A retired offer is kept on record (orders and plans name it) but no longer bought from.
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    tiers: Mapped[list[OfferTier]] = relationship(order_by="OfferTier.min_packs", cascade="all, delete-orphan",
                                                  lazy="selectin")
    site_delivery: Mapped[list[OfferDeliveryCost]] = relationship(order_by="OfferDeliveryCost.site_id",
                                                                  cascade="all, delete-orphan", lazy="selectin")

    @property
    def delivery_costs(self) -> dict[str, Decimal]:
        """Delivery cost per pack by site id (as text), for the sites listed."""
        return {str(d.site_id): d.cost_per_pack for d in self.site_delivery}

    def delivery_cost_to(self, site_id: int) -> Decimal | None:
        """What a pack costs to deliver to a site: its own cost, else the default; None: not delivered there."""
        return next((d.cost_per_pack for d in self.site_delivery if d.site_id == site_id), self.default_delivery_cost)

    @property
    def minimum_packs(self) -> int:
        return self.tiers[0].min_packs


class OfferTier(ConsortiumOwned, Base):
    """An all-units price of an offer: once the order of it reaches ``min_packs``, every pack costs the price."""

    __tablename__ = "offer_tiers"
    __table_args__ = (UniqueConstraint("offer_id", "min_packs", name="uq_offer_tiers_offer_min_packs"),
                      CheckConstraint("price_per_pack > 0", name="price_positive"),
                      CheckConstraint("min_packs >= 0", name="min_packs_not_negative"))

    id: Mapped[int] = mapped_column(primary_key=True)
    offer_id: Mapped[int] = mapped_column(ForeignKey("offers.id"), index=True)
    min_packs: Mapped[int] = mapped_column(Integer)
    price_per_pack: Mapped[Decimal] = mapped_column(Numeric(14, 4))


class OfferDeliveryCost(ConsortiumOwned, Base):
    """What an offer charges to deliver a pack to one site."""

    __tablename__ = "offer_delivery_costs"
    __table_args__ = (UniqueConstraint("offer_id", "site_id", name="uq_offer_delivery_costs_offer_site"),
                      CheckConstraint("cost_per_pack >= 0", name="cost_not_negative"))

    id: Mapped[int] = mapped_column(primary_key=True)
    offer_id: Mapped[int] = mapped_column(ForeignKey("offers.id"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    cost_per_pack: Mapped[Decimal] = mapped_column(Numeric(14, 4))


class PlanRun(ConsortiumOwned, Base):
    """One run of the purchase planner: its settings, frozen inputs, progress and result.

    Not audited row by row (progress changes every second); starting, editing and approving a run write
    audit entries of their own.
    """

    __tablename__ = "plan_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(20), default="queued", index=True)
    trigger: Mapped[str] = mapped_column(String(20), default="officer")  # officer | nightly | command
    horizon_days: Mapped[int] = mapped_column(Integer)
    budget: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    solver: Mapped[str] = mapped_column(String(10), default="highs")
    time_limit: Mapped[float] = mapped_column(Float, default=60.0)
    gap: Mapped[float] = mapped_column(Float, default=0.005)
    service_level: Mapped[float] = mapped_column(Float, default=0.95)
    history_days: Mapped[int] = mapped_column(Integer, default=90)
    started_by: Mapped[str] = mapped_column(String(160))
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    progress: Mapped[float] = mapped_column(Float, default=0.0)  # 0..1
    progress_note: Mapped[str] = mapped_column(String(200), default="")  # in English, for the API
    # What the note says, as facts (see RunProgress): pages say them in their own language.
    progress_facts: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The problem exactly as the optimizer saw it, with the map from its ids back to ours: enough to
    # reproduce and explain the plan later, whatever happens to stock and offers meanwhile.
    # The frozen problem can be megabytes: loaded only where it is used, not on every progress poll.
    inputs: Mapped[dict[str, Any] | None] = mapped_column(JSON, deferred=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str] = mapped_column(Text, default="")
    edited: Mapped[bool] = mapped_column(Boolean, default=False)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    approved_by: Mapped[str | None] = mapped_column(String(160))
    # An officer's cancel: a queued run ends at once, a running one at its next model solved.
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_by: Mapped[str | None] = mapped_column(String(160))


class PlanLine(ConsortiumOwned, Base):
    """A purchase (packs of an offer for a site) or a transfer (units of stock from one site to the next) of a plan
    run."""

    __tablename__ = "plan_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("plan_runs.id"), index=True)
    kind: Mapped[str] = mapped_column(String(10))  # purchase | transfer
    drug_id: Mapped[int] = mapped_column(ForeignKey("drugs.id"))
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))  # where the stock goes
    offer_id: Mapped[int | None] = mapped_column(ForeignKey("offers.id"))
    supplier_id: Mapped[int | None] = mapped_column(ForeignKey("suppliers.id"))
    from_site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"))
    lot_id: Mapped[int | None] = mapped_column(ForeignKey("lots.id"))
    # The stock as the plan names it: O<offer> bought (a purchase, or its packs moved on from where they are
    # delivered), L<lot> on hand, P/S/H/A<row> stock on its way (see procurement.position.Incoming).
    source: Mapped[str | None] = mapped_column(String(30))
    packs: Mapped[int | None] = mapped_column(Integer)
    units: Mapped[float] = mapped_column(Float)
    price_per_pack: Mapped[Decimal | None] = mapped_column(Numeric(14, 4))
    cost: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    why: Mapped[str] = mapped_column(Text, default="")
    # The same as codes and figures (optimizer.plan.Reason), which the pages say in their own language.
    reasons: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, default=list)
    edited: Mapped[bool] = mapped_column(Boolean, default=False)


class PurchaseOrder(ConsortiumOwned, Base):
    """What an approved plan buys from one supplier, line by line per site."""

    __tablename__ = "purchase_orders"
    __table_args__ = (UniqueConstraint("run_id", "supplier_id", name="uq_purchase_orders_run_supplier"),)
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(40), unique=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("plan_runs.id"), index=True)
    supplier_id: Mapped[int] = mapped_column(ForeignKey("suppliers.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="open")  # open | partially_received | received | cancelled
    total: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=Decimal(0))
    created_by: Mapped[str] = mapped_column(String(160))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class PurchaseOrderLine(ConsortiumOwned, Base):
    __tablename__ = "purchase_order_lines"
    __table_args__ = (CheckConstraint("received_units <= units", name="received_within_ordered"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("purchase_orders.id"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    drug_id: Mapped[int] = mapped_column(ForeignKey("drugs.id"))
    offer_id: Mapped[int | None] = mapped_column(ForeignKey("offers.id"))
    packs: Mapped[int] = mapped_column(Integer)
    pack_size: Mapped[int] = mapped_column(Integer)
    units: Mapped[int] = mapped_column(Integer)
    price_per_pack: Mapped[Decimal] = mapped_column(Numeric(14, 4))
    cost: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    received_units: Mapped[int] = mapped_column(Integer, default=0)
    # When the goods are expected: the order's day plus the offer's lead time, or the day the supplier promised.
    expected_on: Mapped[date | None] = mapped_column(Date)


class TransferOrder(ConsortiumOwned, Base):
    """Stock sent from one member to another: planned redistribution, or asked for by routing."""

    __tablename__ = "transfer_orders"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(40), unique=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("plan_runs.id"), index=True)
    prescription_id: Mapped[int | None] = mapped_column(ForeignKey("prescriptions.id"), index=True)
    from_site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    to_site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    reason: Mapped[str] = mapped_column(String(30))  # redistribution | near_expiry | shortage_cover
    # requested | shipped | partially_received | received | cancelled
    status: Mapped[str] = mapped_column(String(20), default="requested", index=True)
    note: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(160))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    shipped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class TransferOrderLine(ConsortiumOwned, Base):
    """One drug of a transfer: from a named lot (planned) or first-expiry first-out at shipping."""

    __tablename__ = "transfer_order_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("transfer_orders.id"), index=True)
    drug_id: Mapped[int] = mapped_column(ForeignKey("drugs.id"))
    lot_id: Mapped[int | None] = mapped_column(ForeignKey("lots.id"))
    quantity: Mapped[int] = mapped_column(Integer)
    # A lot the stock must last until at the receiving site (a prescription's supply end), if any.
    usable_until: Mapped[date | None] = mapped_column(Date)


class TransferParcel(ConsortiumOwned, Base):
    """Units of one lot shipped for a transfer line: how many arrived, and how many did not arrive whole."""

    __tablename__ = "transfer_parcels"
    __table_args__ = (CheckConstraint("received <= shipped", name="received_within_shipped"),
                      CheckConstraint("received + lost <= shipped", name="accounted_within_shipped"))

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("transfer_orders.id"), index=True)
    line_id: Mapped[int] = mapped_column(ForeignKey("transfer_order_lines.id"))
    drug_id: Mapped[int] = mapped_column(ForeignKey("drugs.id"))
    from_lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"))
    lot_number: Mapped[str] = mapped_column(String(60))
    expiry_date: Mapped[date] = mapped_column(Date)
    shipped: Mapped[int] = mapped_column(Integer)
    received: Mapped[int] = mapped_column(Integer, default=0)
    lost: Mapped[int] = mapped_column(Integer, default=0)  # declared on receipt as a transit loss


class Alert(ConsortiumOwned, Base):
    """Something a pharmacist or officer should act on: stock near expiry, stock running low, or what an approved
    plan leaves undone (a site short of a drug, a lot expected to expire unused)."""

    __tablename__ = "alerts"
    __table_args__ = (UniqueConstraint("consortium_id", "key", "raised_on", name="uq_alerts_key_day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # near_expiry | low_stock | planned_shortage | planned_waste
    kind: Mapped[str] = mapped_column(String(20), index=True)
    key: Mapped[str] = mapped_column(String(80))  # one alert per thing per day
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    drug_id: Mapped[int] = mapped_column(ForeignKey("drugs.id"))
    lot_id: Mapped[int | None] = mapped_column(ForeignKey("lots.id"))
    message: Mapped[str] = mapped_column(Text)  # in English, for the API
    # What the message says, as facts (its template and their values): pages say them in their own language.
    facts: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    raised_on: Mapped[date] = mapped_column(Date, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # A pharmacist or officer saw it and took it in hand: it leaves the open list.
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(String(160))
