"""A short version of the simulated quarter (bench/simulate.py): a small consortium lives ten days, the weekly plan
approved twice, suppliers delivering late and in parts, transfers arriving with units broken, shelves counted while
dispensing goes on; after every day the stock is proven and no plan has bought what stock on its way covered."""

from __future__ import annotations

from pathlib import Path

from bench.simulate import Size, quarter
from tests.conftest import POSTGRES


def test_ten_days_of_a_small_consortium_keep_every_unit_counted_once(tmp_path: Path, database_url: str,
                                                                      committed_app) -> None:
    url = database_url if POSTGRES else "sqlite:///" + str(tmp_path / "quarter.sqlite3")
    result = quarter(url, Size(days=10, sites=4, drugs=3, seed=11), pooled=True)
    assert result.violations == []
    assert result.plans == 2 and result.purchase_orders > 0
    assert result.prescribed_units > 0 and result.fill_rate > 0.9
