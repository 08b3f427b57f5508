"""A prescriber's pages: the prescriptions the hospital sent, where each is and why, what happened to it, and a
cancel while it is still allowed (before dispensing starts)."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from pharmacy.errors import DomainError
from pharmacy.pagination import PageRequest
from pharmacy.prescriptions import services as rx_services
from pharmacy.prescriptions.domain import Kind, Status
from pharmacy.principal import Role
from pharmacy.web.pharmacist import _prescription_page, _typed_page
from pharmacy.web.routes import roles, uow, web

SHOWN = 200


@web.route("/sent")
@roles(Role.PRESCRIBER)
def sent() -> ResponseReturnValue:
    """The site's prescriptions, newest first: found by number, patient or drug, filtered by status and kind."""
    q = (request.args.get("q") or "").strip()
    status = request.args.get("status") or None
    kind = request.args.get("kind") or None
    if status not in {s.value for s in Status}:
        status = None
    page = rx_services.list_prescriptions(uow(), PageRequest(1, SHOWN), status=status, q=q or None, kind=kind,
                                          newest_first=True)
    return render_template("sent.html", rows=page.items, total=page.total, q=q, status=status or "",
                           kind=kind or "", statuses=[s.value for s in Status], kinds=[k.value for k in Kind],
                           drugs=rx_services.drugs_of(uow(), [rx.id for rx in page.items]))


@web.route("/prescriptions/<id:rx_id>/cancel", methods=["POST"])
@roles(Role.PRESCRIBER)
def prescription_cancel(rx_id: int) -> ResponseReturnValue:
    try:
        view = rx_services.cancel(uow(), rx_id, request.form.get("note", ""))
    except DomainError as error:
        if error.status == 404:
            raise
        return _typed_page(lambda typed: _prescription_page(rx_id, typed), error)
    flash(_("Cancelled: %(number)s", number=view.prescription.number), "ok")
    return redirect(url_for("web.prescription", rx_id=rx_id))
