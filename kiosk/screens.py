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
    """A catalogue image, from the directory the catalogue came with."""
    root = current_edge().catalog.image_root
    if root is None:
        abort(404)
    return send_from_directory(root, name, max_age=3600)
