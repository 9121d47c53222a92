"""The HQ JSON API under ``/v1``: fleet status and dead letters, for operators (session or API token:
dead letters carry raw payloads, with customer tokens in them)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from hq.web.users import reader_required

bp = Blueprint("api", __name__, url_prefix="/v1")


@bp.get("/devices")
@reader_required
def devices() -> Response:
    """Every device: online, last seen, backlog, events stored, contiguous seq and gaps."""
    return jsonify([d.to_json() for d in current_app.extensions["hq.storage"].devices()])


@bp.get("/dead-letters")
@reader_required
def dead_letters() -> Response | tuple[Response, int]:
    """The newest refused payloads and events with their reasons (``?limit=``, default 100)."""
    most = current_app.config["HQ_DEAD_LETTER_LIMIT"]
    limit = request.args.get("limit", "100")
    if not limit.isdigit() or not 1 <= int(limit) <= most:
        return jsonify(error=f"limit: a whole number from 1 to {most}"), 400
    letters = current_app.extensions["hq.storage"].dead_letters(int(limit))
    return jsonify([letter.to_json() for letter in letters])
