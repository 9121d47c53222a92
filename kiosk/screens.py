"""The shopper's screen at ``/`` (the mirror or the kiosk, by the device's role) and product images."""

from __future__ import annotations

from flask import Blueprint, Response, abort, render_template, request, send_from_directory

from kiosk.edge import current_edge

bp = Blueprint("screens", __name__)


@bp.get("/")
def shopper() -> str:
    """The mirror or kiosk screen of the device's first zone, or of ``?zone=`` (a second cabin's screen)."""
    edge = current_edge()
    zone = request.args.get("zone", edge.zone)
    if zone not in edge.zones:
        abort(404)
    return render_template(f"edge/{edge.role}.html", zone=zone, survey=edge.config.session.survey)


@bp.get("/catalog/<path:name>")
def image(name: str) -> Response:
    """An image a row of the catalogue names, from the catalogue's folder; nothing else there (the
    outbox, its WAL, the config beside it) and no other path, so 404 for every name not listed."""
    catalog = current_edge().catalog
    if catalog.image_root is None or name not in catalog.images:
        abort(404)
    response = send_from_directory(catalog.image_root, name, max_age=3600)
    # An SVG opened as a page must not run script on the edge's origin.
    response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
