"""Rows a transaction only adds, and the last changes to rows it loaded, are written by its commit (in one statement
on PostgreSQL), and not at all when it, or the savepoint they were added in, rolls back; the audit trail and the
consortium's walls see a last change as they see a flush's."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, func, select

from pharmacy.audit import _AUDIT_TABLE, AuditEntry
from pharmacy.db import utcnow
from pharmacy.errors import NotFound
from pharmacy.prescriptions.models import Prescription
from pharmacy.principal import system_for
from pharmacy.rows_at_commit import PACKED_ROWS, add_row
from tests.conftest import POSTGRES
from tests.factories import World, add_drug


def _entry(action: str, **more: Any) -> dict[str, Any]:
    return {"consortium_id": None, "at": utcnow(), "actor": "system:test", "actor_role": "system",
            "action": action, "object_type": "Test", "object_id": "1", "summary": "", **more}


def _written(session_factory: Any, action: str) -> int:
    with session_factory() as session:
        return session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == action))


def test_rows_are_written_by_the_commit_in_one_statement_on_postgresql(session_factory: Any,
                                                                       connection: Any) -> None:
    sent: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "INSERT" in statement:
            sent.append(statement)

    with session_factory() as session:
        add_row(session, _AUDIT_TABLE, _entry("t-commit"))
        add_row(session, _AUDIT_TABLE, _entry("t-commit", site_id=None))  # another set of columns: another INSERT
        add_row(session, _AUDIT_TABLE, _entry("t-commit"))
        assert _written(session_factory, "t-commit") == 0  # nothing before the commit
        event.listen(connection, "before_cursor_execute", count)
        try:
            session.commit()
        finally:
            event.remove(connection, "before_cursor_execute", count)
    assert _written(session_factory, "t-commit") == 3
    assert len(sent) == (1 if POSTGRES else 2)


def test_rows_of_a_transaction_rolled_back_are_never_written(session_factory: Any) -> None:
    with session_factory() as session:
        add_row(session, _AUDIT_TABLE, _entry("t-rollback"))
        session.rollback()
        session.commit()
    with session_factory() as session:
        add_row(session, _AUDIT_TABLE, _entry("t-rollback"))
        # closed without a commit
    with session_factory() as session:
        session.commit()
    assert _written(session_factory, "t-rollback") == 0


def test_rows_added_in_a_savepoint_rolled_back_are_dropped_with_it(session_factory: Any) -> None:
    with session_factory() as session:
        add_row(session, _AUDIT_TABLE, _entry("t-kept"))
        savepoint = session.begin_nested()
        add_row(session, _AUDIT_TABLE, _entry("t-dropped"))
        savepoint.rollback()
        kept = session.begin_nested()
        add_row(session, _AUDIT_TABLE, _entry("t-kept"))
        kept.commit()
        session.commit()
    assert (_written(session_factory, "t-kept"), _written(session_factory, "t-dropped")) == (2, 0)


def test_a_bulk_of_rows_is_written_whole(session_factory: Any) -> None:
    with session_factory() as session:
        for n in range(PACKED_ROWS * 3):
            add_row(session, _AUDIT_TABLE, _entry("t-bulk") if n % 2 else _entry("t-bulk", site_id=n))
        session.commit()
    assert _written(session_factory, "t-bulk") == PACKED_ROWS * 3


def _submitted(client: Any, world: World) -> int:
    add_drug(client, world.a, "AML5", generic_name="氨氯地平片", dosage_form="tablet", strength_amount="5",
             dispensing_unit="tablet", pack_size=28)
    response = client.post("/api/prescriptions", headers=world.a.headers("prescriber"), json={
        "number": "RX-LAST", "issued_on": "2026-11-23",
        "patient": {"ref": "P-LAST", "district": "D1", "latitude": 30.26, "longitude": 120.14},
        "items": [{"drug_code": "AML5", "quantity": 28, "supply_days": 7}]})
    assert response.status_code == 201, response.get_json()
    return int(response.get_json()["id"])


@pytest.mark.usefixtures("clock")
def test_a_last_change_is_written_by_the_commit_with_its_audit_entry(session_factory: Any, connection: Any,
                                                                      client: Any, world: World) -> None:
    rx_id = _submitted(client, world)
    sent: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not statement.startswith(("SAVEPOINT", "RELEASE")):
            sent.append(statement)

    with session_factory() as session:
        session.info["principal"] = system_for(world.a.consortium_id)
        rx = session.get(Prescription, rx_id)
        assert rx is not None
        rx.status_reason = "checked by hand"
        event.listen(connection, "before_cursor_execute", count)
        try:
            session.commit()
        finally:
            event.remove(connection, "before_cursor_execute", count)
    writes = [s for s in sent if "prescriptions" in s]
    assert len(writes) == 1 and "UPDATE prescriptions" in writes[0]
    if POSTGRES:  # the change and its audit entry in one statement
        assert sent == writes and "INSERT INTO audit_entries" in writes[0]
    with session_factory() as session:
        assert session.get(Prescription, rx_id).status_reason == "checked by hand"  # type: ignore[union-attr]
        summaries = session.scalars(select(AuditEntry.summary).where(
            AuditEntry.object_type == "Prescription", AuditEntry.object_id == str(rx_id),
            AuditEntry.action == "update")).all()
    assert len([s for s in summaries if "status_reason:" in s and "checked by hand" in s]) == 1  # once, not twice


@pytest.mark.usefixtures("clock")
def test_a_last_change_to_another_consortiums_row_is_refused_and_never_written(session_factory: Any, client: Any,
                                                                                world: World) -> None:
    rx_id = _submitted(client, world)
    with session_factory() as session:
        session.info["principal"] = system_for(world.b.consortium_id)
        rx = session.scalars(select(Prescription).where(Prescription.id == rx_id)
                             .execution_options(all_consortia=True)).one()
        rx.status_reason = "written across consortia"
        with pytest.raises(NotFound):
            session.commit()
    with session_factory() as session:
        assert session.get(Prescription, rx_id).status_reason != "written across consortia"  # type: ignore[union-attr]
