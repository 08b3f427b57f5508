"""The ``pharmacy`` command: serve, apply migrations, create consortia, keys and users, import offers, plan."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext

from pharmacy import create_app
from pharmacy.accounts.services import create_api_key, create_user
from pharmacy.clock import system_clock
from pharmacy.consortium.services import create_consortium, find_consortium, find_site
from pharmacy.errors import DomainError
from pharmacy.migrate import upgrade
from pharmacy.principal import SYSTEM, Role, system_for
from pharmacy.unit_of_work import UnitOfWork


def _app_factory() -> Flask:
    return create_app()


@click.group(cls=FlaskGroup, create_app=_app_factory, add_default_commands=False, add_version_option=False)
def main() -> None:
    """The shared pharmacy service of a medical consortium."""


def _uow(consortium_id: int | None = None) -> UnitOfWork:
    factory = current_app.extensions["pharmacy_db"].session_factory
    return UnitOfWork(factory, system_for(consortium_id) if consortium_id else SYSTEM)


def _fail_on_domain_error(error: DomainError) -> None:
    detail = f" ({json.dumps(error.errors, ensure_ascii=False)})" if error.errors else ""
    raise click.ClickException(error.message + detail)


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@with_appcontext
def db_upgrade() -> None:
    """Apply every pending migration."""
    upgrade(current_app.extensions["pharmacy_db"].engine)
    click.echo("database is up to date")


@main.command("create-consortium")
@click.argument("code")
@click.argument("name")
@click.option("--loose", is_flag=True, help="members need not have exactly one upper site")
@with_appcontext
def create_consortium_command(code: str, name: str, loose: bool) -> None:
    """Create a consortium."""
    try:
        consortium = create_consortium(_uow(), code, name, tight=not loose)
    except DomainError as error:
        _fail_on_domain_error(error)
    click.echo(f"consortium {consortium.code} created (id {consortium.id})")


def _resolve(consortium_code: str, site_code: str | None) -> tuple[int, int | None]:
    consortium = find_consortium(_uow(), consortium_code)
    site_id = find_site(_uow(consortium.id), site_code).id if site_code else None
    return consortium.id, site_id


ROLE_CHOICE = click.Choice([r.value for r in Role if r is not Role.SYSTEM])


@main.command("create-key")
@click.option("--consortium", "consortium_code", required=True, help="consortium code")
@click.option("--role", required=True, type=ROLE_CHOICE)
@click.option("--site", "site_code", help="site code (prescribers and pharmacists)")
@click.option("--name", default="", help="what the key is for")
@with_appcontext
def create_key_command(consortium_code: str, role: str, site_code: str | None, name: str) -> None:
    """Issue an API key and print it (it is shown only once)."""
    try:
        consortium_id, site_id = _resolve(consortium_code, site_code)
        _, plain = create_api_key(_uow(consortium_id), consortium_id, name or f"{role} key", Role(role), site_id)
    except DomainError as error:
        _fail_on_domain_error(error)
    click.echo(plain)


@main.command("create-user")
@click.option("--consortium", "consortium_code", required=True)
@click.option("--role", required=True, type=ROLE_CHOICE)
@click.option("--site", "site_code")
@click.option("--username", required=True)
@click.option("--name", "display_name", default="")
@click.password_option(envvar="PHARMACY_PASSWORD")
@with_appcontext
def create_user_command(consortium_code: str, role: str, site_code: str | None, username: str,
                        display_name: str, password: str) -> None:
    """Create a person's account."""
    try:
        consortium_id, site_id = _resolve(consortium_code, site_code)
        create_user(_uow(consortium_id), consortium_id, username, password, Role(role), site_id, display_name)
    except DomainError as error:
        _fail_on_domain_error(error)
    click.echo(f"user {username} created")


@main.command("check-ledger")
@with_appcontext
def check_ledger_command() -> None:
    """Prove that every lot's quantity equals the sum of its movements (all consortia)."""
    from pharmacy.inventory.services import check_ledger

    mismatches = check_ledger(_uow())
    for m in mismatches:
        click.echo(f"lot {m.lot_id}: quantity {m.quantity}, movements sum {m.ledger_sum}; "
                   f"reserved {m.reserved}, held reservations {m.held_sum}")
    if mismatches:
        raise click.ClickException(f"{len(mismatches)} lots disagree with the ledger")
    click.echo("ledger consistent: every lot equals the sum of its movements")


@main.command("scheduler")
@with_appcontext
def scheduler_command() -> None:
    """Run the deployment's one scheduler in the foreground (beside gunicorn workers)."""
    from apscheduler.schedulers.blocking import BlockingScheduler

    from pharmacy.scheduler import DeploymentLock, build_scheduler

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    lock = DeploymentLock(app.extensions["pharmacy_db"], app.instance_path)
    if not lock.acquire():
        raise click.ClickException("another scheduler already runs for this deployment")
    try:
        build_scheduler(app, BlockingScheduler(timezone="UTC")).start()
    finally:
        lock.release()


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--demo", is_flag=True, help="load a demo consortium into an empty database and print API keys")
@click.option("--no-scheduler", is_flag=True, help="do not run scheduled jobs in this process")
@with_appcontext
def serve_command(host: str, port: int, demo: bool, no_scheduler: bool) -> None:
    """Apply migrations and serve the API (single process; use gunicorn in production)."""
    from werkzeug.serving import run_simple

    from pharmacy.scheduler import start_scheduler

    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    upgrade(app.extensions["pharmacy_db"].engine)
    if demo:
        _demo(app)
    if not no_scheduler:
        start_scheduler(app)
    click.echo(f"serving on http://{host}:{port}  (API docs: http://{host}:{port}/docs)")
    run_simple(host, port, app, threaded=True, use_reloader=False, use_debugger=False)


def _demo(app: Flask) -> None:
    from pharmacy.demo import load_demo

    keys_file = Path(app.instance_path) / "demo-keys.json"
    keys = load_demo(app)
    if keys is not None:
        os.makedirs(app.instance_path, exist_ok=True)
        keys_file.write_text(json.dumps([k.__dict__ for k in keys], indent=2, ensure_ascii=False))
        keys_file.chmod(0o600)
        click.echo("demo consortium loaded")
    elif keys_file.exists():
        click.echo("demo consortium already loaded; its keys:")
    else:
        click.echo("the database is not empty: demo not loaded")
        return
    for k in json.loads(keys_file.read_text()):
        where = f" at {k['site']}" if k["site"] else ""
        if k.get("username"):
            click.echo(f"  {k['role']:<12}{where:<12} pages: sign in at /login as {k['username']} / {k['key']}")
        else:
            click.echo(f"  {k['role']:<12}{where:<12} Authorization: Bearer {k['key']}")


@main.command("import-offers")
@click.option("--consortium", "consortium_code", required=True, help="consortium code")
@click.argument("csv_file", type=click.File("rb"))
@with_appcontext
def import_offers_command(consortium_code: str, csv_file: Any) -> None:
    """Import supplier offers from a CSV file (all rows or none; problems listed by line and column)."""
    from pharmacy.procurement.services import import_offers_csv

    try:
        consortium_id, _ = _resolve(consortium_code, None)
        try:
            text = csv_file.read().decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise click.ClickException(f"the CSV is not UTF-8 (byte {error.start})") from None
        result = import_offers_csv(_uow(consortium_id), text)
    except DomainError as error:
        if isinstance(error.errors, list):
            for problem in error.errors:
                click.echo(f"  line {problem.get('line')}, {problem.get('column')}: {problem.get('reason')}",
                           err=True)
            raise click.ClickException(error.message) from None
        _fail_on_domain_error(error)
    click.echo(f"offers: {result['created']} created, {result['updated']} updated, {result['unchanged']} unchanged")


@main.command("plan")
@click.option("--consortium", "consortium_code", required=True, help="consortium code")
@click.option("--horizon", "horizon_days", default=30, show_default=True, type=click.IntRange(1, 365))
@click.option("--budget", type=click.FloatRange(min=0), help="cap on money paid to suppliers (yuan)")
@click.option("--solver", default="highs", show_default=True, type=click.Choice(["highs", "cbc"]))
@click.option("--time-limit", default=60.0, show_default=True, type=click.FloatRange(min=1),
              help="seconds per model")
@click.option("--gap", default=0.005, show_default=True, type=click.FloatRange(0, 0.5),
              help="relative gap between the plan's cost and its proven lower bound")
@click.option("--service-level", default=0.95, show_default=True, type=click.FloatRange(0.5, 0.999))
@click.option("--history", "history_days", default=90, show_default=True, type=click.IntRange(7, 730),
              help="days of dispensing history the forecast reads")
@with_appcontext
def plan_command(consortium_code: str, horizon_days: int, budget: float | None, solver: str, time_limit: float,
                 gap: float, service_level: float, history_days: int) -> None:
    """Run a purchase plan now, with a progress bar, and print it beside the site-by-site baseline.

    The run is recorded like one started over the API: read it, edit it and approve it there.
    """
    from pharmacy.procurement.plan_runs import PlanSettings, execute_run, get_plan_run, start_plan_run

    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        consortium_id, _ = _resolve(consortium_code, None)
        run = start_plan_run(_uow(consortium_id), horizon_days=horizon_days, budget=budget, solver=solver,
                             time_limit=time_limit, gap=gap, service_level=service_level,
                             history_days=history_days, trigger="command")
    except DomainError as error:
        _fail_on_domain_error(error)
    database = app.extensions["pharmacy_db"]
    clock = app.config.get("CLOCK") or system_clock
    with click.progressbar(length=1000, label=f"plan run {run.id}", show_percent=True) as bar:
        def advance(done: int, total: int) -> None:
            bar.update(int(1000 * done / total) - bar.pos)

        status = execute_run(database, run.id, clock, PlanSettings.from_config(app.config), on_progress=advance)
        if status == "succeeded":
            bar.update(1000 - bar.pos)
    run = get_plan_run(_uow(consortium_id), run.id)
    if status != "succeeded" or run.result is None:
        raise click.ClickException(f"plan run {run.id} {run.status}: {run.error}")
    click.echo(plan_summary(run.id, run.result))


def plan_summary(run_id: int, result: dict[str, Any]) -> str:
    """A plan run's result as a table: cost by kind, the plan beside each site buying alone."""
    costs, baseline, summary = result["costs"], result.get("baseline") or {}, result["summary"]
    gap = result.get("gap")
    lines = [f"plan run {run_id}: {result['status']}" + (f", gap {100 * gap:.2f}%" if gap is not None else ""),
             f"{'cost (yuan)':<12}{'plan':>14}{'site by site':>16}"]
    for kind in ("purchase", "delivery", "order", "transfer", "shortage", "waste", "total"):
        lines.append(f"{kind:<12}{costs[kind]:>14,.2f}{baseline.get(kind, float('nan')):>16,.2f}")
    if summary.get("saving") is not None:
        share = summary.get("saving_share") or 0.0
        lines.append(f"saving: {summary['saving']:,.2f} yuan ({100 * share:.1f}%)")
    lines.append(f"purchase lines: {summary['purchase_lines']} from {summary['suppliers']} suppliers; "
                 f"transfer lines: {summary['transfer_lines']} ({summary['near_expiry_units_moved']:,.0f} near-expiry "
                 "units moved)")
    lines.append(f"shortages: {summary['shortage_units']:,.0f} units; waste: {summary['waste_units']:,.0f} units"
                 + (f"; waste avoided: {summary['waste_avoided']:,.2f} yuan" if summary.get("waste_avoided") is not None
                    else ""))
    lines.append(f"approve it with POST /api/plan-runs/{run_id}/approve")
    return "\n".join(lines)
