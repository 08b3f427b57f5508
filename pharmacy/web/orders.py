"""The procurement officer's orders, suppliers and offers, and the consortium's stock: purchase and transfer
orders followed to delivery (lines, receipts, what is outstanding and late, a printable purchase order),
suppliers and offers kept on pages beside their CSV import, and exports of each working list."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from flask import current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from pharmacy.catalog.queries import drugs_by_id
from pharmacy.catalog.services import search_drugs
from pharmacy.consortium.queries import sites_by_id
from pharmacy.errors import DomainError, Message
from pharmacy.hygiene import flaw
from pharmacy.pagination import PageRequest
from pharmacy.principal import Role
from pharmacy.procurement import services as procurement
from pharmacy.procurement.domain import TRANSFER_ACTIONS
from pharmacy.procurement.queries import (
    OrderFilter,
    order_rows,
    purchase_order_view,
    stock_rows,
    transfer_order_view,
)
from pharmacy.procurement.schemas import OfferFormSchema, SupplierFormSchema
from pharmacy.web import exports
from pharmacy.web.desk import beijing, done, form_values, page_of, pages, who, whole
from pharmacy.web.routes import me, roles, uow, web
from pharmacy.web.words import MOST_REASONS_SHOWN, N_, say

OFFICERS = (Role.PROCUREMENT, Role.ADMIN)
EVERYTHING = PageRequest(1, 100_000)
PURCHASE_STATUSES = ("open", "partially_received", "received", "cancelled")
TRANSFER_STATUSES = ("awaiting_stock", "requested", "shipped", "partially_received", "received", "cancelled")


# Orders -------------------------------------------------------------------------------------------------

def _order_filter(args: Mapping[str, str]) -> OrderFilter:
    kind = "transfer" if args.get("kind") == "transfer" else "purchase"
    statuses = PURCHASE_STATUSES if kind == "purchase" else TRANSFER_STATUSES
    status = args.get("status") if args.get("status") in statuses else None
    return OrderFilter(kind, status, whole(args, "supplier_id") if kind == "purchase" else None,
                       whole(args, "site_id"), args.get("late") == "1", whole(args, "run_id"))


def _order_query(chosen: OrderFilter) -> dict[str, Any]:
    values = {"kind": chosen.kind, "status": chosen.status, "supplier_id": chosen.supplier_id,
              "site_id": chosen.site_id, "late": "1" if chosen.late else None, "run_id": chosen.run_id}
    return {k: v for k, v in values.items() if v is not None}


ORDER_HEADERS = (N_("Number"), N_("Status"), N_("From"), N_("To"), N_("Created"), N_("By"), N_("Lines"), N_("Units"),
                 N_("Outstanding"), N_("Expected"), N_("Late"), N_("Total (yuan)"))


def order_cells(row: Any) -> list[Any]:
    return [row.number, _(row.status), row.party, row.to, beijing(row.created_at), who(row.created_by), row.lines,
            row.units, row.outstanding, row.expected_on, _("late") if row.late else "", row.total]


@web.route("/orders")
@roles(*OFFICERS)
def orders() -> ResponseReturnValue:
    chosen = _order_filter(request.args)
    page = page_of(request.args)
    found = order_rows(uow(), chosen, page)
    suppliers = procurement.list_suppliers(uow(), EVERYTHING).items
    sites = sites_by_id(uow())
    return render_template("orders.html", rows=found.items, total=found.total, page=page.page,
                           page_count=pages(found.total), chosen=chosen, query=_order_query(chosen),
                           statuses=PURCHASE_STATUSES if chosen.kind == "purchase" else TRANSFER_STATUSES,
                           suppliers=[(s.id, s.name) for s in suppliers],
                           sites=[(s.id, s.name) for s in sites.values()])


@web.route("/orders.<any(csv, xlsx):fmt>")
@roles(*OFFICERS)
def orders_export(fmt: str) -> ResponseReturnValue:
    chosen = _order_filter(request.args)
    found = order_rows(uow(), chosen, None)
    name = "purchase-orders" if chosen.kind == "purchase" else "transfer-orders"
    return exports.send(exports.Sheet(name, [_(h) for h in ORDER_HEADERS], [order_cells(r) for r in found.items]),
                        fmt)


@web.route("/orders/purchase/<id:order_id>")
@roles(*OFFICERS)
def purchase_order(order_id: int) -> ResponseReturnValue:
    view = purchase_order_view(uow(), order_id)
    return render_template("purchase_order.html", view=view, today=uow().today(),
                           sites=sorted({(line.line.site_id, line.site) for line in view.lines if line.outstanding}))


@web.route("/orders/purchase/<id:order_id>/print")
@roles(*OFFICERS)
def purchase_order_print(order_id: int) -> ResponseReturnValue:
    view = purchase_order_view(uow(), order_id)
    sites = sites_by_id(uow())
    return render_template("purchase_order_print.html", view=view, today=uow().today(),
                           sites={line.line.site_id: sites[line.line.site_id] for line in view.lines})


@web.route("/orders/purchase/<id:order_id>/promise", methods=["POST"])
@roles(Role.PROCUREMENT)
def purchase_order_promise(order_id: int) -> ResponseReturnValue:
    form = request.form
    here = url_for("web.purchase_order", order_id=order_id)

    def promise() -> Any:
        try:
            day = date.fromisoformat(form.get("expected_on", ""))
        except ValueError:
            from pharmacy.errors import ValidationFailed

            raise ValidationFailed(Message("give the promised day as YYYY-MM-DD"), {"expected_on": ""}) from None
        return procurement.promise_delivery(uow(), order_id, day, whole(form, "site_id"))

    return done(promise, _("Promised day recorded"), here)


@web.route("/orders/purchase/<id:order_id>/cancel", methods=["POST"])
@roles(Role.PROCUREMENT)
def purchase_order_cancel(order_id: int) -> ResponseReturnValue:
    return done(lambda: procurement.cancel_purchase_order(uow(), order_id, request.form.get("note", "")),
                 _("Purchase order cancelled"), url_for("web.purchase_order", order_id=order_id))


@web.route("/orders/transfer/<id:order_id>")
@roles(*OFFICERS)
def transfer_order(order_id: int) -> ResponseReturnValue:
    return render_template("transfer_order.html", view=transfer_order_view(uow(), order_id), can=TRANSFER_ACTIONS)


@web.route("/orders/transfer/<id:order_id>/cancel", methods=["POST"])
@roles(Role.PROCUREMENT)
def transfer_order_cancel(order_id: int) -> ResponseReturnValue:
    def cancel() -> Any:
        note = request.form.get("note", "")
        if not note.strip():
            from pharmacy.errors import ValidationFailed

            raise ValidationFailed(Message("say why the order is cancelled"), {"note": note})
        return procurement.cancel_transfer(uow(), order_id, note)

    return done(cancel, _("Transfer order cancelled"), url_for("web.transfer_order", order_id=order_id))


# Stock across the consortium ----------------------------------------------------------------------------

STOCK_HEADERS = (N_("Site"), N_("Drug code"), N_("Drug"), N_("On hand"), N_("Held"), N_("Available"), N_("On order"),
                 N_("In transit"), N_("Position"), N_("Near expiry"), N_("Expired"))


def stock_cells(row: Any) -> list[Any]:
    return [row.site, row.drug_code, row.drug_name, row.on_hand, row.held, row.available, row.on_order,
            row.in_transit, row.position, row.near_expiry, row.expired]


@web.route("/positions")
@roles(*OFFICERS)
def positions() -> ResponseReturnValue:
    site_id, drug_id = whole(request.args, "site_id"), whole(request.args, "drug_id")
    page = page_of(request.args)
    found = stock_rows(uow(), site_id=site_id, drug_id=drug_id,
                       near_expiry_days=current_app.config["NEAR_EXPIRY_DAYS"], page=page)
    sites = sites_by_id(uow())
    drugs = search_drugs(uow(), EVERYTHING, active=True).items
    query = {k: v for k, v in (("site_id", site_id), ("drug_id", drug_id)) if v}
    return render_template("positions.html", rows=found.items, total=found.total, page=page.page,
                           page_count=pages(found.total), query=query, site_id=site_id, drug_id=drug_id,
                           sites=[(s.id, s.name) for s in sites.values() if s.dispenses],
                           drugs=[(d.id, f"{d.code} {d.generic_name}") for d in drugs])


@web.route("/positions.<any(csv, xlsx):fmt>")
@roles(Role.PROCUREMENT, Role.ADMIN, Role.PHARMACIST)
def positions_export(fmt: str) -> ResponseReturnValue:
    """Where stock stands, as CSV or Excel: the consortium's for officers, the own site's for a pharmacist."""
    found = stock_rows(uow(), site_id=whole(request.args, "site_id"), drug_id=whole(request.args, "drug_id"),
                       near_expiry_days=current_app.config["NEAR_EXPIRY_DAYS"])
    return exports.send(exports.Sheet("stock", [_(h) for h in STOCK_HEADERS], [stock_cells(r) for r in found.items]),
                        fmt)


# Suppliers and offers -----------------------------------------------------------------------------------

@web.route("/suppliers")
@roles(*OFFICERS)
def suppliers() -> ResponseReturnValue:
    listed = procurement.list_suppliers(uow(), EVERYTHING).items
    show = request.args.get("offers") or "current"
    show = show if show in ("all", "retired") else "current"
    supplier_id = whole(request.args, "supplier_id")
    offers = procurement.list_offers(uow(), EVERYTHING, supplier_id=supplier_id,
                                     valid_on=uow().today() if show == "current" else None,
                                     active={"current": True, "retired": False}.get(show)).items
    drugs = drugs_by_id(uow(), [o.drug_id for o in offers])
    editing = procurement.get_offer(uow(), whole(request.args, "edit") or 0) if whole(request.args, "edit") else None
    catalog = search_drugs(uow(), EVERYTHING, active=True).items
    return render_template("suppliers.html", suppliers=listed, offers=offers, drugs=drugs, show=show,
                           supplier_id=supplier_id, names={s.id: s.name for s in listed}, editing=editing,
                           catalog=[(d.id, f"{d.code} {d.generic_name}") for d in catalog],
                           sites={s.id: s.code for s in sites_by_id(uow()).values()}, today=uow().today(),
                           can_edit=me().role is Role.PROCUREMENT or me().role is Role.ADMIN)


def _back_to_suppliers() -> str:
    return url_for("web.suppliers")


@web.route("/suppliers/new", methods=["POST"])
@roles(*OFFICERS)
def supplier_create() -> ResponseReturnValue:
    def create() -> Any:
        values = form_values(SupplierFormSchema(), request.form)
        return procurement.create_supplier(uow(), values["code"], values["name"])

    return done(create, _("Supplier registered"), _back_to_suppliers())


@web.route("/suppliers/<id:supplier_id>", methods=["POST"])
@roles(*OFFICERS)
def supplier_update(supplier_id: int) -> ResponseReturnValue:
    form = request.form
    changes: dict[str, Any] = {}
    if "active" in form:
        changes["active"] = form["active"] == "1"
    if form.get("name", "").strip():
        changes["name"] = form["name"].strip()[:200]
    said = (_("Supplier retired") if changes.get("active") is False else
            _("Supplier taken up again") if changes.get("active") else _("Supplier renamed"))
    return done(lambda: procurement.update_supplier(uow(), supplier_id, changes), said, _back_to_suppliers())


def _offer_data() -> dict[str, Any]:
    values = form_values(OfferFormSchema(), request.form)
    values["delivery_costs"] = values.get("delivery_costs") or {}
    return values


@web.route("/offers/new", methods=["POST"])
@roles(*OFFICERS)
def offer_create() -> ResponseReturnValue:
    return done(lambda: procurement.create_offer(uow(), _offer_data()), _("Offer recorded"), _back_to_suppliers())


@web.route("/offers/<id:offer_id>", methods=["POST"])
@roles(*OFFICERS)
def offer_update(offer_id: int) -> ResponseReturnValue:
    if "active" in request.form:
        active = request.form["active"] == "1"
        return done(lambda: procurement.retire_offer(uow(), offer_id, active),
                     _("Offer taken up again") if active else _("Offer retired"), _back_to_suppliers())
    return done(lambda: procurement.update_offer(uow(), offer_id, _offer_data()), _("Offer changed"),
                 _back_to_suppliers())


@web.route("/suppliers/import", methods=["POST"])
@roles(*OFFICERS)
def offers_import() -> ResponseReturnValue:
    upload = request.files.get("file")
    raw = upload.read() if upload else b""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        flash(_("The file is not UTF-8 text: save the CSV as UTF-8 and import it again. Nothing was imported."),
              "error")
        return redirect(_back_to_suppliers(), 303)
    if not text.strip() or flaw(text):
        flash(_("The file is empty or holds characters no CSV may (a NUL). Nothing was imported."), "error")
        return redirect(_back_to_suppliers(), 303)
    try:
        result = procurement.import_offers_csv(uow(), text)
    except DomainError as error:
        problems = error.errors if isinstance(error.errors, list) else []
        flash(say(error.message) + "".join(
            " · " + _("line %(line)s, %(column)s: %(reason)s", line=p.get("line"), column=p.get("column") or "—",
                      reason=say(p.get("reason"))) for p in problems[:MOST_REASONS_SHOWN]), "error")
    else:
        flash(_("Offers imported: %(created)s new, %(updated)s changed, %(unchanged)s unchanged", **result), "ok")
    return redirect(_back_to_suppliers(), 303)


OFFER_TEMPLATE_EXAMPLE = ["HDYY", "华东医药股份有限公司", "AML5", "28", "0:31.50;60:28.98", "1", "", "0", "0.3",
                          "", "2026-11-01", "2027-10-31"]


@web.route("/suppliers/offers-template.csv")
@roles(*OFFICERS)
def offers_template() -> ResponseReturnValue:
    """The offers CSV's columns, with one example row to overwrite."""
    return exports.send(exports.Sheet("offers-template", procurement.OFFER_CSV_COLUMNS, [OFFER_TEMPLATE_EXAMPLE]),
                        "csv")


@web.route("/suppliers/offers.<any(csv, xlsx):fmt>")
@roles(*OFFICERS)
def offers_export(fmt: str) -> ResponseReturnValue:
    """The offers as the import reads them, so an export edited and imported again changes what was edited."""
    offers = procurement.list_offers(uow(), EVERYTHING, active=True).items
    suppliers = {s.id: s for s in procurement.list_suppliers(uow(), EVERYTHING).items}
    drugs = drugs_by_id(uow(), [o.drug_id for o in offers])
    sites = {s.id: s.code for s in sites_by_id(uow()).values()}
    rows = [[suppliers[o.supplier_id].code, suppliers[o.supplier_id].name, drugs[o.drug_id].code, o.pack_size,
             ";".join(f"{t.min_packs}:{t.price_per_pack.normalize():f}" for t in o.tiers), o.lead_time_days,
             o.capacity_packs, o.order_cost, o.default_delivery_cost,
             ";".join(f"{sites[d.site_id]}:{d.cost_per_pack.normalize():f}" for d in o.site_delivery),
             o.valid_from, o.valid_until] for o in offers]
    return exports.send(exports.Sheet("offers", procurement.OFFER_CSV_COLUMNS, rows), fmt)


def offer_tiers_text(offer: Any) -> str:
    return ";".join(f"{t.min_packs}:{t.price_per_pack.normalize():f}" for t in offer.tiers)


def offer_costs_text(offer: Any, sites: Mapping[int, str]) -> str:
    return ";".join(f"{sites.get(d.site_id, d.site_id)}:{d.cost_per_pack.normalize():f}" for d in offer.site_delivery)


web.add_app_template_global(offer_tiers_text)
web.add_app_template_global(offer_costs_text)

