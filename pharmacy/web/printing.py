"""What a pharmacy prints: a dispensing label for each drug and a medication guidance sheet (用药指导单) for the
patient, a pick list and a packing slip for a transfer. Each is a page with a print stylesheet: the browser prints
it (the pages open it in its own tab)."""

from __future__ import annotations

from flask import render_template
from flask.typing import ResponseReturnValue

from pharmacy.consortium.services import sites_by_id
from pharmacy.inventory.services import held_for
from pharmacy.prescriptions import services as rx_services
from pharmacy.prescriptions.domain import age_on, needs_second_check
from pharmacy.principal import Role
from pharmacy.procurement import services as procurement
from pharmacy.procurement.orders import transfer_cause
from pharmacy.web.routes import _drug_names, me, roles, uow, web


def _dispensed_view(rx_id: int) -> dict[str, object]:
    view = rx_services.get_prescription(uow(), rx_id)
    rx = view.prescription
    issue = [d for d in view.dispenses if d.issue == rx.current_issue] or \
        [d for d in view.dispenses if d.issue == max((x.issue for x in view.dispenses), default=0)]
    by_item: dict[int, list[object]] = {}
    for d in issue:
        by_item.setdefault(d.item_id, []).append(d)
    sites = sites_by_id(uow())
    today = uow().today()
    return {"view": view, "rx": rx, "by_item": by_item, "pharmacy": sites.get(rx.pharmacy_site_id or 0),
            "prescriber_site": sites.get(rx.prescriber_site_id), "today": today,
            "age": age_on(rx.patient_birth_date, today) if view.clinical and rx.patient_birth_date else None,
            "controlled": {i.id for i in view.items if needs_second_check([view.drugs[i.drug_id].controlled_class])}}


@web.route("/prescriptions/<id:rx_id>/label")
@roles(Role.PHARMACIST)
def print_label(rx_id: int) -> ResponseReturnValue:
    """A dispensing label for each drug of the issue: the patient, the drug, the dose in words, the pharmacy."""
    return render_template("print_label.html", **_dispensed_view(rx_id))


@web.route("/prescriptions/<id:rx_id>/guidance")
@roles(Role.PHARMACIST)
def print_guidance(rx_id: int) -> ResponseReturnValue:
    """The medication guidance sheet (用药指导单) the patient takes home."""
    return render_template("print_guidance.html", **_dispensed_view(rx_id))


def _transfer(order_id: int) -> dict[str, object]:
    view = procurement.get_transfer_order(uow(), order_id)
    held = held_for(uow(), transfer_cause(view.order.id)) if me().site_id == view.order.from_site_id else []
    sites = sites_by_id(uow())
    return {"view": view, "order": view.order, "held": held, "from_site": sites.get(view.order.from_site_id),
            "to_site": sites.get(view.order.to_site_id), "today": uow().today(),
            "drugs": _drug_names([line.drug_id for line in view.lines])}


@web.route("/transfers/<id:order_id>/pick-list")
@roles(Role.PHARMACIST)
def print_pick_list(order_id: int) -> ResponseReturnValue:
    """What to take off the shelf for a transfer: the lots held for it, first-expiry first-out."""
    return render_template("print_pick_list.html", **_transfer(order_id))


@web.route("/transfers/<id:order_id>/packing-slip")
@roles(Role.PHARMACIST)
def print_packing_slip(order_id: int) -> ResponseReturnValue:
    """What goes in the parcel, lot by lot, for the receiving site to check and sign."""
    return render_template("print_packing_slip.html", **_transfer(order_id))
