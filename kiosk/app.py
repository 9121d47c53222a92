"""The edge Flask app factory: defaults, then the device config, then a test override.

Subsystems (the edge runtime, languages, metrics) register themselves with ``init_app``; views
live in one blueprint per area and reach the runtime through :func:`kiosk.edge.current_edge`.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any

from flask import Flask

from common.config import EdgeConfig
from contract.catalog import CatalogError
from kiosk import api, i18n, screens, staff
from kiosk import catalog as catalogue
from kiosk import prometheus as metrics
from kiosk.edge import EXTENSION, Edge
from sync.outbox import Outbox

OWNED_OUTBOX = "touchpoint.owned_outbox"

DEFAULTS: dict[str, Any] = {
    "SSE_HEARTBEAT_S": 15.0,
    "STAFF_MAX_ATTEMPTS": 5,  # wrong PINs before /staff locks for STAFF_LOCK_S
    "STAFF_LOCK_S": 60.0,
    "SESSION_COOKIE_SAMESITE": "Strict",
    "SESSION_COOKIE_HTTPONLY": True,
}


def create_app(
    config: EdgeConfig,
    *,
    outbox: Outbox | None = None,
    clock: Callable[[], float] | None = None,
    start_readers: bool = True,
    overrides: Mapping[str, Any] | None = None,
) -> Flask:
    """Build the edge app; the caller stops it with :func:`shutdown`.

    ``outbox`` is used as given (and left open) when passed, else opened from ``[outbox] path``;
    ``clock`` replaces ``time.time`` for tests; ``start_readers=False`` leaves reader and ticker
    stopped so a test drives ``Edge.on_read`` and ``Edge.tick`` itself.
    """
    ui = resources.files("ui")
    app = Flask(
        __name__,
        template_folder=str(ui / "templates"),
        static_folder=str(ui / "static"),
        static_url_path="/static",
    )
    app.config.update(
        DEFAULTS, SECRET_KEY=secrets.token_hex(32), TOUCHPOINT=config, HANDOFF_BASE_URL=config.web.handoff_url
    )  # where a phone continues a session
    app.config.update(overrides or {})

    owned = outbox is None
    box = outbox or Outbox(config.outbox.path, config.source, config.outbox.capacity)
    try:  # after the outbox, which creates the directory the downlinked catalogue lives in
        catalog = catalogue.load(config.catalog.path, config.outbox.path)
    except CatalogError:
        if owned:
            box.close()
        raise
    edge = Edge(config, box, catalog, clock=clock or time.time)
    app.extensions[EXTENSION] = edge
    app.extensions[OWNED_OUTBOX] = box if owned else None

    i18n.init_app(app)
    metrics.init_app(app)

    app.register_blueprint(screens.bp)
    app.register_blueprint(staff.bp)
    app.register_blueprint(api.bp)
    if start_readers:
        edge.start()
    return app


def shutdown(app: Flask) -> None:
    """Stop reader and ticker, end open streams, close what the app opened."""
    edge: Edge = app.extensions[EXTENSION]
    edge.stop()
    owned: Outbox | None = app.extensions[OWNED_OUTBOX]
    if owned is not None:
        owned.close()
