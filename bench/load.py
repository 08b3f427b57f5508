"""Load and crash test: mixed traffic from many clients against gunicorn on PostgreSQL, counting every answer.

Clients send two-drug prescriptions with their drugs listed in either order and work each through to hand-over,
hold and release stock by hand, receive deliveries (new and known lots), and write off damaged units, all at
one consortium's pharmacies at once. With ``BENCH_KILLS`` the web workers are killed (``kill -9``) that many times
mid-load. Prints the answers by operation and status (any 5xx is a failure of the service), then proves the
stock: the ledger check, held stock against open holds, no negative lot.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test .venv/bin/python bench/load.py
    BENCH_CLIENTS=14 BENCH_SECONDS=30 BENCH_KILLS=3 (defaults)
"""

from __future__ import annotations

import os
import random
import signal
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path

# bench/optimizer.py is named like the package, which the service imports: keep this folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select  # noqa: E402

from bench.common import Client, free_port, run_threads, start_gunicorn  # noqa: E402
from pharmacy import create_app  # noqa: E402
from pharmacy.accounts.services import create_api_key  # noqa: E402
from pharmacy.catalog.services import create_drug  # noqa: E402
from pharmacy.consortium.services import create_consortium, create_site  # noqa: E402
from pharmacy.inventory.models import Lot, Reservation  # noqa: E402
from pharmacy.inventory.services import check_ledger, receive_stock  # noqa: E402
from pharmacy.migrate import rebuild  # noqa: E402
from pharmacy.principal import SYSTEM, Role, system_for  # noqa: E402
from pharmacy.unit_of_work import UnitOfWork  # noqa: E402

DRUGS = ("AML5", "MET5", "ATV10", "LOS50")
PHARMACIES = 3


def seed(url: str) -> tuple[str, dict[int, str], dict[str, int], int]:
    app = create_app({"DATABASE_URL": url})
    database = app.extensions["pharmacy_db"]
    rebuild(database.engine)
    factory = database.session_factory
    consortium = create_consortium(UnitOfWork(factory, SYSTEM), "LOAD", "load")
    uow = UnitOfWork(factory, system_for(consortium.id))
    today = uow.today()
    lead = create_site(uow, consortium.id, {"code": "L-LEAD", "name": "lead", "kind": "lead_hospital",
                                            "dispenses": False, "district": "D0", "latitude": 30.0,
                                            "longitude": 120.0}).id
    drugs = {code: create_drug(uow, {"code": code, "generic_name": code, "dosage_form": "tablet",
                                     "strength_amount": 5, "strength_unit": "mg", "dispensing_unit": "tablet",
                                     "pack_size": 28, "essential": True}).id for code in DRUGS}
    pharmacists = {}
    for i in range(PHARMACIES):
        site = create_site(uow, consortium.id, {
            "code": f"L-C{i}", "name": f"chc {i}", "kind": "community_health_centre", "parent_id": lead,
            "dispenses": True, "district": "D1", "latitude": 30.0 + i / 500, "longitude": 120.0}).id
        for code, drug in drugs.items():
            for n in range(3):  # several lots a drug: one request locks several rows of each
                receive_stock(uow, site, drug, f"{code}-{i}-{n}", today + timedelta(days=400 + 30 * n), 100_000)
        pharmacists[site] = create_api_key(uow, consortium.id, f"pharmacist {i}", Role.PHARMACIST, site)[1]
    prescriber = create_api_key(uow, consortium.id, "his", Role.PRESCRIBER, lead)[1]
    database.dispose()
    return prescriber, pharmacists, drugs, consortium.id


def main() -> None:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        sys.exit("set DATABASE_URL to a PostgreSQL database (its public schema is dropped and recreated)")
    clients = int(os.environ.get("BENCH_CLIENTS", "14"))
    seconds = float(os.environ.get("BENCH_SECONDS", "30"))
    kills = int(os.environ.get("BENCH_KILLS", "3"))
    prescriber, pharmacists, drugs, consortium_id = seed(url)
    app = create_app({"DATABASE_URL": url})
    today = UnitOfWork(app.extensions["pharmacy_db"].session_factory, SYSTEM).today()
    port = free_port()
    server = start_gunicorn(url, port, workers=2, threads=4)
    answers: Counter[tuple[str, int | str]] = Counter()
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def note(operation: str, status: int | str) -> None:
        with lock:
            answers[(operation, status)] += 1

    def call(client: Client, operation: str, method: str, path: str, key: str, body: object = None) -> object:
        try:
            status, answer = client.request(method, path, key, body)
        except Exception as error:  # the connection died with a killed worker: not an answer of the service
            note(operation, f"no answer ({type(error).__name__})")
            time.sleep(0.2)  # the server is starting again
            return None
        note(operation, status)
        return answer if status < 300 else None

    def life(index: int) -> None:
        client = Client(port)
        rng = random.Random(index)
        sites = sorted(pharmacists)
        while time.monotonic() < stop_at:
            site = rng.choice(sites)
            key = pharmacists[site]
            roll = rng.random()
            if roll < 0.45:  # a two-drug prescription, its drugs in either order, worked to hand-over
                pair = rng.sample(DRUGS, 2)
                rx = call(client, "intake (two drugs)", "POST", "/api/prescriptions", prescriber, {
                    "number": f"RX-{uuid.uuid4().hex[:10]}", "kind": "ordinary", "issued_on": today.isoformat(),
                    "patient": {"ref": f"P{index}", "district": "D1"},
                    "items": [{"drug_code": code, "quantity": rng.randint(1, 30), "supply_days": 7}
                              for code in pair]})
                if isinstance(rx, dict) and rx.get("pharmacy_site_id") in pharmacists:
                    pharmacy_key = pharmacists[rx["pharmacy_site_id"]]
                    for step in ("accept", "prepare", "dispense", "hand-over"):
                        if call(client, step, "POST", f"/api/prescriptions/{rx['id']}/{step}", pharmacy_key,
                                {}) is None:
                            break
            elif roll < 0.65:  # a hold by hand, then released
                held = call(client, "hold by hand", "POST", "/api/inventory/reservations", key, {
                    "site_id": site, "drug_id": drugs[rng.choice(DRUGS)], "quantity": rng.randint(1, 20),
                    "supply_until": (today + timedelta(days=30)).isoformat(), "cause_type": "manual",
                    "cause_id": f"ward-{index}"})
                if isinstance(held, list):
                    for reservation in held:
                        call(client, "release", "POST", f"/api/inventory/reservations/{reservation['id']}/release",
                             key)
            elif roll < 0.85:  # a delivery: a known lot topped up, or a new one
                code = rng.choice(DRUGS)
                n = rng.randint(0, 5)
                call(client, "receipt", "POST", "/api/inventory/receipts", key, {
                    "site_id": site, "drug_id": drugs[code], "lot_number": f"{code}-{sites.index(site)}-{n}",
                    "expiry_date": (today + timedelta(days=400 + 30 * n)).isoformat(), "quantity": 50})
            else:  # a damaged unit written off
                lots = call(client, "list lots", "GET", f"/api/inventory/lots?site_id={site}", key)
                if isinstance(lots, list) and lots:
                    lot = rng.choice(lots)
                    call(client, "write-off", "POST", f"/api/inventory/lots/{lot['id']}/movements", key,
                         {"kind": "expiry_write_off", "quantity": -1, "reason_code": "damaged"})

    def killer() -> None:
        nonlocal server
        for n in range(kills):
            time.sleep(seconds / (kills + 1))
            os.killpg(server.pid, signal.SIGKILL)  # the master and its workers, mid-request
            server.wait()
            server = start_gunicorn(url, port, workers=2, threads=4)
            print(f"  killed the server with SIGKILL ({n + 1} of {kills}) and started it again", flush=True)

    crash = threading.Thread(target=killer, daemon=True)
    crash.start()
    try:
        elapsed = run_threads(life, clients)
    finally:
        crash.join(timeout=60)
        server.terminate()
        server.wait(timeout=30)

    total = sum(answers.values())
    failures = sum(n for (_, status), n in answers.items() if isinstance(status, int) and status >= 500)
    print(f"PostgreSQL; {clients} clients for {elapsed:.0f} s, gunicorn 2 workers x 4 threads, {kills} kill -9 "
          f"restarts; {total} requests")
    print(f"{'operation':<22} {'answer':<28} {'count':>7}")
    for (operation, status), n in sorted(answers.items(), key=lambda item: (item[0][0], str(item[0][1]))):
        print(f"{operation:<22} {status!s:<28} {n:>7}")
    factory = app.extensions["pharmacy_db"].session_factory
    mismatches = check_ledger(UnitOfWork(factory, system_for(consortium_id)))
    with factory() as session:
        held = session.scalar(select(func.coalesce(func.sum(Reservation.quantity), 0))
                              .where(Reservation.status == "held"))
        reserved = session.scalar(select(func.coalesce(func.sum(Lot.reserved), 0)))
        negative = session.scalar(select(func.count()).select_from(Lot).where(Lot.quantity < 0))
    print(f"server errors (5xx): {failures} of {total}; ledger check: "
          f"{'clean' if not mismatches else f'{len(mismatches)} lots differ'}; held units {reserved} = open holds "
          f"{held}: {'yes' if held == reserved else 'NO'}; negative lots: {negative}")


if __name__ == "__main__":
    main()
