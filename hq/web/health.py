"""``/healthz`` for load balancers and systemd (open), ``/metrics`` for Prometheus (token or listener)."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from common.webserver import METRICS_CLOSED, metrics_allowed

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    """200 when the database answers and every registered check passes, else 503."""
    results = {"database": database_ok()}
    results.update({name: bool(check()) for name, check in current_app.extensions["hq.checks"].items()})
    healthy = all(results.values())
    return jsonify(status="ok" if healthy else "failing", checks=results), 200 if healthy else 503


@bp.get("/metrics")
def metrics() -> Response | tuple[Response, int]:
    """Prometheus text format from this app's own registry; ``[web] metrics_token`` or ``metrics_listen``."""
    if not metrics_allowed(request.environ, current_app.config["HQ"].web.metrics_token):
        return jsonify(error=METRICS_CLOSED), 401
    registry = current_app.extensions["hq.metrics"].registry
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


def database_ok() -> bool:
    try:
        current_app.extensions["hq.storage"].ping()
    except Exception:  # any driver error means unhealthy, and is worth a log line
        log.exception("health check: the database does not answer")
        return False
    return True
