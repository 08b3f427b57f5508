"""The statements each step of a prescription's way sends to the database, held to a budget.

A step that grows past its budget fails here, so the figure cannot slip back unseen: a query added to a request
is a round trip and Python work in every one of a province's prescriptions. Counted with the engine's
``before_cursor_execute`` event over the request only; the test harness's savepoints (and SQLite's ``BEGIN``)
are transaction control, not work, and are left out, which also makes SQLite and PostgreSQL count alike.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event

from pharmacy.key_cache import KeyCache
from tests.conftest import POSTGRES
from tests.factories import World, add_drug, receive

pytestmark = pytest.mark.usefixtures("clock")  # 2026-11-23, noon in Hangzhou

# The most statements each request of the ordinary flow may send on PostgreSQL (one drug, one lot, no webhook
# subscription).
BUDGET = {"submit": 8, "accept": 2, "prepare": 2, "dispense": 5, "hand-over": 3}
# SQLite sends more: it reads the API key on every request (no channel tells it of a change to a key), and writes
# each last change, the audit entry and the event a statement each (it has no INSERT or UPDATE inside WITH): those
# of each lot and each hold, so its budget grows with the drugs.
ON_SQLITE = {"submit": 11, "accept": 5, "prepare": 5, "dispense": 10, "hand-over": 7}
ON_SQLITE_THREE_DRUGS = {"submit": 17, "accept": 5, "prepare": 5, "dispense": 18, "hand-over": 9}
TRANSACTION_CONTROL = ("SAVEPOINT", "RELEASE", "ROLLBACK", "BEGIN", "COMMIT")


class Statements:
    """The data statements sent since the last :meth:`take`."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def take(self) -> list[str]:
        sent, self.sent = self.sent, []
        return sent


@pytest.fixture
def statements(app: Flask) -> Iterator[Statements]:
    engine = app.extensions["pharmacy_db"].engine
    counted = Statements()

    def count(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if not statement.lstrip().upper().startswith(TRANSACTION_CONTROL):
            counted.sent.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield counted
    finally:
        event.remove(engine, "before_cursor_execute", count)


def _overspent(counted: dict[str, list[str]], budget: dict[str, int]) -> str:
    """Each step past its budget, with the statements it sent (their heads: enough to see which is new)."""
    said = []
    for action, sent in counted.items():
        if len(sent) > budget[action]:
            said.append(f"{action} sent {len(sent)} statements, budget {budget[action]}:\n"
                        + "\n".join(f"  {s.split(' WHERE ')[0][:160]}" for s in sent))
    return "\n".join(said)


ONE_DRUG = [{"drug_code": "AML5", "quantity": 28, "supply_days": 7}]
THREE_DRUGS = [*ONE_DRUG, {"drug_code": "ATV20", "quantity": 7, "supply_days": 7},
               {"drug_code": "MET500", "quantity": 14, "supply_days": 7}]


@pytest.mark.parametrize(("items", "on_sqlite"), [(ONE_DRUG, ON_SQLITE), (THREE_DRUGS, ON_SQLITE_THREE_DRUGS)],
                         ids=["one drug", "three drugs"])
def test_each_step_of_a_prescriptions_way_keeps_within_its_statement_budget(app: Flask, client, world: World,
                                                                            statements: Statements,
                                                                            items: list[dict[str, Any]],
                                                                            on_sqlite: dict[str, int]) -> None:
    """On PostgreSQL the budget is the same however many drugs the prescription lists: no statement is sent per
    item."""
    drug = add_drug(client, world.a, "AML5", generic_name="氨氯地平片", dosage_form="tablet", strength_amount="5",
                    dispensing_unit="tablet", pack_size=28)
    assert receive(client, world.a, "C1", drug["id"], "L1", "2027-06-30", 1000).status_code == 201
    for code in ("ATV20", "MET500"):
        other = add_drug(client, world.a, code)
        assert receive(client, world.a, "C1", other["id"], f"L-{code}", "2027-06-30", 1000).status_code == 201
    if POSTGRES:  # counted once the process hears of key changes, as a running service does
        keys: KeyCache = app.extensions["pharmacy_keys"]
        keys.generation()
        deadline = time.monotonic() + 5
        while keys.generation() is None:
            assert time.monotonic() < deadline, "the process never heard the channel of key changes"
            time.sleep(0.01)
    for n in range(2):  # the second prescription is counted: nothing done once per process counts
        statements.take()
        response = client.post("/api/prescriptions", headers=world.a.headers("prescriber"), json={
            "number": f"RX-{n}", "issued_on": "2026-11-23",
            "patient": {"ref": f"P-{n}", "district": "D1", "latitude": 30.26, "longitude": 120.14},
            "items": items})
        assert response.status_code == 201, response.get_json()
        rx = response.get_json()
        assert rx["pharmacy_site_id"] == world.a.sites["C1"]
        assert [item["drug_code"] for item in rx["items"]] == [item["drug_code"] for item in items]
        counted = {"submit": statements.take()}
        for action in ("accept", "prepare", "dispense", "hand-over"):
            response = client.post(f"/api/prescriptions/{rx['id']}/{action}", json={},
                                   headers=world.a.headers("pharmacist"))
            assert response.status_code == 200, response.get_json()
            counted[action] = statements.take()
    assert response.get_json()["status"] == "completed"
    overspent = _overspent(counted, BUDGET if POSTGRES else on_sqlite)
    assert not overspent, overspent
