"""The JSON API the screens use (``/api/...``) and the live event stream (``/api/stream``).

Views only parse and validate the request and call the :class:`kiosk.edge.Edge`; every error is
JSON with the offending field named.
"""

from __future__ import annotations

from typing import Any

import segno
from flask import Blueprint, Response, current_app, jsonify, request

from contract.catalog import Product
from kiosk import catalog as catalogue
from kiosk import i18n, suggestions
from kiosk.edge import ActionError, NoSession, current_edge
from kiosk.sessions import Session
from kiosk.size_requests import RequestNotFound, RequestStateError
from kiosk.staff import staff_required
from kiosk.status import status as edge_status

bp = Blueprint("api", __name__, url_prefix="/api")


@bp.errorhandler(ActionError)
def bad_action(error: ActionError) -> tuple[Response, int]:
    return jsonify({"error": str(error), "field": error.field}), 400


@bp.errorhandler(NoSession)
@bp.errorhandler(RequestStateError)
def conflict(error: Exception) -> tuple[Response, int]:
    return jsonify({"error": str(error)}), 409


@bp.errorhandler(RequestNotFound)
def not_found(error: RequestNotFound) -> tuple[Response, int]:
    return jsonify({"error": str(error)}), 404


def body() -> dict[str, Any]:
    """The request's JSON object; raises ActionError when the body is not one."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ActionError("body", "must be a JSON object (Content-Type: application/json)")
    return data


def text_field(data: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    """A string field of ``data``; raises ActionError naming it when missing or of another type."""
    value = data.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ActionError(name, "missing or not a non-empty string")
    return value.strip()


def screen_zone() -> str | None:
    """The zone of the screen calling (``?zone=`` or its ``X-Touchpoint-Zone`` header); None: the first."""
    return request.args.get("zone") or request.headers.get("X-Touchpoint-Zone") or None


def product_json(product: Product, with_siblings: bool = True) -> dict[str, Any]:
    return current_edge().catalog.row_json(product, i18n.current(), with_siblings)


def session_json(session: Session | None) -> dict[str, Any] | None:
    if session is None:
        return None
    requests = current_edge().requests.for_session(session.session_id)
    return {
        "session_id": session.session_id,
        "started_at": session.started_at,
        "identified": session.customer is not None,
        "requests": [r.as_json() for r in requests],
    }


@bp.get("/products/<gtin>")
def product(gtin: str) -> Response | tuple[Response, int]:
    """A product with its stock and in-stock siblings; ``?via=`` also records a view."""
    via = request.args.get("via")
    edge = current_edge()
    if edge.catalog.get(gtin) is None:
        return jsonify({"error": f"gtin: {gtin!r} is not in the catalogue", "field": "gtin"}), 404
    found = edge.view_product(gtin, via, screen_zone()) if via is not None else edge.product(gtin)
    return jsonify(product_json(found))


@bp.get("/products")
def search() -> Response:
    """Search by text (``?q=``) in names, brand, style and colour."""
    query = request.args.get("q", "").strip()
    if not query:
        raise ActionError("q", "give a search text")
    edge = current_edge()
    edge.touch(screen_zone())
    return jsonify({"products": [product_json(p, False) for p in edge.catalog.search(query)]})


@bp.get("/browse")
def browse() -> Response:
    """One in-stock garment per style, for the kiosk's browse grid (records nothing)."""
    return jsonify({"products": [product_json(p, False) for p in suggestions.styles(current_edge().catalog)]})


@bp.get("/suggestions")
def suggested() -> Response:
    """What goes with the garments ``?gtin=`` (repeatable), personal once the session is identified."""
    edge = current_edge()
    session = edge.current_session(screen_zone())
    document = catalogue.downlinked(edge.config.outbox.path, "recommendations")
    found = suggestions.suggest(
        edge.catalog, document, request.args.getlist("gtin"), session.customer if session else None
    )
    return jsonify(
        {
            "products": [product_json(p, False) for p in found.products],
            "source": found.source,
            "personal": found.personal,
        }
    )


@bp.get("/presence")
def presence() -> Response:
    """The tags present now, per zone."""
    return jsonify(current_edge().presence_json())


@bp.get("/session")
def session_state() -> Response:
    """The running session, or null."""
    return jsonify({"session": session_json(current_edge().current_session(screen_zone()))})


@bp.post("/session/touch")
def touch() -> Response:
    """The shopper touched the screen: starts or keeps the session."""
    return jsonify({"session": session_json(current_edge().touch(screen_zone()))})


@bp.post("/session/end")
def end() -> Response:
    """The shopper is done; the next touch starts a new session."""
    ended = current_edge().end_session("shopper", screen_zone())
    return jsonify({"ended": ended.session_id if ended else None})


@bp.post("/requests")
def create_request() -> tuple[Response, int]:
    """Ask staff for another size and/or colour of the garment ``gtin``."""
    data = body()
    gtin = text_field(data, "gtin")
    size = text_field(data, "size", required=False)
    colour = text_field(data, "colour", required=False)
    request_ = current_edge().request_size(gtin or "", size, colour, screen_zone())
    return jsonify(request_.as_json()), 201


@bp.get("/requests")
@staff_required
def open_requests() -> Response:
    """Requests staff still have to act on (staff only)."""
    return jsonify({"requests": [r.as_json() for r in current_edge().requests.open_requests()]})


@bp.post("/requests/<request_id>/<any(claim, brought, cancel):action>")
@staff_required
def move_request(request_id: str, action: str) -> Response:
    """Staff claim a request, bring the garment, or cancel it."""
    return jsonify(current_edge().move_request(request_id, action).as_json())


@bp.post("/feedback")
def feedback() -> tuple[Response, int]:
    """The end-of-session survey: ``{"scale": "nps"|"csat", "score": n}``."""
    data = body()
    scale = text_field(data, "scale") or ""
    touchpoint = text_field(data, "touchpoint", required=False)
    rated = current_edge().submit_feedback(scale, data.get("score"), touchpoint, screen_zone())
    return jsonify({"session_id": rated.session_id}), 201


@bp.post("/handoff")
def handoff() -> tuple[Response, int]:
    """A token and URL to continue on the phone, with its QR code as SVG made on the device."""
    data = body()
    made = current_edge().create_handoff(data.get("gtins"), current_app.config["HANDOFF_BASE_URL"], screen_zone())
    qr = segno.make(made.url, error="m").svg_inline(scale=6, border=2)
    return jsonify({"token": made.token, "url": made.url, "qr_svg": qr}), 201


@bp.post("/identify")
def identify() -> Response:
    """Link the session to a customer token from the loyalty QR code or the app."""
    data = body()
    method = text_field(data, "method", required=False) or "app"
    session = current_edge().identify(data.get("customer"), method, screen_zone())
    return jsonify({"session": session_json(session)})


@bp.get("/status")
def status() -> Response:
    """Reader, outbox, catalogue and stream state."""
    return jsonify(edge_status(current_edge()))


@bp.get("/stream")
def stream() -> Response | tuple[Response, int]:
    """Server-sent events: ``tag``, ``session``, ``request`` and ``catalog`` updates; 503 beyond
    ``[web] max_streams`` open streams, so the screens' API calls always find a thread."""
    last = request.headers.get("Last-Event-ID", "")
    hub = current_edge().hub
    sub = hub.subscribe(int(last) if last.isdigit() else None, current_edge().config.web.stream_limit)
    if sub is None:
        busy = jsonify({"error": "stream: too many open streams; retry shortly", "field": "stream"})
        busy.headers["Retry-After"] = "5"
        return busy, 503
    heartbeat = current_app.config["SSE_HEARTBEAT_S"]
    response = Response(hub.stream(sub, heartbeat), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"
    return response
