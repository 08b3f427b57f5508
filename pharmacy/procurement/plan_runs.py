"""Purchase-plan runs: the optimizer fed from the database, run in the background, its inputs frozen with
the run, its plan shown beside the site-by-site baseline, edited, re-costed and approved into orders."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, defer

from optimizer import Arc, Decisions, Demand, DrugPolicy, Lot, Offer, Plan, PlanningError, Problem, Tier, baseline_costs
from optimizer import evaluate as evaluate_plan
from optimizer import solve as solve_plan
from optimizer.planner import RECOSTED, SOLVERS
from optimizer.serialize import costs_from_dict, plan_to_dict, problem_from_dict, problem_to_dict
from pharmacy import audit
from pharmacy.catalog.models import Drug
from pharmacy.clock import Clock
from pharmacy.consortium.domain import distance_km
from pharmacy.consortium.models import Site
from pharmacy.db import Database
from pharmacy.errors import Conflict, Message, ValidationFailed
from pharmacy.inventory.domain import MOST_UNITS_PER_MOVEMENT, days_usable
from pharmacy.inventory.models import Lot as StockLot
from pharmacy.pagination import Page, PageRequest, fetch_page
from pharmacy.principal import SYSTEM, system_for
from pharmacy.procurement.cluster import plan_executor
from pharmacy.procurement.domain import (
    Place,
    PlanStatus,
    RunProgress,
    check_plan_cancellable,
    money,
    price,
    shortage_penalty,
    transfer_allowed,
)
from pharmacy.procurement.models import Offer as StoredOffer
from pharmacy.procurement.models import (
    PlanLine,
    PlanRun,
    PurchaseOrder,
    PurchaseOrderLine,
    TransferOrder,
)
from pharmacy.procurement.orders import await_stock_transfer, order_number, request_transfer
from pharmacy.procurement.position import positions
from pharmacy.procurement.services import cheapest_unit_prices, forecast_demand, raise_alert, valid_offers
from pharmacy.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

STALE_AFTER = timedelta(minutes=15)  # a running run silent this long lost its process


@dataclass(frozen=True)
class PlanSettings:
    """Consortium-wide rules that shape every plan (from configuration)."""

    transfer_max_km: float = 15.0
    transfer_cost_per_unit: float = 0.02
    transfer_cost_per_unit_km: float = 0.005
    workers: int = 1
    # What one trip between two sites costs whatever it carries (packing, a driver's time): no plan moves stock
    # worth less than the trip.
    transfer_cost_per_shipment: float = 20.0
    # A Dask cluster's scheduler (tcp://host:8786) to solve plans on, instead of ``workers`` local processes.
    dask_scheduler: str = ""

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> PlanSettings:
        return cls(config.get("TRANSFER_MAX_KM", 15.0), config.get("TRANSFER_COST_PER_UNIT", 0.02),
                   config.get("TRANSFER_COST_PER_UNIT_KM", 0.005), int(config.get("PLAN_WORKERS", 1)),
                   config.get("TRANSFER_COST_PER_SHIPMENT", 20.0), config.get("DASK_SCHEDULER", "") or "")


# Starting and reading runs ------------------------------------------------------------------------------

def start_plan_run(uow: UnitOfWork, *, horizon_days: int, budget: float | None = None, solver: str = "highs",
                   time_limit: float = 60.0, gap: float = 0.005, service_level: float = 0.95,
                   history_days: int = 90, trigger: str = "officer", note: str = "",
                   on_queued: Callable[[int], None] | None = None) -> PlanRun:
    """Queue a plan run; it runs in the background (``on_queued`` is told once the run is committed)."""
    if solver not in SOLVERS:
        raise ValidationFailed(Message("unknown solver %(solver)r; use one of: %(solvers)s", solver=solver,
                                       solvers=list(SOLVERS)), {"solver": solver})
    with uow:
        run = PlanRun(consortium_id=uow.principal.consortium_id, status=PlanStatus.QUEUED.value, trigger=trigger,
                      horizon_days=horizon_days, budget=budget, solver=solver, time_limit=time_limit, gap=gap,
                      service_level=service_level, history_days=history_days, started_by=uow.principal.label,
                      note=note, created_at=uow.now(), progress=0.0, **_progress_columns(RunProgress("queued")))
        uow.session.add(run)
        uow.flush()
        audit.record(uow.session, "start", "PlanRun", run.id,
                     f"plan run over {horizon_days} days" + (f", budget {budget:.2f}" if budget else ""))
        if on_queued is not None:
            run_id = run.id
            uow.after_commit(lambda: on_queued(run_id))
        uow.commit()
        return run


def get_plan_run(uow: UnitOfWork, run_id: int) -> PlanRun:
    with uow:
        return uow.get(PlanRun, run_id, what="plan run")


def cancel_plan_run(uow: UnitOfWork, run_id: int, note: str) -> PlanRun:
    """Cancel a run that has not finished: a queued one ends at once and never runs; a running one ends at its
    next model solved (or drug of its baseline), and its plan is not kept."""
    if not note.strip():
        raise ValidationFailed(Message("say why the run is cancelled"), {"note": note})
    with uow:
        run = uow.get(PlanRun, run_id, for_update=True, what="plan run")
        check_plan_cancellable(run_id, run.status)
        if run.cancel_requested_at is None:
            run.cancel_requested_at, run.cancelled_by = uow.now(), uow.principal.label
            if run.status == PlanStatus.QUEUED.value:
                run.status, run.finished_at = PlanStatus.CANCELLED.value, uow.now()
                _tell(run, RunProgress("cancelled"))
            audit.record(uow.session, "cancel", "PlanRun", run.id, note)
        uow.commit()
        return run


def plan_inputs(uow: UnitOfWork, run_id: int) -> dict[str, Any]:
    """The problem exactly as the optimizer saw it, with the map back to our ids (empty until frozen)."""
    with uow:
        return uow.get(PlanRun, run_id, what="plan run").inputs or {}


def list_plan_runs(uow: UnitOfWork, page: PageRequest, *, status: str | None = None) -> Page[PlanRun]:
    with uow:
        # A list shows settings and progress, never the result.
        stmt = select(PlanRun).options(defer(PlanRun.result)).order_by(PlanRun.id.desc())
        if status:
            stmt = stmt.where(PlanRun.status == status)
        return fetch_page(uow.session, stmt, page)


@dataclass(frozen=True)
class Undone:
    """What a plan leaves undone: a site short of a drug over the horizon (``kind`` shortage, ``cost`` its
    penalty), or a lot expected to expire unused (waste, ``cost`` the value lost)."""

    kind: str
    drug: str  # codes, as the plan names them
    site: str
    units: int
    cost: float
    why: str
    lot_id: int | None = None
    lot_number: str | None = None
    reasons: tuple[dict[str, Any], ...] = ()  # the why as codes and figures (optimizer.plan.Reason)


def plan_undone(uow: UnitOfWork, run_id: int) -> list[Undone]:
    """What a finished plan leaves undone, costliest first (nothing for a run without a plan)."""
    with uow:
        return _undone(uow, uow.get(PlanRun, run_id, what="plan run"))


def _undone(uow: UnitOfWork, run: PlanRun) -> list[Undone]:
    result = run.result or {}
    wasted = [(w, _id(w["lot"])) for w in result.get("waste", [])]
    lot_numbers = dict(uow.session.execute(select(StockLot.id, StockLot.lot_number).where(
        StockLot.id.in_([lot_id for _, lot_id in wasted]))).all()) if wasted else {}
    undone = [Undone("shortage", s["drug"], s["site"], units, s["penalty"], s["why"],
                     reasons=tuple(s.get("reasons", ())))
              for s in result.get("shortages", []) if (units := _whole(s["units"])) > 0]
    undone += [Undone("waste", w["drug"], w["site"], units, w["value"], w["why"], lot_id, lot_numbers[lot_id],
                      tuple(w.get("reasons", ())))
               for w, lot_id in wasted if (units := _whole(w["units"])) > 0 and lot_id in lot_numbers]
    return sorted(undone, key=lambda u: -u.cost)


def plan_lines(uow: UnitOfWork, run_id: int, kind: str | None = None) -> list[PlanLine]:
    with uow:
        uow.get(PlanRun, run_id, what="plan run")
        stmt = select(PlanLine).where(PlanLine.run_id == run_id).order_by(PlanLine.kind, PlanLine.id)
        if kind:
            stmt = stmt.where(PlanLine.kind == kind)
        return list(uow.session.scalars(stmt))


# Inputs: the database as the optimizer sees it ----------------------------------------------------------

def assemble_problem(uow: UnitOfWork, run: PlanRun, settings: PlanSettings) -> dict[str, Any]:
    """Forecasts, stock, offers, allowed transfers and penalties as a :class:`Problem`, with the map from the
    optimizer's ids (site and drug codes, ``O<offer id>``, ``L<lot id>``) back to ours: the run's frozen inputs."""
    with uow:
        today = uow.today()
        forecasts = forecast_demand(uow, run.horizon_days, run.service_level, run.history_days)
        sites = {s.id: s for s in uow.session.scalars(select(Site).where(Site.active.is_(True),
                                                                          Site.dispenses.is_(True)))}
        drug_ids = {f.drug_id for f in forecasts if f.forecast.units > 0 and f.site_id in sites}
        drugs = {d.id: d for d in uow.session.scalars(select(Drug).where(Drug.id.in_(sorted(drug_ids))))}
        offers = [(o, s) for o, s in valid_offers(uow, today) if o.drug_id in drugs]
        unit_price = cheapest_unit_prices(offers)

        demands = []
        for f in forecasts:
            if f.drug_id in drugs and f.site_id in sites and f.forecast.units > 0:
                usage = max(f.forecast.daily_usage, f.forecast.known / run.horizon_days)
                demands.append(Demand(sites[f.site_id].code, drugs[f.drug_id].code, f.forecast.units, round(usage, 6)))
        lots = [Lot(f"L{lot.id}", sites[lot.site_id].code, drugs[lot.drug_id].code, lot.quantity - lot.reserved,
                    days_usable(lot.expiry_date, today), round(unit_price.get(lot.drug_id, 0.0), 6))
                for lot in uow.session.scalars(select(StockLot).where(
                    StockLot.drug_id.in_(sorted(drugs)), StockLot.site_id.in_(sorted(sites)),
                    StockLot.quantity > StockLot.reserved).order_by(StockLot.id))]
        lots += _arriving(uow, sites, drugs, unit_price, today)
        problem_offers = []
        for offer, supplier in offers:
            delivery: dict[str, float] = {}
            if offer.site_delivery or offer.default_delivery_cost is not None:
                for site in sites.values():
                    cost = offer.delivery_cost_to(site.id)
                    if cost is not None:
                        delivery[site.code] = float(cost)
                if not delivery:
                    continue  # delivers to none of the dispensing sites
            problem_offers.append(Offer(
                f"O{offer.id}", supplier.code, drugs[offer.drug_id].code, offer.pack_size,
                tuple(Tier(t.min_packs, float(t.price_per_pack)) for t in offer.tiers),
                offer.lead_time_days, offer.capacity_packs, delivery, float(offer.order_cost)))
        places = {s.id: Place(s.code, s.district, sites[s.parent_id].code if s.parent_id in sites else None,
                              (s.latitude, s.longitude) if s.latitude is not None and s.longitude is not None
                              else None) for s in sites.values()}
        arcs = []
        for a in sorted(places.values(), key=lambda p: p.code):
            for b in sorted(places.values(), key=lambda p: p.code):
                km = distance_km(a.at, b.at)
                if transfer_allowed(a, b, km, settings.transfer_max_km):
                    arcs.append(Arc(a.code, b.code, round(settings.transfer_cost_per_unit
                                                          + settings.transfer_cost_per_unit_km * (km or 0.0), 4),
                                    settings.transfer_cost_per_shipment))
        policies = [DrugPolicy(d.code, round(shortage_penalty(unit_price.get(d.id, 1.0), d.essential), 4), d.essential)
                    for d in drugs.values()]
        problem = Problem(run.horizon_days, tuple(demands), tuple(problem_offers), tuple(lots), tuple(arcs),
                          tuple(sorted(policies, key=lambda p: p.drug)),
                          float(run.budget) if run.budget is not None else None)
        return {"as_of": today.isoformat(), "problem": problem_to_dict(problem),
                "sites": {s.code: s.id for s in sites.values()}, "drugs": {d.code: d.id for d in drugs.values()},
                "suppliers": {s.code: s.id for _, s in offers}}


# Goods still to come from a supplier: their lot is not known yet, so they count as fresh stock.
FRESH_DAYS = 730


def _arriving(uow: UnitOfWork, sites: Mapping[int, Site], drugs: Mapping[int, Drug], unit_price: Mapping[int, float],
              today: date) -> list[Lot]:
    """What is on its way to each site (see :mod:`pharmacy.procurement.position`) as stock arriving on its day:
    the plan uses it from then and never buys it again. What a site has promised to send on as soon as it arrives
    (a transfer awaiting its stock) is left out of what arrives there, and arrives at the site it goes to."""
    arriving = []
    for (site_id, drug_id), position in positions(uow, site_ids=sorted(sites), drug_ids=sorted(drugs)).items():
        if site_id not in sites or drug_id not in drugs:
            continue
        promised = position.promised_out
        for incoming in position.incoming:
            units = incoming.units
            if incoming.kind != "transfer_awaiting":  # what is promised on leaves with the first to come
                kept = max(0, units - promised)
                promised -= units - kept
                units = kept
            if units <= 0:
                continue
            expiry = days_usable(incoming.expiry_date, today) if incoming.expiry_date else FRESH_DAYS
            arriving.append(Lot(incoming.source, sites[site_id].code, drugs[drug_id].code, units, expiry,
                                round(unit_price.get(drug_id, 0.0), 6), max(0, (incoming.expected_on - today).days)))
    return sorted(arriving, key=lambda lot: lot.id)


def _id(token: str) -> int:
    return int(token[1:])  # "O12" -> 12, "L7" -> 7


def _whole(units: float) -> int:
    """Units as a stored plan gives them, whole (they are; a run stored before plans were whole is floored)."""
    return math.floor(units + 1e-6)


# Executing runs -----------------------------------------------------------------------------------------

class RunCancelled(Exception):
    """An officer cancelled the run while it was running."""


def _cancel_requested(session: Session, run_id: int) -> bool:
    return session.scalar(select(PlanRun.cancel_requested_at).where(PlanRun.id == run_id)) is not None


class _ProgressWriter:
    """Writes a run's progress in its own short transactions, at most once a second; raises
    :class:`RunCancelled` there once the run has been cancelled (which stops the optimizer and its workers)."""

    def __init__(self, database: Database, run_id: int, clock: Clock) -> None:
        self.database, self.run_id, self.clock = database, run_id, clock
        self._last = 0.0

    def __call__(self, done: int, total: int, step: RunProgress | None = None, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < 1.0 and done < total:
            return
        self._last = now
        with UnitOfWork(self.database.session_factory, SYSTEM, self.clock) as uow:
            if _cancel_requested(uow.session, self.run_id):
                raise RunCancelled
            uow.session.execute(update(PlanRun).where(PlanRun.id == self.run_id).values(
                progress=round(done / total, 4) if total else 0.0, heartbeat_at=uow.now(),
                **_progress_columns(step or RunProgress("models", done, total))))
            uow.commit()


def _claim(database: Database, run_id: int, clock: Clock) -> int | None:
    """Take a queued run for this process (exactly one process gets it); its consortium, or None."""
    with UnitOfWork(database.session_factory, SYSTEM, clock) as uow:
        claimed = uow.session.execute(update(PlanRun).where(
            PlanRun.id == run_id, PlanRun.status == PlanStatus.QUEUED.value).values(
            status=PlanStatus.RUNNING.value, started_at=uow.now(), heartbeat_at=uow.now(),
            **_progress_columns(RunProgress("reading"))))
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            return None
        consortium_id = uow.session.scalar(select(PlanRun.consortium_id).where(PlanRun.id == run_id))
        uow.commit()
        return consortium_id


def execute_run(database: Database, run_id: int, clock: Clock, settings: PlanSettings,
                on_progress: Callable[[int, int], None] | None = None) -> str:
    """Run a queued plan run to the end: freeze its inputs, solve, store the plan beside the baseline.
    Returns the run's final status (or "taken" if another process claimed it first)."""
    consortium_id = _claim(database, run_id, clock)
    if consortium_id is None:
        return "taken"
    progress = _ProgressWriter(database, run_id, clock)
    try:
        uow = UnitOfWork(database.session_factory, system_for(consortium_id), clock)
        with uow:
            run = uow.get(PlanRun, run_id)
            inputs = assemble_problem(uow, run, settings)
            run.inputs = inputs
            problem = problem_from_dict(inputs["problem"])
            frozen = RunProgress("inputs", drugs=len(problem.drugs), sites=len(inputs["sites"]),
                                 offers=len(problem.offers), lots=len(problem.lots))
            _tell(run, frozen)
            uow.commit()

        def report(done: int, total: int) -> None:
            progress(done, total)
            if on_progress:
                on_progress(done, total)

        progress(0, len(problem.drugs), frozen, force=True)  # cancelled while reading the inputs?
        with plan_executor(settings) as (executor, workers):
            options: dict[str, Any] = {"solver": run.solver, "time_limit": run.time_limit, "gap": run.gap,
                                       "workers": workers, "executor": executor}
            plan = solve_plan(problem, baseline=False, progress=report, **options)
            # The baseline in its own step, which reports (a province's takes minutes) and can be cancelled.
            plan = replace(plan, baseline=baseline_costs(problem, **options, progress=lambda done, total: progress(
                done, total, RunProgress("baseline", done, total))))
        with uow:
            run = uow.get(PlanRun, run_id, for_update=True)
            if run.cancel_requested_at is not None:  # cancelled since the last check (the last models, the baseline)
                raise RunCancelled
            _store_plan(uow, run, plan, problem, inputs)
            run.status, run.finished_at, run.progress = PlanStatus.SUCCEEDED.value, uow.now(), 1.0
            _tell(run, RunProgress("planned", plan_status=plan.status, gap=plan.gap or 0.0, budget_use=plan.budget_use))
            uow.commit()
        return PlanStatus.SUCCEEDED.value
    except RunCancelled:
        return _end_run(database, run_id, clock, PlanStatus.CANCELLED)
    except Exception as error:
        log.exception("plan run %s failed", run_id)
        return _end_run(database, run_id, clock, PlanStatus.FAILED, error=str(error)[:4000])


def _end_run(database: Database, run_id: int, clock: Clock, status: PlanStatus, error: str = "") -> str:
    """End a run without a plan, in a transaction of its own (the run's own may have failed)."""
    with UnitOfWork(database.session_factory, SYSTEM, clock) as uow:
        uow.session.execute(update(PlanRun).where(PlanRun.id == run_id).values(
            status=status.value, finished_at=uow.now(), error=error, **_progress_columns(RunProgress(status.value))))
        uow.commit()
    return status.value


def _progress_columns(progress: RunProgress) -> dict[str, Any]:
    """A run's progress as its columns: the English note (within the column's length) and the facts."""
    return {"progress_note": progress.text()[:PlanRun.progress_note.type.length], "progress_facts": progress.facts()}


def _tell(run: PlanRun, progress: RunProgress) -> None:
    for column, value in _progress_columns(progress).items():
        setattr(run, column, value)


def _summary(plan: Plan, problem: Problem) -> dict[str, Any]:
    lots = {lot.id: lot for lot in problem.lots}
    near = sum(t.units for t in plan.transfers if lots[t.lot].expires_in_days <= problem.horizon_days)
    baseline = plan.baseline
    return {
        "cost": plan.costs.total,
        "baseline_cost": baseline.total if baseline else None,
        "saving": plan.saving,
        "saving_share": (plan.saving / baseline.total) if baseline and baseline.total and plan.saving is not None
        else None,
        "shortage_units": sum(s.units for s in plan.shortages),
        "waste_units": sum(w.units for w in plan.waste),
        "waste_avoided": (baseline.waste - plan.costs.waste) if baseline else None,
        # Already expired, or that no plan could use in time: not a cost of the plan's decisions.
        "unavoidable_waste": plan.costs.unavoidable_waste,
        "near_expiry_units_moved": near,
        "purchase_lines": len(plan.purchases),
        "transfer_lines": len(plan.transfers) + len(plan.purchase_moves),  # as the plan's transfer lines list them
        "suppliers": len({p.supplier for p in plan.purchases}),
        "drug_verdicts": [{"status": status, "drugs": drugs, "widest_gap": widest}
                          for status, drugs, widest in plan.verdicts()],
        # Edited by hand: the plan is the officer's, re-costed, and no longer a solver's to prove anything of.
        "re_costed": RECOSTED in plan.notes,
    }


LineKey = tuple[str, str, str, str]  # (kind, offer or stock, from site or "", to site)


def _store_plan(uow: UnitOfWork, run: PlanRun, plan: Plan, problem: Problem, inputs: dict[str, Any],
                edited: frozenset[LineKey] = frozenset()) -> None:
    """Write the plan's lines (keeping the ids of lines that stay) and its result beside the baseline.

    A transfer line moves stock one arc: of a lot from its site, of a lot onward from a site it was moved to, of
    packs the plan buys onward from the site they are delivered to (``source`` the offer), or of stock on its way
    (``source`` the row it comes from); ``lot_id`` is set when the stock is a lot on hand."""
    sites, drugs, suppliers = inputs["sites"], inputs["drugs"], inputs["suppliers"]
    offers = {o.id: o for o in problem.offers}
    code_of_site = {v: k for k, v in sites.items()}
    existing = {_line_key(line, code_of_site): line
                for line in uow.session.scalars(select(PlanLine).where(PlanLine.run_id == run.id))}
    keep: set[LineKey] = set()
    for p in plan.purchases:
        key = ("purchase", p.offer, "", p.site)
        keep.add(key)
        values = dict(kind="purchase", drug_id=drugs[p.drug], site_id=sites[p.site], offer_id=_id(p.offer),
                      supplier_id=suppliers[p.supplier], packs=p.packs, units=float(p.units),
                      price_per_pack=price(p.price_per_pack), cost=money(p.cost + p.delivery_cost), why=p.why,
                      reasons=[asdict(r) for r in p.reasons],
                      from_site_id=None, lot_id=None, source=p.offer)
        _upsert_line(uow, run, existing.get(key), values, key in edited)
    for t in (*plan.transfers, *plan.purchase_moves):
        stock = t.lot or t.offer or ""
        key = ("transfer", stock, t.from_site, t.to_site)
        keep.add(key)
        values = dict(kind="transfer", drug_id=drugs[t.drug], site_id=sites[t.to_site], from_site_id=sites[t.from_site],
                      lot_id=_id(stock) if stock.startswith("L") else None,
                      offer_id=_id(stock) if stock.startswith("O") else None, source=stock,
                      units=round(t.units, 4), cost=money(t.cost), why=t.why, reasons=[asdict(r) for r in t.reasons],
                      packs=None, supplier_id=None,
                      price_per_pack=None)
        _upsert_line(uow, run, existing.get(key), values, key in edited)
    for key, line in existing.items():
        if key not in keep:
            uow.session.delete(line)
    data = plan_to_dict(plan)
    for bulky in ("purchases", "transfers", "stock_use", "purchase_moves"):  # the lines live in plan_lines
        data.pop(bulky, None)
    data["summary"] = _summary(plan, problem)
    data["offers_used"] = sorted({offers[p.offer].id for p in plan.purchases})
    run.result = data


def _line_key(line: PlanLine, code_of_site: Mapping[int, str]) -> LineKey:
    """A line as the optimizer names it: (kind, offer or stock, from site, to site)."""
    if line.kind == "purchase":
        return ("purchase", f"O{line.offer_id}", "", code_of_site[line.site_id])
    stock = line.source or f"L{line.lot_id}"
    return ("transfer", stock, code_of_site.get(line.from_site_id or 0, ""), code_of_site[line.site_id])


def _upsert_line(uow: UnitOfWork, run: PlanRun, line: PlanLine | None, values: dict[str, Any], edited: bool) -> None:
    if line is None:
        line = PlanLine(consortium_id=run.consortium_id, run_id=run.id)
        uow.session.add(line)
    for name, value in values.items():
        setattr(line, name, value)
    line.edited = line.edited or edited


def run_queued_plans(database: Database, clock: Clock, settings: PlanSettings) -> int:
    """Run every queued plan run (the scheduler's job), and mark runs whose process died as failed (or as
    cancelled, if an officer had cancelled them)."""
    with UnitOfWork(database.session_factory, SYSTEM, clock) as uow:
        stale = (PlanRun.status == PlanStatus.RUNNING.value) & (PlanRun.heartbeat_at < uow.now() - STALE_AFTER)
        uow.session.execute(update(PlanRun).where(stale, PlanRun.cancel_requested_at.is_not(None)).values(
            status=PlanStatus.CANCELLED.value, finished_at=uow.now(), **_progress_columns(RunProgress("cancelled"))))
        uow.session.execute(update(PlanRun).where(stale).values(
            status=PlanStatus.FAILED.value, finished_at=uow.now(), **_progress_columns(RunProgress("failed")),
            error="the process running this plan stopped before it finished; start the run again"))
        queued = list(uow.session.scalars(select(PlanRun.id).where(PlanRun.status == PlanStatus.QUEUED.value)
                                          .order_by(PlanRun.id)))
        uow.commit()
    done = 0
    for run_id in queued:
        if execute_run(database, run_id, clock, settings) != "taken":
            done += 1
    return done


class PlanRunner:
    """Runs queued plan runs off the request: in a background thread of this process ("thread"), left to the
    scheduler ("queue"), or at once in the caller ("inline": the command line and tests)."""

    def __init__(self, database: Database, clock: Callable[[], Clock], settings: Callable[[], PlanSettings],
                 mode: str = "thread") -> None:
        if mode not in ("thread", "queue", "inline"):
            raise ValueError(f"plan runner mode {mode!r}: use thread, queue or inline")
        self.database, self.clock, self.settings, self.mode = database, clock, settings, mode
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def submit(self, run_id: int) -> None:
        if self.mode == "queue":
            return
        if self.mode == "inline":
            execute_run(self.database, run_id, self.clock(), self.settings())
            return
        with self._lock:
            if self._executor is None:  # started on first use: nothing runs at import or app creation
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="plan-run")
        self._executor.submit(execute_run, self.database, run_id, self.clock(), self.settings())

    def shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)


# Reproducing, editing, approving ------------------------------------------------------------------------

def _finished_run(uow: UnitOfWork, run_id: int, *, for_update: bool = False) -> PlanRun:
    run = uow.get(PlanRun, run_id, for_update=for_update, what="plan run")
    if run.status == PlanStatus.APPROVED.value:
        raise Conflict(Message("plan run %(id)s was approved already by %(who)s", id=run_id, who=run.approved_by),
                       {"status": run.status})
    if run.status != PlanStatus.SUCCEEDED.value or run.inputs is None or run.result is None:
        raise Conflict(Message("plan run %(id)s is %(status)s: only a finished, unapproved plan can be reproduced, "
                               "edited or approved", id=run_id, status=Message.word(run.status)),
                       {"status": run.status})
    return run


def reproduce_plan(uow: UnitOfWork, run_id: int, workers: int = 1) -> Plan:
    """Solve the run's frozen inputs again, with its settings: the same plan, whatever changed since."""
    with uow:
        run = uow.get(PlanRun, run_id, what="plan run")
        if run.inputs is None:
            raise Conflict(f"plan run {run_id} has not frozen its inputs yet ({run.status})")
        problem = problem_from_dict(run.inputs["problem"])
        solver, limit, gap = run.solver, run.time_limit, run.gap
    return solve_plan(problem, solver=solver, time_limit=limit, gap=gap, workers=workers)


@dataclass(frozen=True)
class PurchaseEdit:
    offer_id: int
    site_id: int
    packs: int  # 0 removes the line


@dataclass(frozen=True)
class TransferEdit:
    lot_id: int
    site_id: int  # where the units go
    units: float  # 0 removes the line


def edit_plan(uow: UnitOfWork, run_id: int, purchases: Sequence[PurchaseEdit] = (),
              transfers: Sequence[TransferEdit] = ()) -> PlanRun:
    """Change purchase or transfer lines of a finished plan, then re-cost it with the optimizer's own
    accounting and re-check every rule (minimum orders, capacity, allowed transfers, stock, expiry). A plan
    that breaks a rule is refused with each broken rule named, and nothing changes."""
    with uow:
        run = _finished_run(uow, run_id, for_update=True)
        inputs = run.inputs
        assert inputs is not None and run.result is not None
        problem = problem_from_dict(inputs["problem"])
        code_of_site = {v: k for k, v in inputs["sites"].items()}
        decisions = _decisions(uow, run, code_of_site, problem)
        bought, moved = dict(decisions.purchases), dict(decisions.transfers)
        home = {lot.id: lot.site for lot in problem.lots}
        touched: set[LineKey] = set()
        for index, p in enumerate(purchases):
            _check_order_line(uow.get(StoredOffer, p.offer_id, what="offer"), p.packs, index)
            key = (f"O{p.offer_id}", _site_code(code_of_site, p.site_id))
            bought[key] = p.packs
            touched.add(("purchase", key[0], "", key[1]))
        for t in transfers:
            key = (f"L{t.lot_id}", _site_code(code_of_site, t.site_id))
            moved[key] = t.units
            touched.add(("transfer", key[0], home.get(key[0], ""), key[1]))
        edited = Decisions({k: v for k, v in bought.items() if v}, {k: v for k, v in moved.items() if v},
                           dict(decisions.moves))
        baseline = costs_from_dict(run.result["baseline"]) if run.result.get("baseline") else None
        try:
            plan = evaluate_plan(problem, edited, solver=run.solver, time_limit=run.time_limit, baseline=baseline)
        except PlanningError as error:
            raise ValidationFailed(Message("the edited plan cannot be kept: %(error)s", error=str(error)),
                                   [str(v) for v in error.violations] or None) from None
        _store_plan(uow, run, plan, problem, inputs, frozenset(touched))
        run.edited = True
        audit.record(uow.session, "edit", "PlanRun", run.id,
                     f"{len(purchases)} purchase and {len(transfers)} transfer lines edited; plan re-costed to "
                     f"{plan.costs.total:.2f}")
        uow.commit()
        return run


# A purchase order line is received in at most one receipt's worth of units, and its cost fits its NUMERIC(14, 2).
MOST_LINE_COST = 999_999_999_999.99


def _check_order_line(offer: StoredOffer, packs: int, index: int) -> None:
    units = packs * offer.pack_size
    dearest = max((float(t.price_per_pack) for t in offer.tiers), default=0.0)
    if units > MOST_UNITS_PER_MOVEMENT or packs * dearest > MOST_LINE_COST:
        raise ValidationFailed(Message("%(packs)s packs of %(size)s units is more than one order line can be",
                                       packs=packs, size=offer.pack_size),
                               {"purchases": {str(index): {"packs": [
                                   f"at most {MOST_UNITS_PER_MOVEMENT} units and {MOST_LINE_COST:.2f} yuan"]}}})


def _site_code(code_of_site: Mapping[int, str], site_id: int) -> str:
    if site_id not in code_of_site:
        raise ValidationFailed(Message("site %(site)s is not a dispensing site of this plan", site=site_id),
                               {"site_id": site_id})
    return code_of_site[site_id]


def _decisions(uow: UnitOfWork, run: PlanRun, code_of_site: Mapping[int, str], problem: Problem) -> Decisions:
    """The plan's lines as the optimizer's decisions: packs bought, lots moved from where they lie, and the moves
    on from elsewhere (of lots moved on, of packs bought, of stock on its way)."""
    home = {lot.id: lot.site for lot in problem.lots}
    purchases: dict[tuple[str, str], int] = {}
    transfers: dict[tuple[str, str], float] = {}
    moves: dict[tuple[str, str, str], float] = {}
    for line in uow.session.scalars(select(PlanLine).where(PlanLine.run_id == run.id)):
        kind, stock, from_site, to_site = _line_key(line, code_of_site)
        if kind == "purchase":
            purchases[(stock, to_site)] = int(line.packs or 0)
        elif home.get(stock) == from_site:
            transfers[(stock, to_site)] = line.units
        else:
            moves[(stock, from_site, to_site)] = line.units
    return Decisions(purchases, transfers, moves)


@dataclass(frozen=True)
class Approval:
    run: PlanRun
    purchase_orders: list[PurchaseOrder]
    transfer_orders: list[TransferOrder]
    alerts: int = 0  # raised for what the plan leaves undone


def approve_plan(uow: UnitOfWork, run_id: int) -> Approval:
    """Turn a finished plan into purchase orders (one per supplier, a line per site and drug, each supplier's
    delivery to a site paying its cost per order once) and transfer orders (one per pair of sites and kind, a line
    per lot or drug), and what it leaves undone into alerts at the sites that will meet it (see
    :func:`_undone_alerts`).

    A move of a lot from where it lies is asked for now, its units held at the sender (as many as the lot still
    has free: stock taken since the plan is not promised twice). A move of stock the sender does not have yet (packs
    the plan buys, stock another transfer or order brings, a lot moved on) waits for it: asked for once the stock
    arrives there. The run's row lock makes a second, concurrent approval wait and then find the plan approved:
    orders are created once."""
    with uow:
        run = _finished_run(uow, run_id, for_update=True)
        assert run.inputs is not None
        horizon_end = date.fromisoformat(run.inputs["as_of"]) + timedelta(days=run.horizon_days)
        lines = list(uow.session.scalars(select(PlanLine).where(PlanLine.run_id == run.id).order_by(PlanLine.id)))
        today = uow.today()
        purchase_orders = _purchase_orders(uow, run, lines, today)
        transfer_orders = _transfer_orders(uow, run, lines, horizon_end)
        alerts = _undone_alerts(uow, run, today)
        run.status, run.approved_at, run.approved_by = PlanStatus.APPROVED.value, uow.now(), uow.principal.label
        audit.record(uow.session, "approve", "PlanRun", run.id,
                     f"{len(purchase_orders)} purchase orders, {len(transfer_orders)} transfer orders, {alerts} alerts")
        uow.commit()
        return Approval(run, purchase_orders, transfer_orders, alerts)


def _purchase_orders(uow: UnitOfWork, run: PlanRun, lines: Sequence[PlanLine], today: date) -> list[PurchaseOrder]:
    """An approved plan's purchase orders, one per supplier; each supplier's delivery to a site pays the dearest
    cost per order of the offers on it, once (as the plan counts it)."""
    offers = {o.id: o for o in uow.session.scalars(select(StoredOffer).where(
        StoredOffer.id.in_([line.offer_id for line in lines if line.kind == "purchase"])))}
    by_supplier: dict[int, list[PlanLine]] = defaultdict(list)
    for line in lines:
        if line.kind == "purchase" and line.packs:
            by_supplier[line.supplier_id].append(line)  # type: ignore[index]
    orders = []
    for supplier_id, supplier_lines in sorted(by_supplier.items()):
        order = PurchaseOrder(consortium_id=run.consortium_id, number=order_number("PO", today), run_id=run.id,
                              supplier_id=supplier_id, status="open", created_by=uow.principal.label,
                              created_at=uow.now())
        uow.session.add(order)
        uow.flush()
        delivery: dict[int, Decimal] = {}
        total = Decimal(0)
        for line in supplier_lines:
            offer = offers[line.offer_id]  # type: ignore[index]
            packs = int(line.packs or 0)
            uow.session.add(PurchaseOrderLine(
                consortium_id=run.consortium_id, order_id=order.id, site_id=line.site_id, drug_id=line.drug_id,
                offer_id=offer.id, packs=packs, pack_size=offer.pack_size, units=packs * offer.pack_size,
                price_per_pack=line.price_per_pack or Decimal(0), cost=money(line.cost), received_units=0,
                expected_on=today + timedelta(days=offer.lead_time_days)))
            total += line.cost
            delivery[line.site_id] = max(delivery.get(line.site_id, Decimal(0)), offer.order_cost)
        order.total = money(total + sum(delivery.values(), Decimal(0)))
        orders.append(order)
    return orders


def _transfer_orders(uow: UnitOfWork, run: PlanRun, lines: Sequence[PlanLine], horizon_end: date,
                     ) -> list[TransferOrder]:
    """An approved plan's transfer orders: those it can ask for now, holding their lots at the sender, and those
    that wait for their stock to reach the sender."""
    lot_ids = sorted({line.lot_id for line in lines if line.kind == "transfer" and line.lot_id is not None})
    lots = {lot.id: lot for lot in uow.session.scalars(select(StockLot).where(StockLot.id.in_(lot_ids))
                                                       .order_by(StockLot.id).with_for_update())}
    now: dict[tuple[int, int], list[tuple[PlanLine, int]]] = defaultdict(list)
    later: dict[tuple[int, int], list[tuple[PlanLine, int]]] = defaultdict(list)
    free = {lot.id: lot.quantity - lot.reserved for lot in lots.values()}
    for line in lines:
        units = _whole(line.units)
        if line.kind != "transfer" or units <= 0:
            continue
        pair = (line.from_site_id, line.site_id)
        lot = lots.get(line.lot_id) if line.lot_id is not None else None
        if lot is not None and lot.site_id == line.from_site_id:
            units = min(units, free[lot.id])  # taken since the plan: not promised twice
            if units > 0:
                free[lot.id] -= units
                now[pair].append((line, units))  # type: ignore[index]
        else:
            later[pair].append((line, units))  # type: ignore[index]
    orders = []
    for (from_site, to_site), pair_lines in sorted(now.items()):
        near = any(lots[line.lot_id].expiry_date <= horizon_end for line, _ in pair_lines)  # type: ignore[index]
        orders.append(request_transfer(
            uow, run.consortium_id, from_site, to_site, [(line.drug_id, units, None) for line, units in pair_lines],
            reason="near_expiry" if near else "redistribution", run_id=run.id, note=f"plan run {run.id}",
            lots=[line.lot_id for line, _ in pair_lines]))
    for (from_site, to_site), pair_lines in sorted(later.items()):
        by_drug: dict[int, int] = defaultdict(int)
        for line, units in pair_lines:
            by_drug[line.drug_id] += units
        orders.append(await_stock_transfer(uow, run.consortium_id, from_site, to_site, sorted(by_drug.items()),
                                           run_id=run.id, note=f"plan run {run.id}"))
    return orders


def _undone_alerts(uow: UnitOfWork, run: PlanRun, today: date) -> int:
    """Alerts for what an approved plan leaves undone, so that the sites meet it forewarned: each site left short
    of a drug over the horizon (its pharmacy will have patients it cannot serve), and each lot the plan expects to
    expire unused (its pharmacy may still return or use it). Returns how many were raised."""
    assert run.inputs is not None
    sites, drugs = run.inputs["sites"], run.inputs["drugs"]
    raised = 0
    for undone in _undone(uow, run):
        # Said as a Message, so that the site's alerts page says it in its own language.
        if undone.kind == "shortage":
            message = Message("plan run %(run)s leaves %(site)s short of %(units)s units of %(drug)s over the next "
                              "%(days)s days: %(why)s", run=run.id, site=undone.site, units=undone.units,
                              drug=undone.drug, days=run.horizon_days, why=undone.why, reasons=list(undone.reasons))
            key = f"planned_shortage:{run.id}:{undone.site}:{undone.drug}"
        else:
            message = Message("plan run %(run)s expects %(units)s units of %(drug)s lot %(lot)s at %(site)s to expire "
                              "unused: %(why)s", run=run.id, units=undone.units, drug=undone.drug,
                              lot=undone.lot_number, site=undone.site, why=undone.why, reasons=list(undone.reasons))
            key = f"planned_waste:{run.id}:{undone.lot_id}"
        raised += raise_alert(uow, run.consortium_id, f"planned_{undone.kind}", key, sites[undone.site],
                              drugs[undone.drug], undone.lot_id, message, today)
    return raised
