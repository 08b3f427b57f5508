"""The procurement officer's plan pages: plan runs, and each plan summary first, then its lines by kind, filtered
by site, drug and supplier, paged, exported, and edited in place."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from pharmacy.catalog.queries import drugs_by_code
from pharmacy.errors import DomainError
from pharmacy.pagination import PageRequest
from pharmacy.principal import Role
from pharmacy.procurement import plan_runs
from pharmacy.procurement.queries import PlanLineFilter, ReasonNames, plan_choices, plan_line_page, reason_names
from pharmacy.web import exports
from pharmacy.web.desk import page_of, pages, whole
from pharmacy.web.plan_reasons import say_reasons
from pharmacy.web.routes import me, roles, uow, web
from pharmacy.web.words import N_, refusal

OFFICERS = (Role.PROCUREMENT, Role.ADMIN)
FINISHED = ("succeeded", "approved")
UNDONE_SHOWN = 50  # of each kind, costliest first: a province plan may leave thousands
KINDS = ("purchase", "transfer")
SORT_KEYS = ("drug", "site", "packs", "units", "cost")
web.add_app_template_global(say_reasons, "say_reasons")


@web.route("/plans", methods=["GET", "POST"])
@roles(*OFFICERS)
def plans() -> ResponseReturnValue:
    if request.method == "POST":
        if me().role is not Role.PROCUREMENT:
            abort(403)
        form = request.form
        try:
            budget = float(form["budget"]) if form.get("budget") else None
            run = plan_runs.start_plan_run(
                uow(), horizon_days=int(form.get("horizon_days") or 30), budget=budget,
                history_days=int(form.get("history_days") or 90), solver=form.get("solver") or "highs",
                on_queued=current_app.extensions["plan_runner"].submit)
        except DomainError as error:
            flash(refusal(error), "error")
            return redirect(url_for("web.plans"))
        except ValueError:  # a horizon, history or budget the form could not read: nothing was queued
            flash(_("Please enter whole numbers of days for the horizon and history, and a number for the budget."),
                  "error")
            return redirect(url_for("web.plans"))
        return redirect(url_for("web.plan", run_id=run.id))
    runs = plan_runs.list_plan_runs(uow(), PageRequest(1, 50)).items
    return render_template("plans.html", runs=runs)


def _filter(args: Mapping[str, str]) -> PlanLineFilter:
    kind = "transfer" if args.get("kind") == "transfer" else "purchase"
    sort = args.get("sort") or "-cost"
    if sort.lstrip("-") not in SORT_KEYS:
        sort = "-cost"
    return PlanLineFilter(kind, whole(args, "site_id"), whole(args, "drug_id"),
                          whole(args, "supplier_id") if kind == "purchase" else None, sort)


def _query(chosen: PlanLineFilter, **changes: Any) -> dict[str, Any]:
    """A filter as the query string that keeps it (what is not chosen is left out)."""
    values = {"kind": chosen.kind, "site_id": chosen.site_id, "drug_id": chosen.drug_id,
              "supplier_id": chosen.supplier_id, "sort": chosen.sort, **changes}
    return {k: v for k, v in values.items() if v is not None and v != ""}


def _lines_context(run: Any, args: Mapping[str, str]) -> dict[str, Any]:
    chosen = _filter(args)
    page = page_of(args)
    found = plan_line_page(uow(), run.id, chosen, page)
    if found.total and page.page > pages(found.total):  # an edit removed the last line of the last page
        page = PageRequest(pages(found.total), page.page_size)
        found = plan_line_page(uow(), run.id, chosen, page)
    return {"lines": found.items, "reason_names": reason_names(uow(), [line.reasons for line in found.items]),
            "total": found.total, "page": page.page, "page_count": pages(found.total),
            "chosen": chosen, "query": lambda **changes: _query(chosen, **changes),
            "choices": plan_choices(uow(), run.id), "editable": run.status == "succeeded"
            and me().role is Role.PROCUREMENT}


def _undone(run_id: int) -> dict[str, Any]:
    """What the plan leaves undone, costliest first, with the names of its drugs and sites."""
    undone = plan_runs.plan_undone(uow(), run_id)
    drugs = drugs_by_code(uow(), [u.drug for u in undone])
    shortages, waste = [u for u in undone if u.kind == "shortage"], [u for u in undone if u.kind == "waste"]
    names = reason_names(uow(), [u.reasons for u in shortages[:UNDONE_SHOWN] + waste[:UNDONE_SHOWN]])
    return {"shortages": shortages, "waste": waste,
            "undone_drugs": {code: f"{code} {d.generic_name}" for code, d in drugs.items()},
            "undone_sites": names.sites, "undone_shown": UNDONE_SHOWN, "undone_names": names}


@web.route("/plans/<id:run_id>")
@roles(*OFFICERS)
def plan(run_id: int) -> ResponseReturnValue:
    run = plan_runs.get_plan_run(uow(), run_id)
    if run.status not in FINISHED:
        return render_template("plan.html", run=run)
    return render_template("plan.html", run=run, **_lines_context(run, request.args), **_undone(run_id))


@web.route("/plans/<id:run_id>/progress")
@roles(*OFFICERS)
def plan_progress(run_id: int) -> ResponseReturnValue:
    run = plan_runs.get_plan_run(uow(), run_id)
    response = current_app.make_response(render_template("_plan_progress.html", run=run))
    if run.status not in ("queued", "running"):
        response.headers["HX-Refresh"] = "true"  # finished: show the whole plan
    return response


@web.route("/plans/<id:run_id>/lines")
@roles(*OFFICERS)
def plan_lines_table(run_id: int) -> ResponseReturnValue:
    """The lines alone, for htmx: a tab, a filter, a sort or a page swaps them in place, and the address bar
    shows the whole plan page so chosen (a reload or a bookmark of it gets the page, never the fragment)."""
    args: dict[str, Any] = {k: v for k, v in request.args.to_dict().items() if k != "run_id"}
    shown = url_for("web.plan", run_id=run_id, **args)
    if request.headers.get("HX-Request") != "true":
        return redirect(shown)
    run = plan_runs.get_plan_run(uow(), run_id)
    if run.status not in FINISHED:
        abort(404)
    response = current_app.make_response(render_template("_plan_lines.html", run=run,
                                                         **_lines_context(run, request.args)))
    response.headers["HX-Push-Url"] = shown
    return response


LINE_HEADERS = {
    "purchase": (N_("Drug code"), N_("Drug"), N_("Site"), N_("Supplier"), N_("Packs"), N_("Units"),
                 N_("Price per pack (yuan)"), N_("Cost (yuan)"), N_("Why"), N_("Edited")),
    "transfer": (N_("Drug code"), N_("Drug"), N_("Lot"), N_("Sending site"), N_("Receiving site"), N_("Units"),
                 N_("Cost (yuan)"), N_("Why"), N_("Edited")),
}


def line_cells(line: Any, names: ReasonNames) -> list[Any]:
    """A plan line as the cells of its row, in the order of :data:`LINE_HEADERS`, its reasons in the page's
    language."""
    edited = _("edited") if line.edited else ""
    why = say_reasons(line.reasons, names, line.why)
    if line.kind == "purchase":
        return [line.drug_code, line.drug_name, line.site, line.supplier, line.packs, line.units,
                line.price_per_pack, line.cost, why, edited]
    return [line.drug_code, line.drug_name, line.lot_number, line.from_site, line.site, line.units, line.cost,
            why, edited]


@web.route("/plans/<id:run_id>/lines.<any(csv, xlsx):fmt>")
@roles(*OFFICERS)
def plan_lines_export(run_id: int, fmt: str) -> ResponseReturnValue:
    """Every line of the kind and filter chosen (not only the page shown), as CSV or Excel."""
    run = plan_runs.get_plan_run(uow(), run_id)
    if run.status not in FINISHED:
        abort(404)
    chosen = _filter(request.args)
    found = plan_line_page(uow(), run_id, chosen, None)
    names = reason_names(uow(), [line.reasons for line in found.items])
    sheet = exports.Sheet(f"plan-{run_id}-{chosen.kind}s", [_(h) for h in LINE_HEADERS[chosen.kind]],
                          [line_cells(line, names) for line in found.items])
    return exports.send(sheet, fmt)


def _edited_in_place(run_id: int, action: Any, success: str) -> ResponseReturnValue:
    """Run an edit of the plan; to htmx the lines come back in place (as filtered, sorted and paged) with what
    happened and the summary re-costed; without it the page is shown again."""
    kept = {name.removeprefix("keep."): value for name, value in request.form.items()
            if name.startswith("keep.") and value}  # the list as it was shown: kind, filters, sort, page
    try:
        action()
    except DomainError as error:
        message, kind = refusal(error), "error"
    except ValueError:
        message, kind = _("Please enter a whole number of packs or units."), "error"
    else:
        message, kind = success, "ok"
    if request.headers.get("HX-Request") != "true":
        flash(message, kind)
        shown: dict[str, Any] = {k: v for k, v in kept.items()
                                 if k in ("kind", "site_id", "drug_id", "supplier_id", "sort", "page")}
        return redirect(url_for("web.plan", run_id=run_id, **shown))
    run = plan_runs.get_plan_run(uow(), run_id)
    return render_template("_plan_lines.html", run=run, **_lines_context(run, kept), message=(kind, message),
                           summary_again=True)


@web.route("/plans/<id:run_id>/edit", methods=["POST"])
@roles(Role.PROCUREMENT)
def plan_edit(run_id: int) -> ResponseReturnValue:
    form = request.form

    def edit() -> Any:
        if form.get("lot_id"):
            return plan_runs.edit_plan(uow(), run_id, transfers=[plan_runs.TransferEdit(
                int(form["lot_id"]), int(form.get("site_id", "")), int(form.get("units") or 0))])
        return plan_runs.edit_plan(uow(), run_id, [plan_runs.PurchaseEdit(
            int(form.get("offer_id", "")), int(form.get("site_id", "")), int(form.get("packs") or 0))])

    return _edited_in_place(run_id, edit, _("Plan re-costed"))


@web.route("/plans/<id:run_id>/approve", methods=["POST"])
@roles(Role.PROCUREMENT)
def plan_approve(run_id: int) -> ResponseReturnValue:
    try:
        approval = plan_runs.approve_plan(uow(), run_id)
    except DomainError as error:
        flash(refusal(error), "error")
    else:
        flash(_("Plan approved: %(purchases)s purchase orders and %(transfers)s transfer orders created",
                purchases=len(approval.purchase_orders), transfers=len(approval.transfer_orders)), "ok")
    return redirect(url_for("web.plan", run_id=run_id))


@web.route("/plans/<id:run_id>/cancel", methods=["POST"])
@roles(Role.PROCUREMENT)
def plan_cancel(run_id: int) -> ResponseReturnValue:
    try:
        plan_runs.cancel_plan_run(uow(), run_id, request.form.get("note", ""))
    except DomainError as error:
        flash(refusal(error), "error")
    else:
        flash(_("Plan run cancelled"), "ok")
    return redirect(url_for("web.plan", run_id=run_id))
