"""The pages. Each view parses its form, calls a service (the same ones the API calls) and renders; no
business rule lives here. A refused action is shown on the page it came from, with the service's reason and what
was typed. The pharmacist's pages are in :mod:`pharmacy.web.pharmacist`, the prescriber's in
:mod:`pharmacy.web.prescriber`, what prints in :mod:`pharmacy.web.printing`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
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

from pharmacy.accounts.services import names_of
from pharmacy.api import current_clock
from pharmacy.auth import user_principal, verify_user
from pharmacy.catalog.models import Drug
from pharmacy.catalog.services import drugs_by_id
from pharmacy.consortium.models import Site
from pharmacy.consortium.services import sites_by_id
from pharmacy.dashboard.services import consortium_dashboard
from pharmacy.errors import DomainError, Forbidden, NotFound, Unauthorized
from pharmacy.hygiene import flaw
from pharmacy.pagination import PageRequest
from pharmacy.prescriptions import webhooks
from pharmacy.principal import Principal, Role
from pharmacy.procurement import services as procurement
from pharmacy.retries import retried
from pharmacy.unit_of_work import UnitOfWork
from pharmacy.web import LANGUAGES, csrf
from pharmacy.web.words import refusal, say

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
        unfit = _unfit_field()
        if unfit is not None:
            return unfit
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    user_id = session.get("user_id")
    if user_id is None:
        return redirect(url_for("web.login", next=request.path))
    return retried(lambda: _read_signed_in(user_id))  # a lost connection met here is not the user's


def _read_signed_in(user_id: int) -> ResponseReturnValue | None:
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
    g.open_alerts = sum(procurement.open_alert_counts(uow()).values()) \
        if g.principal.role is Role.PHARMACIST else 0
    return None


def _unfit_field() -> ResponseReturnValue | None:
    """A form whose text the database cannot keep (a NUL, a lone surrogate) is refused before any service reads
    it, naming the field, as the API refuses such a body."""
    for name, value in request.form.items(multi=True):
        problem = flaw(name) or flaw(value)
        if problem:
            message = _("The form was refused: the field %(field)s holds a character that cannot be kept (a NUL "
                        "or a lone surrogate). Nothing was done.", field=name.encode("utf-8", "backslashreplace")
                        .decode())
            return render_template("error.html", message=message, status=422), 422
    return None


@web.app_context_processor
def _names() -> dict[str, Any]:
    """What templates name things by: people by their names, sites by theirs (read once per page)."""
    def who(label: str | None) -> str:
        if not label:
            return ""
        cache = g.setdefault("people", {})
        if label not in cache:
            cache.update(names_of(uow(), [label]) if g.get("principal") else {label: label})
        return str(cache.get(label, label))

    def sites() -> dict[int, Site]:
        if "sites" not in g:
            g.sites = sites_by_id(uow()) if g.get("principal") else {}
        return g.sites

    def site_named(code_or_id: Any) -> str:
        """A site's name from its code (as facts name it) or its id."""
        if code_or_id is None or code_or_id == "":
            return ""
        for site in sites().values():
            if code_or_id in (site.id, site.code):
                return site.name
        return str(code_or_id)

    return {"who": who, "site_named": site_named}


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
    if role is Role.PRESCRIBER:
        return redirect(url_for("web.sent"))
    if role is Role.PROCUREMENT:
        return redirect(url_for("web.plans"))
    return redirect(url_for("web.dashboard"))


def _drug_names(ids: Iterable[int]) -> dict[int, Drug]:
    """The drugs a page names, by id (a page never needs the whole catalog)."""
    return drugs_by_id(uow(), ids)


# Procurement officer: pharmacy/web/planning.py (plans) and pharmacy/web/orders.py (orders, suppliers, offers,
# stock across the consortium); administration: pharmacy/web/admin.py.

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


# The pharmacist's, the prescriber's and the printed pages register on the same blueprint.
from pharmacy.web import pharmacist, prescriber, printing  # noqa: E402

__all__ = ["pharmacist", "prescriber", "printing", "web"]
