"""A demo consortium to try the service with: a city "1+X" consortium of 20 sites."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask
from sqlalchemy import func, select

from pharmacy.accounts.services import create_api_key
from pharmacy.consortium.models import Consortium
from pharmacy.consortium.services import create_consortium, create_site
from pharmacy.principal import SYSTEM, Role, system_for
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


@dataclass(frozen=True)
class DemoKey:
    role: str
    site: str | None
    key: str


def load_demo(app: Flask) -> list[DemoKey] | None:
    """Load the demo consortium into an empty database; returns API keys to try, or None if not empty."""
    factory = app.extensions["pharmacy_db"].session_factory
    with factory() as session:
        if session.scalar(select(func.count()).select_from(Consortium)):
            return None
    consortium = create_consortium(UnitOfWork(factory, SYSTEM), DEMO_CONSORTIUM, "西湖区紧密型医联体")
    uow = UnitOfWork(factory, system_for(consortium.id))
    ids: dict[str, int] = {}
    for code, name, kind, parent, district, lat, lon, dispenses in DEMO_SITES:
        site = create_site(uow, consortium.id, {
            "code": code, "name": name, "kind": kind, "parent_id": ids.get(parent) if parent else None,
            "district": district, "latitude": lat, "longitude": lon, "dispenses": dispenses,
        })
        ids[code] = site.id
    keys = []
    for role, site_code in ((Role.ADMIN, None), (Role.PROCUREMENT, None), (Role.PRESCRIBER, "XH-LEAD"),
                            (Role.PHARMACIST, "XH-C01")):
        _, plain = create_api_key(uow, consortium.id, f"demo {role.value}", role,
                                  ids[site_code] if site_code else None)
        keys.append(DemoKey(role.value, site_code, plain))
    return keys
