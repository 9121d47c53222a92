"""The staff screen at ``/staff``: a PIN opens it, a signed session cookie keeps it open.

An empty ``[staff] pin`` switches staff access off entirely (404), so a device never exposes an
unprotected staff screen. Repeated wrong PINs from one client address lock that address out for a
while (429 with Retry-After); the count lives in memory, so a restart forgets it.
"""

from __future__ import annotations

import functools
import hmac
import math
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Blueprint, abort, current_app, jsonify, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from kiosk.edge import current_edge

bp = Blueprint("staff", __name__, url_prefix="/staff")
View = TypeVar("View", bound=Callable[..., Any])
FAILURES = "touchpoint.staff_failures"  # app.extensions: client address -> recent wrong-PIN times


def configured_pin() -> str:
    return current_app.config["TOUCHPOINT"].staff.pin


def is_staff() -> bool:
    return bool(configured_pin()) and session.get("staff") is True


def staff_required(view: View) -> View:
    """404 when staff access is off, 401 (JSON) when the caller has not entered the PIN."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not configured_pin():
            abort(404)
        if not is_staff():
            return jsonify({"error": "staff PIN required", "field": "pin"}), 401
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


@bp.before_request
def staff_enabled() -> None:
    if not configured_pin():
        abort(404)


@bp.get("/", strict_slashes=False)
def index() -> str:
    """The request queue, or the PIN form."""
    if not is_staff():
        return render_template("edge/staff_login.html", error=None)
    return render_template("edge/staff.html", role=current_edge().role)


def retry_after(failures: list[float], now: float, limit: int, window_s: float) -> int:
    """Whole seconds until a client with these wrong-PIN times may try again; 0 when it may now."""
    recent = [t for t in failures if now - t < window_s]
    if len(recent) < limit:
        return 0
    return max(1, math.ceil(recent[-limit] + window_s - now))


@bp.post("/login")
def login() -> Any:
    """Check the PIN; STAFF_MAX_ATTEMPTS wrong ones within STAFF_LOCK_S lock out that client address."""
    now = current_edge().clock()
    window_s, limit = current_app.config["STAFF_LOCK_S"], current_app.config["STAFF_MAX_ATTEMPTS"]
    by_client: dict[str, list[float]] = current_app.extensions.setdefault(FAILURES, {})
    for address in [a for a, times in by_client.items() if not times or now - times[-1] >= window_s]:
        del by_client[address]  # forget clients that have been quiet for a window: memory stays bounded
    client = request.remote_addr or "unknown"
    failures = by_client.setdefault(client, [])
    wait_s = retry_after(failures, now, limit, window_s)
    if wait_s:
        page = render_template("edge/staff_login.html", error="staff.locked")
        return page, 429, {"Retry-After": str(wait_s)}
    given = request.form.get("pin", "")
    if not hmac.compare_digest(given.encode(), configured_pin().encode()):
        failures.append(now)
        del failures[:-limit]
        return render_template("edge/staff_login.html", error="staff.wrong_pin"), 403
    session.clear()
    session["staff"] = True
    return redirect(url_for("staff.index"))


@bp.post("/logout")
def logout() -> Response:
    """Forget the staff login on this browser."""
    session.pop("staff", None)
    return redirect(url_for("staff.index"))
