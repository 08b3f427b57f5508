"""Pages for pharmacists, prescribers and procurement officers: server-rendered Jinja templates with htmx for
partial updates, calling the same services as the API. Chinese by default, English on request (Flask-Babel).

Every moment a page shows is in Beijing time (:func:`pharmacy.clock.local_text`, applied to every datetime a
template prints), every word of the domain in the page's language (:func:`word`), and a page that does not exist
answers as a page in that language."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Flask, render_template, request, session
from flask.typing import ResponseReturnValue
from flask_babel import Babel, gettext
from flask_wtf.csrf import CSRFProtect
from werkzeug.exceptions import HTTPException

from pharmacy.clock import local_text

LANGUAGES = ("zh", "en")
csrf = CSRFProtect()
# Paths that answer in JSON (or FHIR) whatever happens: the API's, its document's and the service's own.
API_PREFIXES = ("/api", "/fhir", "/docs", "/openapi.json", "/health")


def select_locale() -> str:
    chosen = session.get("lang")
    if chosen in LANGUAGES:
        return str(chosen)
    return "zh"  # the consortium works in Chinese; English is a switch away


def word(code: Any) -> str:
    """A word of the domain given by its code (a status, a kind, a reason) in the page's language: the catalog's
    Chinese, or in English the code said as words (``partially_dispensed`` is "partially dispensed")."""
    if code is None or code == "":
        return ""
    said = gettext(str(code))
    return said.replace("_", " ") if said == code else said


def _finalize(value: Any) -> Any:
    """What a template prints: a moment in Beijing time, to the minute; anything else as it is."""
    if isinstance(value, datetime):
        return local_text(value)
    return "" if value is None else value


def _is_api(path: str) -> bool:
    return any(path == prefix or path.startswith(prefix + "/") for prefix in API_PREFIXES)


def init_web(app: Flask) -> None:
    """Sign-in sessions, CSRF protection of the pages' forms, translations, and the pages' blueprint."""
    # The API authenticates every request with a key or credentials: only the pages' forms need tokens.
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # valid for the session, not an hour
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", "web/translations")
    csrf.init_app(app)
    Babel(app, locale_selector=select_locale)
    from pharmacy.web import admin, desk, orders, planning  # noqa: F401  (their views join the pages' blueprint)
    from pharmacy.web.routes import web

    desk.init_app(app)
    app.register_blueprint(web)
    from pharmacy.inventory.domain import days_usable, expiry_band, usable_on

    # Pages say "expired", how many days are left and how close that is by the same rules as dispensing.
    app.jinja_env.globals.update(usable_on=usable_on, days_usable=days_usable, expiry_band=expiry_band)
    app.jinja_env.globals["word"] = word
    app.jinja_env.filters["word"] = word
    app.jinja_env.filters["local_time"] = lambda at: local_text(at) if at else ""
    app.jinja_env.finalize = _finalize

    @app.context_processor
    def _language() -> dict[str, object]:
        return {"current_lang": select_locale(), "request_path": request.path}

    from pharmacy.errors import problem

    @app.errorhandler(404)
    @app.errorhandler(405)
    def _no_such_page(error: HTTPException) -> ResponseReturnValue:
        """A page that does not exist answers as a page, in the page's language; the API's paths (and a client
        asking for JSON) keep the one error shape."""
        status = error.code or 404
        wants_json = request.accept_mimetypes.best_match(["text/html", "application/json"]) == "application/json"
        if _is_api(request.path) or wants_json:
            response, code = problem(status, error.description or "Not Found")
            allow = error.get_response().headers.get("Allow") if status == 405 else None
            if allow:
                response.headers["Allow"] = allow
            return response, code
        message = gettext("There is no such page.") if status == 404 else \
            gettext("This page does not take that kind of request.")
        return render_template("error.html", message=message, status=status), status
