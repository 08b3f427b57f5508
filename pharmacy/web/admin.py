"""The administrator's desk: the catalog (drugs searched, created, edited against the version read, retired, with
their local codes, equivalence groups and the sites' formularies), the sites and the membership tree, people and
API keys (a key shown once), and the audit trail filtered by object and person, with its export."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, time, timedelta
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from pharmacy.accounts import services as accounts
from pharmacy.accounts.queries import people
from pharmacy.accounts.schemas import ACCOUNT_ROLES, NewUserSchema, UserUpdateSchema
from pharmacy.audit import read_audit_trail
from pharmacy.catalog import services as catalog
from pharmacy.catalog.domain import ControlledClass, InsuranceClass, SpecialStorage
from pharmacy.catalog.queries import drugs_by_id, equivalence_groups, formulary_extensions, local_codes_of
from pharmacy.catalog.schemas import DrugSchema, DrugUpdateSchema
from pharmacy.clock import CONSORTIUM_TIMEZONE
from pharmacy.consortium import services as consortium
from pharmacy.consortium.queries import site_tree, sites_by_id
from pharmacy.consortium.schemas import SITE_KINDS, SiteSchema, SiteUpdateSchema
from pharmacy.errors import DomainError, Message, ValidationFailed
from pharmacy.pagination import PageRequest
from pharmacy.principal import Role
from pharmacy.web import exports
from pharmacy.web.desk import beijing, done, form_values, page_of, pages, printable, who, whole
from pharmacy.web.routes import me, roles, uow, web
from pharmacy.web.words import N_, refusal

EVERYTHING = PageRequest(1, 100_000)
DRUG_CHOICES = {"insurance_class": [c.value for c in InsuranceClass],
                "controlled_class": [c.value for c in ControlledClass],
                "special_storage": [c.value for c in SpecialStorage]}
AUDITED = ("Drug", "LocalCode", "FormularyEntry", "Site", "Consortium", "User", "ApiKey", "Supplier", "Offer",
           "PlanRun", "PurchaseOrder", "TransferOrder", "Prescription")


# The catalog --------------------------------------------------------------------------------------------

@web.route("/admin/drugs")
@roles(Role.ADMIN)
def admin_drugs() -> ResponseReturnValue:
    q = (request.args.get("q") or "").strip()[:100]
    shown = request.args.get("active") if request.args.get("active") in ("1", "0") else None
    page = page_of(request.args)
    found = catalog.search_drugs(uow(), page, q=q or None, active=None if shown is None else shown == "1")
    query = {k: v for k, v in (("q", q), ("active", shown)) if v}
    return render_template("admin_drugs.html", drugs=found.items, total=found.total, page=page.page,
                           page_count=pages(found.total), q=q, active=shown, query=query)


def _drug_form(form: Mapping[str, str], schema: Any) -> dict[str, Any]:
    values = form_values(schema, form)
    for name in ("national_code", "atc_code", "brand_name", "manufacturer", "equivalence_group"):
        if name in schema.fields and name in form and not form[name].strip():
            values[name] = None  # an emptied field clears it
    return values


@web.route("/admin/drugs/new", methods=["GET", "POST"])
@roles(Role.ADMIN)
def admin_drug_new() -> ResponseReturnValue:
    if request.method == "POST":
        try:
            drug = catalog.create_drug(uow(), _drug_form(request.form, DrugSchema()))
        except DomainError as error:
            flash(refusal(error), "error")
            return render_template("admin_drug.html", drug=None, typed=request.form, choices=DRUG_CHOICES), 422
        flash(_("Drug %(code)s added to the catalog", code=drug.code), "ok")
        return redirect(url_for("web.admin_drug", drug_id=drug.id), 303)
    return render_template("admin_drug.html", drug=None, typed={}, choices=DRUG_CHOICES)


def _drug_page(drug_id: int, typed: Mapping[str, str] | None = None, status: int = 200) -> ResponseReturnValue:
    drug = catalog.get_drug(uow(), drug_id)
    sites = sites_by_id(uow())
    group = [d for name, members in equivalence_groups(uow()) if name == drug.equivalence_group for d in members]
    return render_template("admin_drug.html", drug=drug, typed=typed or {}, choices=DRUG_CHOICES,
                           local_codes=local_codes_of(uow(), drug_id), sites=sites,
                           extensions=formulary_extensions(uow(), drug_id=drug_id), group=group), status


@web.route("/admin/drugs/<id:drug_id>", methods=["GET", "POST"])
@roles(Role.ADMIN)
def admin_drug(drug_id: int) -> ResponseReturnValue:
    if request.method == "GET":
        return _drug_page(drug_id)
    form = request.form
    version = whole(form, "version") or 0
    try:
        if "active" in form and len([k for k in form if k not in ("csrf_token", "version")]) == 1:
            changes: dict[str, Any] = {"active": form["active"] == "true"}
            said = _("Drug taken up again") if changes["active"] else _("Drug retired")
        else:
            changes, said = _drug_form(form, DrugUpdateSchema(partial=True)), _("Drug changed")
        catalog.update_drug(uow(), drug_id, changes, version)
    except DomainError as error:
        flash(refusal(error), "error")
        return _drug_page(drug_id, form, 409 if error.status == 412 else 422)
    flash(said, "ok")
    return redirect(url_for("web.admin_drug", drug_id=drug_id), 303)


@web.route("/admin/drugs/<id:drug_id>/local-codes", methods=["POST"])
@roles(Role.ADMIN)
def admin_local_code(drug_id: int) -> ResponseReturnValue:
    form = request.form

    def add() -> Any:
        site_id, code = whole(form, "site_id"), form.get("local_code", "").strip()
        if site_id is None or not code or len(code) > 60:
            raise ValidationFailed(Message("choose a site and give its code (1 to 60 characters)"),
                                   {"local_code": code})
        return catalog.map_local_code(uow(), site_id, code, drug_id)

    return done(add, _("Local code mapped"), url_for("web.admin_drug", drug_id=drug_id))


@web.route("/admin/formulary", methods=["POST"])
@roles(Role.ADMIN)
def admin_formulary() -> ResponseReturnValue:
    """Extend a site's formulary with a drug, or remove the extension; back to the page it was done from."""
    form = request.form
    site_id, drug_id = whole(form, "site_id"), whole(form, "drug_id")
    back = form.get("back") or url_for("web.admin_sites")
    target = back if back.startswith("/") and not back.startswith("//") else url_for("web.admin_sites")
    if site_id is None or drug_id is None:
        flash(_("Choose a site and a drug."), "error")
        return redirect(target, 303)
    if form.get("remove") == "1":
        return done(lambda: catalog.remove_formulary_extension(uow(), site_id, drug_id),
                     _("Extension removed from the formulary"), target)
    return done(lambda: catalog.extend_formulary(uow(), site_id, drug_id, form.get("note", "").strip()[:200]),
                 _("Formulary extended"), target)


@web.route("/admin/equivalence-groups")
@roles(Role.ADMIN)
def admin_groups() -> ResponseReturnValue:
    return render_template("admin_groups.html", groups=equivalence_groups(uow()))


# Sites and the tree ---------------------------------------------------------------------------------------

def _site_values(form: Mapping[str, str], schema: Any) -> dict[str, Any]:
    values = form_values(schema, form)
    if "parent_id" in form and not form["parent_id"].strip():
        values["parent_id"] = None  # no upper site
    for name in ("district", "latitude", "longitude"):
        if name in form and not form[name].strip():
            values[name] = None
    return values


@web.route("/admin/sites", methods=["GET", "POST"])
@roles(Role.ADMIN)
def admin_sites() -> ResponseReturnValue:
    if request.method == "POST":
        def create() -> Any:
            return consortium.create_site(uow(), me().consortium_id,  # type: ignore[arg-type]
                                          _site_values(request.form, SiteSchema()))
        return done(create, _("Site added"), url_for("web.admin_sites"))
    return render_template("admin_sites.html", tree=site_tree(uow()), kinds=SITE_KINDS)


@web.route("/admin/sites/<id:site_id>", methods=["GET", "POST"])
@roles(Role.ADMIN)
def admin_site(site_id: int) -> ResponseReturnValue:
    here = url_for("web.admin_site", site_id=site_id)
    if request.method == "POST":
        return done(lambda: consortium.update_site(uow(), site_id, _site_values(request.form, SiteUpdateSchema())),
                     _("Site changed"), here)
    site = consortium.get_site(uow(), site_id)
    extensions = formulary_extensions(uow(), site_id=site_id)
    drugs = drugs_by_id(uow(), [e.drug_id for e in extensions])
    catalog_drugs = catalog.search_drugs(uow(), EVERYTHING, active=True).items
    return render_template("admin_site.html", site=site, tree=site_tree(uow()), kinds=SITE_KINDS,
                           extensions=extensions, drugs=drugs,
                           catalog=[(d.id, f"{d.code} {d.generic_name}") for d in catalog_drugs
                                    if not d.essential and d.id not in drugs])


# People and API keys ------------------------------------------------------------------------------------

def _people_page(new_key: tuple[Any, str] | None = None) -> ResponseReturnValue:
    users = accounts.list_users(uow(), EVERYTHING).items
    keys = accounts.list_api_keys(uow(), EVERYTHING).items
    response = render_template("admin_people.html", users=users, keys=keys, sites=sites_by_id(uow()),
                               roles=ACCOUNT_ROLES, new_key=new_key)
    return response, 200, {"Cache-Control": "no-store"}


@web.route("/admin/people")
@roles(Role.ADMIN)
def admin_people() -> ResponseReturnValue:
    return _people_page()


def _role(form: Mapping[str, str]) -> Role:
    if form.get("role") not in ACCOUNT_ROLES:
        raise ValidationFailed(Message("choose a role"), {"role": form.get("role", "")})
    return Role(form["role"])


@web.route("/admin/people/new", methods=["POST"])
@roles(Role.ADMIN)
def admin_user_new() -> ResponseReturnValue:
    def create() -> Any:
        values = form_values(NewUserSchema(), request.form)
        return accounts.create_user(uow(), me().consortium_id, values["username"], values["password"],  # type: ignore[arg-type]
                                    Role(values["role"]), values.get("site_id"), values.get("display_name", ""))

    return done(create, _("Account created"), url_for("web.admin_people"))


@web.route("/admin/people/<id:user_id>", methods=["POST"])
@roles(Role.ADMIN)
def admin_user(user_id: int) -> ResponseReturnValue:
    def change() -> Any:
        form = request.form
        values = form_values(UserUpdateSchema(), form)
        if "site_id" in form and not form["site_id"].strip():
            values["site_id"] = None
        return accounts.update_user(uow(), user_id, values)

    return done(change, _("Account changed"), url_for("web.admin_people"))


@web.route("/admin/api-keys", methods=["POST"])
@roles(Role.ADMIN)
def admin_key_new() -> ResponseReturnValue:
    """Issue a key: the page that answers shows it this once (never in a redirect or a flashed message, which the
    session cookie would carry)."""
    form = request.form
    try:
        name = form.get("name", "").strip()
        if not 1 <= len(name) <= 120:
            raise ValidationFailed(Message("name the key (1 to 120 characters)"), {"name": name})
        key, plain = accounts.create_api_key(uow(), me().consortium_id, name, _role(form),  # type: ignore[arg-type]
                                             whole(form, "site_id"))
    except DomainError as error:
        flash(refusal(error), "error")
        return redirect(url_for("web.admin_people"), 303)
    return _people_page((key, plain))


@web.route("/admin/api-keys/<id:key_id>/revoke", methods=["POST"])
@roles(Role.ADMIN)
def admin_key_revoke(key_id: int) -> ResponseReturnValue:
    return done(lambda: accounts.revoke_api_key(uow(), key_id), _("Key revoked: it no longer works"),
                 url_for("web.admin_people"))


# The audit trail ----------------------------------------------------------------------------------------

AUDIT_HEADERS = (N_("When"), N_("Who"), N_("Role"), N_("Action"), N_("Object"), N_("Id"), N_("What changed"))


def _audit_filter(args: Mapping[str, str]) -> dict[str, Any]:
    chosen: dict[str, Any] = {}
    for name, limit in (("object_type", 60), ("object_id", 60), ("actor", 160), ("action", 40)):
        value = (args.get(name) or "").strip()
        if value:
            chosen[name] = value[:limit]
    for name in ("since", "until"):
        try:
            day = datetime.strptime(args.get(name) or "", "%Y-%m-%d").date()
        except ValueError:
            continue
        start = datetime.combine(day + timedelta(days=1 if name == "until" else 0), time(0), tzinfo=CONSORTIUM_TIMEZONE)
        chosen[name] = start
    return chosen


def _audit_query(args: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k in ("object_type", "object_id", "actor", "action", "since", "until")
            if (v := (args.get(k) or "").strip())}


def audit_cells(entry: Any) -> list[Any]:
    return [beijing(entry.at), who(entry.actor), _(entry.actor_role), entry.action, entry.object_type,
            entry.object_id, printable(entry.summary)]


@web.route("/admin/audit")
@roles(Role.ADMIN)
def admin_audit() -> ResponseReturnValue:
    page = page_of(request.args)
    found = read_audit_trail(uow(), page, **_audit_filter(request.args))
    return render_template("admin_audit.html", entries=found.items, total=found.total, page=page.page,
                           page_count=pages(found.total), query=_audit_query(request.args), types=AUDITED,
                           people=people(uow()))


@web.route("/admin/audit.<any(csv, xlsx):fmt>")
@roles(Role.ADMIN)
def admin_audit_export(fmt: str) -> ResponseReturnValue:
    found = read_audit_trail(uow(), EVERYTHING, **_audit_filter(request.args))
    return exports.send(exports.Sheet("audit", [_(h) for h in AUDIT_HEADERS], [audit_cells(e) for e in found.items]),
                        fmt)
