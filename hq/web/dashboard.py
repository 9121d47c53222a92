"""The HQ dashboard at ``/``: touchpoints with trends, funnel, ratings, journeys, devices, dead letters.

Server-rendered HTML with inline SVG charts (``hq.web.charts``), system fonts, no script. Login is
by ``[hq] users`` (``hq.web.users``), failed attempts are throttled; the session lives in the database
(``hq.web.sessions``), so logout revokes it everywhere; its cookie is ``SameSite=Strict`` and
``HttpOnly`` and every form POST carries a per-session CSRF token.
German and English strings live in ``ui/translations/hq/{lang}.json`` (``ui.i18n``).
"""

from __future__ import annotations

import functools
import hmac
import secrets
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timezone
from importlib import resources
from typing import Any

from flask import Blueprint, Flask, abort, current_app, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from hq.analytics.journeys import customer_journey
from hq.core.intake import Bounds
from hq.web import charts, sessions
from hq.web.customers_api import CUSTOMER
from hq.web.reports import parse_store, parse_window, reports_of
from hq.web.users import LoginThrottle, verify
from ui.i18n import Translations

TEXT = Translations(folder="hq", cookie="hq-lang", httponly=True)
THROTTLE = "hq.login-throttle"

bp = Blueprint(
    "dashboard",
    __name__,
    template_folder=str(resources.files("ui") / "templates"),
    static_folder=str(resources.files("ui") / "static" / "hq"),
    static_url_path="/static/hq",
)


def t(key: str) -> str:
    """The string for ``key`` in the request's language; the key itself when missing."""
    return TEXT.translate(key)


def init_app(app: Flask) -> None:
    """Register the dashboard: session settings, login throttle, strings, CSRF check."""
    app.secret_key = app.config["HQ"].hq.secret_key or secrets.token_hex(32)
    app.config.update(
        SESSION_COOKIE_SAMESITE="Strict", SESSION_COOKIE_HTTPONLY=True, PERMANENT_SESSION_LIFETIME=sessions.LIFETIME
    )
    app.config["SESSION_COOKIE_SECURE"] = app.config["HQ"].web.cookies_secure  # [web] secure_cookies
    app.extensions[THROTTLE] = LoginThrottle()
    app.config.setdefault("HQ_REPORT_WAIT_S", app.config["HQ"].hq.report_wait_s)  # then "computing"
    app.register_blueprint(bp)


@bp.app_context_processor
def _context() -> dict[str, Any]:
    return {
        "t": t,
        "lang": TEXT.current(),
        "languages": TEXT.languages(),
        "csrf": csrf_token(),
        "user": sessions.current_user(),
    }


bp.after_app_request(TEXT.remember)


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def _check_csrf() -> None:
    given = request.form.get("csrf", "")
    if not given or not hmac.compare_digest(given.encode(), session.get("csrf", "").encode()):
        abort(400, description="csrf: the form is stale; reload the page and try again")


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not sessions.current_user():
            return redirect(url_for("dashboard.login", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return wrapped


# -- login ------------------------------------------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """The login form; five failed attempts per name or address within five minutes lock it."""
    error = None
    if request.method == "POST":
        _check_csrf()
        name, password = request.form.get("name", "").strip(), request.form.get("password", "")
        keys = [f"name:{name.lower()}", f"addr:{request.remote_addr}"]
        throttle: LoginThrottle = current_app.extensions[THROTTLE]
        if throttle.blocked(keys, time.monotonic()):
            return render_template("hq/login.html", error=t("login.throttled")), 429
        if verify(current_app.config["HQ"].hq.users, name, password):
            sessions.start(name)
            return redirect(local_target(request.args.get("next", "")) or url_for("dashboard.overview"))
        throttle.failed(keys, time.monotonic())
        error = t("login.failed")
    return render_template("hq/login.html", error=error), 401 if error else 200


def local_target(target: str) -> str | None:
    """``next`` when it is a path on this site: browsers read ``//host``, ``/\\host`` and paths with
    tabs or newlines (which they drop) as other sites."""
    if (
        target.startswith("/")
        and not target.startswith("//")
        and "\\" not in target
        and all(ord(c) > 0x20 for c in target)
    ):
        return target
    return None


@bp.post("/logout")
def logout() -> Response:
    """End the session for every web process: a copy of its cookie opens nothing afterwards."""
    _check_csrf()
    sessions.end()
    return redirect(url_for("dashboard.login"))


# -- pages ------------------------------------------------------------------------------------


@bp.get("/")
@login_required
def overview() -> Any:
    """Touchpoints with trends, NPS and CSAT; the funnel; size-request times; top paths. While the
    report is computed the page says so and reloads itself."""
    stores = current_app.extensions["hq.storage"].stores()
    try:
        bounds = Bounds.of(current_app.config["HQ"].intake)
        window, store = parse_window(request.args, datetime.now(timezone.utc), bounds), parse_store(request.args)
        report = reports_of(current_app).get(window, store).result(timeout=current_app.config["HQ_REPORT_WAIT_S"])
    except ValueError as error:
        return render_template("hq/overview.html", error=str(error), report=None, stores=stores), 400
    except TimeoutError:
        return render_template("hq/overview.html", error=None, report=None, computing=True, stores=stores)
    funnel = charts.bars([(t(f"phase.{s.phase}"), s.persons, f"{s.persons:,}") for s in report.funnel])
    return render_template(
        "hq/overview.html",
        report=report,
        funnel=funnel,
        charts=charts,
        error=None,
        stores=stores,
        start=report.window.start.date().isoformat(),
        end=report.window.end.date().isoformat(),
    )


@bp.get("/journey")
@login_required
def journey() -> Any:
    """A customer's timeline across channels, found by their pseudonymous token."""
    customer = request.args.get("customer", "").strip()
    if not customer:
        return render_template("hq/journey.html", customer="", timeline=None, error=None)
    if not CUSTOMER.fullmatch(customer):
        return render_template("hq/journey.html", customer=customer, timeline=None, error=t("journey.bad")), 400
    timeline = customer_journey(current_app.extensions["hq.storage"], customer, limit=500)
    return render_template("hq/journey.html", customer=customer, timeline=timeline, error=None)


@bp.get("/devices")
@login_required
def devices() -> Any:
    """Stores and their devices: online, last seen, backlog, stored events, gaps."""
    by_store: dict[str, list[Any]] = defaultdict(list)
    for device in current_app.extensions["hq.storage"].devices():
        by_store[device.store].append(device)
    return render_template("hq/devices.html", stores=dict(sorted(by_store.items())))


@bp.get("/dead-letters")
@login_required
def dead_letters() -> Any:
    """The newest refused payloads with their reasons."""
    letters = current_app.extensions["hq.storage"].dead_letters(200)
    return render_template("hq/dead_letters.html", letters=letters)
