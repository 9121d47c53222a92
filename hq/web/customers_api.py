"""The customer and touchpoint API: journeys, consent, erasure, touchpoint metrics.

Every route needs a dashboard session or the ``[hq] api_token`` bearer token
(``hq.web.users.reader_required``). The numbers come from the analytics core through
``hq.analytics``; persons are read from storage per request, and touchpoint reports are counted
by the database (``hq.web.reports``).
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timezone

from flask import Blueprint, Response, current_app, jsonify, request

from hq.analytics import people
from hq.analytics.journeys import CursorError, customer_journey, report_json
from hq.core.intake import Bounds
from hq.web.reports import parse_store, parse_window, reports_of
from hq.web.users import reader_required

RECOMPUTE = "hq.recompute"  # an object with request(), set by the server when MQTT publishing runs
CUSTOMER = re.compile(r"[A-Za-z0-9._:-]{1,200}")
BAD_CUSTOMER = "customer: 1 to 200 of A-Z, a-z, 0-9, '.', '_', ':' and '-'"
MAX_LIMIT = 1000
RETRY_AFTER_S = 2  # what a 202 asks the client to wait before it asks again

bp = Blueprint("customers", __name__, url_prefix="/v1")
log = logging.getLogger(__name__)


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


@bp.get("/touchpoints")
@reader_required
def touchpoints() -> Response | tuple[Response, int]:
    """Per-touchpoint reach, engagement, conversion, NPS, CSAT, size-request times, funnel, paths,
    over whole UTC hours; 202 with ``Retry-After`` while the report is still being computed."""
    try:
        bounds = Bounds.of(current_app.config["HQ"].intake)
        window, store = parse_window(request.args, datetime.now(timezone.utc), bounds), parse_store(request.args)
    except ValueError as error:
        return _bad(str(error))
    future = reports_of(current_app).get(window, store)
    try:
        report = future.result(timeout=current_app.config["HQ_REPORT_WAIT_S"])
    except TimeoutError:
        answer = jsonify(status="computing", retry_after_s=RETRY_AFTER_S)
        answer.headers["Retry-After"] = str(RETRY_AFTER_S)
        return answer, 202
    return jsonify(report_json(report))
