"""The customer and touchpoint API: journeys, consent, erasure, touchpoint metrics.

Every route needs a dashboard session or the ``[hq] api_token`` bearer token
(``hq.web.users.reader_required``). The numbers come from the analytics core through
``hq.analytics``; persons are read from storage per request, and touchpoint
reports reuse the app's :class:`hq.analytics.hourly_facts.HourlyFacts` for every hour whose events did not change.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from contract.envelope import utc_now_iso
from hq.analytics import people
from hq.analytics.hourly_facts import HourlyFacts
from hq.analytics.journeys import CursorError, customer_journey, report_facts, report_json
from hq.core import report as reports
from hq.core.intake import DEFAULT_BOUNDS, Bounds
from hq.core.report import MetricsPolicy, Report, Window
from hq.web.users import reader_required

FACTS = "hq.facts"
RECOMPUTE = "hq.recompute"  # an object with request(), set by the server when MQTT publishing runs
CUSTOMER = re.compile(r"[A-Za-z0-9._:-]{1,200}")
BAD_CUSTOMER = "customer: 1 to 200 of A-Z, a-z, 0-9, '.', '_', ':' and '-'"
MAX_LIMIT = 1000
MAX_WINDOW = timedelta(days=400)

bp = Blueprint("customers", __name__, url_prefix="/v1")
log = logging.getLogger(__name__)


def init_app(app: Flask) -> None:
    """Give the app its hourly facts cache (one per web process)."""
    days = app.config["HQ"].hq.report_cache_days
    app.extensions[FACTS] = HourlyFacts(app.extensions["hq.storage"], keep_hours=24 * days)


def _bad(message: str) -> tuple[Response, int]:
    return jsonify(error=message), 400


@bp.get("/customers/<customer>/journey")
@reader_required
def journey(customer: str) -> Response | tuple[Response, int]:
    """Every touchpoint of the person behind a customer token, in time order, a page at a time."""
    if not CUSTOMER.fullmatch(customer):
        return _bad(BAD_CUSTOMER)
    limit = request.args.get("limit", "100")
    if not limit.isdigit() or not 1 <= int(limit) <= MAX_LIMIT:
        return _bad(f"limit: a whole number from 1 to {MAX_LIMIT}")
    storage = current_app.extensions["hq.storage"]
    try:
        return jsonify(customer_journey(storage, customer, cursor=request.args.get("cursor"), limit=int(limit)))
    except CursorError as error:
        return _bad(f"cursor: {error}")


@bp.put("/customers/<customer>/consent")
@reader_required
def consent(customer: str) -> Response | tuple[Response, int]:
    """Record ``{"consent": "granted"|"denied"|"revoked"}``; it governs stitching and hints."""
    if not CUSTOMER.fullmatch(customer):
        return _bad(BAD_CUSTOMER)
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _bad('body: a JSON object like {"consent": "granted"}')
    try:
        change = people.set_consent(
            current_app.extensions["hq.storage"], customer, body.get("consent"), datetime.now(timezone.utc)
        )
    except ValueError as error:
        return _bad(str(error))
    _republish()
    return jsonify(customer=customer, consent=change.state)


@bp.delete("/customers/<customer>")
@reader_required
def erase(customer: str) -> Response | tuple[Response, int]:
    """Erase the customer and everything linked to them; the stores' messages are rebuilt."""
    if not CUSTOMER.fullmatch(customer):
        return _bad(BAD_CUSTOMER)
    done = people.erase(current_app.extensions["hq.storage"], customer)
    log.info(
        "erased a customer: %d events, %d dead letters, %d identifiers",
        done.events,
        done.dead_letters,
        done.identifiers,
    )
    republish = _republish()
    return jsonify(
        customer=customer,
        events=done.events,
        dead_letters=done.dead_letters,
        identifiers=done.identifiers,
        republish=republish,
    )


def _republish() -> str:
    recompute = current_app.extensions.get(RECOMPUTE)
    if recompute is None:
        return "off"
    recompute.request()
    return "scheduled"


def parse_window(args: Mapping[str, str], now: datetime, bounds: Bounds = DEFAULT_BOUNDS) -> Window:
    """``from``/``to`` as RFC 3339 dates or times (default: the last 30 days), both inside the
    window intake accepts event times in (``[intake]``); ValueError names the parameter."""
    earliest, latest = bounds.window(now)

    def moment(name: str, default: datetime) -> datetime:
        text = args.get(name)
        if not text:
            return default
        try:
            value = datetime.fromisoformat(text.replace("Z", "+00:00"))
            value = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
            outside = not earliest <= value <= latest
        except (ValueError, OverflowError):
            raise ValueError(f"{name}: {text[:40]!r} is not an RFC 3339 date or time") from None
        if outside:
            raise ValueError(f"{name}: outside {utc_now_iso(earliest)} .. {utc_now_iso(latest)}, the times HQ accepts")
        return value

    end = moment("to", now)
    start = moment("from", max(end - timedelta(days=30), earliest))
    if not start < end:
        raise ValueError("from: must be before to")
    if end - start > MAX_WINDOW:
        raise ValueError(f"from: at most {MAX_WINDOW.days} days before to")
    return Window(start, end)


def report_for(args: dict[str, str], now: datetime) -> Report:
    """The touchpoint report a request asks for; raises ValueError naming the bad parameter."""
    window = parse_window(args, now, Bounds.of(current_app.config["HQ"].intake))
    store = args.get("store") or None
    if store is not None and not re.fullmatch(r"[a-z0-9-]{1,64}", store):
        raise ValueError("store: 1 to 64 of a-z, 0-9 and '-'")
    policy = MetricsPolicy()
    inside, after = report_facts(window, policy, current_app.extensions[FACTS])  # journeys need not wait for this
    stitched = current_app.extensions["hq.storage"].stitched()
    return reports.report(inside, after, window, store, policy, stitched)


@bp.get("/touchpoints")
@reader_required
def touchpoints() -> Response | tuple[Response, int]:
    """Per-touchpoint reach, engagement, conversion, NPS, CSAT, size-request times, funnel, paths."""
    try:
        report = report_for(request.args, datetime.now(timezone.utc))
    except ValueError as error:
        return _bad(str(error))
    return jsonify(report_json(report))
