"""A community pharmacist's day on the pages: the worklist (found, filtered, remembered, refreshed by itself), a
prescription reviewed with its clinical facts, dispensed with its packs' trace codes scanned, confirmed by a second
pharmacist when controlled and handed over; receiving; stock with its position, lots and their history, write-offs
and receipts outside an order; and the site's alerts.

A refused action comes back on its own page with the service's reason and what was typed (status 422)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from typing import Any

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from pharmacy.api import current_clock
from pharmacy.auth import verify_user
from pharmacy.catalog.services import resolve_code, search_drugs
from pharmacy.errors import DomainError, Unauthorized, ValidationFailed
from pharmacy.inventory.domain import OUTSIDE_ORDER_RECEIPTS, WRITE_OFF_REASONS, CauseType
from pharmacy.inventory.services import (
    Cause,
    CountLine,
    LotChoice,
    held_for,
    list_lots,
    lot_card,
    receive_outside_order,
    record_stocktake,
    write_off,
)
from pharmacy.inventory.trace_codes import lot_and_expiry, read_trace_code
from pharmacy.pagination import PageRequest
from pharmacy.prescriptions import services as rx_services
from pharmacy.prescriptions.domain import REJECT_REASONS, RETURN_REASONS, Status, age_on, allowed_actions
from pharmacy.principal import Role
from pharmacy.procurement import services as procurement
from pharmacy.procurement.domain import TRANSFER_ACTIONS
from pharmacy.procurement.queries import reason_names
from pharmacy.unit_of_work import UnitOfWork
from pharmacy.web.plan_reasons import say_reasons
from pharmacy.web.routes import ALL, _drug_names, attempt, me, roles, uow, web
from pharmacy.web.words import LOSS_REASONS, refusal

# The worklist's tabs: what is open, in the order the work goes, and what is done (its history).
OPEN_TABS = (Status.ROUTED, Status.ACCEPTED, Status.PREPARED, Status.PARTIALLY_DISPENSED, Status.DISPENSED,
             Status.AWAITING_STOCK, Status.SCHEDULED)
HISTORY_TABS = ("completed", "returned", "rejected", "expired", "cancelled")
HISTORY_SHOWN = 100
UNREADABLE = "Please enter whole numbers for quantities and dates as YYYY-MM-DD."


def _refresh_seconds() -> int:
    return int(current_app.config.get("WORKLIST_REFRESH_SECONDS", 15))


def _typed_page(render: Callable[[Mapping[str, Any]], str], error: Exception) -> ResponseReturnValue:
    """A refusal shown on the page it came from, with what was typed (nothing was done)."""
    flash(refusal(error) if isinstance(error, DomainError) else _(UNREADABLE), "error")
    return render(request.form), 422


# Worklist -----------------------------------------------------------------------------------------------

def _worklist_context() -> dict[str, Any]:
    tab = request.args.get("tab") or request.args.get("status") or Status.ROUTED.value
    q = (request.args.get("q") or "").strip()
    kind = request.args.get("kind") or None
    tabs = [s.value for s in OPEN_TABS]
    if tab not in tabs and tab not in HISTORY_TABS:
        tab = Status.ROUTED.value
    counts = rx_services.worklist_counts(uow(), q=q or None, kind=kind)
    returned = rx_services.returned_here(uow(), PageRequest(1, HISTORY_SHOWN), q=q or None)
    counts["returned"] = returned.total
    rows: list[Any] = []
    if tab == "returned":
        rows = returned.items
    else:
        history = tab in HISTORY_TABS
        page = rx_services.list_prescriptions(uow(), PageRequest(1, HISTORY_SHOWN) if history else ALL, status=tab,
                                              q=q or None, kind=kind, newest_first=history)
        rows = page.items
    drugs = rx_services.drugs_of(uow(), [rx.id for rx in rows]) if tab != "returned" else {}
    return {"tab": tab, "q": q, "kind": kind or "", "tabs": tabs, "history_tabs": HISTORY_TABS, "counts": counts,
            "rows": rows, "drugs": drugs, "refresh": _refresh_seconds()}


@web.route("/worklist")
@roles(Role.PHARMACIST)
def worklist() -> ResponseReturnValue:
    return render_template("worklist.html", **_worklist_context())


@web.route("/worklist/live")
@roles(Role.PHARMACIST)
def worklist_live() -> ResponseReturnValue:
    """The tabs and rows of the worklist, polled by the page (htmx) so that a new prescription appears by itself."""
    return render_template("_worklist_live.html", **_worklist_context())


# A prescription -----------------------------------------------------------------------------------------

def _prescription_page(rx_id: int, typed: Mapping[str, Any] | None = None) -> str:
    view = rx_services.get_prescription(uow(), rx_id)
    rx = view.prescription
    held = held_for(uow(), Cause(CauseType.PRESCRIPTION, str(rx.id))) if me().role is Role.PHARMACIST else []
    other_lots: dict[int, list[Any]] = {}
    if rx.pharmacy_site_id is not None and me().role is Role.PHARMACIST:
        for item in view.items:
            other_lots[item.id] = list_lots(uow(), ALL, site_id=rx.pharmacy_site_id, drug_id=item.drug_id).items
    today = uow().today()
    age = age_on(rx.patient_birth_date, today) if view.clinical and rx.patient_birth_date else None
    return render_template(
        "prescription.html", view=view, rx=rx, held=held, other_lots=other_lots, age=age,
        allowed={a.value for a in allowed_actions(Status(rx.status))},
        events=rx_services.prescription_events(uow(), rx_id), typed=typed or {},
        reject_reasons=sorted(REJECT_REASONS), return_reasons=sorted(RETURN_REASONS))


@web.route("/prescriptions/<id:rx_id>")
@roles(Role.PHARMACIST, Role.PRESCRIBER, Role.ADMIN)
def prescription(rx_id: int) -> ResponseReturnValue:
    return _prescription_page(rx_id)


@web.route("/prescriptions/<id:rx_id>/<action>", methods=["POST"])
@roles(Role.PHARMACIST)
def prescription_action(rx_id: int, action: str) -> ResponseReturnValue:
    here = url_for("web.prescription", rx_id=rx_id)
    form = request.form
    number = form.get("number", "")
    to_worklist = url_for("web.worklist")
    actions: dict[str, tuple[Callable[[], Any], str, str]] = {
        "accept": (lambda: rx_services.accept(uow(), rx_id), _("Accepted after review: %(number)s", number=number),
                   here),
        "reject": (lambda: rx_services.reject(uow(), rx_id, form.get("reason_code", ""), form.get("note", "")),
                   _("Rejected and sent back to the prescriber: %(number)s", number=number), to_worklist),
        "return": (lambda: rx_services.return_prescription(uow(), rx_id, form.get("reason_code", ""),
                                                           form.get("note", "")),
                   _("Returned: %(number)s is routed to another pharmacy", number=number), to_worklist),
        "prepare": (lambda: rx_services.prepare(uow(), rx_id), _("Prepared: %(number)s", number=number), here),
        "dispense": (lambda: _dispense(rx_id), _("Dispensed: %(number)s", number=number), here),
        "second-check": (lambda: _second_check(rx_id), _("Confirmed by a second pharmacist: %(number)s",
                                                          number=number), here),
        "hand-over": (lambda: rx_services.hand_over(uow(), rx_id), _("Handed over: %(number)s", number=number),
                      to_worklist),
    }
    if action not in actions:
        abort(404)
    run, success, target = actions[action]
    try:
        run()
    except (DomainError, ValueError) as error:
        if action == "return" and isinstance(error, DomainError) and error.status == 404:
            raise
        return _typed_page(lambda typed: _prescription_page(rx_id, {**typed, "action": action}), error)
    flash(success, "ok")
    return redirect(target)


def _dispense(rx_id: int) -> Any:
    """The dispense form: lots pre-filled first-expiry first-out, changed quantities with a reason, the packs'
    trace codes as scanned; from a prescription accepted but not yet prepared, it is prepared and dispensed."""
    lines = _dispense_lines()
    if request.form.get("status") == Status.ACCEPTED.value:
        return rx_services.prepare_and_dispense(uow(), rx_id, lines)
    return rx_services.dispense(uow(), rx_id, lines)


def _dispense_lines() -> list[rx_services.DispenseLine]:
    form = request.form
    lines = []
    for item_id in sorted({int(k.split("-")[1]) for k in form if k.startswith("lot-")}):
        chosen = tuple(LotChoice(int(k.split("-")[2]), int(v)) for k, v in form.items()
                       if k.startswith(f"lot-{item_id}-") and v.strip() and int(v) > 0)
        changed = form.get(f"changed-{item_id}") == "1"
        codes = tuple(c.strip() for c in form.get(f"codes-{item_id}", "").splitlines() if c.strip())
        # Every lot left at 0 means none of this item now (never "all of it").
        lines.append(rx_services.DispenseLine(item_id, quantity=sum(c.quantity for c in chosen),
                                              lots=chosen if changed else (),
                                              lot_reason=form.get(f"reason-{item_id}", ""), trace_codes=codes))
    return lines


def _second_check(rx_id: int) -> Any:
    """The second pharmacist confirms at the same counter with their own sign-in (双人核对): the service sees them
    as who acts, never the one signed in at this screen."""
    form = request.form
    try:
        with current_app.extensions["pharmacy_db"].session_factory() as db:
            checker = verify_user(db, form.get("checker", ""), form.get("checker_password", ""))
    except Unauthorized:
        raise ValidationFailed(_("The second pharmacist's username or password is wrong."),
                               {"checker": "unknown"}) from None
    if checker.consortium_id != me().consortium_id:
        raise ValidationFailed(_("The second pharmacist's username or password is wrong."), {"checker": "unknown"})
    factory = current_app.extensions["pharmacy_db"].session_factory
    return rx_services.second_check(UnitOfWork(factory, checker, current_clock()), rx_id)


# Receiving ----------------------------------------------------------------------------------------------

def _receiving_page(typed: Mapping[str, Any] | None = None) -> str:
    site_id = me().site_id
    worklist = procurement.receiving_worklist(uow(), site_id)  # type: ignore[arg-type]
    details = {view.order.id: view for view in worklist.transfers}
    orders = worklist.deliveries
    return render_template("receiving.html", transfers=[view.order for view in worklist.transfers],
                           details=details, orders=orders, site_id=site_id, today=uow().today(),
                           can=TRANSFER_ACTIONS, typed=typed or {}, loss_reasons=LOSS_REASONS,
                           drugs=_drug_names([line.drug_id for d in details.values() for line in d.lines]
                                             + [line.drug_id for _, lines in orders for line in lines]))


@web.route("/receiving")
@roles(Role.PHARMACIST)
def receiving() -> ResponseReturnValue:
    return _receiving_page()


@web.route("/transfers/<id:order_id>/<action>", methods=["POST"])
@roles(Role.PHARMACIST)
def transfer_action(order_id: int, action: str) -> ResponseReturnValue:
    if action == "receive":
        return _receive_transfer(order_id)
    if action != "ship":
        abort(404)
    return attempt(lambda: procurement.ship_transfer(uow(), order_id), _("Done: %(action)s", action=_(action)),
                   url_for("web.receiving"))


def _receive_transfer(order_id: int) -> ResponseReturnValue:
    """What arrived of each parcel, and what did not arrive whole with why; a form without parcels (or the
    API's way) takes in everything outstanding."""
    form = request.form
    parcel_ids = sorted(int(key.split("-", 1)[1]) for key in form if key.startswith("arrived-")
                        and key.split("-", 1)[1].isdigit())
    try:
        arrived = {pid: int(form.get(f"arrived-{pid}") or 0) for pid in parcel_ids}
        losses = [procurement.TransitLoss(pid, int(form[f"lost-{pid}"]), form.get(f"reason-{pid}", ""),
                                          form.get(f"note-{pid}", "").strip())
                  for pid in parcel_ids if (form.get(f"lost-{pid}") or "0").strip() not in ("", "0")]
        procurement.receive_transfer(uow(), order_id, arrived or None, losses)
    except (DomainError, ValueError) as error:
        return _typed_page(_receiving_page, error)
    flash(_("Transfer received") if not losses else _("Transfer received; %(units)s units declared lost",
                                                       units=sum(loss.units for loss in losses)), "ok")
    return redirect(url_for("web.receiving"))


def _printed(codes: list[str]) -> tuple[str, date] | None:
    """The lot and expiry the scanned GS1 codes print, to fill in what was left blank."""
    read = []
    for code in codes:
        try:
            read.append(read_trace_code(code))
        except ValidationFailed:
            continue  # the service says why, naming it
    return lot_and_expiry(read)


@web.route("/purchase-orders/<id:order_id>/receive", methods=["POST"])
@roles(Role.PHARMACIST)
def receive_order(order_id: int) -> ResponseReturnValue:
    form = request.form

    def lines() -> list[procurement.ReceiptLine]:
        found = []
        for key in form:
            if key.startswith("qty-") and form[key].strip() and int(form[key]) > 0:
                drug_id = int(key.split("-")[1])
                codes = [c.strip() for c in form.get(f"codes-{drug_id}", "").splitlines() if c.strip()]
                lot, expiry = form.get(f"lot-{drug_id}", "").strip(), form.get(f"expiry-{drug_id}", "").strip()
                printed = _printed(codes) if codes and not (lot and expiry) else None
                found.append(procurement.ReceiptLine(
                    drug_id, lot or (printed[0] if printed else ""),
                    date.fromisoformat(expiry) if expiry else printed[1] if printed else date.fromisoformat(expiry),
                    int(form[key]), trace_codes=codes))
        return found

    try:
        procurement.receive_purchase_order(uow(), order_id, me().site_id, lines())  # type: ignore[arg-type]
    except (DomainError, ValueError) as error:
        return _typed_page(_receiving_page, error)
    flash(_("Delivery received"), "ok")
    return redirect(url_for("web.receiving"))


# Stock --------------------------------------------------------------------------------------------------

def _stock_context(q: str) -> dict[str, Any]:
    site_id = me().site_id
    lots = list_lots(uow(), ALL, site_id=site_id, q=q or None).items
    positions = {p.drug_id: p for p in procurement.inventory_position(uow(), ALL, site_id=site_id).items}
    drug_ids = {lot.drug_id for lot in lots} | (set() if q else set(positions))
    by_drug: dict[int, list[Any]] = {drug_id: [] for drug_id in drug_ids}
    for lot in lots:
        by_drug[lot.drug_id].append(lot)
    drugs = _drug_names(drug_ids)
    groups = sorted(((drugs[d], positions.get(d), by_drug[d]) for d in drug_ids), key=lambda g: g[0].code)
    return {"groups": groups, "q": q, "today": uow().today(), "near_days": current_app.config["NEAR_EXPIRY_DAYS"]}


@web.route("/stock")
@roles(Role.PHARMACIST)
def stock() -> ResponseReturnValue:
    return render_template("stock.html", **_stock_context((request.args.get("q") or "").strip()))


def _lot_page(lot_id: int, typed: Mapping[str, Any] | None = None) -> str:
    card = lot_card(uow(), lot_id)
    return render_template("lot.html", card=card, lot=card.lot, drug=_drug_names([card.lot.drug_id])[card.lot.drug_id],
                           today=uow().today(), near_days=current_app.config["NEAR_EXPIRY_DAYS"],
                           reasons=WRITE_OFF_REASONS, typed=typed or {})


@web.route("/stock/lots/<id:lot_id>")
@roles(Role.PHARMACIST)
def stock_lot(lot_id: int) -> ResponseReturnValue:
    return _lot_page(lot_id)


@web.route("/stock/lots/<id:lot_id>/write-off", methods=["POST"])
@roles(Role.PHARMACIST)
def stock_write_off(lot_id: int) -> ResponseReturnValue:
    form = request.form
    try:
        write_off(uow(), lot_id, int(form.get("quantity") or 0), form.get("reason_code", ""), form.get("note", ""))
    except (DomainError, ValueError) as error:
        return _typed_page(lambda typed: _lot_page(lot_id, typed), error)
    flash(_("Written off"), "ok")
    return redirect(url_for("web.stock_lot", lot_id=lot_id))


def _receive_page(typed: Mapping[str, Any] | None = None) -> str:
    drugs = search_drugs(uow(), ALL, active=True).items
    return render_template("receive.html", drugs=drugs, reasons=list(OUTSIDE_ORDER_RECEIPTS), typed=typed or {})


@web.route("/stock/receive", methods=["GET", "POST"])
@roles(Role.PHARMACIST)
def stock_receive() -> ResponseReturnValue:
    """Stock that comes in outside any order: a donation, a central allocation, a patient's return."""
    if request.method == "GET":
        return _receive_page()
    form = request.form
    try:
        drug = resolve_code(uow(), (form.get("drug") or "").split(" ")[0].strip())
        codes = [c.strip() for c in form.get("codes", "").splitlines() if c.strip()]
        lot, expiry = form.get("lot_number", "").strip(), form.get("expiry_date", "").strip()
        printed = _printed(codes) if codes and not (lot and expiry) else None
        receive_outside_order(uow(), me().site_id, drug.id, lot or (printed[0] if printed else ""),  # type: ignore[arg-type]
                              date.fromisoformat(expiry) if expiry or not printed else printed[1],
                              int(form.get("quantity") or 0), form.get("reason_code", ""), note=form.get("note", ""),
                              trace_codes=codes)
    except (DomainError, ValueError) as error:
        return _typed_page(_receive_page, error)
    flash(_("Received: %(drug)s lot %(lot)s", drug=f"{drug.code} {drug.generic_name}",
            lot=lot or (printed[0] if printed else "")), "ok")
    return redirect(url_for("web.stock", q=drug.code))


@web.route("/stocktake", methods=["GET", "POST"])
@roles(Role.PHARMACIST)
def stocktake() -> ResponseReturnValue:
    """The count sheet: each lot with the quantity on record as it was when the sheet was opened (hidden in a blind
    count), so that what moves while it is out is kept. A refused count comes back as it was typed."""
    form = request.form
    blind = (form.get("blind") or request.args.get("blind")) == "1"
    refused = releasable = False
    if request.method == "POST":
        try:
            lines = [_count_line(form, key) for key, value in form.items()
                     if key.startswith("count-") and value.strip()]
            record_stocktake(uow(), me().site_id, lines, form.get("note", ""),  # type: ignore[arg-type]
                             release_excess=form.get("release_excess") == "1")
        except DomainError as error:
            refused = True
            releasable = isinstance(error.errors, list) and any(
                isinstance(problem, dict) and problem.get("release") for problem in error.errors)
            flash(refusal(error), "error")
        except ValueError:
            refused = True
            flash(_(UNREADABLE), "error")
        else:
            flash(_("Stocktake recorded"), "ok")
            return redirect(url_for("web.stock"))
    lots = list_lots(uow(), ALL, site_id=me().site_id).items
    return render_template("stocktake.html", lots=lots, drugs=_drug_names(lot.drug_id for lot in lots), blind=blind,
                           typed=form if refused else {}, releasable=releasable), 422 if refused else 200


def _count_line(form: Any, key: str) -> CountLine:
    """A counted lot of the count sheet, against the book quantity the sheet was made with (if it carries one)."""
    lot_id = key.split("-")[1]
    book = form.get(f"book-{lot_id}", "").strip()
    return CountLine(int(form[key]), lot_id=int(lot_id), book=int(book) if book else None)


# Alerts -------------------------------------------------------------------------------------------------

@web.route("/alerts")
@roles(Role.PHARMACIST)
def alerts() -> ResponseReturnValue:
    tab = request.args.get("tab") or "open"
    kind = request.args.get("kind") or None
    listed = procurement.list_alerts(uow(), PageRequest(1, 200), kind=kind, open=tab != "acknowledged").items
    counts = procurement.open_alert_counts(uow())
    lots = {lot.id: lot for lot in list_lots(uow(), ALL, site_id=me().site_id, include_empty=True).items}
    # A plan's alerts say why in the page's language, from the reasons they keep.
    reasons = {a.id: facts["reasons"] for a in listed if (facts := (a.facts or {}).get("facts") or {}).get("reasons")}
    names = reason_names(uow(), reasons.values())
    whys = {alert_id: say_reasons(said, names) for alert_id, said in reasons.items()}
    return render_template("alerts.html", alerts=listed, tab=tab, kind=kind or "", counts=counts, lots=lots,
                           whys=whys,
                           drugs=_drug_names(a.drug_id for a in listed), today=uow().today())


@web.route("/alerts/<id:alert_id>/acknowledge", methods=["POST"])
@roles(Role.PHARMACIST)
def alert_acknowledge(alert_id: int) -> ResponseReturnValue:
    return attempt(lambda: procurement.acknowledge_alert(uow(), alert_id), _("Acknowledged"), url_for("web.alerts"))
