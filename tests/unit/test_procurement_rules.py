"""Procurement rules that need no database."""

from datetime import date

import pytest

from optimizer.plan import BudgetUse
from pharmacy.procurement.domain import RunProgress, installments_due


@pytest.mark.parametrize(("next_due", "interval", "remaining", "until", "expected"), [
    (date(2026, 11, 25), 28, 2, date(2026, 12, 23), 2),   # 25 Nov and 23 Dec, the horizon's last day
    (date(2026, 11, 25), 28, 2, date(2026, 12, 22), 1),   # the second falls a day after the horizon
    (date(2026, 11, 25), 7, 2, date(2026, 12, 23), 2),    # more would fall due, but only two issues remain
    (date(2026, 11, 25), 7, 10, date(2026, 12, 23), 5),   # 25 Nov, 2, 9, 16 and 23 Dec
    (date(2026, 12, 24), 7, 3, date(2026, 12, 23), 0),    # the next issue is beyond the horizon
    (date(2026, 11, 25), 0, 3, date(2026, 12, 23), 1),    # no interval: only the next issue is dated
    (None, 28, 2, date(2026, 12, 23), 0),                 # nothing scheduled
    (date(2026, 11, 25), 28, 0, date(2026, 12, 23), 0),   # every issue given already
])
def test_installments_due_within_the_horizon(next_due: date | None, interval: int, remaining: int, until: date,
                                             expected: int) -> None:
    assert installments_due(next_due, interval, remaining, until) == expected


# --- where a plan run is ---------------------------------------------------------------------------

@pytest.mark.parametrize(("progress", "said"), [
    (RunProgress("queued"), "queued"),
    (RunProgress("reading"), "reading forecasts, stock and offers"),
    (RunProgress("inputs", drugs=2, sites=5, offers=3, lots=4), "inputs frozen: 2 drugs, 5 sites, 3 offers, 4 lots"),
    (RunProgress("models", 3, 10), "3 of 10 drug models solved"),
    (RunProgress("baseline", 7, 10), "site-by-site baseline: 7 of 10 drugs"),
    (RunProgress("planned", plan_status="optimal", gap=0.00234), "planned: optimal, gap 0.23%"),
    (RunProgress("planned", plan_status="feasible_time_limit", gap=0.01, budget_use=BudgetUse("one_model")),
     "planned: feasible_time_limit, gap 1.00%; budget planned in one model"),
    (RunProgress("planned", plan_status="optimal", gap=0.0, budget_use=BudgetUse("not_binding")),
     "planned: optimal, gap 0.00%; the budget does not bind"),
    (RunProgress("planned", plan_status="optimal", gap=0.004, budget_use=BudgetUse("priced", 0.03125, 9)),
     "planned: optimal, gap 0.40%; budget priced at 0.0312 per yuan spent; each drug's plan chosen among 9 rounds"),
    (RunProgress("cancelled"), "cancelled"),
])
def test_a_plan_runs_progress_is_said_in_english(progress, said):
    assert progress.text() == said


def test_a_plan_runs_progress_facts_hold_only_what_applies():
    assert RunProgress("models", 3, 10).facts() == {"step": "models", "done": 3, "total": 10}
    assert RunProgress("planned", plan_status="optimal", gap=0.0, budget_use=BudgetUse("priced", 0.5, 4)).facts() == {
        "step": "planned", "plan_status": "optimal", "gap": 0.0, "budget_use": {"how": "priced", "price": 0.5,
                                                                               "rounds": 4}}
