"""Plan-run inputs benchmark: how long the service takes to turn the database into the optimizer's problem
(forecasts over the dispensing ledger, stock, offers, allowed transfers) beside a bare-SQL read of the same
ledger rows, and beside the solve that follows. Building inputs must not dominate the run.

    .venv/bin/python bench/procurement.py                   # SQLite
    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test .venv/bin/python bench/procurement.py
    BENCH_SITES=46 BENCH_DRUGS=100 BENCH_HISTORY_DAYS=90 ...

The consortium (1 lead, 5 hospitals, the rest grassroots) gets a ledger of one dispensing movement per site
and drug every few days over the history window, written in bulk (not through the services: this measures
reading it).
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

# bench/optimizer.py is named like the package, which the service imports: keep this folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from sqlalchemy import insert, select, text  # noqa: E402

from pharmacy import create_app  # noqa: E402
from pharmacy.catalog.models import Drug  # noqa: E402
from pharmacy.clock import FixedClock  # noqa: E402
from pharmacy.consortium.services import create_consortium, create_site  # noqa: E402
from pharmacy.inventory.models import Lot, Movement  # noqa: E402
from pharmacy.migrate import rebuild  # noqa: E402
from pharmacy.principal import SYSTEM, system_for  # noqa: E402
from pharmacy.procurement.models import Offer, PlanRun, Supplier  # noqa: E402
from pharmacy.procurement.plan_runs import PlanSettings, assemble_problem  # noqa: E402
from pharmacy.unit_of_work import UnitOfWork  # noqa: E402

NOW = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)


def seed(app, sites: int, drugs: int, history_days: int, step: int = 3) -> int:  # type: ignore[no-untyped-def]
    rng = random.Random(5)
    factory = app.extensions["pharmacy_db"].session_factory
    consortium = create_consortium(UnitOfWork(factory, SYSTEM), "BENCH", "bench")
    uow = UnitOfWork(factory, system_for(consortium.id))
    lead = create_site(uow, consortium.id, {"code": "B-L", "name": "lead", "kind": "lead_hospital",
                                            "dispenses": True, "district": "D0", "latitude": 30.2, "longitude": 120.1})
    site_ids = [lead.id]
    for n in range(1, sites):
        kind = "hospital" if n <= 5 else "community_health_centre"
        site = create_site(uow, consortium.id, {
            "code": f"B-S{n:03d}", "name": f"site {n}", "kind": kind, "parent_id": lead.id, "dispenses": True,
            "district": f"D{n // 8}", "latitude": 30.2 + rng.uniform(-0.2, 0.2),
            "longitude": 120.1 + rng.uniform(-0.2, 0.2)})
        site_ids.append(site.id)
    with factory() as session, session.begin():
        cid = consortium.id
        session.execute(insert(Drug), [{
            "consortium_id": cid, "code": f"BD{d:04d}", "generic_name": f"药品{d}", "search_key": f"bd{d:04d}",
            "dosage_form": "tablet", "strength_amount": 10, "strength_unit": "mg", "dispensing_unit": "tablet",
            "pack_size": 28, "essential": d % 3 == 0} for d in range(drugs)])
        drug_ids = list(session.scalars(select(Drug.id).where(Drug.consortium_id == cid).order_by(Drug.id)))
        session.execute(insert(Supplier), [{"consortium_id": cid, "code": f"SUP{s}", "name": f"supplier {s}"}
                                           for s in range(3)])
        suppliers = list(session.scalars(select(Supplier.id).where(Supplier.consortium_id == cid)))
        session.execute(insert(Offer), [{
            "consortium_id": cid, "supplier_id": s, "drug_id": d, "pack_size": 28, "default_delivery_cost": 0.5,
            "tiers": [{"min_packs": 0, "price_per_pack": 30.0}, {"min_packs": 40, "price_per_pack": 27.0}],
            "valid_from": date(2026, 1, 1), "valid_until": date(2027, 12, 31), "delivery_costs": {}}
            for d in drug_ids for s in suppliers[: 2 + d % 2]])
        lots = [{"consortium_id": cid, "site_id": s, "drug_id": d, "lot_number": f"L{s}-{d}",
                 "expiry_date": date(2026, 11, 23) + timedelta(days=rng.choice([20, 60, 300, 700])),
                 "quantity": 10_000, "reserved": 0} for s in site_ids for d in drug_ids]
        session.execute(insert(Lot), lots)
        lot_ids = dict(((s, d), i) for i, s, d in session.execute(
            select(Lot.id, Lot.site_id, Lot.drug_id).where(Lot.consortium_id == cid)).all())
        rows = []
        for (s, d), lot_id in lot_ids.items():
            for back in range(history_days, 0, -step):
                rows.append({"consortium_id": cid, "lot_id": lot_id, "site_id": s, "drug_id": d, "kind": "dispense",
                             "quantity": -rng.randint(1, 12), "reason_code": "prescription", "actor": "bench",
                             "cause_type": "prescription", "cause_id": f"h{back}", "at": NOW - timedelta(days=back)})
        for start in range(0, len(rows), 20_000):
            session.execute(insert(Movement), rows[start:start + 20_000])
    return len(rows)


def main() -> None:
    sites = int(os.environ.get("BENCH_SITES", "46"))
    drugs = int(os.environ.get("BENCH_DRUGS", "100"))
    history = int(os.environ.get("BENCH_HISTORY_DAYS", "90"))
    url = os.environ.get("DATABASE_URL") or "sqlite:///" + os.path.join(tempfile.mkdtemp(), "bench.sqlite3")
    app = create_app({"DATABASE_URL": url, "PLAN_WORKERS": os.cpu_count() or 1})
    database = app.extensions["pharmacy_db"]
    rebuild(database.engine)
    movements = seed(app, sites, drugs, history)
    clock = FixedClock(NOW)
    factory = database.session_factory
    with factory() as session:
        cid = session.scalar(text("SELECT id FROM consortia WHERE code = 'BENCH'"))

    started = time.perf_counter()
    with factory() as session:
        read = session.execute(select(Movement.site_id, Movement.drug_id, Movement.at, Movement.quantity).where(
            Movement.kind == "dispense", Movement.at >= NOW - timedelta(days=history))).all()
    bare = time.perf_counter() - started

    run = PlanRun(consortium_id=cid, horizon_days=30, history_days=history, service_level=0.95, started_by="bench",
                  solver="highs", time_limit=10, gap=0.005)
    started = time.perf_counter()
    inputs = assemble_problem(UnitOfWork(factory, system_for(cid), clock), run, PlanSettings())
    assembling = time.perf_counter() - started

    from optimizer import solve
    from optimizer.serialize import problem_from_dict

    problem = problem_from_dict(inputs["problem"])
    started = time.perf_counter()
    plan = solve(problem, gap=0.005, time_limit=10, workers=os.cpu_count() or 1, baseline=False)
    solving = time.perf_counter() - started
    print(f"{database.engine.dialect.name}: {sites} sites, {drugs} drugs, {movements:,} ledger movements over "
          f"{history} days")
    print(f"bare SQL read of the ledger window ({len(read):,} rows): {bare:.2f} s")
    print(f"inputs assembled (forecasts, stock, offers, arcs, penalties): {assembling:.2f} s "
          f"({assembling / bare:.1f}x the bare read); {len(problem.demands):,} demands, {len(problem.lots):,} lots, "
          f"{len(problem.offers):,} offers, {len(problem.arcs):,} arcs")
    print(f"solve: {solving:.1f} s wall ({plan.status}, gap {100 * (plan.gap or 0):.2f}%); inputs are "
          f"{100 * assembling / (assembling + solving):.0f}% of the run")


if __name__ == "__main__":
    main()
