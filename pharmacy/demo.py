"""A demo consortium to try the service with: a city "1+X" consortium of 20 sites, a catalog, stock with
weeks of dispensing history, three suppliers' offers, and a few routed prescriptions."""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from flask import Flask
from sqlalchemy import func, select

from pharmacy.accounts.services import create_api_key, create_user
from pharmacy.catalog.services import create_drug
from pharmacy.clock import FixedClock
from pharmacy.consortium.models import Consortium
from pharmacy.consortium.services import create_consortium, create_site
from pharmacy.errors import OutOfStock
from pharmacy.inventory.domain import CauseType
from pharmacy.inventory.models import Lot
from pharmacy.inventory.services import Cause, dispense_stock, receive_stock
from pharmacy.prescriptions.domain import Kind
from pharmacy.prescriptions.services import ItemInput, PrescriptionInput, submit_prescription
from pharmacy.principal import SYSTEM, Principal, Role, system_for
from pharmacy.procurement.services import create_offer, create_supplier
from pharmacy.unit_of_work import UnitOfWork

DEMO_CONSORTIUM = "XH-1PLUSX"

# code, name, kind, upper site code, district, latitude, longitude, dispenses
DEMO_SITES: list[tuple[str, str, str, str | None, str, float, float, bool]] = [
    ("XH-LEAD", "西湖区第一人民医院", "lead_hospital", None, "西湖区", 30.2590, 120.1300, True),
    ("XH-H2", "西湖区中医院", "hospital", "XH-LEAD", "西湖区", 30.2720, 120.1180, True),
    ("XH-H3", "转塘人民医院", "hospital", "XH-LEAD", "转塘街道", 30.1640, 120.0830, True),
    ("XH-DC", "医联体配送中心", "distribution_centre", "XH-LEAD", "西湖区", 30.2480, 120.1050, False),
    ("XH-C01", "北山街道社区卫生服务中心", "community_health_centre", "XH-LEAD", "西湖区", 30.2630, 120.1450, True),
    ("XH-C02", "西溪街道社区卫生服务中心", "community_health_centre", "XH-LEAD", "西湖区", 30.2790, 120.1380, True),
    ("XH-C03", "灵隐街道社区卫生服务中心", "community_health_centre", "XH-LEAD", "西湖区", 30.2450, 120.1100, True),
    ("XH-C04", "翠苑街道社区卫生服务中心", "community_health_centre", "XH-H2", "西湖区", 30.2880, 120.1230, True),
    ("XH-C05", "文新街道社区卫生服务中心", "community_health_centre", "XH-H2", "西湖区", 30.2950, 120.1070, True),
    ("XH-C06", "古荡街道社区卫生服务中心", "community_health_centre", "XH-H2", "西湖区", 30.2810, 120.1150, True),
    ("XH-C07", "蒋村街道社区卫生服务中心", "community_health_centre", "XH-H2", "蒋村街道", 30.2860, 120.0800, True),
    ("XH-C08", "留下街道社区卫生服务中心", "community_health_centre", "XH-H3", "留下街道", 30.2420, 120.0500, True),
    ("XH-T01", "双浦镇卫生院", "township_health_centre", "XH-H3", "双浦镇", 30.1420, 120.1050, True),
    ("XH-T02", "三墩镇卫生院", "township_health_centre", "XH-H2", "三墩镇", 30.3280, 120.0950, True),
    ("XH-T03", "转塘街道卫生院", "township_health_centre", "XH-H3", "转塘街道", 30.1580, 120.0700, True),
    ("XH-T04", "周浦乡卫生院", "township_health_centre", "XH-H3", "转塘街道", 30.1310, 120.0420, True),
    ("XH-V01", "铜鉴湖村卫生室", "village_clinic", "XH-T01", "双浦镇", 30.1370, 120.1170, True),
    ("XH-V02", "杨家牌楼村卫生室", "village_clinic", "XH-T03", "转塘街道", 30.1690, 120.0580, True),
    ("XH-V03", "龙坞村卫生室", "village_clinic", "XH-T03", "转塘街道", 30.1750, 120.0350, False),
    ("XH-V04", "长埭村卫生室", "village_clinic", "XH-T04", "转塘街道", 30.1240, 120.0530, False),
]


# code, generic name, form, strength, unit, dispensing unit, pack, essential, controlled, storage, group
DEMO_DRUGS: list[tuple[str, str, str, str, str, str, int, bool, str, str, str | None]] = [
    ("AMX250", "阿莫西林胶囊", "capsule", "250", "mg", "capsule", 24, True, "none", "none", "amoxicillin-250-oral"),
    ("AMX250-B", "阿莫西林胶囊", "capsule", "250", "mg", "capsule", 36, True, "none", "none", "amoxicillin-250-oral"),
    ("AML5", "苯磺酸氨氯地平片", "tablet", "5", "mg", "tablet", 28, True, "none", "none", "amlodipine-5"),
    ("MTF500", "盐酸二甲双胍片", "tablet", "500", "mg", "tablet", 48, True, "none", "none", "metformin-500"),
    ("ATV20", "阿托伐他汀钙片", "tablet", "20", "mg", "tablet", 7, True, "none", "none", "atorvastatin-20"),
    ("ASP100", "阿司匹林肠溶片", "tablet", "100", "mg", "tablet", 30, True, "none", "none", "aspirin-100"),
    ("CLP75", "硫酸氢氯吡格雷片", "tablet", "75", "mg", "tablet", 7, True, "none", "none", "clopidogrel-75"),
    ("VAL80", "缬沙坦胶囊", "capsule", "80", "mg", "capsule", 28, True, "none", "none", "valsartan-80"),
    ("MET47", "琥珀酸美托洛尔缓释片", "tablet", "47.5", "mg", "tablet", 7, True, "none", "none", "metoprolol-47.5"),
    ("OME20", "奥美拉唑肠溶胶囊", "capsule", "20", "mg", "capsule", 14, True, "none", "none", "omeprazole-20"),
    ("RIV10", "利伐沙班片", "tablet", "10", "mg", "tablet", 5, False, "none", "none", "rivaroxaban-10"),
    ("INS-G", "甘精胰岛素注射液", "injection", "300", "IU", "pen", 1, False, "none", "cold_chain", None),
    ("DZP2.5", "地西泮片", "tablet", "2.5", "mg", "tablet", 20, True, "psychotropic_2", "none", None),
    ("LEV0.5", "左氧氟沙星片", "tablet", "0.5", "g", "tablet", 4, True, "none", "none", "levofloxacin-0.5"),
    ("EUT50", "左甲状腺素钠片", "tablet", "50", "ug", "tablet", 100, True, "none", "none", "levothyroxine-50"),
]


@dataclass(frozen=True)
class DemoKey:
    """An API key to try, or (with ``username``) a person's sign-in for the pages, ``key`` being the password."""

    role: str
    site: str | None
    key: str
    username: str = ""


def load_demo(app: Flask) -> list[DemoKey] | None:
    """Load the demo consortium into an empty database; returns API keys to try, or None if not empty."""
    factory = app.extensions["pharmacy_db"].session_factory
    with factory() as session:
        if session.scalar(select(func.count()).select_from(Consortium)):
            return None
    consortium = create_consortium(UnitOfWork(factory, SYSTEM), DEMO_CONSORTIUM, "西湖区紧密型医联体")
    uow = UnitOfWork(factory, system_for(consortium.id))
    ids: dict[str, int] = {}
    for n, (code, name, kind, parent, district, lat, lon, dispenses) in enumerate(DEMO_SITES):
        site = create_site(uow, consortium.id, {
            "code": code, "name": name, "kind": kind, "parent_id": ids.get(parent) if parent else None,
            "district": district, "latitude": lat, "longitude": lon, "dispenses": dispenses,
            "opening_hours": DEMO_HOURS if dispenses else "", "phone": f"0571-8{n + 1:03d}-{2600 + n}",
        })
        ids[code] = site.id
    history_start = FixedClock(uow.now() - timedelta(days=HISTORY_DAYS))
    drug_ids = _load_catalog_and_stock(UnitOfWork(factory, system_for(consortium.id), history_start), ids)
    _load_dispensing_history(factory, consortium.id, ids, drug_ids)
    _load_offers(uow, drug_ids)
    _load_prescriptions(factory, consortium.id, ids["XH-LEAD"])
    keys = []
    for role, site_code in ((Role.ADMIN, None), (Role.PROCUREMENT, None), (Role.PRESCRIBER, "XH-LEAD"),
                            (Role.PHARMACIST, "XH-C01")):
        _, plain = create_api_key(uow, consortium.id, f"demo {role.value}", role,
                                  ids[site_code] if site_code else None)
        keys.append(DemoKey(role.value, site_code, plain))
    # Two pharmacists of one pharmacy (a controlled drug is handed over after the second one's check), a prescriber
    # of the lead hospital and an officer.
    for username, name, role, site_code in (("li", "李药师", Role.PHARMACIST, "XH-C01"),
                                            ("zhou", "周药师", Role.PHARMACIST, "XH-C01"),
                                            ("dr-wang", "王医生", Role.PRESCRIBER, "XH-LEAD"),
                                            ("wang", "王采购", Role.PROCUREMENT, None)):
        password = secrets.token_urlsafe(9)
        create_user(uow, consortium.id, username, password, role, ids[site_code] if site_code else None, name)
        keys.append(DemoKey(role.value, site_code, password, username))
    return keys


def _load_catalog_and_stock(uow: UnitOfWork, site_ids: dict[str, int]) -> dict[str, int]:
    """The catalog, and opening balances received when the dispensing history starts."""
    rng = random.Random(2026)
    drugs: list[int] = []
    for code, name, form, strength, unit, dispensing_unit, pack, essential, controlled, storage, group in DEMO_DRUGS:
        drug = create_drug(uow, {
            "code": code, "generic_name": name, "dosage_form": form, "strength_amount": Decimal(strength),
            "strength_unit": unit, "dispensing_unit": dispensing_unit, "pack_size": pack, "essential": essential,
            "controlled_class": controlled, "special_storage": storage, "equivalence_group": group,
        })
        drugs.append(drug.id)
    today = uow.today() + timedelta(days=HISTORY_DAYS)  # expiry dates count from the real today
    # The first community centre stocks the psychotropic the demo prescribes, so its second check can be tried.
    receive_stock(uow, site_ids["XH-C01"], drugs[[d[0] for d in DEMO_DRUGS].index("DZP2.5")], "C01-DZP-A",
                  today + timedelta(days=400), 200, reason_code="opening_balance")
    for site_code, site_id in site_ids.items():
        if site_code in {"XH-V03", "XH-V04"}:
            continue  # non-dispensing village clinics hold no stock
        for drug_id in rng.sample(drugs, k=rng.randint(6, len(drugs))):
            for n in range(rng.randint(1, 3)):
                # A few lots close to expiry, so the near-expiry views have something to show.
                days = rng.choice([20, 45, 80, 200, 400, 700])
                receive_stock(uow, site_id, drug_id, f"{site_code[-3:]}-{drug_id:03d}-{n}",
                              today + timedelta(days=days), rng.choice([40, 80, 150, 300]),
                              reason_code="opening_balance")
    return {row[0]: drug_id for row, drug_id in zip(DEMO_DRUGS, drugs, strict=True)}


DEMO_HOURS = "周一至周五 8:00–17:30，周六、周日 8:00–12:00"
HISTORY_DAYS = 45
HISTORY_STEP_DAYS = 7  # one dispensing entry per site and drug every few days keeps the demo quick to load
HISTORY_DRUGS = ("AMX250", "AML5", "MTF500", "ATV20", "ASP100", "VAL80", "OME20", "EUT50")


def _load_dispensing_history(factory: Any, consortium_id: int, site_ids: dict[str, int],
                             drug_ids: dict[str, int]) -> None:
    """What the sites dispensed over the last weeks, so that forecasts and plans have a ledger to read."""
    rng = random.Random(7)
    usage = {(site, code): rng.choice([1, 2, 4, 8]) * (3 if site in ("XH-LEAD", "XH-H2", "XH-H3") else 1)
             for site in site_ids for code in HISTORY_DRUGS}
    now = UnitOfWork(factory, SYSTEM).now()
    with factory() as session:
        stocked = set(session.execute(select(Lot.site_id, Lot.drug_id).distinct()).all())
    for back in range(HISTORY_DAYS, 0, -HISTORY_STEP_DAYS):
        uow = UnitOfWork(factory, system_for(consortium_id), FixedClock(now - timedelta(days=back)))
        with uow:
            for site, site_id in site_ids.items():
                for code in HISTORY_DRUGS:
                    if (site_id, drug_ids[code]) not in stocked:
                        continue
                    units = usage[(site, code)] * HISTORY_STEP_DAYS + rng.randint(0, 3)
                    savepoint = uow.session.begin_nested()
                    try:
                        dispense_stock(uow, site_id, drug_ids[code], units, uow.today(),
                                       Cause(CauseType.PRESCRIPTION, f"history-{back}-{site}-{code}"))
                        savepoint.commit()
                    except OutOfStock:
                        savepoint.rollback()  # the site does not stock it, or ran out
            uow.commit()


# supplier code, name, price factor, minimum order packs, lead time days, sites it delivers to (None: all)
DEMO_SUPPLIERS = [
    ("HDYY", "华东医药股份有限公司", 1.00, 0, 1, None),
    ("JZT", "九州通医药集团", 0.93, 40, 2, None),
    ("YTYY", "英特药业", 0.88, 100, 4, ("XH-LEAD", "XH-H2", "XH-H3")),
]
DEMO_PACK_PRICES = {"AMX250": 9.8, "AMX250-B": 14.2, "AML5": 31.5, "MTF500": 18.6, "ATV20": 24.9, "ASP100": 15.3,
                    "CLP75": 19.8, "VAL80": 36.0, "MET47": 22.4, "OME20": 12.7, "RIV10": 41.0, "INS-G": 168.0,
                    "DZP2.5": 6.5, "LEV0.5": 11.9, "EUT50": 27.0}


def _load_offers(uow: UnitOfWork, drug_ids: dict[str, int]) -> None:
    today = uow.today()
    pack_sizes = {d[0]: d[6] for d in DEMO_DRUGS}
    for code, name, factor, minimum, lead, sites in DEMO_SUPPLIERS:
        supplier = create_supplier(uow, code, name)
        for drug_code, drug_id in drug_ids.items():
            price = DEMO_PACK_PRICES[drug_code] * factor
            tiers = [{"min_packs": minimum, "price_per_pack": round(price, 2)},
                     {"min_packs": minimum + 60, "price_per_pack": round(price * 0.92, 2)}]
            create_offer(uow, {
                "supplier_id": supplier.id, "drug_id": drug_id, "pack_size": pack_sizes[drug_code], "tiers": tiers,
                "lead_time_days": lead,
                "capacity_packs": None, "order_cost": 15.0 if minimum else 0.0,
                "default_delivery_cost": None if sites else 0.3,
                "delivery_costs": {site: 0.2 for site in sites} if sites else {},
                "valid_from": today - timedelta(days=30), "valid_until": today + timedelta(days=335)})


DEMO_DOSAGE = {"AML5": "口服，每次 5 mg，每日 1 次", "ASP100": "口服，每次 100 mg，每日 1 次，饭后",
               "MTF500": "口服，每次 500 mg，每日 2 次，随餐", "OME20": "口服，每次 20 mg，每日 1 次，早餐前",
               "ATV20": "口服，每次 20 mg，每日 1 次，睡前", "VAL80": "口服，每次 80 mg，每日 1 次",
               "DZP2.5": "口服，每次 2.5 mg，每日 1 次，睡前"}
DEMO_PRESCRIPTIONS = [
    # number, patient, district, kind, [(code, quantity, supply days, repeats)], nominated pharmacy
    ("XH-RX-0001", "PT-2f91", "西湖区", "ordinary", [("AML5", 7, 7, 0), ("ASP100", 7, 7, 0)], None),
    ("XH-RX-0002", "PT-77c0", "转塘街道", "long", [("MTF500", 56, 28, 2)], None),
    ("XH-RX-0003", "PT-a1b4", "双浦镇", "ordinary", [("OME20", 14, 7, 0)], None),
    ("XH-RX-0004", "PT-09de", "三墩镇", "long", [("ATV20", 28, 28, 1), ("VAL80", 28, 28, 1)], None),
    ("XH-RX-0005", "PT-5c3e", "西湖区", "ordinary", [("DZP2.5", 6, 3, 0)], "XH-C01"),
]
# What each prescriber sent for the review: birth date, sex, diagnosis (ICD-10), allergies.
DEMO_CLINICAL: dict[str, tuple[str, str, tuple[tuple[str, str], ...], tuple[str, ...]]] = {
    "PT-2f91": ("1956-04-12", "male", (("I10", "原发性高血压"),), ("青霉素",)),
    "PT-77c0": ("1963-09-30", "female", (("E11.9", "2型糖尿病"),), ()),
    "PT-a1b4": ("1978-01-05", "male", (("K21.9", "胃食管反流病"),), ("磺胺类",)),
    "PT-09de": ("1949-11-20", "female", (("I10", "原发性高血压"), ("E78.5", "高脂血症")), ()),
    "PT-5c3e": ("1971-06-08", "female", (("F51.0", "非器质性失眠症"),), ()),
}


def _load_prescriptions(factory: Any, consortium_id: int, lead_id: int) -> None:
    prescriber = Principal("system", None, "demo HIS", Role.PRESCRIBER, consortium_id, lead_id)
    today = UnitOfWork(factory, prescriber).today()
    for number, patient, district, kind, items, nominated in DEMO_PRESCRIPTIONS:
        born, gender, diagnoses, allergies = DEMO_CLINICAL[patient]
        data = PrescriptionInput(
            number=number, patient_ref=patient, kind=Kind(kind), issued_on=today, valid_until=today + timedelta(days=2),
            patient_district=district, prescriber="王医生", nominated_site_code=nominated,
            patient_birth_date=date.fromisoformat(born), patient_gender=gender,
            diagnoses=tuple({"code": code, "system": "ICD-10", "display": said} for code, said in diagnoses),
            allergies=tuple({"substance": substance} for substance in allergies),
            items=tuple(ItemInput(code, quantity, days, repeats, days if repeats else None,
                                  dosage=DEMO_DOSAGE.get(code, ""))
                        for code, quantity, days, repeats in items))
        submit_prescription(UnitOfWork(factory, prescriber), data, request_hash=number)
