"""Figures for the consortium dashboard, read from the same tables the services write."""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import func, select

from pharmacy.clock import local
from pharmacy.consortium.domain import GRASSROOTS_KINDS
from pharmacy.consortium.models import Site
from pharmacy.inventory.domain import MovementKind
from pharmacy.inventory.models import Lot, Movement
from pharmacy.prescriptions.domain import CLOSED_STATUSES, FILLED_STATUSES
from pharmacy.prescriptions.models import Dispense, Prescription, PrescriptionEvent, Shortage
from pharmacy.procurement.domain import PlanStatus
from pharmacy.procurement.models import PlanRun
from pharmacy.procurement.services import cheapest_unit_prices, valid_offers
from pharmacy.unit_of_work import UnitOfWork


@dataclass
class Dashboard:
    grassroots_share: float | None  # of prescriptions dispensed, the share dispensed at grassroots sites
    fill_rate: float | None  # of prescriptions closed, the share filled
    hours_to_hand_over: float | None  # median, from routing (the first event) to hand-over
    shortages_30_days: int  # units the consortium could not supply, recorded in the last 30 days
    near_expiry_value: float  # yuan of stock expiring within the near-expiry window
    waste_value_90_days: float  # yuan written off as expired in the last 90 days
    savings: list[tuple[str, float]] = field(default_factory=list)  # approved plans: (date, saving)
    near_expiry_by_site: list[tuple[str, float]] = field(default_factory=list)
    dispensed_by_kind: dict[str, int] = field(default_factory=dict)


def consortium_dashboard(uow: UnitOfWork, near_expiry_days: int) -> Dashboard:
    """The dashboard's figures for the principal's consortium."""
    with uow:
        today = uow.today()
        sites = uow.session.execute(select(Site.id, Site.kind, Site.name)).all()
        kinds = {site_id: kind for site_id, kind, _ in sites}
        names = {site_id: name for site_id, _, name in sites}  # the chart names sites as people know them
        dispensed_at = dict(uow.session.execute(
            select(Dispense.prescription_id, func.min(Dispense.site_id)).group_by(Dispense.prescription_id)).all())
        by_kind: dict[str, int] = defaultdict(int)
        for site_id in dispensed_at.values():
            by_kind[kinds.get(site_id, "?")] += 1
        grassroots = sum(n for kind, n in by_kind.items() if kind in {k.value for k in GRASSROOTS_KINDS})
        statuses = dict(uow.session.execute(select(Prescription.status, func.count()).group_by(Prescription.status))
                        .all())
        closed = sum(statuses.get(s.value, 0) for s in CLOSED_STATUSES)
        filled = sum(statuses.get(s.value, 0) for s in FILLED_STATUSES)
        # From the prescription's first event (its routing, on the service's clock) to its first hand-over.
        routed = (select(PrescriptionEvent.prescription_id, func.min(PrescriptionEvent.at).label("at"))
                  .group_by(PrescriptionEvent.prescription_id).subquery())
        spans = [max((handed - started).total_seconds(), 0) / 3600 for started, handed in uow.session.execute(
            select(routed.c.at, func.min(Dispense.handed_over_at))
            .join(Dispense, Dispense.prescription_id == routed.c.prescription_id)
            .where(Dispense.handed_over_at.is_not(None)).group_by(routed.c.prescription_id, routed.c.at)).all()
            if handed is not None and started is not None]
        shortages = uow.session.scalar(select(func.coalesce(func.sum(Shortage.quantity), 0)).where(
            Shortage.created_at >= uow.now() - timedelta(days=30))) or 0
        prices = cheapest_unit_prices(valid_offers(uow, today))
        near_by_site: dict[str, float] = defaultdict(float)
        for site_id, drug_id, quantity in uow.session.execute(
                select(Lot.site_id, Lot.drug_id, Lot.quantity).where(
                    Lot.quantity > 0, Lot.expiry_date <= today + timedelta(days=near_expiry_days))).all():
            near_by_site[names.get(site_id, str(site_id))] += quantity * prices.get(drug_id, 0.0)
        wasted = uow.session.execute(select(Movement.drug_id, func.sum(Movement.quantity)).where(
            Movement.kind == MovementKind.EXPIRY_WRITE_OFF.value, Movement.at >= uow.now() - timedelta(days=90))
            .group_by(Movement.drug_id)).all()
        # Only each approved plan's saving is read, not its whole result.
        approved = uow.session.execute(
            select(PlanRun.approved_at, PlanRun.result["summary"]["saving"].as_float())
            .where(PlanRun.status == PlanStatus.APPROVED.value).order_by(PlanRun.approved_at)).all()
        # Each on its day in Beijing, not in UTC (an approval at 07:00 is that day's, not the day before).
        savings = [(local(approved_at).date().isoformat(), float(saving)) for approved_at, saving in approved
                   if approved_at is not None and saving is not None]
        return Dashboard(
            grassroots_share=grassroots / len(dispensed_at) if dispensed_at else None,
            fill_rate=filled / closed if closed else None,
            hours_to_hand_over=statistics.median(spans) if spans else None,
            shortages_30_days=int(shortages),
            near_expiry_value=round(sum(near_by_site.values()), 2),
            waste_value_90_days=round(sum(-q * prices.get(d, 0.0) for d, q in wasted), 2),
            savings=savings,
            near_expiry_by_site=sorted(((s, round(v, 2)) for s, v in near_by_site.items() if v), key=lambda x: -x[1]),
            dispensed_by_kind=dict(by_kind),
        )
