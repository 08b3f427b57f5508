"""Catalog benchmark: import a 20,000-drug CSV and search it.

Prints rows per second for the import through the service (validation, pinyin, upsert, audit) beside a
baseline of the same rows inserted with bare SQL in the same run, and search latency (median, p95) for
typical pharmacist queries beside a bare-SQL LIKE baseline. Ratios, not seconds, are what to compare
across runs: this machine is shared.

    .venv/bin/python bench/catalog.py                       # SQLite
    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test .venv/bin/python bench/catalog.py
"""

from __future__ import annotations

import csv
import io
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

# bench/optimizer.py is named like the package, which the service imports: keep this folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from sqlalchemy import text  # noqa: E402

from pharmacy import create_app  # noqa: E402
from pharmacy.catalog.services import CSV_COLUMNS, import_drugs_csv, search_drugs  # noqa: E402
from pharmacy.consortium.services import create_consortium  # noqa: E402
from pharmacy.migrate import rebuild  # noqa: E402
from pharmacy.pagination import PageRequest  # noqa: E402
from pharmacy.principal import SYSTEM, system_for  # noqa: E402
from pharmacy.unit_of_work import UnitOfWork  # noqa: E402

NAMES = ["阿莫西林", "头孢克肟", "阿奇霉素", "左氧氟沙星", "氨氯地平", "硝苯地平", "缬沙坦", "厄贝沙坦", "美托洛尔",
         "二甲双胍", "格列美脲", "阿卡波糖", "阿托伐他汀", "瑞舒伐他汀", "阿司匹林", "氯吡格雷", "奥美拉唑", "雷贝拉唑",
         "布洛芬", "对乙酰氨基酚", "氯雷他定", "孟鲁司特", "沙丁胺醇", "布地奈德", "胰岛素", "左甲状腺素", "地西泮",
         "艾司唑仑", "舍曲林", "帕罗西汀", "卡马西平", "丙戊酸钠", "华法林", "利伐沙班", "呋塞米", "螺内酯", "别嘌醇",
         "非布司他", "泼尼松", "甲泼尼龙", "维生素C", "叶酸", "碳酸钙", "甲钴胺", "多潘立酮", "蒙脱石", "乳果糖"]
FORMS = [("片", "tablet"), ("胶囊", "capsule"), ("颗粒", "granule"), ("注射液", "injection"), ("缓释片", "tablet")]
QUERIES = ["amxl", "ald", "二甲双胍", "AMX", "tbkw", "xs", "布洛芬", "DRG01234", "hx", "维生素"]


def make_csv(count: int, seed: int = 7) -> str:
    rng = random.Random(seed)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for i in range(count):
        name = rng.choice(NAMES)
        suffix, form = rng.choice(FORMS)
        strength = rng.choice(["5", "10", "20", "25", "50", "100", "250", "500"])
        writer.writerow([
            f"DRG{i:05d}", f"XN{i:012d}", "", f"{name}{suffix}", rng.choice(["", "品牌A", "品牌B"]),
            rng.choice(["华海药业", "石药集团", "恒瑞医药", "齐鲁制药"]), form, strength, "mg", form,
            rng.choice([7, 10, 12, 24, 28, 30, 48]), rng.random() < 0.4, rng.choice(["A", "B", "none"]),
            "none", "none", f"{name}-{form}-{strength}", True,
        ])
    return out.getvalue()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    url = os.environ.get("DATABASE_URL") or "sqlite:///" + os.path.join(tempfile.mkdtemp(), "bench.sqlite3")
    app = create_app({"DATABASE_URL": url})
    database = app.extensions["pharmacy_db"]
    rebuild(database.engine)
    factory = database.session_factory
    rows = int(os.environ.get("BENCH_ROWS", "20000"))
    body = make_csv(rows)

    base = create_consortium(UnitOfWork(factory, SYSTEM), "BASE", "baseline")
    bench = create_consortium(UnitOfWork(factory, SYSTEM), "BENCH", "bench")

    # Baseline: the same rows, parsed with csv and inserted with one bare executemany.
    started = time.perf_counter()
    parsed = list(csv.DictReader(io.StringIO(body)))
    columns = list(CSV_COLUMNS)
    insert = text(f"INSERT INTO drugs (consortium_id, {', '.join(columns)}, pinyin_initials, pinyin_full, "
                  f"search_key, version, updated_at) VALUES (:consortium_id, {', '.join(':' + c for c in columns)}, "
                  "'', '', :search_key, 1, CURRENT_TIMESTAMP)")
    params = [{**{c: (r[c] or None) for c in columns}, "consortium_id": base.id,
               "pack_size": int(r["pack_size"]), "strength_amount": r["strength_amount"],
               "essential": r["essential"] == "True", "active": True,
               "search_key": (r["code"] + r["generic_name"]).lower()} for r in parsed]
    with database.engine.begin() as conn:
        conn.execute(insert, params)
    baseline_seconds = time.perf_counter() - started

    started = time.perf_counter()
    result = import_drugs_csv(UnitOfWork(factory, system_for(bench.id)), body)
    import_seconds = time.perf_counter() - started
    assert result["created"] == rows, result

    started = time.perf_counter()
    again = import_drugs_csv(UnitOfWork(factory, system_for(bench.id)), body)
    reimport_seconds = time.perf_counter() - started
    assert again["unchanged"] == rows, again

    print(f"database: {database.engine.dialect.name}; rows: {rows}")
    print(f"import   : {rows / import_seconds:9.0f} rows/s ({import_seconds:.2f} s)")
    print(f"re-import: {rows / reimport_seconds:9.0f} rows/s ({reimport_seconds:.2f} s, nothing changes)")
    print(f"baseline : {rows / baseline_seconds:9.0f} rows/s ({baseline_seconds:.2f} s, bare executemany, "
          "no validation)")
    print(f"import / baseline time ratio: {import_seconds / baseline_seconds:.1f}x")

    uow = UnitOfWork(factory, system_for(bench.id))
    timings: list[float] = []
    for _ in range(5):
        for query in QUERIES:
            started = time.perf_counter()
            search_drugs(uow, PageRequest(1, 20), q=query)
            timings.append((time.perf_counter() - started) * 1000)
    bare: list[float] = []
    like = text("SELECT id FROM drugs WHERE consortium_id = :c AND search_key LIKE :p ORDER BY code LIMIT 20")
    with database.engine.connect() as conn:
        for _ in range(5):
            for query in QUERIES:
                started = time.perf_counter()
                conn.execute(like, {"c": bench.id, "p": f"%{query.lower()}%"}).all()
                bare.append((time.perf_counter() - started) * 1000)
    print(f"search   : median {statistics.median(timings):6.1f} ms, p95 {percentile(timings, 0.95):6.1f} ms "
          f"over {len(timings)} queries (ranked, counted, paged)")
    print(f"baseline : median {statistics.median(bare):6.1f} ms, p95 {percentile(bare, 0.95):6.1f} ms "
          "(bare LIKE, unranked)")
    print(f"search / baseline median ratio: {statistics.median(timings) / statistics.median(bare):.1f}x")
    database.dispose()


if __name__ == "__main__":
    main()
