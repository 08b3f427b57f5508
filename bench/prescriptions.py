"""Prescription flow benchmark: intake -> routing -> review -> dispense -> hand-over over HTTP.

Starts gunicorn on PostgreSQL, drives the whole flow with concurrent clients through the API, and prints
prescriptions per second with p50/p99 latency of one prescription's five requests and of each request.
Beside it, the same database work done with bare SQL statements by the same number of threads, in the
same run, and the ratio of the two (this machine is shared: compare ratios, not seconds). Then the
statements one prescription's five requests send to the database, counted in-process by the engine's
``before_cursor_execute`` event (transaction control that the driver sends itself, BEGIN and COMMIT, is not
counted; SAVEPOINT and RELEASE are). And the processor time one prescription costs the service's workers, the
database server and the clients (for bare SQL: its threads, and the database), read from /proc: on a machine whose
processors the three share, the throughput is what they leave one another. And the floor under the flow: as many
requests, each the lightest of the path (a read of the prescription), through the same service and clients.

Prescriptions are dated with the consortium's clock (Beijing time), as the service checks them.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test .venv/bin/python bench/prescriptions.py
    BENCH_PRESCRIPTIONS=400 BENCH_CLIENTS=8 BENCH_WORKERS=2 BENCH_THREADS=4 ... (defaults)
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

# bench/optimizer.py is named like the package, which the service imports: keep this folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from sqlalchemy import event, text  # noqa: E402

from pharmacy import create_app  # noqa: E402
from pharmacy.accounts.services import create_api_key  # noqa: E402
from pharmacy.catalog.services import create_drug  # noqa: E402
from pharmacy.clock import system_clock  # noqa: E402
from pharmacy.consortium.services import create_consortium, create_site  # noqa: E402
from pharmacy.inventory.services import receive_stock  # noqa: E402
from pharmacy.migrate import rebuild  # noqa: E402
from pharmacy.principal import SYSTEM, Role, system_for  # noqa: E402
from pharmacy.unit_of_work import UnitOfWork  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PHARMACIES = 10


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_threads(worker: Callable[[int], None], count: int) -> float:
    """Run ``count`` workers at once; the seconds until the last one ends."""
    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started


class CpuMeter:
    """The processor seconds that the service (gunicorn and its workers), the database server (the postmaster and
    its backends) and this process (its clients) spend over a stretch of the run, read from /proc (Linux; the
    database counted where it runs on this machine). A process tree is counted with what its ended children spent
    (the parent's reaped time), so a connection closed within the stretch still counts. The machine's processors
    are shared by all three: the share each takes is what the throughput says."""

    def __init__(self, server_pid: int | None, database_pid: int | None) -> None:
        self.trees = {"service": server_pid, "database": database_pid}
        self.spent: dict[str, float] = {}

    @staticmethod
    def _stat(pid: int | str) -> list[str] | None:
        try:  # the fields after the command's name: state, ppid, ... utime (11), stime, cutime, cstime (14)
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return None  # gone meanwhile, or not a Linux /proc

    @classmethod
    def _tree(cls, root: int) -> float:
        """The seconds ``root`` and its children spent, those they have reaped included."""
        ticks = 0
        for entry in Path("/proc").iterdir():
            fields = cls._stat(entry.name) if entry.name.isdigit() else None
            if fields is not None and str(root) in (entry.name, fields[1]):
                ticks += sum(int(f) for f in fields[11:15])
        return ticks / os.sysconf("SC_CLK_TCK")

    def _now(self) -> dict[str, float]:
        now = {"clients": time.process_time()}
        for part, root in self.trees.items():
            if root is not None:
                now[part] = self._tree(root)
        return now

    def __enter__(self) -> CpuMeter:
        self.started = self._now()
        return self

    def __exit__(self, *exc: object) -> None:
        end = self._now()
        self.spent = {part: end[part] - self.started[part] for part in end}

    def per(self, count: int) -> str:
        return ", ".join(f"{part} {seconds / count * 1000:.1f} ms" for part, seconds in self.spent.items())


def database_server_pid(url: str) -> int | None:
    """The PostgreSQL server's process on this machine (the parent of a backend), if it runs here."""
    app = create_app({"DATABASE_URL": url})
    database = app.extensions["pharmacy_db"]
    with database.engine.connect() as conn:
        backend = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        fields = CpuMeter._stat(backend)  # while the backend lives: it leaves /proc once its connection is closed
    database.dispose()
    return int(fields[1]) if fields is not None else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed(url: str) -> tuple[dict[str, str], dict[int, str], int]:
    app = create_app({"DATABASE_URL": url})
    database = app.extensions["pharmacy_db"]
    rebuild(database.engine)
    factory = database.session_factory
    consortium = create_consortium(UnitOfWork(factory, SYSTEM), "BENCH", "bench")
    uow = UnitOfWork(factory, system_for(consortium.id))
    lead = create_site(uow, consortium.id, {"code": "B-LEAD", "name": "lead", "kind": "lead_hospital",
                                            "dispenses": False, "district": "D0", "latitude": 30.0,
                                            "longitude": 120.0}).id
    drug = create_drug(uow, {"code": "AML5", "generic_name": "氨氯地平片", "dosage_form": "tablet",
                             "strength_amount": 5, "strength_unit": "mg", "dispensing_unit": "tablet",
                             "pack_size": 28, "essential": True}).id
    keys = {"prescriber": create_api_key(uow, consortium.id, "his", Role.PRESCRIBER, lead)[1]}
    pharmacist_keys = {}
    for i in range(PHARMACIES):
        site = create_site(uow, consortium.id, {
            "code": f"B-C{i}", "name": f"chc {i}", "kind": "community_health_centre", "parent_id": lead,
            "dispenses": True, "district": f"D{i}", "latitude": 30.0 + i / 50, "longitude": 120.0}).id
        receive_stock(uow, site, drug, f"LOT-{i}", system_clock.today() + timedelta(days=700), 1_000_000)
        pharmacist_keys[site] = create_api_key(uow, consortium.id, f"pharm {i}", Role.PHARMACIST, site)[1]
    database.dispose()
    return keys, pharmacist_keys, drug


ACTIONS = ("accept", "prepare", "dispense", "hand-over")


def prescription_body(n: int, number: str) -> dict:
    """The n-th prescription: one drug, a week's supply, issued today where the consortium is."""
    return {"number": number, "issued_on": system_clock.today().isoformat(),
            "patient": {"ref": f"P{n}", "district": f"D{n % PHARMACIES}"},
            "items": [{"drug_code": "AML5", "quantity": 28, "supply_days": 7}]}


def count_statements(url: str, keys: dict[str, str], pharmacist_keys: dict[int, str]) -> dict[str, int]:
    """The statements each of one prescription's five requests sends, counted in-process (after one warm-up
    prescription to the same pharmacy, so that nothing the first request of a process, or the first with a key,
    does once is counted)."""
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench"})
    engine = app.extensions["pharmacy_db"].engine
    keys_heard(app)
    sent: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _count(conn, cursor, statement, parameters, context, executemany) -> None:
        sent.append(statement)

    client = app.test_client()
    counts: dict[str, int] = {}
    for n in (0, PHARMACIES):  # patients of one district: one pharmacy, one key
        sent.clear()
        response = client.post("/api/prescriptions", json=prescription_body(n, f"C-{n}-{uuid.uuid4().hex[:6]}"),
                               headers={"Authorization": f"Bearer {keys['prescriber']}"})
        if response.status_code != 201:
            raise RuntimeError(f"submit: {response.status_code} {response.data[:300]!r}")
        rx = response.get_json()
        counts["submit"] = len(sent)
        for action in ACTIONS:
            sent.clear()
            response = client.post(f"/api/prescriptions/{rx['id']}/{action}", json={},
                                   headers={"Authorization": f"Bearer {pharmacist_keys[rx['pharmacy_site_id']]}"})
            if response.status_code != 200:
                raise RuntimeError(f"{action}: {response.status_code} {response.data[:300]!r}")
            counts[action] = len(sent)
    app.extensions["pharmacy_db"].dispose()
    return counts


def keys_heard(app: Any) -> None:
    """Wait until the process hears of changes to API keys, as a running service does (until then it reads the
    key on every request: the count would say what a service does in its first second only)."""
    keys = app.extensions["pharmacy_keys"]
    deadline = time.monotonic() + 10
    while keys.generation() is None and time.monotonic() < deadline:
        time.sleep(0.02)


class Client:
    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.latencies: list[tuple[str, float]] = []  # (action, seconds)

    def post(self, path: str, key: str, body: dict) -> dict:
        payload = json.dumps(body).encode()
        started = time.perf_counter()
        self.connection.request("POST", path, payload, {"Authorization": f"Bearer {key}",
                                                        "Content-Type": "application/json"})
        response = self.connection.getresponse()
        data = response.read()
        self.latencies.append((path.rsplit("/", 1)[-1] if path != "/api/prescriptions" else "submit",
                               time.perf_counter() - started))
        if response.status >= 300:
            raise RuntimeError(f"{path}: {response.status} {data[:300]!r}")
        return json.loads(data)


    def get(self, path: str, key: str) -> dict:
        self.connection.request("GET", path, headers={"Authorization": f"Bearer {key}"})
        response = self.connection.getresponse()
        data = response.read()
        if response.status >= 300:
            raise RuntimeError(f"{path}: {response.status} {data[:300]!r}")
        return json.loads(data)


def run_reads(port: int, key: str, count: int, clients: int) -> float:
    """The floor under the flow: for each of ``count`` prescriptions, five reads of it (as many requests as its
    flow, each the lightest the path has: the key, the prescription's load, its answer). The seconds."""
    def worker(worker_index: int) -> None:
        client = Client(port)
        for n in range(worker_index, count, clients):
            for _ in range(len(ACTIONS) + 1):
                client.get(f"/api/prescriptions/{n + 1}", key)

    return run_threads(worker, clients)


def run_http(port: int, keys: dict[str, str], pharmacist_keys: dict[int, str], count: int, clients: int
             ) -> tuple[float, list[float], list[tuple[str, float]]]:
    flows: list[float] = []
    requests: list[tuple[str, float]] = []
    lock = threading.Lock()

    def worker(worker_index: int) -> None:
        client = Client(port)
        mine = []
        for n in range(worker_index, count, clients):
            started = time.perf_counter()
            rx = client.post("/api/prescriptions", keys["prescriber"],
                             prescription_body(n, f"H-{n}-{uuid.uuid4().hex[:6]}"))
            key = pharmacist_keys[rx["pharmacy_site_id"]]
            for action in ACTIONS:
                client.post(f"/api/prescriptions/{rx['id']}/{action}", key, {})
            mine.append(time.perf_counter() - started)
        with lock:
            flows.extend(mine)
            requests.extend(client.latencies)

    return run_threads(worker, clients), flows, requests


BARE_INTAKE = ("INSERT INTO prescriptions (consortium_id, number, prescriber_site_id, prescriber, patient_ref, "
     "patient_district, kind, issued_on, valid_until, status, status_reason, routing, returned_from, issues_total, "
     "current_issue, request_hash, source, created_at, updated_at, next_due_on) VALUES (1, :number, 1, '', :patient, "
     ":district, 'ordinary', :today, :today, 'routed', '', '{}', '[]', 1, 0, 'x', 'sql', now(), now(), :today) "
     "RETURNING id")


def run_bare_sql(url: str, drug: int, sites: list[int], count: int, clients: int, database_pid: int | None
                 ) -> tuple[float, list[float], float, CpuMeter]:
    """The same rows written and locked as the service writes them, with no HTTP, ORM or checks; the seconds, each
    prescription's, the statements per prescription and the processor time spent."""
    app = create_app({"DATABASE_URL": url})
    engine = app.extensions["pharmacy_db"].engine
    sent = [0]

    @event.listens_for(engine, "before_cursor_execute")
    def _count(conn, cursor, statement, parameters, context, executemany) -> None:
        sent[0] += 1  # one counter for all threads: a lost increment or two would not show in the figure

    flows: list[float] = []
    lock = threading.Lock()
    today = system_clock.today()

    def write_event(conn, rx_id: int, site: int, status: str) -> None:
        conn.execute(text("INSERT INTO prescription_events (consortium_id, event_id, prescription_id, "
                          "prescriber_site_id, pharmacy_site_id, type, status, payload, at) VALUES (1, :e, :rx, 1, "
                          ":site, :status, :status, '{}', now())"),
                     {"e": str(uuid.uuid4()), "rx": rx_id, "site": site, "status": status})

    def worker(worker_index: int) -> None:
        mine = []
        with engine.connect() as conn:
            for n in range(worker_index, count, clients):
                started = time.perf_counter()
                site = sites[n % len(sites)]
                with conn.begin():
                    rx_id = conn.execute(text(BARE_INTAKE), {"number": f"S-{n}-{uuid.uuid4().hex[:6]}",
                                                               "patient": f"P{n}", "district": f"D{n}",
                                                               "today": today}).scalar_one()
                    item = conn.execute(text("INSERT INTO prescription_items (consortium_id, prescription_id, "
                                             "drug_id, quantity, supply_days, substitution_allowed, dosage) VALUES "
                                             "(1, :rx, :drug, 28, 7, true, '') RETURNING id"),
                                        {"rx": rx_id, "drug": drug}).scalar_one()
                    conn.execute(text("SELECT site_id, sum(quantity - reserved) FROM lots WHERE drug_id = :d "
                                      "AND expiry_date >= :t GROUP BY site_id"), {"d": drug, "t": today}).all()
                    lot = conn.execute(text("SELECT id FROM lots WHERE site_id = :s AND drug_id = :d ORDER BY id "
                                            "FOR UPDATE"), {"s": site, "d": drug}).scalar_one()
                    conn.execute(text("UPDATE lots SET reserved = reserved + 28 WHERE id = :l"), {"l": lot})
                    conn.execute(text("INSERT INTO reservations (consortium_id, lot_id, site_id, drug_id, quantity, "
                                      "status, cause_type, prescription_id, supply_until, created_at) VALUES (1, :l, "
                                      ":s, :d, 28, 'held', 'prescription', :rx, :t, now())"),
                                 {"l": lot, "s": site, "d": drug, "rx": rx_id, "t": today})
                    conn.execute(text("UPDATE prescriptions SET pharmacy_site_id = :s WHERE id = :rx"),
                                 {"s": site, "rx": rx_id})
                    write_event(conn, rx_id, site, "routed")
                for status in ("accepted", "prepared"):
                    with conn.begin():
                        conn.execute(text("SELECT id FROM prescriptions WHERE id = :rx FOR UPDATE"), {"rx": rx_id})
                        conn.execute(text("UPDATE prescriptions SET status = :st WHERE id = :rx"),
                                     {"st": status, "rx": rx_id})
                        write_event(conn, rx_id, site, status)
                with conn.begin():
                    conn.execute(text("SELECT id FROM prescriptions WHERE id = :rx FOR UPDATE"), {"rx": rx_id})
                    conn.execute(text("SELECT id FROM lots WHERE id = :l FOR UPDATE"), {"l": lot})
                    conn.execute(text("UPDATE lots SET quantity = quantity - 28, reserved = reserved - 28 "
                                      "WHERE id = :l"), {"l": lot})
                    conn.execute(text("UPDATE reservations SET status = 'consumed' WHERE prescription_id = :rx"),
                                 {"rx": rx_id})
                    movement = conn.execute(text(
                        "INSERT INTO movements (consortium_id, lot_id, site_id, drug_id, kind, quantity, "
                        "reason_code, note, actor, cause_type, cause_id, at) VALUES (1, :l, :s, :d, 'dispense', -28, "
                        "'prescription', '', 'sql', 'prescription', :rx, now()) RETURNING id"),
                        {"l": lot, "s": site, "d": drug, "rx": str(rx_id)}).scalar_one()
                    conn.execute(text("INSERT INTO dispenses (consortium_id, prescription_id, item_id, issue, "
                                      "site_id, drug_id, lot_id, lot_number, expiry_date, quantity, substituted, "
                                      "note, movement_id, actor, at) VALUES (1, :rx, :item, 0, :s, :d, :l, 'x', :t, "
                                      "28, false, '', :m, 'sql', now())"),
                                 {"rx": rx_id, "item": item, "s": site, "d": drug, "l": lot, "t": today,
                                  "m": movement})
                    conn.execute(text("UPDATE prescriptions SET status = 'dispensed' WHERE id = :rx"), {"rx": rx_id})
                    write_event(conn, rx_id, site, "dispensed")
                with conn.begin():
                    conn.execute(text("SELECT id FROM prescriptions WHERE id = :rx FOR UPDATE"), {"rx": rx_id})
                    conn.execute(text("UPDATE prescriptions SET status = 'completed' WHERE id = :rx"),
                                 {"rx": rx_id})
                    write_event(conn, rx_id, site, "completed")
                mine.append(time.perf_counter() - started)
        with lock:
            flows.extend(mine)

    with CpuMeter(None, database_pid) as cpu:
        elapsed = run_threads(worker, clients)
    engine.dispose()
    return elapsed, flows, sent[0] / count, cpu


def main() -> None:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        sys.exit("set DATABASE_URL to a PostgreSQL database (its public schema is dropped and recreated)")
    count = int(os.environ.get("BENCH_PRESCRIPTIONS", "400"))
    clients = int(os.environ.get("BENCH_CLIENTS", "8"))
    workers, threads = int(os.environ.get("BENCH_WORKERS", "2")), int(os.environ.get("BENCH_THREADS", "4"))
    keys, pharmacist_keys, drug = seed(url)
    database_pid = database_server_pid(url)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", str(workers), "--threads", str(threads), "-b", f"127.0.0.1:{port}",
         "--log-level", "warning", "wsgi:app"],
        cwd=ROOT, env={**os.environ, "DATABASE_URL": url, "SECRET_KEY": "bench"})
    try:
        for _ in range(100):
            try:
                http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("GET", "/health")
                break
            except OSError:
                time.sleep(0.1)
        run_http(port, keys, pharmacist_keys, clients * 2, clients)  # warm-up: connections, caches
        with CpuMeter(server.pid, database_pid) as http_cpu:
            elapsed, flows, requests = run_http(port, keys, pharmacist_keys, count, clients)
        with CpuMeter(server.pid, database_pid) as reads_cpu:
            reads_elapsed = run_reads(port, keys["prescriber"], count, clients)
    finally:
        server.terminate()
        server.wait(timeout=30)
    bare_elapsed, bare_flows, bare_statements, bare_cpu = run_bare_sql(url, drug, sorted(pharmacist_keys), count,
                                                                       clients, database_pid)
    statements = count_statements(url, keys, pharmacist_keys)

    http_rate, bare_rate = count / elapsed, count / bare_elapsed
    latencies = [seconds for _, seconds in requests]
    by_action = {action: [seconds for done, seconds in requests if done == action] for action in statements}
    print(f"PostgreSQL; {count} prescriptions, {clients} concurrent clients, gunicorn {workers} workers x {threads} "
          "threads")
    print(f"HTTP API : {http_rate:7.1f} prescriptions/s; per prescription (5 requests) p50 "
          f"{statistics.median(flows) * 1000:6.1f} ms, p99 {percentile(flows, 0.99) * 1000:6.1f} ms; "
          f"per request p50 {statistics.median(latencies) * 1000:5.1f} ms, "
          f"p99 {percentile(latencies, 0.99) * 1000:5.1f} ms")
    print("per action (p50/p99 ms, statements): " + ", ".join(
        f"{action} {statistics.median(seconds) * 1000:.1f}/{percentile(seconds, 0.99) * 1000:.1f} "
        f"{statements[action]}" for action, seconds in by_action.items()))
    print(f"bare SQL : {bare_rate:7.1f} prescriptions/s; per prescription p50 "
          f"{statistics.median(bare_flows) * 1000:6.1f} ms, p99 {percentile(bare_flows, 0.99) * 1000:6.1f} ms")
    print(f"ratio    : the API does {http_rate / bare_rate:.2f}x the bare-SQL throughput "
          f"({bare_rate / http_rate:.1f}x slower), "
          f"p50 latency {statistics.median(flows) / statistics.median(bare_flows):.1f}x")
    print(f"processor time per prescription ({os.cpu_count()} processors shared): HTTP API {http_cpu.per(count)}; "
          f"bare SQL {bare_cpu.per(count)}")
    print(f"floor    : five reads of a prescription over HTTP instead of its flow: {count / reads_elapsed:7.1f} "
          f"prescriptions/s, {count / reads_elapsed / bare_rate:.2f}x the bare-SQL throughput; "
          f"{reads_cpu.per(count)}")
    print(f"statements: {sum(statements.values())} per prescription ("
          + ", ".join(f"{action} {n}" for action, n in statements.items()) + f"); bare SQL {bare_statements:.0f}")


if __name__ == "__main__":
    main()
