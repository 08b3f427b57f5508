"""The pages. Each view parses its form, calls a service (the same ones the API calls) and renders; no
business rule lives here. A refused action is shown on the page it came from, with the service's reason."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, timedelta
from functools import wraps
from typing import Any, TypeVar

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from sqlalchemy import select

from pharmacy.api import current_clock
from pharmacy.auth import user_principal, verify_user
from pharmacy.catalog.models import Drug
from pharmacy.consortium.models import Site
from pharmacy.dashboard.services import consortium_dashboard
from pharmacy.errors import DomainError, Forbidden, NotFound, Unauthorized
from pharmacy.inventory.domain import CauseType
from pharmacy.inventory.services import Cause, CountLine, LotChoice, held_for, list_lots, record_stocktake
from pharmacy.pagination import PageRequest
from pharmacy.prescriptions import services as rx_services
from pharmacy.prescriptions import webhooks
from pharmacy.prescriptions.domain import REJECT_REASONS, RETURN_REASONS, Status
from pharmacy.principal import Principal, Role
from pharmacy.procurement import plan_runs
from pharmacy.procurement import services as procurement
from pharmacy.procurement.domain import TRANSFER_ACTIONS
from pharmacy.unit_of_work import UnitOfWork
from pharmacy.web import LANGUAGES, csrf
from pharmacy.web.words import MOST_REASONS_SHOWN, refusal, say

web = Blueprint("web", __name__, template_folder="templates", static_folder="static",
                static_url_path="/static/web")

F = TypeVar("F", bound=Callable[..., Any])
PUBLIC_ENDPOINTS = {"web.login", "web.static", "web.language"}
ALL = PageRequest(1, 500)


def uow() -> UnitOfWork:
    return UnitOfWork(current_app.extensions["pharmacy_db"].session_factory, g.principal, current_clock())


def me() -> Principal:
    return g.principal


@web.before_request
def _signed_in() -> ResponseReturnValue | None:
    if request.method == "POST":
        csrf.protect()  # every form of the pages carries its token; a post without it is refused
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    user_id = session.get("user_id")
    if user_id is None:
        return redirect(url_for("web.login", next=request.path))
    from pharmacy.accounts.models import User

    with current_app.extensions["pharmacy_db"].session_factory() as db:
        user = db.get(User, user_id)
        if user is None or not user.active:
            session.clear()
            return redirect(url_for("web.login"))
        g.principal = user_principal(user)
        g.display_name = user.display_name or user.username
        site = db.get(Site, user.site_id) if user.site_id else None
        g.site_name = site.name if site else ""
    return None


def roles(*allowed: Role) -> Callable[[F], F]:
    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if me().role not in allowed:
                abort(403)
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def back(default: str) -> ResponseReturnValue:
    return redirect(request.form.get("back") or default)


def attempt(action: Callable[[], Any], success: str, default: str) -> ResponseReturnValue:
    """Run a service; say what happened; a refusal is shown with the service's own reason."""
    try:
        action()
    except DomainError as error:
        flash(refusal(error), "error")
        return back(default)
    except ValueError:  # a quantity or a date the form could not read: nothing was done
        flash(_("Please enter whole numbers for quantities and dates as YYYY-MM-DD."), "error")
        return back(default)
    flash(success, "ok")
    return back(default)


@web.errorhandler(CSRFError)
def _no_token(error: CSRFError) -> ResponseReturnValue:
    message = _("The form was refused: it did not carry a valid security token. Reload the page and try again.")
    return render_template("error.html", message=message, status=400), 400


@web.errorhandler(NotFound)
@web.errorhandler(Forbidden)
def _not_here(error: DomainError) -> ResponseReturnValue:
    status = 404 if isinstance(error, NotFound) else 403
    return render_template("error.html", message=say(error.message), status=status), status


@web.errorhandler(403)
def _forbidden_page(error: Any) -> ResponseReturnValue:
    return render_template("error.html", message=_("Your role may not open this page."), status=403), 403


# Signing in ---------------------------------------------------------------------------------------------

@web.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    if request.method == "POST":
        try:
            with current_app.extensions["pharmacy_db"].session_factory() as db:
                principal = verify_user(db, request.form.get("username", ""), request.form.get("password", ""))
        except Unauthorized:
            flash(_("Wrong username or password."), "error")
            return render_template("login.html"), 401
        session.clear()  # a new session on sign-in: no fixation
        session["user_id"] = principal.account_id
        session.permanent = False
        target = request.args.get("next") or ""
        return redirect(target if target.startswith("/") and not target.startswith("//") else url_for("web.home"))
    return render_template("login.html")


@web.route("/logout", methods=["POST"])
def logout() -> ResponseReturnValue:
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang
    return redirect(url_for("web.login"))


@web.route("/lang/<code>")
def language(code: str) -> ResponseReturnValue:
    if code in LANGUAGES:
        session["lang"] = code
    target = request.args.get("next") or "/"
    return redirect(target if target.startswith("/") and not target.startswith("//") else "/")


@web.route("/")
def home() -> ResponseReturnValue:
    role = me().role
    if role is Role.PHARMACIST:
        return redirect(url_for("web.worklist"))
    if role is Role.PROCUREMENT:
        return redirect(url_for("web.plans"))
    return redirect(url_for("web.dashboard"))


# Pharmacist ---------------------------------------------------------------------------------------------

WORKLIST_STATUSES = [s.value for s in (Status.ROUTED, Status.ACCEPTED, Status.PREPARED, Status.PARTIALLY_DISPENSED,
                                       Status.DISPENSED, Status.AWAITING_STOCK, Status.SCHEDULED)]


@web.route("/worklist")
@roles(Role.PHARMACIST)
def worklist() -> ResponseReturnValue:
    status = request.args.get("status") or Status.ROUTED.value
    counts = rx_services.worklist_counts(uow())
    page = rx_services.list_prescriptions(uow(), ALL, status=status)
    return render_template("worklist.html", counts=counts, statuses=WORKLIST_STATUSES, status=status,
                           prescriptions=page.items)


@web.route("/prescriptions/<id:rx_id>")
@roles(Role.PHARMACIST, Role.ADMIN)
def prescription(rx_id: int) -> ResponseReturnValue:
    view = rx_services.get_prescription(uow(), rx_id)
    rx = view.prescription
    held = held_for(uow(), Cause(CauseType.PRESCRIPTION, str(rx.id)))
    other_lots: dict[int, list[Any]] = {}
    if rx.pharmacy_site_id is not None:
        for item in view.items:
            other_lots[item.id] = list_lots(uow(), ALL, site_id=rx.pharmacy_site_id, drug_id=item.drug_id).items
    return render_template("prescription.html", view=view, rx=rx, held=held, other_lots=other_lots,
                           reject_reasons=sorted(REJECT_REASONS), return_reasons=sorted(RETURN_REASONS))


@web.route("/prescriptions/<id:rx_id>/<action>", methods=["POST"])
@roles(Role.PHARMACIST)
def prescription_action(rx_id: int, action: str) -> ResponseReturnValue:
    here = url_for("web.prescription", rx_id=rx_id)
    form = request.form
    actions: dict[str, Callable[[], Any]] = {
        "accept": lambda: rx_services.accept(uow(), rx_id),
        "reject": lambda: rx_services.reject(uow(), rx_id, form.get("reason_code", ""), form.get("note", "")),
        "return": lambda: rx_services.return_prescription(uow(), rx_id, form.get("reason_code", ""),
                                                          form.get("note", "")),
        "prepare": lambda: rx_services.prepare(uow(), rx_id),
        "dispense": lambda: rx_services.dispense(uow(), rx_id, _dispense_lines(rx_id)),
        "hand-over": lambda: rx_services.hand_over(uow(), rx_id),
    }
    if action not in actions:
        abort(404)
    return attempt(actions[action], _("Done: %(action)s", action=_(action)), here)


def _dispense_lines(rx_id: int) -> list[rx_services.DispenseLine]:
    """The dispense form: lots pre-filled first-expiry first-out; changed quantities go with a reason."""
    form = request.form
    lines = []
    for item_id in sorted({int(k.split("-")[1]) for k in form if k.startswith("lot-")}):
        chosen = tuple(LotChoice(int(k.split("-")[2]), int(v)) for k, v in form.items()
                       if k.startswith(f"lot-{item_id}-") and v.strip() and int(v) > 0)
        changed = form.get(f"changed-{item_id}") == "1"
        # Every lot left at 0 means none of this item now (never "all of it").
        lines.append(rx_services.DispenseLine(item_id, quantity=sum(c.quantity for c in chosen),
                                              lots=chosen if changed else (),
                                              lot_reason=form.get(f"reason-{item_id}", "")))
    return lines


@web.route("/receiving")
@roles(Role.PHARMACIST)
def receiving() -> ResponseReturnValue:
    site_id = me().site_id
    worklist = procurement.receiving_worklist(uow(), site_id)  # type: ignore[arg-type]
    details = {view.order.id: view for view in worklist.transfers}
    orders = worklist.deliveries
    return render_template("receiving.html", transfers=[view.order for view in worklist.transfers],
                           details=details, orders=orders, site_id=site_id, today=uow().today(),
                           can=TRANSFER_ACTIONS,
                           drugs=_drug_names([line.drug_id for d in details.values() for line in d.lines]
                                             + [line.drug_id for _, lines in orders for line in lines]))


@web.route("/transfers/<id:order_id>/<action>", methods=["POST"])
@roles(Role.PHARMACIST)
def transfer_action(order_id: int, action: str) -> ResponseReturnValue:
    actions: dict[str, Callable[[], Any]] = {
        "ship": lambda: procurement.ship_transfer(uow(), order_id),
        "receive": lambda: procurement.receive_transfer(uow(), order_id),
    }
    if action not in actions:
        abort(404)
    return attempt(actions[action], _("Done: %(action)s", action=_(action)), url_for("web.receiving"))


@web.route("/purchase-orders/<id:order_id>/receive", methods=["POST"])
@roles(Role.PHARMACIST)
def receive_order(order_id: int) -> ResponseReturnValue:
    form = request.form

    def lines() -> list[procurement.ReceiptLine]:
        found = []
        for key in form:
            if key.startswith("qty-") and form[key].strip() and int(form[key]) > 0:
                drug_id = int(key.split("-")[1])
                found.append(procurement.ReceiptLine(drug_id, form.get(f"lot-{drug_id}", "").strip(),
                                                     date.fromisoformat(form.get(f"expiry-{drug_id}", "")),
                                                     int(form[key])))
        return found

    return attempt(lambda: procurement.receive_purchase_order(uow(), order_id, me().site_id, lines()),  # type: ignore[arg-type]
                   _("Delivery received"), url_for("web.receiving"))


@web.route("/stock")
@roles(Role.PHARMACIST)
def stock() -> ResponseReturnValue:
    lots = list_lots(uow(), ALL, site_id=me().site_id).items
    near = uow().today() + timedelta(days=current_app.config["NEAR_EXPIRY_DAYS"])
    return render_template("stock.html", lots=lots, near=near, today=uow().today(),
                           drugs=_drug_names(lot.drug_id for lot in lots))


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
            flash(_("Please enter whole numbers for quantities and dates as YYYY-MM-DD."), "error")
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


def _drug_names(ids: Iterable[int]) -> dict[int, Drug]:
    """The drugs a page names, by id (a page never needs the whole catalog)."""
    with uow() as work:
        return {d.id: d for d in work.session.scalars(select(Drug).where(Drug.id.in_(sorted(set(ids)))))}


# Procurement officer ------------------------------------------------------------------------------------

OFFICERS = (Role.PROCUREMENT, Role.ADMIN)


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


UNDONE_SHOWN = 50  # of each kind, costliest first: a province plan may leave thousands


@web.route("/plans/<id:run_id>")
@roles(*OFFICERS)
def plan(run_id: int) -> ResponseReturnValue:
    run = plan_runs.get_plan_run(uow(), run_id)
    # What the plan leaves undone is shown once, below the lines; re-sorting the lines does not read it again.
    undone = plan_runs.plan_undone(uow(), run_id) if run.status in ("succeeded", "approved") else []
    return render_template("plan.html", run=run, **_plan_tables(run_id, run), undone_shown=UNDONE_SHOWN,
                           shortages=[u for u in undone if u.kind == "shortage"],
                           waste=[u for u in undone if u.kind == "waste"])


@web.route("/plans/<id:run_id>/progress")
@roles(*OFFICERS)
def plan_progress(run_id: int) -> ResponseReturnValue:
    run = plan_runs.get_plan_run(uow(), run_id)
    response = current_app.make_response(render_template("_plan_progress.html", run=run))
    if run.status not in ("queued", "running"):
        response.headers["HX-Refresh"] = "true"  # finished: show the whole plan
    return response


SORTS = {"drug": lambda line, names: names[line.drug_id].code, "site": lambda line, names: line.site_id,
         "packs": lambda line, names: line.packs or 0, "units": lambda line, names: line.units,
         "cost": lambda line, names: line.cost}


def _plan_tables(run_id: int, run: Any) -> dict[str, Any]:
    if run.status not in ("succeeded", "approved"):
        return {"purchases": [], "transfers": [], "drugs": {}, "sites": {}, "sort": "cost"}
    sort = request.args.get("sort", "cost")
    key = SORTS.get(sort.lstrip("-"), SORTS["cost"])
    lines = plan_runs.plan_lines(uow(), run_id)
    drugs = _drug_names(line.drug_id for line in lines)
    with uow() as work:
        sites = {s.id: s.code for s in work.session.scalars(select(Site))}
        suppliers = {s.id: s.name for s in work.session.scalars(select(procurement.Supplier))}
    ordered = sorted(lines, key=lambda line: key(line, drugs), reverse=sort.startswith("-") or sort == "cost")
    return {"purchases": [x for x in ordered if x.kind == "purchase"],
            "transfers": [x for x in ordered if x.kind == "transfer"], "drugs": drugs, "sites": sites,
            "suppliers": suppliers, "sort": sort}


@web.route("/plans/<id:run_id>/lines")
@roles(*OFFICERS)
def plan_lines_table(run_id: int) -> ResponseReturnValue:
    run = plan_runs.get_plan_run(uow(), run_id)
    return render_template("_plan_lines.html", run=run, **_plan_tables(run_id, run))


@web.route("/plans/<id:run_id>/edit", methods=["POST"])
@roles(Role.PROCUREMENT)
def plan_edit(run_id: int) -> ResponseReturnValue:
    form = request.form

    def edits() -> list[plan_runs.PurchaseEdit]:
        return [plan_runs.PurchaseEdit(int(form.get("offer_id", "")), int(form.get("site_id", "")),
                                       int(form.get("packs") or 0))]

    return attempt(lambda: plan_runs.edit_plan(uow(), run_id, edits()), _("Plan re-costed"),
                   url_for("web.plan", run_id=run_id))


@web.route("/plans/<id:run_id>/approve", methods=["POST"])
@roles(Role.PROCUREMENT)
def plan_approve(run_id: int) -> ResponseReturnValue:
    return attempt(lambda: plan_runs.approve_plan(uow(), run_id), _("Plan approved: orders created"),
                   url_for("web.plan", run_id=run_id))


@web.route("/plans/<id:run_id>/cancel", methods=["POST"])
@roles(Role.PROCUREMENT)
def plan_cancel(run_id: int) -> ResponseReturnValue:
    return attempt(lambda: plan_runs.cancel_plan_run(uow(), run_id, request.form.get("note", "")),
                   _("Plan run cancelled"), url_for("web.plan", run_id=run_id))


@web.route("/suppliers", methods=["GET", "POST"])
@roles(*OFFICERS)
def suppliers() -> ResponseReturnValue:
    if request.method == "POST":
        upload = request.files.get("file")
        text = upload.read().decode("utf-8-sig", errors="replace") if upload else ""
        try:
            result = procurement.import_offers_csv(uow(), text)
        except DomainError as error:
            problems = error.errors if isinstance(error.errors, list) else []
            flash(say(error.message) + "".join(f" · {p.get('line')}/{p.get('column')}: {say(p.get('reason'))}"
                                               for p in problems[:MOST_REASONS_SHOWN]), "error")
        else:
            flash(_("Offers imported: %(created)s new, %(updated)s changed", **result), "ok")
        return redirect(url_for("web.suppliers"))
    listed = procurement.list_suppliers(uow(), ALL).items
    offers = procurement.list_offers(uow(), ALL, valid_on=uow().today()).items
    return render_template("suppliers.html", suppliers=listed, offers=offers,
                           drugs=_drug_names(o.drug_id for o in offers),
                           names={s.id: s.name for s in listed})


# Webhooks to prescribing systems ------------------------------------------------------------------------

@web.route("/webhooks")
@roles(Role.ADMIN)
def webhook_subscriptions() -> ResponseReturnValue:
    return render_template("webhooks.html", rows=webhooks.subscription_health(uow()))


@web.route("/webhooks/<id:subscription_id>/redeliver", methods=["POST"])
@roles(Role.ADMIN)
def webhook_redeliver(subscription_id: int) -> ResponseReturnValue:
    try:
        count = webhooks.redeliver(uow(), subscription_id)
    except DomainError as error:
        flash(refusal(error), "error")
    else:
        flash(_("%(count)s deliveries will be sent again now", count=count), "ok")
    return redirect(url_for("web.webhook_subscriptions"))


# Dashboard ----------------------------------------------------------------------------------------------

@web.route("/dashboard")
@roles(Role.PROCUREMENT, Role.ADMIN, Role.PHARMACIST)
def dashboard() -> ResponseReturnValue:
    figures = consortium_dashboard(uow(), current_app.config["NEAR_EXPIRY_DAYS"])
    return render_template("dashboard.html", d=figures)
