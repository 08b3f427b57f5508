"""Pages for pharmacists and procurement officers: server-rendered Jinja templates with htmx for partial
updates, calling the same services as the API. Chinese by default, English on request (Flask-Babel)."""

from __future__ import annotations

from flask import Flask, request, session
from flask_babel import Babel
from flask_wtf.csrf import CSRFProtect

LANGUAGES = ("zh", "en")
csrf = CSRFProtect()


def select_locale() -> str:
    chosen = session.get("lang")
    if chosen in LANGUAGES:
        return str(chosen)
    return "zh"  # the consortium works in Chinese; English is a switch away


def init_web(app: Flask) -> None:
    """Sign-in sessions, CSRF protection of the pages' forms, translations, and the pages' blueprint."""
    # The API authenticates every request with a key or credentials: only the pages' forms need tokens.
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # valid for the session, not an hour
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", "web/translations")
    csrf.init_app(app)
    Babel(app, locale_selector=select_locale)
    from pharmacy.web.routes import web

    app.register_blueprint(web)
    from pharmacy.inventory.domain import usable_on

    app.jinja_env.globals["usable_on"] = usable_on  # pages say "expired" by the same rule as dispensing

    @app.context_processor
    def _language() -> dict[str, object]:
        return {"current_lang": select_locale(), "request_path": request.path}
